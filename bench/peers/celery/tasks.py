"""Celery app and tasks for the Celery peer benchmark (see bench.py).

This module is imported twice: by the producer (bench.py) and by the
`celery -A tasks worker` process that bench.py starts. Both read their
settings from environment variables that bench.py sets:

  BENCH_REDIS_URL    broker (and result backend) URL, e.g. redis://127.0.0.1:6399/0
  BENCH_WARM_JOBS    worker only: how many `bench.noop` runs the unmeasured
                     warm-up drain is (0: none)
  BENCH_E2E_JOBS     worker only: how many `bench.noop` runs after those mark
                     the end of the end-to-end scenario
  BENCH_WARM_FILE    worker only: file written once, when the warm-up ran
  BENCH_DONE_FILE    worker only: file written once, when the measured ones ran
  BENCH_READY_FILE   worker only: file written once the worker consumes

No Redis command is added to the no-op task itself: the end of the
end-to-end scenario is detected with a counter in shared memory (see
_count_noop below), so the Redis command counts bench.py takes around that
scenario are Celery's own.
"""

import multiprocessing
import os
import time

from celery import Celery
from celery.signals import task_postrun, worker_init, worker_ready

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    # Plain JSON messages (Celery's default serializer, stated for clarity).
    task_serializer="json",
    accept_content=["json"],
    # Keep the worker quiet on stderr apart from warnings.
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop", ignore_result=True)
def noop():
    """The measured job: does nothing, stores no result."""
    return None


# Per-process Redis client for the probe task, created on first use inside
# a pool child (a client must not be shared across fork).
_probe_redis = None


@app.task(name="bench.probe", ignore_result=True)
def probe(seq, reply_key):
    """Pickup-latency probe: note the wall-clock start time first, then hand
    it back to the producer on a Redis list. The push happens after the start
    time is taken, so it is not part of what is measured."""
    started = time.time()
    global _probe_redis
    if _probe_redis is None:
        import redis

        _probe_redis = redis.Redis.from_url(REDIS_URL)
    _probe_redis.rpush(reply_key, f"{seq}:{started!r}")


# --- end-of-run detection for the end-to-end scenario (worker side only) ---
#
# The worker's main process creates a shared-memory counter in `worker_init`,
# before the prefork pool forks its children; every child inherits it. Each
# child bumps it in `task_postrun` after a `bench.noop` run, and the child
# whose bump reaches BENCH_WARM_JOBS + BENCH_E2E_JOBS writes the wall-clock
# time of that moment to BENCH_DONE_FILE (once); the one that reaches
# BENCH_WARM_JOBS writes BENCH_WARM_FILE. bench.py waits for those files. No
# Redis involved.

_done_counter = None


@worker_init.connect
def _make_counter(**_kwargs):
    global _done_counter
    _done_counter = multiprocessing.Value("q", 0)  # int64 + its own lock


@worker_ready.connect
def _say_ready(**_kwargs):
    ready_file = os.environ.get("BENCH_READY_FILE")
    if ready_file:
        _write_atomically(ready_file, f"{os.getpid()}\n")


@task_postrun.connect
def _count_noop(sender=None, **_kwargs):
    if _done_counter is None or sender is None or sender.name != "bench.noop":
        return
    with _done_counter.get_lock():
        _done_counter.value += 1
        count = _done_counter.value
        now = time.time()
    warm = int(os.environ.get("BENCH_WARM_JOBS", "0"))
    if count == warm:
        warm_file = os.environ.get("BENCH_WARM_FILE")
        if warm_file:
            _write_atomically(warm_file, f"{now!r}\n")
    if count == warm + int(os.environ.get("BENCH_E2E_JOBS", "0")):
        done_file = os.environ.get("BENCH_DONE_FILE")
        if done_file:
            _write_atomically(done_file, f"{now!r}\n")


def _write_atomically(path, text):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
