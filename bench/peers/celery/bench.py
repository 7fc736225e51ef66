#!/usr/bin/python3
"""Celery peer benchmark: Celery (Debian's python3-celery, 5.2) on a Redis broker.

Run it with Debian's interpreter, which is the one python3-celery installs
into (a pyenv/venv `python3` earlier on PATH usually cannot import celery):

    /usr/bin/python3 bench/peers/celery/bench.py --redis-url redis://127.0.0.1:6399/0

If it is started with another interpreter that cannot import celery, it
re-executes itself with /usr/bin/python3 (and says so on stderr).

It measures each figure once against the Redis at --redis-url, which it
FLUSHDBs first (use a Redis, or at least a database, reserved for benchmarks),
logs to stderr and prints one line of JSON to stdout as its last line.
See ../README.md for what each figure means.
"""

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

DEBIAN_PYTHON = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))


def log(*parts):
    print("[celery-bench]", *parts, file=sys.stderr, flush=True)


def ensure_celery_importable():
    """Re-exec under /usr/bin/python3 when this interpreter lacks celery."""
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError as e:
        if os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON) and os.path.exists(
            DEBIAN_PYTHON
        ):
            log(f"{sys.executable} cannot import celery/redis ({e}); re-running with {DEBIAN_PYTHON}")
            os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON, os.path.abspath(__file__), *sys.argv[1:]])
        sys.exit(f"celery-bench: cannot import celery/redis ({e}); apt-get install -y python3-celery python3-redis")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redis-url", required=True, help="redis://[:password@]host:port/db (FLUSHDBed first)")
    p.add_argument("--jobs", type=int, default=20000, help="jobs per throughput scenario (default 20000)")
    p.add_argument("--pickup-samples", type=int, default=200, help="pickup latency samples (default 200)")
    p.add_argument("--warmup-jobs", type=int, default=2000,
                   help="noops drained, unmeasured, before the end-to-end measurement (default 2000)")
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="prefork pool processes of the one `celery worker` (default 2: one per core on the 2-core bench box)",
    )
    return p.parse_args()


# ---------------------------------------------------------------- Redis helpers


def command_calls(r):
    """Sum of `calls` over INFO commandstats, leaving out INFO itself (the only
    command this script sends while a measured window is open)."""
    total = 0
    for name, stats in r.info("commandstats").items():
        if name != "cmdstat_info":
            total += int(stats["calls"])
    return total


def used_memory(r):
    return int(r.info("memory")["used_memory"])


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


# ---------------------------------------------------------------- worker process


