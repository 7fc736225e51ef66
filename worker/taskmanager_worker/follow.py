"""Following a task in its executor: the one loop that a worker's slot and run-once share.

follow() sends a task to an executor, hands the task's events to a Watcher as they come (progress,
output chunks, log lines, the models the executor holds) and returns when the task has ended. It
enforces the task's deadline and stop requests: it asks the executor to stop the task (its backend
sees that at its next ctx.stopped()), and kills the executor when the task has not ended a grace
period later, or at once when the watcher says so. What the events and the end become (reports to
the API, lines on stdout and stderr) is up to the watcher and the caller.
"""

from __future__ import annotations

import time
from typing import Generic, TypeVar

from .executor import Event, Executor
from .task import LeasedTask

R = TypeVar("R")  # why a task is asked to stop, in the caller's terms

FINAL = frozenset({"done", "failed", "stopped", "died"})  # the executor's events that end a task
KILLED: Event = ("killed",)  # the end of a task whose executor follow() killed


class Watcher(Generic[R]):
    """What a caller of follow() does with a task's events. Each method does nothing unless
    overridden; they are called from follow()'s thread."""

    __slots__ = ()

    def stop_request(self) -> tuple[R | None, bool]:
        """Asked before each wait: why the task must stop, if it must, and whether its executor is
        to be killed at once rather than after the grace."""
        return None, False

    def stopping(self, reason: R) -> None:
        """The task is being asked to stop, once, for `reason` (a stop request, or the deadline)."""

    def killing(self, reason: R, at_once: bool) -> None:
        """The executor is about to be killed: its task did not stop within the grace (or `at_once`)."""

    def progress(self, progress: float, message: str | None) -> None:
        pass

    def chunk(self, text: str) -> None:
        pass

    def log(self, line: str) -> None:
        pass

    def models(self, names: list[str]) -> None:
        """The models the executor's backends hold now."""

    def due(self) -> float | None:
        """When (time.monotonic()) the watcher wants its turn() at the latest; None: no need."""
        return None

    def turn(self) -> None:
        """Called after each wait that did not end the task."""


def follow(executor: Executor, task: LeasedTask, deadline: float, grace: float, watcher: Watcher[R],
           timeout_reason: R, wake: int | None = None) -> tuple[Event, R | None]:
    """Runs `task` on `executor` until it ends. At `deadline` (time.monotonic()) it is asked to
    stop for `timeout_reason`; a task asked to stop that has not ended `grace` seconds later is
    killed with its executor (which the caller replaces or closes). `wake`, a readable fd, ends a
    wait early (to see a new stop request at once).

    Returns how the task ended: the executor's last event (("done", task_id, output_json,
    artifacts), ("failed", task_id, code, message, retryable), ("stopped", task_id) or ("died",
    exit_code)), or KILLED; and why the task was asked to stop, if it was (the event may then be a
    result that came anyway: the caller decides which counts)."""
    task_id = task.task_id
    executor.run(task.payload)
    reason: R | None = None  # why the task was asked to stop, once it was
    kill_at = 0.0
    while True:
        now = time.monotonic()
        requested, at_once = watcher.stop_request()
        if reason is None and (requested is not None or now >= deadline):
            reason = timeout_reason if requested is None else requested
            kill_at = now + grace
            watcher.stopping(reason)
            executor.stop(task_id)
        if reason is not None and (at_once or now >= kill_at):
            watcher.killing(reason, at_once)
            executor.kill()
            return KILLED, reason
        until = kill_at if reason is not None else deadline
        due = watcher.due()
        if due is not None and due < until:
            until = due
        # An executor runs one task at a time and a killed one is not used again, so every event
        # here belongs to this task.
        for event in executor.events(max(0.0, until - now), wake):
            kind = event[0]
            if kind == "progress":
                watcher.progress(event[2], event[3])
            elif kind == "chunk":
                watcher.chunk(event[2])
            elif kind == "log":
                watcher.log(event[2])
            elif kind == "models":
                watcher.models(event[1])
            elif kind in FINAL:
                return event, reason
        watcher.turn()
