// BullMQ peer benchmark: BullMQ 6.7.0 (with its default Redis driver, ioredis).
//
//   cd bench/peers/bullmq && npm ci
//   node bench/peers/bullmq/bench.mjs --redis-url redis://127.0.0.1:6399/0
//
// Measures each figure once against the Redis at --redis-url, which it
// FLUSHDBs first (use a Redis, or at least a database, reserved for
// benchmarks); logs go to stderr and one line of JSON goes to stdout, last.
// See ../README.md for what each figure means.

import { fork } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';

import { Queue } from 'bullmq';
import IORedis from 'ioredis';

const BULK_CHUNK = 1000;

const log = (...parts) => console.error('[bullmq-bench]', ...parts);

// Milliseconds on CLOCK_MONOTONIC, system-wide on Linux; worker.mjs uses the
// same clock, so its timestamps compare directly with ours.
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

function parseCli() {
  const { values } = parseArgs({
    options: {
      'redis-url': { type: 'string' },
      jobs: { type: 'string', default: '20000' },
      'pickup-samples': { type: 'string', default: '200' },
      // Concurrency of the one Worker in the one worker process. BullMQ runs
      // a no-op processor with very little CPU per job, so throughput comes
      // from keeping many jobs in flight per round trip, not from more
      // processes (the bench box has 2 cores, shared with Redis and the
      // producer).
      workers: { type: 'string', default: '50' },
      // How the e2e producer enqueues: 'bulk' (addBulk in chunks of 1000, so
      // the producer is not the bottleneck) or 'one' (awaited add per job).
      'e2e-enqueue': { type: 'string', default: 'bulk' },
      // Noop jobs drained, unmeasured, before the end-to-end measurement, as
      // TaskManager and the other peers warm up in the same run.
      'warmup-jobs': { type: 'string', default: '2000' },
    },
  });
  if (!values['redis-url']) {
    console.error(
      'usage: node bench.mjs --redis-url redis://[:password@]host:port/db [--jobs N] ' +
        '[--pickup-samples M] [--workers CONCURRENCY] [--e2e-enqueue bulk|one] [--warmup-jobs N]',
    );
    process.exit(2);
  }
  if (!['bulk', 'one'].includes(values['e2e-enqueue'])) {
    console.error('--e2e-enqueue must be bulk or one');
    process.exit(2);
  }
  return {
    redisUrl: values['redis-url'],
    jobs: Number(values.jobs),
    pickupSamples: Number(values['pickup-samples']),
    concurrency: Number(values.workers),
    e2eEnqueue: values['e2e-enqueue'],
    warmupJobs: Number(values['warmup-jobs']),
  };
}

// ------------------------------------------------------------ Redis helpers

/** Sum of `calls` over INFO commandstats, leaving out INFO itself (the only
 *  command this script sends while a measured window is open). Commands run
 *  inside BullMQ's Lua scripts are counted by Redis too, as are blocking
 *  commands (BZPOPMIN) the worker issues while it waits. */
async function commandCalls(admin) {
  const text = await admin.info('commandstats');
  let total = 0;
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (m[1] !== 'info') total += Number(m[2]);
  }
  return total;
}

