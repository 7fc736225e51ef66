"""A slot of the worker's capacity: one executor, and the task it runs from lease to report.

The slot's thread hands the task to its executor, relays progress, chunks and log lines to the
API, enforces the task's timeout, carries out stop requests (cancel, shutdown, a 409), uploads the
output's artifacts and reports the outcome.
Stopping first asks the backend; if the task has not stopped after the cancel grace, the slot
kills the executor, which frees whatever it held on the GPU, and starts a fresh one.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from . import artifacts
from .backends import Artifact
from .client import MAX_CHUNKS_PER_REPORT, MAX_LOGS_PER_REPORT, ApiError, TransientError
from .executor import Executor
from .reporter import (STOPPED_UNASKED, Failure, Reporter, StopReason, TaskGone, executor_died, stop_failure,
                       upload_failure)
from .task import LeasedTask

log = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 0.1  # progress reports per task: at most one per interval
FLUSH_RETRY_SECONDS = 1.0  # after a progress report failed, its chunks and logs wait this long for the next try


@dataclass(frozen=True)
class _Job:
    task: LeasedTask
    received_at: float  # time.monotonic() when the lease answer arrived


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
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
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
        self._jobs.put(_Job(task, received_at))

    def request_stop(self, task_id: str, reason: StopReason, *, now: bool = False) -> bool:
        """Stops the task if this slot runs it; returns whether it does."""
        with self._lock:
            if self._task is None or self._task.task_id != task_id:
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
                # A result's answer may hand over the next task: the slot runs it at once, busy
                # throughout, so the lease loop does not ask for this slot meanwhile.
                while job is not None:
                    following = self._run(job)
                    with self._lock:
                        if following and not self._retiring:
                            self._task, self._stop, self._stop_now = following[0], None, False
                            job = _Job(following[0], time.monotonic())
                            extra = following[1:]
                        else:
                            self._task, job, extra = None, None, following
                    for task in extra:
                        log.error("the API handed over a task this slot cannot take; handing it back",
                                  extra=task.log_fields)
                        self._reporter.hand_back(task)
                self._on_idle()
        except BaseException as error:
            log.exception("slot crashed", extra={"slot": self.index})
            self._on_crash(error)

    def _run(self, job: _Job) -> list[LeasedTask]:
        """Runs the task and reports it; returns the tasks its result's answer handed over."""
        task = job.task
        relay = _Relay(self._reporter, task)
        log.debug("task started", extra={**task.log_fields, "type": task.type,
                                         "executor_pid": self._executor.pid})
        self._executor.run(task.payload)
        outcome = self._await_outcome(job, relay)
        return self._report(job, relay, outcome)

    def _await_outcome(self, job: _Job, relay: _Relay) -> _Outcome:
        """Relays the task's progress until it ends, enforcing its timeout and stop requests."""
        task = job.task
        fields = task.log_fields
        timeout = task.timeout_seconds
        deadline = job.received_at + timeout
        reason: StopReason | None = None  # why the task was asked to stop, once it was
        kill_at = 0.0
        while True:
            now = time.monotonic()
            with self._lock:
                requested, stop_now = self._stop, self._stop_now
            if reason is None and (requested is not None or now >= deadline):
                reason = requested or StopReason.TIMEOUT
                kill_at = now + self._grace
                log.info("stopping task", extra={**fields, "reason": reason.value})
                self._executor.stop(task.task_id)
            if reason is not None and (stop_now or now >= kill_at):
                if not stop_now:
                    log.warning("task ignored the stop request; killing its executor",
                                extra={**fields, "executor_pid": self._executor.pid})
                self._replace_executor()
                return _Outcome(failure=stop_failure(reason, timeout))

            until = kill_at if reason is not None else deadline
            if relay.pending:
                until = min(until, relay.flush_at)
            # An executor runs one task at a time and a killed one is replaced, so every event
            # here belongs to this task.
            for event in self._executor.events(max(0.0, until - now), self._wake_read):
                kind = event[0]
                if kind == "progress":
                    relay.add_progress(event[2], event[3])
                elif kind == "chunk":
                    relay.add_chunk(event[2])
                elif kind == "log":
                    relay.add_log(event[2])
                elif kind == "models":
                    self._loaded_models = tuple(event[1])
                elif kind == "died":
                    log.warning("executor died", extra={**fields, "exit_code": event[1]})
                    self._replace_executor()
                    return _Outcome(failure=stop_failure(reason, timeout) if reason else executor_died(event[1]))
                elif reason is not None:
                    return _Outcome(failure=stop_failure(reason, timeout))  # once a stop was asked, its reason wins
                elif kind == "done":
                    return _Outcome(output_json=event[2], artifacts=tuple(event[3]))
                elif kind == "failed":
                    return _Outcome(failure=Failure(event[2], event[3], event[4]))
                elif kind == "stopped":
                    return _Outcome(failure=STOPPED_UNASKED)
            if relay.due(time.monotonic()):
                try:
                    if relay.flush():
                        self.request_stop(task.task_id, StopReason.CANCELED)
                except TaskGone as gone:
                    log.info("the API took the task back; stopping it", extra={**fields, "error": str(gone)})
                    self.request_stop(task.task_id, StopReason.DROPPED)

    def _report(self, job: _Job, relay: _Relay, outcome: _Outcome) -> list[LeasedTask]:
        """Sends the outcome; returns the tasks a successful result's answer handed over."""
        task = job.task
        elapsed = time.monotonic() - job.received_at
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


