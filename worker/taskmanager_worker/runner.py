"""A slot of the worker's capacity: one executor, and the task it runs from lease to report.

The slot's thread follows the task in its executor (follow.py: the timeout, and the stop requests
it gets: cancel, shutdown, a 409), relays its progress, chunks and log lines to the API, uploads
the output's artifacts and reports the outcome (reporter.py).
Stopping first asks the backend; if the task has not stopped after the cancel grace, its executor
is killed, which frees whatever it held on the GPU, and the slot starts a fresh one.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from . import artifacts
from .backends import Artifact
from .client import MAX_CHUNKS_PER_REPORT, MAX_LOGS_PER_REPORT, ApiError, TransientError
from .executor import Event, Executor
from .follow import KILLED, Watcher, follow
from .reporter import (STOPPED_UNASKED, Failure, Reporter, StopReason, TaskGone, executor_died, stop_failure,
                       upload_failure)
from .task import LeasedTask

log = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 0.1  # progress reports per task: at most one per interval
FLUSH_RETRY_SECONDS = 1.0  # after a progress report failed, its chunks and logs wait this long for the next try


@dataclass(frozen=True)
class _Outcome:
    output_json: str | None = None  # set when the task succeeded
    failure: Failure | None = None  # set when it failed; neither: dropped
    artifacts: tuple[tuple[str, Artifact], ...] = ()  # to upload before the output is complete: (placeholder, artifact)

    @property
    def dropped(self) -> bool:
        return self.output_json is None and self.failure is None


class Slot:
    def __init__(self, index: int, backends: dict[str, str], log_level: str, cancel_grace_seconds: float,
                 reporter: Reporter, on_idle: Callable[[], None],
                 on_crash: Callable[[BaseException], None]) -> None:
        self.index = index
        self._backends = backends
        self._log_level = log_level
        self._grace = cancel_grace_seconds
        self._reporter = reporter
        self._on_idle = on_idle
        self._on_crash = on_crash
        self._executor = Executor(backends, log_level)
        self._jobs: queue.SimpleQueue[tuple[LeasedTask, float] | None] = queue.SimpleQueue()  # (task, when received)
        self._lock = threading.Lock()
        self._task: LeasedTask | None = None  # assigned and not yet reported
        self._stop: StopReason | None = None  # the first stop request wins
        self._stop_now = False  # skip the grace: kill at once
        self._retiring = False  # after a hand-back, a killed executor is not replaced
        self._loaded_models: tuple[str, ...] = ()  # what the executor's backends hold, as it last said
        # Wakes the slot's thread from its wait on the executor when a stop is requested.
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._thread = threading.Thread(target=self._serve, name=f"slot-{index}", daemon=True)

    @property
    def busy(self) -> bool:
        return self._task is not None

    @property
    def loaded_models(self) -> tuple[str, ...]:
        """The models this slot's executor holds now (for the heartbeat)."""
        return self._loaded_models

    @property
    def executor_pid(self) -> int | None:
        return self._executor.pid

    def start(self) -> None:
        """Spawns the executor, from the calling thread (see Executor.start about PDEATHSIG)."""
        self._executor.start()

    def wait_ready(self, timeout: float) -> None:
        """Waits for the executor to be up, then starts taking tasks; raises ExecutorError."""
        self._executor.wait_ready(timeout)
        self._thread.start()

    def running(self) -> dict[str, str] | None:
        """The assigned task as the heartbeat names it."""
        with self._lock:
            task = self._task
        return None if task is None else {"task_id": task.task_id, "lease_token": task.lease_token}

    def assign(self, task: LeasedTask, received_at: float) -> None:
        with self._lock:
            if self._task is not None:
                raise RuntimeError(f"slot {self.index} is busy")
            self._task = task
            self._stop = None
            self._stop_now = False
        self._jobs.put((task, received_at))

    def request_stop(self, task_id: str, reason: StopReason, *, now: bool = False,
                     lease_tokens: Collection[str] | None = None) -> bool:
        """Stops the task if this slot runs it (under one of `lease_tokens`, when given: a stop
        meant for an earlier lease of the task leaves a later one running); returns whether it does."""
        with self._lock:
            if self._task is None or self._task.task_id != task_id:
                return False
            if lease_tokens is not None and self._task.lease_token not in lease_tokens:
                return False
            self._stop = self._stop or reason
            self._stop_now = self._stop_now or now
        self._wake()
        return True

    def hand_back(self) -> None:
        """On shutdown: kills the running task, if any, without grace and reports it handed back."""
        with self._lock:
            self._retiring = True
            task = self._task
        if task is not None:
            self.request_stop(task.task_id, StopReason.SHUTDOWN, now=True)

    def close(self) -> None:
        """Lets the current task end, then stops the thread and the executor."""
        self._jobs.put(None)
        if self._thread.is_alive():
            self._thread.join()
        self._executor.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _wake(self) -> None:
        try:
            os.write(self._wake_write, b"x")
        except BlockingIOError:
            pass  # the pipe is full, so the thread will wake anyway

    def _serve(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                task, received_at = job
                # A result's answer may hand over the next task: the slot runs it at once, busy
                # throughout, so the lease loop does not ask for this slot meanwhile.
                while task is not None:
                    following = self._run(task, received_at)
                    with self._lock:
                        if following and not self._retiring:
                            self._task, self._stop, self._stop_now = following[0], None, False
                            task, received_at, extra = following[0], time.monotonic(), following[1:]
                        else:
                            self._task, task, extra = None, None, following
                    for surplus in extra:
                        log.error("the API handed over a task this slot cannot take; handing it back",
                                  extra=surplus.log_fields)
                        self._reporter.hand_back(surplus)
                self._on_idle()
        except BaseException as error:
            log.exception("slot crashed", extra={"slot": self.index})
            self._on_crash(error)

    def _run(self, task: LeasedTask, received_at: float) -> list[LeasedTask]:
        """Runs the task and reports it; returns the tasks its result's answer handed over."""
        relay = _Relay(self, task)
        log.debug("task started", extra={**task.log_fields, "type": task.type,
                                         "executor_pid": self._executor.pid})
        event, reason = follow(self._executor, task, received_at + task.timeout_seconds, self._grace, relay,
                               StopReason.TIMEOUT, self._wake_read)
        return self._report(task, received_at, relay, self._outcome(task, event, reason))

    def _outcome(self, task: LeasedTask, event: Event, reason: StopReason | None) -> _Outcome:
        """What the task's end is to be reported as; replaces an executor that died or was killed."""
        kind = event[0]
        if kind == "died":
            log.warning("executor died", extra={**task.log_fields, "exit_code": event[1]})
        if kind == "died" or event is KILLED:
            self._replace_executor()
        if reason is not None:
            return _Outcome(failure=stop_failure(reason, task.timeout_seconds))  # once a stop was asked, its reason wins
        if kind == "done":
            return _Outcome(output_json=event[2], artifacts=tuple(event[3]))
        if kind == "failed":
            return _Outcome(failure=Failure(event[2], event[3], event[4]))
        if kind == "died":
            return _Outcome(failure=executor_died(event[1]))
        return _Outcome(failure=STOPPED_UNASKED)

    def _report(self, task: LeasedTask, received_at: float, relay: _Relay, outcome: _Outcome) -> list[LeasedTask]:
        """Sends the outcome; returns the tasks a successful result's answer handed over."""
        elapsed = time.monotonic() - received_at
        fields = {**task.log_fields, "run_ms": round(elapsed * 1000, 1)}
        # This worker's own start and end of the execution, so that the trace shows them.
        ended = datetime.now(timezone.utc)
        timing = {"started_at": (ended - timedelta(seconds=elapsed)).isoformat(timespec="milliseconds"),
                  "ended_at": ended.isoformat(timespec="milliseconds")}
        if outcome.dropped:
            log.info("task dropped", extra=fields)
            return []
        try:
            if outcome.artifacts:
                outcome = self._upload_artifacts(task, outcome)
            if outcome.output_json is None:
                relay.flush_final()
                chunks, lines = [], []
            else:
                # The last chunks and lines go with the result: no progress report just for them.
                chunks, lines = relay.take_final()
        except TaskGone as gone:
            log.info("task dropped: the API took it back", extra={**fields, "error": str(gone)})
            return []
        if outcome.output_json is not None:
            status, following = self._reporter.complete(task, outcome.output_json, chunks, lines, timing)
            log.info("task succeeded", extra={**fields, "status": status})
            return following
        else:
            failure = outcome.failure
            status = self._reporter.fail(task, failure, timing)
            log.info("task failed", extra={**fields, "code": failure.code, "retryable": failure.retryable,
                                           "status": status})
        return []

    def _upload_artifacts(self, task: LeasedTask, outcome: _Outcome) -> _Outcome:
        """Uploads the output's artifacts and puts their URLs in the output; returns the outcome to
        report: the filled output, or a failure when an upload failed. Raises TaskGone."""
        replacements = []
        for token, artifact in outcome.artifacts:
            try:
                answer = self._reporter.upload(task, artifact)
                replacements.append((token, artifacts.describe(artifact, answer)))
            except (ApiError, ValueError) as error:
                return _Outcome(failure=upload_failure(artifact, error))
            log.debug("artifact uploaded", extra={**task.log_fields, "artifact": artifact.name,
                                                  "bytes": len(artifact.data), "url": replacements[-1][1]["url"]})
        try:
            return _Outcome(output_json=artifacts.fill(outcome.output_json, replacements))
        except ValueError as error:
            return _Outcome(failure=Failure("backend_error", str(error), False))

    def _replace_executor(self) -> None:
        self._executor.kill()
        self._loaded_models = ()  # the killed executor's models are gone with it
        with self._lock:
            retiring = self._retiring
        if not retiring:
            self._executor = Executor(self._backends, self._log_level)
            self._executor.start()


class _Relay(Watcher[StopReason]):
    """What a slot does with its task's events as follow() hands them over: it batches progress,
    chunks and log lines into progress reports, at most one per FLUSH_INTERVAL_SECONDS (but the
    first chunk at once) unless a backlog fills whole reports (at most MAX_CHUNKS_PER_REPORT chunks
    and MAX_LOGS_PER_REPORT lines each); chunks and lines stay queued until the API has accepted
    them. It also gives follow() the slot's stop requests, and turns a report's answer that says
    cancel, or a 409, into one."""

    def __init__(self, slot: Slot, task: LeasedTask) -> None:
        self._slot = slot
        self._reporter = slot._reporter
        self._task = task
        self._progress: float | None = None
        self._message: str | None = None
        self._chunks: list[str] = []
        self._logs: list[str] = []
        self._pending = False
        # The first chunk goes out at once (the time to the first token counts); a log line or a
        # progress waits an interval for company, so a short task's go with its result and cost
        # no report of their own.
        self._flush_at = time.monotonic() + FLUSH_INTERVAL_SECONDS
        self._first_chunk = True

    # --- the Watcher ---

    def stop_request(self) -> tuple[StopReason | None, bool]:
        slot = self._slot
        with slot._lock:
            return slot._stop, slot._stop_now

    def stopping(self, reason: StopReason) -> None:
        log.info("stopping task", extra={**self._task.log_fields, "reason": reason.value})

    def killing(self, reason: StopReason, at_once: bool) -> None:
        if not at_once:
            log.warning("task ignored the stop request; killing its executor",
                        extra={**self._task.log_fields, "executor_pid": self._slot.executor_pid})

    def progress(self, progress: float, message: str | None) -> None:
        self._progress, self._message = progress, message
        self._pending = True

    def chunk(self, text: str) -> None:
        self._chunks.append(text)
        self._pending = True
        if self._first_chunk:
            self._first_chunk = False
            self._flush_at = 0.0

    def log(self, line: str) -> None:
        self._logs.append(line)
        self._pending = True

    def models(self, names: list[str]) -> None:
        self._slot._loaded_models = tuple(names)

    def due(self) -> float | None:
        return self._flush_at if self._pending else None

    def turn(self) -> None:
        """Sends a progress report when one is due; stops the task when its answer says cancel, or
        when the API took the task back."""
        if not (self._pending and time.monotonic() >= self._flush_at):
            return
        task_id = self._task.task_id
        try:
            if self.flush():
                self._slot.request_stop(task_id, StopReason.CANCELED)
        except TaskGone as gone:
            log.info("the API took the task back; stopping it", extra={**self._task.log_fields, "error": str(gone)})
            self._slot.request_stop(task_id, StopReason.DROPPED)

    # --- the reports ---

    def flush(self) -> bool:
        """Sends one report of what is pending; returns True when the API asks to cancel. Raises TaskGone."""
        try:
            cancel = self._send(final=False)
        except TaskGone:
            self._chunks, self._logs, self._pending = [], [], False  # the API wants nothing more about this task
            raise
        except TransientError as error:
            log.warning("progress report failed; keeping its chunks and log lines for the next one", extra={
                **self._task.log_fields, "error": str(error), "chunks": len(self._chunks),
                "logs": len(self._logs)})
            self._flush_at = time.monotonic() + FLUSH_RETRY_SECONDS
            return False
        except ApiError as error:
            self._refused(error)
            return False
        # What did not fit in one report goes at once: a full report is batched enough.
        self._pending = bool(self._chunks or self._logs)
        self._flush_at = time.monotonic() + (0.0 if self._pending else FLUSH_INTERVAL_SECONDS)
        return cancel

    def flush_final(self) -> None:
        """Sends the chunks and log lines still queued before the final report, retrying. Raises TaskGone."""
        self._send_while(lambda: bool(self._chunks or self._logs))

    def take_final(self) -> tuple[list[str], list[str]]:
        """What is still queued, to go with the result: first sends as progress reports what would
        not fit in one (retrying), then hands over the rest and forgets it. Raises TaskGone."""
        self._send_while(lambda: len(self._chunks) > MAX_CHUNKS_PER_REPORT or len(self._logs) > MAX_LOGS_PER_REPORT)
        chunks = self._chunks[:MAX_CHUNKS_PER_REPORT]
        lines = self._logs[:MAX_LOGS_PER_REPORT]
        self._chunks, self._logs, self._pending = [], [], False
        return chunks, lines

    def _send_while(self, more: Callable[[], bool]) -> None:
        """Sends final progress reports while `more()`; stops at a transient error (logged: what is
        left is not delivered). Raises TaskGone."""
        while more():
            try:
                self._send(final=True)
            except TransientError as error:
                log.error("chunks and log lines could not be delivered", extra={
                    **self._task.log_fields, "error": str(error), "chunks": len(self._chunks),
                    "logs": len(self._logs)})
                return
            except ApiError as error:
                self._refused(error)

    def _refused(self, error: ApiError) -> None:
        """The API refused a report (a 400, say): sending it again cannot help, so its batch goes."""
        chunks, lines = min(len(self._chunks), MAX_CHUNKS_PER_REPORT), min(len(self._logs), MAX_LOGS_PER_REPORT)
        log.error("the API refused a progress report; dropping its chunks and log lines", extra={
            **self._task.log_fields, "error": str(error), "chunks": chunks, "logs": lines})
        del self._chunks[:chunks]
        del self._logs[:lines]
        self._pending = bool(self._chunks or self._logs)
        self._flush_at = time.monotonic() + FLUSH_INTERVAL_SECONDS

    def _send(self, *, final: bool) -> bool:
        chunks = self._chunks[:MAX_CHUNKS_PER_REPORT]
        lines = self._logs[:MAX_LOGS_PER_REPORT]
        cancel = self._reporter.progress(self._task, self._progress, self._message, chunks, lines, final=final)
        del self._chunks[:len(chunks)]
        del self._logs[:len(lines)]
        return cancel