async function usedMemory(admin) {
  const text = await admin.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(text)[1]);
}

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted, p) {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

const noopJobs = count => Array.from({ length: count }, () => ({ name: 'noop', data: {} }));

async function addInChunks(queue, n) {
  for (let done = 0; done < n; done += BULK_CHUNK) {
    await queue.addBulk(noopJobs(Math.min(BULK_CHUNK, n - done)));
  }
}

// ------------------------------------------------------------ worker child

class WorkerChild {
  constructor(redisUrl, queueName, concurrency, e2eJobs, warmJobs) {
    // Its stdout and stderr both go to our stderr: stdout is kept for the JSON.
    this.proc = fork(new URL('./worker.mjs', import.meta.url), [], {
      env: {
        ...process.env,
        BENCH_REDIS_URL: redisUrl,
        BENCH_QUEUE: queueName,
        BENCH_CONCURRENCY: String(concurrency),
        BENCH_E2E_JOBS: String(e2eJobs),
        BENCH_WARM_JOBS: String(warmJobs),
      },
      stdio: ['ignore', 2, 2, 'ipc'],
    });
    this.exited = once(this.proc, 'exit');
    this.waiters = [];
    this.inbox = [];
    this.proc.on('message', msg => {
      const i = this.waiters.findIndex(w => w.match(msg));
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(msg);
      else this.inbox.push(msg);
    });
    this.proc.on('exit', code => {
      for (const w of this.waiters.splice(0)) w.reject(new Error(`worker exited (${code})`));
    });
  }

  /** Next message that satisfies `match` (including one already received). */
  next(match, timeoutMs = 30000) {
    const i = this.inbox.findIndex(match);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const waiter = { match, resolve, reject };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error('timed out waiting for the worker process'));
      }, timeoutMs);
      waiter.resolve = msg => {
        clearTimeout(timer);
        resolve(msg);
      };
      waiter.reject = err => {
        clearTimeout(timer);
        reject(err);
      };
      this.waiters.push(waiter);
    });
  }

  async stop() {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    if (this.proc.connected) this.proc.send({ type: 'close' });
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10000);
    await this.exited;
    clearTimeout(timer);
  }
}

// ------------------------------------------------------------ scenarios

/** N awaited queue.add calls with no worker: jobs/s, and used_memory growth
 *  per waiting job. The job is name 'noop' with empty data `{}`. */
async function enqueueOneAndMemory(admin, redisUrl, n) {
  const queue = new Queue('bench-one', { connection: { url: redisUrl } });
  await queue.add('noop', {}); // warm-up: connects and loads the Lua scripts
  const memBefore = await usedMemory(admin);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await queue.add('noop', {});
  const elapsedS = (performance.now() - t0) / 1000;
  const memAfter = await usedMemory(admin);
  const waiting = await queue.getWaitingCount();
  if (waiting !== n + 1) throw new Error(`expected ${n + 1} waiting jobs, found ${waiting}`);
  await queue.close();
  return { perS: n / elapsedS, memPerJob: (memAfter - memBefore) / n };
}

/** N jobs through queue.addBulk in chunks of 1000, no worker: jobs/s. */
async function enqueueBulk(redisUrl, n) {
  const queue = new Queue('bench-bulk', { connection: { url: redisUrl } });
  await queue.addBulk(noopJobs(1)); // warm-up
  const t0 = performance.now();
  await addInChunks(queue, n);
  const elapsedS = (performance.now() - t0) / 1000;
  const waiting = await queue.getWaitingCount();
  if (waiting !== n + 1) throw new Error(`expected ${n + 1} waiting jobs, found ${waiting}`);
  await queue.close();
  return n / elapsedS;
}

/** Producer (this process) and the already-running worker at the same time;
 *  rate = N / (first enqueue → N-th 'completed' in the worker). Commands are
 *  counted over the same window. First, unmeasured, `warm` noops drained the
 *  same way. */
async function endToEnd(admin, queue, worker, n, mode, warm) {
  if (warm > 0) {
    const warmed = worker.next(m => m.type === 'warm-done', Math.max(120000, warm * 20));
    await addInChunks(queue, warm);
    await warmed;
    log(`e2e: warm-up of ${warm} jobs drained`);
  }
  const done = worker.next(m => m.type === 'e2e-done', Math.max(120000, n * 20));
  const callsBefore = await commandCalls(admin);
  const t0 = nowMs();
  if (mode === 'bulk') await addInChunks(queue, n);
  else for (let i = 0; i < n; i++) await queue.add('noop', {});
  const enqueuedMs = nowMs() - t0;
  const { t: tLast } = await done;
  const callsAfter = await commandCalls(admin);
  log(`e2e: producer done after ${(enqueuedMs / 1000).toFixed(2)}s, ` +
      `last job done after ${((tLast - t0) / 1000).toFixed(2)}s`);
  return { perS: n / ((tLast - t0) / 1000), commandsPerJob: (callsAfter - callsBefore) / n };
}