class _Relay:
    """Batches a task's progress, chunks and log lines into progress reports, at most one per
    FLUSH_INTERVAL_SECONDS (but the first chunk at once) unless a backlog fills whole reports (at
    most MAX_CHUNKS_PER_REPORT chunks and MAX_LOGS_PER_REPORT lines each). Chunks and lines stay
    queued until the API has accepted them."""

    def __init__(self, reporter: Reporter, task: LeasedTask) -> None:
        self._reporter = reporter
        self._task = task
        self._progress: float | None = None
        self._message: str | None = None
        self._chunks: list[str] = []
        self._logs: list[str] = []
        self.pending = False
        # The first chunk goes out at once (the time to the first token counts); a log line or a
        # progress waits an interval for company, so a short task's go with its result and cost
        # no report of their own.
        self.flush_at = time.monotonic() + FLUSH_INTERVAL_SECONDS
        self._first_chunk = True

    def add_progress(self, progress: float, message: str | None) -> None:
        self._progress, self._message = progress, message
        self.pending = True

    def add_chunk(self, text: str) -> None:
        self._chunks.append(text)
        self.pending = True
        if self._first_chunk:
            self._first_chunk = False
            self.flush_at = 0.0

    def add_log(self, line: str) -> None:
        self._logs.append(line)
        self.pending = True

    def due(self, now: float) -> bool:
        return self.pending and now >= self.flush_at

    def flush(self) -> bool:
        """Sends one report of what is pending; returns True when the API asks to cancel. Raises TaskGone."""
        try:
            cancel = self._send(final=False)
        except TaskGone:
            self._chunks, self._logs, self.pending = [], [], False  # the API wants nothing more about this task
            raise
        except TransientError as error:
            log.warning("progress report failed; keeping its chunks and log lines for the next one", extra={
                **self._task.log_fields, "error": str(error), "chunks": len(self._chunks),
                "logs": len(self._logs)})
            self.flush_at = time.monotonic() + FLUSH_RETRY_SECONDS
            return False
        except ApiError as error:
            self._refused(error)
            return False
        # What did not fit in one report goes at once: a full report is batched enough.
        self.pending = bool(self._chunks or self._logs)
        self.flush_at = time.monotonic() + (0.0 if self.pending else FLUSH_INTERVAL_SECONDS)
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
        self._chunks, self._logs, self.pending = [], [], False
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
        self.pending = bool(self._chunks or self._logs)
        self.flush_at = time.monotonic() + FLUSH_INTERVAL_SECONDS

    def _send(self, *, final: bool) -> bool:
        chunks = self._chunks[:MAX_CHUNKS_PER_REPORT]
        lines = self._logs[:MAX_LOGS_PER_REPORT]
        cancel = self._reporter.progress(self._task, self._progress, self._message, chunks, lines, final=final)
        del self._chunks[:len(chunks)]
        del self._logs[:len(lines)]
        return cancel
