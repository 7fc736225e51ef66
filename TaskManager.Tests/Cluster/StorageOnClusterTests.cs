using TaskManager.Tests.Infrastructure;
using TaskManager.Tests.Storage;

namespace TaskManager.Tests.Cluster;

// The storage suite on a real Redis Cluster of three primaries: every test of each class, as on
// one Redis.

[Trait("Category", "Cluster")]
public sealed class TaskStoreOnACluster(RedisCluster redis) : TaskStoreTests<RedisCluster>(redis);

[Trait("Category", "Cluster")]
public sealed class PlacementStoreOnACluster(RedisCluster redis) : PlacementStoreTests<RedisCluster>(redis);

[Trait("Category", "Cluster")]
public sealed class SchedulerStoreOnACluster(RedisCluster redis) : SchedulerStoreTests<RedisCluster>(redis);

[Trait("Category", "Cluster")]
public sealed class FleetGaugesOnACluster(RedisCluster redis) : FleetGaugesTests<RedisCluster>(redis);

[Trait("Category", "Cluster")]
public sealed class ReplyShapeOnACluster(RedisCluster redis) : ReplyShapeTests<RedisCluster>(redis);

[Trait("Category", "Cluster")]
public sealed class SchedulerProcessOnACluster(RedisCluster redis) : SchedulerProcessTests<RedisCluster>(redis);

[Trait("Category", "Cluster")]
public sealed class WebhookStoreOnACluster(RedisCluster redis) : WebhookStoreTests<RedisCluster>(redis);

[Trait("Category", "Cluster")]
public sealed class WebhookSecretsOnACluster(RedisCluster redis) : WebhookSecretsTests<RedisCluster>(redis);