class CeleryWorker:
    """`celery -A tasks worker` in its own process group, started and stopped
    by this script. Ready = the worker_ready signal wrote its file (see tasks.py)."""

    def __init__(self, redis_url, concurrency, e2e_jobs, warmup_jobs):
        self.tmpdir = tempfile.mkdtemp(prefix="celery-bench-")
        self.ready_file = os.path.join(self.tmpdir, "ready")
        self.warm_file = os.path.join(self.tmpdir, "warm-done")
        self.done_file = os.path.join(self.tmpdir, "e2e-done")
        env = dict(
            os.environ,
            BENCH_REDIS_URL=redis_url,
            BENCH_WARM_JOBS=str(warmup_jobs),
            BENCH_E2E_JOBS=str(e2e_jobs),
            BENCH_READY_FILE=self.ready_file,
            BENCH_WARM_FILE=self.warm_file,
            BENCH_DONE_FILE=self.done_file,
        )
        cmd = [
            sys.executable, "-m", "celery", "--quiet", "-A", "tasks", "worker",
            "--pool", "prefork", "--concurrency", str(concurrency),
            "--loglevel", "WARNING", "--hostname", f"bench{os.getpid()}@%h",
        ]  # fmt: skip
        log("starting worker:", " ".join(cmd))
        # The worker's output goes to our stderr: stdout is kept for the JSON.
        self.proc = subprocess.Popen(
            cmd, cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr, start_new_session=True
        )

    def wait_ready(self, timeout=60.0):
        self._wait_file(self.ready_file, timeout, "celery worker not ready in time", 0.05)

    def wait_warm_done(self, timeout):
        """Waits until the warm-up's noops have run (tasks.py writes the file)."""
        self._wait_file(self.warm_file, timeout, "the warm-up drain did not finish in time", 0.01)

    def wait_e2e_done(self, timeout):
        """Wall-clock time at which the last noop finished (written by tasks.py)."""
        self._wait_file(self.done_file, timeout, "end-to-end run did not finish in time", 0.002)
        with open(self.done_file) as f:
            return float(f.read())

    def _wait_file(self, path, timeout, failure, pause):
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited early with code {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(failure)
            time.sleep(pause)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log("worker did not stop on SIGTERM; killing its process group")
        # Whatever is left of the group (pool children included) goes too.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


# ---------------------------------------------------------------- scenarios


def scenario_enqueue_one_and_memory(r, tasks, n):
    """N × apply_async with no worker running: jobs/s, and used_memory growth per
    queued job. The job is `bench.noop()` with no arguments."""
    tasks.noop.apply_async()  # warm-up: connects and declares the queue
    r.delete("celery")
    mem_before = used_memory(r)
    t0 = time.perf_counter()
    for _ in range(n):
        tasks.noop.apply_async()
    elapsed = time.perf_counter() - t0
    mem_after = used_memory(r)
    queued = r.llen("celery")
    if queued != n:
        raise RuntimeError(f"expected {n} queued messages, found {queued}")
    r.delete("celery")  # the worker started later must not see these
    return n / elapsed, (mem_after - mem_before) / n


def probe_once(r, tasks, seq, reply_key):
    """Submit one probe and wait for its start time; returns submit→start in ms."""
    submitted = time.time()
    tasks.probe.apply_async((seq, reply_key))
    reply = r.blpop(reply_key, timeout=30)
    if reply is None:
        raise RuntimeError("pickup probe got no reply within 30 s")
    got_seq, started = reply[1].decode().split(":", 1)
    if int(got_seq) != seq:
        raise RuntimeError(f"probe reply out of order: {got_seq} != {seq}")
    return (float(started) - submitted) * 1000.0


def scenario_e2e(r, tasks, worker, n, warmup):
    """Producer (this process, apply_async loop) and the running worker at the
    same time; rate = N / (first enqueue → last noop finished). Commands are
    counted over the same window. First, unmeasured, the same with `warmup`
    noops, as TaskManager and the other peers warm up in the same run."""
    if warmup:
        for _ in range(warmup):
            tasks.noop.apply_async()
        worker.wait_warm_done(timeout=max(120.0, warmup / 50.0))
        log(f"e2e: warm-up of {warmup} jobs drained")
    calls_before = command_calls(r)
    t0 = time.time()
    for _ in range(n):
        tasks.noop.apply_async()
    enqueued = time.time()
    t_last = worker.wait_e2e_done(timeout=max(120.0, n / 50.0))
    calls_after = command_calls(r)
    log(f"e2e: producer done after {enqueued - t0:.2f}s, last job done after {t_last - t0:.2f}s")
    return n / (t_last - t0), (calls_after - calls_before) / n


def wait_acked(r, timeout=5.0):
    """Let the worker ack the last probe before it is stopped; otherwise its
    warm shutdown can put it back on the queue. kombu's Redis transport keeps
    delivered, unacked messages in the `unacked` hash. (The worker may still
    log "Restoring 1 unacknowledged message(s)" at shutdown; it then finds
    nothing in that hash to put back.)"""
    deadline = time.monotonic() + timeout
    while r.hlen("unacked") and time.monotonic() < deadline:
        time.sleep(0.01)


def scenario_pickup(r, tasks, samples):
    """Idle worker; one probe at a time; the next one only after the previous
    reported back and a short pause, so the worker is idle again."""
    reply_key = "bench:pickup-replies"
    for i in range(5):  # warm-up: pool children connect their reply client
        probe_once(r, tasks, -1 - i, reply_key)
    latencies = []
    for i in range(samples):
        time.sleep(0.005)
        latencies.append(probe_once(r, tasks, i, reply_key))
    latencies.sort()
    return percentile(latencies, 50), percentile(latencies, 95), percentile(latencies, 99)


def main():
    args = parse_args()
    ensure_celery_importable()
    os.environ["BENCH_REDIS_URL"] = args.redis_url
    sys.path.insert(0, HERE)

    import celery
    import redis

    import tasks

    n = args.jobs
    r = redis.Redis.from_url(args.redis_url)
    r.flushdb()
    log(f"celery {celery.__version__} (kombu broker on {r.connection_pool.connection_kwargs.get('host')}), "
        f"python {sys.version.split()[0]} at {sys.executable}, jobs={n}, workers={args.workers}")

    enqueue_one, mem_per_job = scenario_enqueue_one_and_memory(r, tasks, n)
    log(f"enqueue one: {enqueue_one:.0f}/s, memory per queued job: {mem_per_job:.0f} B")

    worker = CeleryWorker(args.redis_url, args.workers, n, args.warmup_jobs)
    try:
        worker.wait_ready()
        probe_once(r, tasks, -100, "bench:pickup-replies")  # the worker consumes
        e2e, commands_per_job = scenario_e2e(r, tasks, worker, n, args.warmup_jobs)
        log(f"e2e: {e2e:.0f}/s, {commands_per_job:.2f} commands/job")
        p50, p95, p99 = scenario_pickup(r, tasks, args.pickup_samples)
        log(f"pickup: p50 {p50:.2f} ms, p95 {p95:.2f} ms, p99 {p99:.2f} ms")
        wait_acked(r)
    finally:
        worker.stop()

    result = {
        "peer": "celery",
        "version": celery.__version__,
        "jobs": n,
        "enqueue_one_per_s": round(enqueue_one, 1),
        "enqueue_batch_per_s": None,  # Celery has no bulk enqueue (a group is not one)
        "enqueue_batch_kind": None,
        "e2e_per_s": round(e2e, 1),
        "e2e_enqueue_kind": "apply_async",
        "workers": args.workers,
        "pickup_p50_ms": round(p50, 3),
        "pickup_p95_ms": round(p95, 3),
        "pickup_p99_ms": round(p99, 3),
        "commands_per_job": round(commands_per_job, 2),
        "memory_per_job_bytes": round(mem_per_job, 1),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
