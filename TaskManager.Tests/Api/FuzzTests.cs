using System.Net;
using System.Text;
using System.Text.Json;
using TaskManager.Tests.Infrastructure;
using Xunit.Abstractions;

namespace TaskManager.Tests.Api;

/// <summary>
/// Thousands of generated bad requests across every endpoint: each answer is a 4xx ProblemDetails,
/// none a 5xx, the service stays healthy, and the tasks stored before are unchanged after.
/// </summary>
[Trait("Category", "Api")]
public sealed class FuzzTests(ApiFixture fixture, ITestOutputHelper output) : IClassFixture<ApiFixture>
{
    private const string Worker = "w_0123456789abcdef0123456789abcdef";
    private const string Task = "0123456789abcdef0123456789abcdef";

    [Fact]
    public async Task TwoThousandBadRequests_EachGetA4xxProblemDetails_AndNothingStoredChanges()
    {
        await fixture.Redis.FlushAsync();
        var api = fixture.Api;
        var stored = await SeedAsync(api);
        var before = await RedisSnapshot.TakeAsync(fixture.Redis, "{tm}:task:*");
        var requests = Generate(new Random(20261126)).ToList();
        Assert.True(requests.Count >= 2000, $"Only {requests.Count} requests were generated.");

        var failures = new List<string>();
        var byStatus = new Dictionary<int, int>();
        await Parallel.ForEachAsync(requests, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (make, _) =>
        {
            using var request = make();
            var description = $"{request.Method} {Shorten(request.RequestUri!.OriginalString)}";
            HttpResponseMessage response;
            try
            {
                response = await api.Client.SendAsync(request);
            }
            catch (HttpRequestException ex)
            {
                lock (failures)
                {
                    failures.Add($"{description}: the connection failed: {ex.Message}");
                }
                return;
            }
            var problem = await CheckAsync(response);
            lock (failures)
            {
                byStatus[(int)response.StatusCode] = byStatus.GetValueOrDefault((int)response.StatusCode) + 1;
                if (problem is not null)
                {
                    failures.Add($"{description}: {problem}");
                }
            }
        });

        output.WriteLine($"{requests.Count} requests: " + string.Join(", ", byStatus.OrderBy(s => s.Key).Select(s => $"{s.Key} x{s.Value}")));
        Assert.True(failures.Count == 0, $"{failures.Count} answers were not 4xx ProblemDetails:\n" + string.Join("\n", failures.Take(30)));
        Assert.Equal(HttpStatusCode.OK, (await api.Client.GetAsync("/api/health")).StatusCode);
        Assert.Empty((await RedisSnapshot.TakeAsync(fixture.Redis, "{tm}:task:*")).DifferencesFrom(before));
        Assert.Equal(stored, (await (await api.Client.GetAsync("/api/tasks?limit=100")).JsonAsync()).GetProperty("items").GetArrayLength());
    }

    private static async Task<string?> CheckAsync(HttpResponseMessage response)
    {
        var status = (int)response.StatusCode;
        if (status is < 400 or >= 500)
        {
            return $"answered {status}";
        }
        if (response.Content.Headers.ContentType?.MediaType != "application/problem+json")
        {
            return $"answered {status} as {response.Content.Headers.ContentType?.MediaType ?? "no content type"}";
        }
        var text = await response.Content.ReadAsStringAsync();
        try
        {
            var body = JsonDocument.Parse(text).RootElement;
            return body.GetProperty("status").GetInt32() == status && body.TryGetProperty("title", out _)
                ? null
                : $"answered {status} with a ProblemDetails that does not match: {Shorten(text)}";
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return $"answered {status} with a body that is not a ProblemDetails: {Shorten(text)}";
        }
    }

    /// <summary>Tasks in several states: the fuzz must leave every one as it was.</summary>
    private static async Task<int> SeedAsync(ApiProcess api)
    {
        for (var i = 0; i < 4; i++)
        {
            await api.Client.PostJsonAsync("/api/tasks", "{\"type\":\"llm\",\"input\":{\"prompt\":\"seed " + i + "\"},\"metadata\":{\"n\":" + i + "}}");
        }
        var worker = await HotPathTests.RegisterWorkerAsync(api.Client, ["llm"]);
        var leased = (await (await api.Client.PostAsync($"/api/workers/{worker}/lease?wait_seconds=1", new StringContent("""{"max_tasks":2}""", Encoding.UTF8, "application/json"))).JsonAsync()).GetProperty("tasks");
        await api.Client.PostObjectAsync($"/api/workers/{worker}/tasks/{leased[0].GetProperty("task_id").GetString()}/complete",
            new { lease_token = leased[0].GetProperty("lease_token").GetString(), output = new { text = "done" } });
        return 4;
    }