/** One probe: submit, wait for its start time and its completion; returns
 *  submit→start in ms. */
async function probeOnce(queue, worker, seq) {
  const started = worker.next(m => m.type === 'started' && m.seq === seq);
  const finished = worker.next(m => m.type === 'probe-done' && m.seq === seq);
  const submitted = nowMs();
  await queue.add('probe', { seq });
  const { t } = await started;
  await finished;
  return t - submitted;
}

/** Idle worker; one probe at a time, the next only after the previous one
 *  completed and a short pause, so the worker is back to waiting. */
async function pickup(queue, worker, samples) {
  for (let i = 1; i <= 5; i++) await probeOnce(queue, worker, -i); // warm-up
  const latencies = [];
  for (let i = 0; i < samples; i++) {
    await sleep(5);
    latencies.push(await probeOnce(queue, worker, i));
  }
  latencies.sort((a, b) => a - b);
  return [50, 95, 99].map(p => percentile(latencies, p));
}

// ------------------------------------------------------------ main

async function main() {
  const { redisUrl, jobs: n, pickupSamples, concurrency, e2eEnqueue, warmupJobs } = parseCli();
  const require = createRequire(import.meta.url);
  const version = require('bullmq/package.json').version;
  const ioredisVersion = require('ioredis/package.json').version;

  const admin = new IORedis(redisUrl);
  await admin.flushdb();
  log(`bullmq ${version} (ioredis ${ioredisVersion}), node ${process.version}, ` +
      `jobs=${n}, worker concurrency=${concurrency}, e2e enqueue=${e2eEnqueue}`);

  const one = await enqueueOneAndMemory(admin, redisUrl, n);
  log(`enqueue one: ${one.perS.toFixed(0)}/s, memory per waiting job: ${one.memPerJob.toFixed(0)} B`);
  await admin.flushdb();

  const bulkPerS = await enqueueBulk(redisUrl, n);
  log(`addBulk: ${bulkPerS.toFixed(0)}/s`);
  await admin.flushdb();

  const queue = new Queue('bench-e2e', { connection: { url: redisUrl } });
  const worker = new WorkerChild(redisUrl, 'bench-e2e', concurrency, n, warmupJobs);
  let e2e, p50, p95, p99;
  try {
    await worker.next(m => m.type === 'ready', 60000);
    await probeOnce(queue, worker, -100); // the worker consumes; scripts loaded
    e2e = await endToEnd(admin, queue, worker, n, e2eEnqueue, warmupJobs);
    log(`e2e: ${e2e.perS.toFixed(0)}/s, ${e2e.commandsPerJob.toFixed(2)} commands/job`);
    [p50, p95, p99] = await pickup(queue, worker, pickupSamples);
    log(`pickup: p50 ${p50.toFixed(2)} ms, p95 ${p95.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`);
  } finally {
    await worker.stop();
    await queue.close();
    await admin.quit();
  }

  const round = (x, digits) => Number(x.toFixed(digits));
  const result = {
    peer: 'bullmq',
    version,
    jobs: n,
    enqueue_one_per_s: round(one.perS, 1),
    enqueue_batch_per_s: round(bulkPerS, 1),
    enqueue_batch_kind: 'addBulk',
    e2e_per_s: round(e2e.perS, 1),
    e2e_enqueue_kind: e2eEnqueue === 'bulk' ? 'addBulk' : 'add',
    workers: concurrency,
    pickup_p50_ms: round(p50, 3),
    pickup_p95_ms: round(p95, 3),
    pickup_p99_ms: round(p99, 3),
    commands_per_job: round(e2e.commandsPerJob, 2),
    memory_per_job_bytes: round(one.memPerJob, 1),
  };
  console.log(JSON.stringify(result));
}

main().catch(err => {
  console.error('[bullmq-bench] failed:', err);
  process.exit(1);
});
