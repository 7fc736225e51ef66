// Worker child process for the BullMQ peer benchmark; bench.mjs forks it.
//
// One BullMQ Worker on the queue named by BENCH_QUEUE with concurrency
// BENCH_CONCURRENCY. It talks to the parent only over the fork IPC channel,
// never through Redis, so it adds no Redis commands of its own:
//
//   -> {type: 'ready'}                         the Worker's connection is ready
//   -> {type: 'started', seq, t}               a 'probe' job began (t: see nowMs)
//   -> {type: 'probe-done', seq}               a 'probe' job completed
//   -> {type: 'warm-done'}                     the BENCH_WARM_JOBS-th 'noop' job (the
//                                              unmeasured warm-up drain) completed
//   -> {type: 'e2e-done', t}                   the BENCH_E2E_JOBS-th 'noop' job after
//                                              those completed, at time t (nowMs)
//   <- {type: 'close'}                         close the Worker and exit
//
// 'noop' jobs do nothing. Completion is counted from the Worker's local
// 'completed' event, which fires once BullMQ has moved the job to the
// completed state in Redis.

import { Worker } from 'bullmq';

// Milliseconds on CLOCK_MONOTONIC (process.hrtime), which on Linux is one
// system-wide clock, so readings from this process and the parent compare
// directly. (performance.timeOrigin + performance.now() is not reliable
// for this: each process derives its own time origin at start-up, and on a
// busy machine two processes' origins were seen to disagree by over 1 ms.)
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

const redisUrl = process.env.BENCH_REDIS_URL;
const queueName = process.env.BENCH_QUEUE;
const concurrency = Number(process.env.BENCH_CONCURRENCY);
const warmJobs = Number(process.env.BENCH_WARM_JOBS ?? 0);
const e2eJobs = Number(process.env.BENCH_E2E_JOBS);

const send = msg => process.send(msg);

const worker = new Worker(
  queueName,
  async job => {
    if (job.name === 'probe') {
      send({ type: 'started', seq: job.data.seq, t: nowMs() });
    }
    // 'noop': nothing to do.
  },
  { connection: { url: redisUrl }, concurrency },
);

let noopsDone = 0;
worker.on('completed', job => {
  if (job.name === 'noop') {
    noopsDone += 1;
    if (noopsDone === warmJobs) send({ type: 'warm-done' });
    if (noopsDone === warmJobs + e2eJobs) send({ type: 'e2e-done', t: nowMs() });
  } else if (job.name === 'probe') {
    send({ type: 'probe-done', seq: job.data.seq });
  }
});
worker.on('failed', (job, err) => {
  console.error(`[bullmq-worker] job ${job?.id} failed:`, err);
});
worker.on('error', err => {
  console.error('[bullmq-worker] error:', err);
});

process.on('message', async msg => {
  if (msg?.type === 'close') {
    await worker.close();
    process.exit(0);
  }
});
// If the parent goes away, do not linger.
process.on('disconnect', () => process.exit(1));

await worker.waitUntilReady();
send({ type: 'ready' });
