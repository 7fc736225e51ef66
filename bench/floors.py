#!/usr/bin/env python3
"""The floors under two of the performance targets, measured on this machine (standard library only).

    python3 bench/floors.py [--entries 20000] [--tasks 5000]

1. Memory: what a queued task costs in Redis at the least, whatever its record holds. The storage
   design makes the queue (by priority and age) and the listing (tasks by creation) sorted sets,
   and a task has an id (32 hex digits) and a key of its own. On a private `redis-server` (no
   persistence) this stores N ids in two sorted sets and N keys holding nothing but an input of
   44 bytes, and reports `used_memory` per task for each part. The sum, less the input, is what any
   layout with those two indexes pays before its record holds a single field.

2. Worker: what the executor round trip alone costs, the part of the Python worker that its design
   fixes (a task runs in a long-lived child process per slot, so that a cancel or a timeout can kill
   it). One executor with the `sim` backend runs no-op `llm` tasks one after the other, no HTTP and
   no API: CPU time per task of the executor and of the worker side (this process), from /proc and
   time.process_time(), with nothing else competing for the cores.

Prints one line of JSON last (the figures), with a readable account before it on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
INPUT = '{"prompt":"x","max_tokens":1,"stream":false}'  # a no-op llm task's input as the API stores it


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Redis:
    """A private redis-server on a free port, spoken to in RESP over one socket."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="taskmanager-floors-")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port))
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        self.reader = self.sock.makefile("rb")

    def call(self, *args: object) -> object:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = str(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))
        return self._reply()

    def pipeline(self, commands: list[tuple[object, ...]]) -> None:
        """Sends the commands at once and reads their replies (an error raises)."""
        out = []
        for args in commands:
            out.append(b"*%d\r\n" % len(args))
            for arg in args:
                data = str(arg).encode()
                out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(out))
        for _ in commands:
            self._reply()

    def _reply(self) -> object:
        line = self.reader.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind in (b"+", b":"):
            return rest
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self.reader.read(size + 2)[:-2]
        if kind == b"*":
            return [self._reply() for _ in range(int(rest))]
        raise RuntimeError(f"unexpected reply {line!r}")

    def used_memory(self) -> int:
        info = self.call("INFO", "memory").decode()
        return int(next(line for line in info.split("\r\n") if line.startswith("used_memory:")).split(":")[1])

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def memory_floor(entries: int) -> dict[str, float]:
    redis = Redis()
    try:
        ids = [uuid.uuid4().hex for _ in range(entries)]
        now = int(time.time() * 1000)

        def per_entry(make) -> float:
            before = redis.used_memory()
            for start in range(0, entries, 1000):
                redis.pipeline([make(i, ids[i]) for i in range(start, min(entries, start + 1000))])
            return (redis.used_memory() - before) / entries

        queue = per_entry(lambda i, id_: ("ZADD", "{tm}:queue:llm", now + i, id_))
        listing = per_entry(lambda i, id_: ("ZADD", "{tm}:idx:default:queued:llm", 0, id_))
        record = per_entry(lambda i, id_: ("SET", "{tm}:task:" + id_, INPUT))
        encoding = redis.call("OBJECT", "ENCODING", "{tm}:queue:llm").decode()
    finally:
        redis.close()
    floor = queue + listing + record - len(INPUT)
    say(f"memory, {entries:,} queued tasks on a bare Redis ({encoding} sorted sets, 32-hex ids):")
    say(f"  queue entry {queue:.0f} B + listing entry {listing:.0f} B + a key holding only the "
        f"{len(INPUT)} B input {record:.0f} B = {floor:.0f} B beyond the input, before any field of a record")
    return {"zset_entry_queue_bytes": round(queue, 1), "zset_entry_listing_bytes": round(listing, 1),
            "input_only_key_bytes": round(record, 1), "memory_floor_beyond_input_bytes": round(floor, 1)}


def executor_floor(tasks: int) -> dict[str, float]:
    sys.path.insert(0, os.path.join(HERE, "..", "worker"))
    from taskmanager_worker.executor import Executor

    executor = Executor({"llm": "sim"}, "warning")
    executor.start()
    executor.wait_ready(60)
    task = {"task_id": "", "type": "llm", "input": json.loads(INPUT), "lease_token": "t:1", "attempt": 1,
            "timeout_seconds": 300}

    def run_one(n: int) -> None:
        task["task_id"] = f"floor-{n}"
        executor.run(task)
        while not any(event[0] in ("done", "failed", "died") for event in executor.events(30)):
            pass

    def child_cpu() -> float:
        with open(f"/proc/{executor.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    try:
        for n in range(500):  # warm: imports, caches
            run_one(n)
        child, parent, wall = child_cpu(), time.process_time(), time.perf_counter()
        for n in range(tasks):
            run_one(n)
        child = (child_cpu() - child) / tasks * 1e6
        parent = (time.process_time() - parent) / tasks * 1e6
        wall = (time.perf_counter() - wall) / tasks * 1e6
    finally:
        executor.close()
    say(f"executor round trip, {tasks:,} no-op sim tasks one after the other, alone on the machine:")
    say(f"  executor {child:.0f} µs + worker side {parent:.0f} µs of CPU a task ({wall:.0f} µs wall)")
    return {"executor_cpu_us": round(child, 1), "worker_side_cpu_us": round(parent, 1), "round_trip_wall_us": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=20000, help="queued tasks for the memory floor (20,000)")
    parser.add_argument("--tasks", type=int, default=5000, help="no-op tasks for the executor floor (5,000)")
    args = parser.parse_args()
    figures = {**memory_floor(args.entries), **executor_floor(args.tasks)}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
