"""The GPUs a worker declares: given by hand in TASKMANAGER_GPUS, else probed with nvidia-smi."""

from __future__ import annotations

import logging
import shutil
import subprocess
from typing import Any

log = logging.getLogger(__name__)

QUERY_ARGS = ("--query-gpu=name,memory.total,memory.free,utilization.gpu", "--format=csv,noheader,nounits")
PROBE_TIMEOUT_SECONDS = 10


class Gpus:
    """Answers "which GPUs, with how much free memory, right now" for registration and heartbeats."""

    def __init__(self, declared: tuple[dict[str, Any], ...] | None) -> None:
        self._declared = declared
        self._warned = False

    def read(self) -> list[dict[str, Any]]:
        if self._declared is not None:
            return [dict(gpu) for gpu in self._declared]
        executable = shutil.which("nvidia-smi")
        if executable is None:
            return []
        try:
            result = subprocess.run([executable, *QUERY_ARGS], capture_output=True, text=True,
                                    timeout=PROBE_TIMEOUT_SECONDS, check=True)
        except (OSError, subprocess.SubprocessError) as error:
            # Probed at every heartbeat: say it once, not every few seconds.
            if not self._warned:
                log.warning("nvidia-smi failed; declaring no GPUs", extra={"error": str(error)})
                self._warned = True
            return []
        return parse(result.stdout)


def parse(text: str) -> list[dict[str, Any]]:
    """Parses nvidia-smi's CSV lines: name, total MiB, free MiB, utilization percent."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        # From the right: the numbers never hold commas, a product name might.
        parts = [part.strip() for part in line.rsplit(",", 3)]
        try:
            name, total, free, utilization = parts
            gpu: dict[str, Any] = {"name": name, "memory_total_mb": int(total), "memory_free_mb": int(free)}
        except ValueError:
            log.warning("unexpected nvidia-smi line; skipping it", extra={"line": line})
            continue
        try:
            # Sent as a fraction from 0 to 1, like TASKMANAGER_GPUS; absent when the GPU does not
            # say ("[N/A]", for example on MIG instances).
            gpu["utilization"] = round(float(utilization) / 100, 3)
        except ValueError:
            pass
        gpus.append(gpu)
    return gpus
