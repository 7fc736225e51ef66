"""Running an external program (espeak-ng, tesseract) for a task, so that a stop request kills it.

The program's output goes to temporary files rather than pipes, so the executor can poll
`ctx.stopped()` while it runs without a full pipe ever blocking it. Where util-linux's `setpriv`
exists (Debian has it by default), the program is started through it with `--pdeathsig KILL`, so
that an executor killed with SIGKILL (the cancel grace ran out, the worker died) takes the program
with it instead of leaving it running.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from . import TaskContext, TaskError, TaskStopped

POLL_SECONDS = 0.02  # how often a running program's task looks for a stop request
MAX_CAPTURE_BYTES = 16 * 1024 * 1024  # what is read back of the program's stdout and of its stderr


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float

    def error_text(self, limit: int = 500) -> str:
        """The end of stderr (else stdout), as one line for an error message."""
        text = (self.stderr or self.stdout).decode("utf-8", "replace").strip()
        text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
        return text if len(text) <= limit else "..." + text[-limit:]


def run(args: Sequence[str], ctx: TaskContext, *, timeout: float | None = None) -> Finished:
    """Runs `args` to its end and returns what it printed; raises TaskStopped (having killed it)
    when the task is asked to stop, and TaskError(backend_error) when it cannot start or outlasts
    `timeout` seconds."""
    command = list(args)
    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        command = [setpriv, "--pdeathsig", "KILL", "--", *command]
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        except OSError as error:
            raise TaskError("backend_error", f"cannot run {args[0]}: {error}", retryable=True) from None
        try:
            while True:
                try:
                    process.wait(POLL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if ctx.stopped():
                    raise TaskStopped()
                if timeout is not None and time.monotonic() - started > timeout:
                    raise TaskError("backend_error", f"{args[0]} did not finish within {timeout:g} s",
                                    retryable=True)
        finally:
            if process.returncode is None:
                process.kill()
                process.wait()
        out.seek(0)
        err.seek(0)
        return Finished(process.returncode, out.read(MAX_CAPTURE_BYTES), err.read(MAX_CAPTURE_BYTES),
                        time.monotonic() - started)
