"""Shared test helpers: bounded waits on conditions, the executor processes alive now, and
readers that check PNG and WAV files."""

from __future__ import annotations

import io
import logging
import os
import struct
import time
import wave
import zlib
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


def started_executor(test: Any, log_level: str = "critical") -> Any:
    """A ready executor of every type on sim, killed when `test` (a TestCase) cleans up."""
    from taskmanager_worker.executor import Executor

    executor = Executor(ALL_SIM, log_level)
    executor.start()
    test.addCleanup(executor.kill)
    executor.wait_ready(WAIT_SECONDS)
    return executor


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


def read_png(data: bytes) -> tuple[int, int, bytes]:
    """Checks the PNG's structure and CRCs; returns (width, height, decompressed scanlines)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "PNG signature"
    offset, chunks = 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind, body = data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        assert crc == zlib.crc32(kind + body), f"CRC of {kind}"
        chunks.append((kind, body))
        offset += 12 + length
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, color = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (depth, color) == (8, 2), "8-bit RGB"
    return width, height, zlib.decompress(chunks[1][1])


def read_wav(data: bytes) -> tuple[int, int, float]:
    """Reads a WAV file; returns (channels, frame rate, seconds)."""
    with wave.open(io.BytesIO(data)) as audio:
        return audio.getnchannels(), audio.getframerate(), audio.getnframes() / audio.getframerate()


# Keep the worker's log lines out of the test output (logging would print warnings to stderr).
logging.getLogger("taskmanager_worker").addHandler(logging.NullHandler())