    private static IEnumerable<Func<HttpRequestMessage>> Generate(Random random)
    {
        var validBodies = new[]
        {
            """{"type":"llm","input":{"prompt":"hello","max_tokens":16},"priority":3,"metadata":{"a":1}}""",
            """{"type":"sd","input":{"prompt":"a cat","width":512,"height":512},"requirements":{"gpu_memory_mb":1000}}""",
            """{"type":"tts","input":{"text":"hi","speed":1.5}}""",
            """{"type":"image_to_text","input":{"image":"aGVsbG8="}}""",
        };

        // Broken JSON: valid bodies cut short or with a stray character.
        for (var i = 0; i < 300; i++)
        {
            var body = validBodies[random.Next(validBodies.Length)];
            var cut = random.Next(1, body.Length - 1);
            var broken = i % 2 == 0 ? body[..cut] : body.Insert(cut, ((char)random.Next(33, 126)).ToString() + "\u0001");
            yield return Post("/api/tasks", broken);
        }

        // Wrong types and out-of-range values, one field at a time.
        var badValues = new Dictionary<string, string[]>
        {
            ["type"] = ["\"video\"", "1", "null", "[]", "{}", "\"\"", "\"LLM\""],
            ["input"] = ["\"prompt\"", "1", "[]", "null", "true"],
            ["model"] = ["1", "\"\"", "[]", "{}", $"\"{new string('m', 300)}\"", "\"a\\u0000b\""],
            ["priority"] = ["-1", "10", "5.5", "\"5\"", "1e308", "-1e308", "99999999999999999999", "true", "[]"],
            ["timeout_seconds"] = ["0", "-5", "86401", "1e20", "\"300\"", "3.14", "{}"],
            ["max_attempts"] = ["0", "11", "-1", "2147483648", "\"3\"", "[3]"],
            ["metadata"] = ["\"m\"", "[]", "1", $"{{\"s\":\"{new string('x', 5000)}\"}}", Nest("{\"a\":", "}", 20, "1")],
            ["webhook"] = ["\"ftp://x\"", "\"not a url\"", "1", "\"\"", "\"javascript:alert(1)\""],
            ["requirements"] = ["[]", "{\"gpu_memory_mb\":-1}", "{\"gpu_memory_mb\":1e30}", "{\"gpu\":\"\"}", "{\"vram\":1}", "\"H100\""],
            ["unknown"] = ["1", "\"x\""],
        };
        var inputBad = new Dictionary<string, (string Type, string[] Values)>
        {
            ["prompt"] = ("llm", ["\"\"", "1", "[]", $"\"{new string('p', 100_001)}\""]),
            ["max_tokens"] = ("llm", ["0", "8193", "-1", "1.5", "\"16\"", "1e99"]),
            ["temperature"] = ("llm", ["-0.1", "2.1", "\"hot\"", "1e400"]),
            ["top_p"] = ("llm", ["-1", "1.01", "[]"]),
            ["stop"] = ("llm", ["[\"a\",\"b\",\"c\",\"d\",\"e\"]", "[1]", "[\"\"]", "{}"]),
            ["messages"] = ("llm", ["[]", "[{\"role\":\"robot\",\"content\":\"x\"}]", "[1]", "[{\"role\":\"user\"}]", "\"hi\""]),
            ["width"] = ("sd", ["63", "2049", "100", "-512", "\"512\""]),
            ["steps"] = ("sd", ["0", "151", "1e9"]),
            ["num_images"] = ("sd", ["0", "5", "true"]),
            ["guidance_scale"] = ("sd", ["-1", "31", "\"x\""]),
            ["seed"] = ("sd", ["-1", "4294967296", "\"s\""]),
            ["speed"] = ("tts", ["0.1", "5", "\"fast\""]),
            ["format"] = ("tts", ["\"ogg\"", "1", "\"\""]),
            ["text"] = ("tts", ["\"\"", "[]", $"\"{new string('t', 5001)}\""]),
            ["image"] = ("image_to_text", ["\"not base64!\"", "1", "\"\"", "\"====\""]),
        };
        for (var round = 0; round < 8; round++)
        {
            foreach (var (field, values) in badValues)
            {
                foreach (var value in values)
                {
                    var body = field switch
                    {
                        "type" => "{\"type\":" + value + ",\"input\":{\"prompt\":\"x\"}}",
                        "input" => "{\"type\":\"llm\",\"input\":" + value + "}",
                        _ => "{\"type\":\"llm\",\"input\":{\"prompt\":\"x\"},\"" + field + "\":" + value + "}",
                    };
                    yield return Post("/api/tasks", body);
                }
            }
            foreach (var (field, (type, values)) in inputBad)
            {
                foreach (var value in values)
                {
                    var base_ = type switch
                    {
                        "llm" => field == "prompt" ? "" : "\"prompt\":\"x\",",
                        "sd" => "\"prompt\":\"x\",",
                        "tts" => field == "text" ? "" : "\"text\":\"x\",",
                        _ => field == "image" ? "" : "\"image\":\"aGk=\",",
                    };
                    if (field == "messages")
                    {
                        base_ = "";
                    }
                    yield return Post("/api/tasks", "{\"type\":\"" + type + "\",\"input\":{" + base_ + "\"" + field + "\":" + value + "}}");
                }
            }
        }

        // Deep nesting, invalid UTF-8, very long strings, oversize bodies, odd shapes.
        for (var i = 0; i < 40; i++)
        {
            yield return Post("/api/tasks", Nest("[", "]", 70 + i, "1"));
            yield return Post("/api/tasks", "{\"type\":\"llm\",\"input\":{\"prompt\":\"x\"},\"metadata\":" + Nest("{\"a\":", "}", 9 + i, "1") + "}");
            yield return PostBytes("/api/tasks", [.. "{\"type\":\"llm\",\"input\":{\"prompt\":\""u8, 0xC3, 0x28, (byte)(0x80 + i), .. "\"}}"u8]);
            yield return PostBytes("/api/tasks", [.. "{\"type\":\"llm\",\"input\":{\""u8, 0xFF, 0xFE, .. "\":1}}"u8]);
            yield return Post("/api/tasks", "{\"type\":\"llm\",\"input\":{\"prompt\":\"\\ud800\"}}");
            yield return Post("/api/tasks", i % 2 == 0 ? "[]" : i % 3 == 0 ? "null" : "\"task\"");
            yield return Post("/api/tasks", "{\"type\":\"llm\",\"type\":\"sd\",\"input\":{\"prompt\":\"dup\"}}");
            yield return Post("/api/tasks", "");
            yield return () => new HttpRequestMessage(HttpMethod.Post, "/api/tasks") { Content = new StringContent("type=llm", Encoding.UTF8, "application/x-www-form-urlencoded") };
        }
        for (var i = 0; i < 10; i++)
        {
            var huge = "{\"type\":\"llm\",\"input\":{\"prompt\":\"" + new string('z', 1_100_000 + (i * 1000)) + "\"}}";
            // As a careful client sends a large body: it waits for the server's go-ahead, so the
            // 413 comes back before the body is sent. Without it, the server's answer and its
            // closing of the connection can race the client's upload, which then fails to send
            // (an HTTP race, not an answer of the API's).
            var post = Post("/api/tasks", huge);
            yield return () =>
            {
                var request = post();
                request.Headers.ExpectContinue = true;
                return request;
            };
        }

        // Odd ids and paths on every task route.
        string[] oddIds =
        [
            "x", "..", "0", "-1", "null", "undefined", "%ff", "%C0%AF", "\u00e9\u00e8", "\U0001F600", "' OR 1=1 --", "<script>",
            new string('a', 32), new string('A', 32), new string('f', 33), "w_" + new string('0', 32), new string('9', 3000), "..%2F..%2Fetc%2Fpasswd",
        ];
        foreach (var id in oddIds)
        {
            var escaped = id.Contains('%') ? id : Uri.EscapeDataString(id);
            foreach (var (method, suffix) in new[] { ("GET", ""), ("PATCH", "/cancel"), ("POST", "/cancel"), ("DELETE", ""), ("GET", "/events"), ("GET", "/artifacts/a.png"), ("GET", "/artifacts/" + escaped) })
            {
                for (var k = 0; k < 3; k++)
                {
                    var path = $"/api/tasks/{escaped}{suffix}";
                    yield return () => new HttpRequestMessage(new HttpMethod(method), path);
                }
            }
            yield return () => new HttpRequestMessage(HttpMethod.Post, $"/api/admin/workers/{escaped}/drain");
        }

        // Bad queries on the list, the lease and the event stream.
        string[] badLimits = ["0", "-1", "101", "abc", "1e3", "99999999999", "%00", "%ff"];
        string[] badStatuses = ["done", "QUEUED", "queued,nope", "%ff"];
        for (var i = 0; i < 6; i++)
        {
            foreach (var limit in badLimits)
            {
                yield return Get($"/api/tasks?limit={limit}");
            }
            foreach (var status in badStatuses)
            {
                yield return Get($"/api/tasks?status={status}");
                yield return Get($"/api/tasks?type={status}");
            }
            yield return Get("/api/tasks?cursor=not-a-cursor");
            yield return () =>
            {
                var request = new HttpRequestMessage(HttpMethod.Get, $"/api/tasks/{Task}/events");
                request.Headers.TryAddWithoutValidation("Last-Event-ID", "garbage");
                return request;
            };
        }

        // The worker protocol, with the worker token: junk bodies, odd ids, bad parameters.
        string[] junkBodies =
        [
            "", "{", "[]", "null", "1", "\"x\"", "{\"name\":1}", "{\"task_types\":\"llm\"}", "{\"task_types\":[\"video\"],\"name\":\"n\"}",
            "{\"name\":\"n\",\"task_types\":[\"llm\"],\"capacity\":0}", "{\"name\":\"n\",\"task_types\":[\"llm\"],\"capacity\":1e10}",
            "{\"name\":\"" + new string('n', 300) + "\",\"task_types\":[\"llm\"]}", "{\"running\":[null]}", "{\"running\":[{\"task_id\":\"x\"}]}",
            "{\"lease_token\":\"\"}", "{\"lease_token\":1}", "{\"lease_token\":\"t\",\"progress\":2}", "{\"lease_token\":\"t\",\"progress\":\"half\"}",
            "{\"lease_token\":\"t\",\"output\":\"text\"}", "{\"lease_token\":\"t\",\"error\":{}}", "{\"lease_token\":\"t\",\"error\":{\"code\":\"\"}}",
            "{\"lease_token\":\"t\",\"chunks\":[1,2]}", "{\"lease_token\":\"t\",\"logs\":\"line\"}", "{\"max_tasks\":0}", "{\"max_tasks\":1000}", "{\"max_tasks\":\"2\"}",
            Nest("[", "]", 100, "1"),
        ];
        string[] workerPaths =
        [
            "/api/workers/register", $"/api/workers/{Worker}/heartbeat", $"/api/workers/{Worker}/lease?wait_seconds=0",
            $"/api/workers/{Worker}/lease?wait_seconds=-1", $"/api/workers/{Worker}/lease?wait_seconds=1e9", $"/api/workers/{Worker}/heartbeat?wait_seconds=x",
            $"/api/workers/{Worker}/tasks/{Task}/progress", $"/api/workers/{Worker}/tasks/{Task}/complete", $"/api/workers/{Worker}/tasks/{Task}/fail",
            $"/api/workers/not-a-worker/heartbeat", $"/api/workers/{Worker}/tasks/zzz/complete", $"/api/workers/{Worker}/tasks/{Task}/explode",
        ];
        foreach (var path in workerPaths)
        {
            foreach (var body in junkBodies)
            {
                yield return Post(path, body);
            }
        }
        foreach (var name in (string[])["..png", ".env", "a b", new string('n', 101), "%25", "a/b"])
        {
            for (var k = 0; k < 4; k++)
            {
                yield return () => new HttpRequestMessage(HttpMethod.Put, $"/api/workers/{Worker}/tasks/{Task}/artifacts/{(name.Contains('%') ? name : Uri.EscapeDataString(name))}?lease_token=t")
                {
                    Content = new ByteArrayContent([1, 2, 3]),
                };
            }
        }

        // Methods and paths that do not exist.
        foreach (var (method, path) in new[] { ("PUT", "/api/tasks"), ("DELETE", "/api/tasks"), ("PATCH", "/api/tasks"), ("GET", "/api/workers/register"), ("GET", "/api/nothing"), ("POST", "/api/tasks/workers/health"), ("DELETE", "/api/admin/workers/x/drain") })
        {
            for (var k = 0; k < 5; k++)
            {
                yield return () => new HttpRequestMessage(new HttpMethod(method), path);
            }
        }
    }

    /// <summary>
    /// A NUL byte in the path is refused by Kestrel itself, at the HTTP level, before the
    /// application sees the request: a bare 400 with no body. That is the one bad input answered
    /// without a ProblemDetails (README, "Limits"); the service stays healthy after it.
    /// </summary>
    [Fact]
    public async Task NulInThePath_IsRefusedByKestrelWith400_AndTheServiceStaysHealthy()
    {
        using var client = fixture.Api.ClientWith(Credentials.ClientKey);

        var response = await client.GetAsync("/api/tasks/%00");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/health")).StatusCode);
    }

    private static string Nest(string open, string close, int depth, string inner) =>
        string.Concat(Enumerable.Repeat(open, depth)) + inner + string.Concat(Enumerable.Repeat(close, depth));

    private static Func<HttpRequestMessage> Post(string path, string body) =>
        () => new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };

    private static Func<HttpRequestMessage> PostBytes(string path, byte[] body) => () =>
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        return new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
    };

    private static Func<HttpRequestMessage> Get(string path) => () => new HttpRequestMessage(HttpMethod.Get, path);

    private static string Shorten(string text) => text.Length <= 160 ? text : text[..160] + "…";
}
