"""Shared test helpers: bounded waits on conditions, and the executor processes alive now."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

WAIT_SECONDS = 10.0
ALL_SIM = {"llm": "sim", "sd": "sim", "tts": "sim", "image_to_text": "sim"}


def wait_until(predicate: Callable[[], Any], timeout: float = WAIT_SECONDS, what: str = "condition") -> Any:
    """Polls `predicate` until it is truthy; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (an unreaped corpse counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def executor_pids(parent: int | None = None) -> set[int]:
    """The live executor processes that `parent` (default: this process) spawned."""
    parent = os.getpid() if parent is None else parent
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # fields[0] is the state, fields[1] the parent pid. The resource tracker that
        # multiprocessing starts is spawned too; only executors run spawn_main without it.
        if (fields[0] != "Z" and int(fields[1]) == parent and b"spawn_main" in command
                and b"resource_tracker" not in command):
            pids.add(int(entry))
    return pids


# Keep the worker's log lines out of the test output (logging would print warnings to stderr).
logging.getLogger("taskmanager_worker").addHandler(logging.NullHandler())
