"""The worker: registers, keeps up its heartbeat, leases tasks for its free slots, reports their
outcomes, and shuts down gracefully.

Threads: the caller's thread runs registration, the lease loop and the shutdown; one heartbeat
thread; one thread per slot (see runner.py). They meet in a Condition that says when a slot is
free, when the API asks to drain, and when to stop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import __version__
from .backends import Artifact
from .client import ApiClient, ApiError, Conflict, NotFound, Registration, Result, TooLarge, TransientError
from .config import Config
from .executor import ExecutorError
from .gpu import Gpus
from .runner import Slot, StopReason, TaskGone
from .task import LeasedTask

log = logging.getLogger(__name__)

REGISTER_BACKOFF = (0.5, 10.0)  # first and longest wait between attempts, in seconds
LEASE_BACKOFF = (0.5, 10.0)
REPORT_BACKOFF = (0.2, 5.0)
REPORT_RETRY_SECONDS = 60.0  # a final report is retried this long; then the API's lease expiry recovers the task
EXECUTOR_START_SECONDS = 120.0  # creating a backend may import large libraries
MAX_WAIT_SECONDS = 60  # the protocol's limit on a lease's wait_seconds

T = TypeVar("T")


MAX_RESULTS_PER_CALL = 100  # the protocol's limit on the results of one complete call


@dataclass
class _PendingResult:
    """A slot's result waiting to be reported (see Worker.complete), then its answer."""
    task: LeasedTask
    result: Result
    next_tasks: int
    done: bool = False
    answer: tuple[int, str | None, str | None] | None = None  # status code, task status, detail
    tasks: list[LeasedTask] = field(default_factory=list)  # the next tasks it takes
    error: BaseException | None = None  # the call failed: TaskGone or ApiError


class FatalError(Exception):
    """The worker cannot go on (the API refuses its registration)."""


class Backoff:
    """Waits that double from `first` up to `longest`, until reset."""

    def __init__(self, first: float, longest: float) -> None:
        self._first, self._longest = first, longest
        self._next = first

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self._longest)
        return delay

    def reset(self) -> None:
        self._next = self._first


def registration_body(config: Config, gpus: Gpus, loaded_models: list[str] | None = None) -> dict[str, Any]:
    """What the worker declares when it registers (and what `probe` prints): the models are those of
    TASKMANAGER_MODELS, then those its executors hold now (`loaded_models`)."""
    return {
        "name": config.name,
        "task_types": config.task_types,
        "backends": config.backends,
        "models": list(dict.fromkeys([*config.models, *(loaded_models or [])])),
        "gpus": gpus.read(),
        "capacity": config.capacity,
        "version": __version__,
    }


class Worker:
    def __init__(self, config: Config, client: ApiClient | None = None) -> None:
        self._config = config
        self._client = client or ApiClient(config.api_url, config.token)
        self._gpus = Gpus(config.gpus)
        self._cond = threading.Condition()
        self._stopping = threading.Event()  # no more leasing; finish or hand back what runs
        self._hurry = threading.Event()  # hand back what runs now, without waiting for the grace
        self._finished = threading.Event()  # every slot has reported; the heartbeat may stop
        self._draining = False
        self._exit_code = 0
        self._register_lock = threading.Lock()
        self._results_cond = threading.Condition()  # the results waiting to be reported (see complete)
        self._results: list[_PendingResult] = []
        self._sending_results = False
        self._registration: Registration | None = None
        self._slots = [
            Slot(i, config.backends, config.log_level, config.cancel_grace_seconds, self, self._slot_idle,
                 self._slot_crashed)
            for i in range(config.capacity)
        ]

    @property
    def worker_id(self) -> str | None:
        registration = self._registration
        return registration.worker_id if registration else None

    def request_shutdown(self) -> None:
        """Stops leasing and starts the shutdown; asked again, hands running tasks back at once."""
        if not self._stopping.is_set():
            log.info("shutting down: no more leasing")
            self._stopping.set()
            self._client.abort_leasing()
        elif not self._hurry.is_set():
            log.info("asked again: handing running tasks back now")
            self._hurry.set()
        with self._cond:
            self._cond.notify_all()

    def run(self) -> int:
        """Runs until shut down; returns the process exit code."""
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        try:
            for slot in self._slots:
                slot.start()  # the executors boot while the worker registers
            if self._register():
                for slot in self._slots:
                    slot.wait_ready(EXECUTOR_START_SECONDS)
                heartbeat.start()
                log.info("worker ready", extra={
                    "worker_id": self.worker_id, "capacity": self._config.capacity,
                    "task_types": self._config.task_types, "backends": self._config.backends})
                self._lease_loop()
                self._finish_running_tasks()
        except (FatalError, ExecutorError) as error:
            log.error(str(error))
            self._exit_code = 1
        finally:
            for slot in self._slots:
                slot.hand_back()
            for slot in self._slots:
                slot.close()
            self._finished.set()
            if heartbeat.is_alive():
                self._client.interrupt_heartbeat()
                heartbeat.join()
            self._client.close()
        log.info("worker stopped", extra={"exit_code": self._exit_code})
        return self._exit_code

    # --- registration ---

    def _register(self) -> bool:
        """Registers, retrying while the API is unreachable; False when shut down first."""
        config = self._config
        body = registration_body(config, self._gpus, self._loaded_models())
        backoff = Backoff(*REGISTER_BACKOFF)
        while not self._stopping.is_set():
            try:
                self._registration = self._client.register(body)
            except TransientError as error:
                delay = backoff.next()
                log.warning("cannot register yet; retrying", extra={
                    "api_url": config.api_url, "error": str(error), "retry_in_seconds": delay})
                self._stopping.wait(delay)
                continue
            except ApiError as error:
                hint = " (is TASKMANAGER_WORKER_TOKEN right?)" if error.status in (401, 403) else ""
                raise FatalError(f"the API refused the registration{hint}: {error}") from None
            log.info("registered", extra={"worker_id": self._registration.worker_id, "api_url": config.api_url,
                                          "heartbeat_interval_seconds": self._registration.heartbeat_interval_seconds})
            return True
        return False

    def _register_again(self, stale_id: str) -> None:
        """After a 404 for `stale_id`: registers anew, once, however many threads saw the 404."""
        with self._register_lock:
            if self.worker_id != stale_id:
                return
            log.warning("the API does not know this worker; registering again", extra={"worker_id": stale_id})
            try:
                self._register()
            except FatalError as error:
                self._fail_fatally(str(error))

    def _fail_fatally(self, message: str) -> None:
        log.error(message)
        self._exit_code = 1
        self.request_shutdown()

    def _loaded_models(self) -> list[str]:
        """The models the executors hold now, as they last said (a backend with `loaded_model`)."""
        return list(dict.fromkeys(model for slot in self._slots for model in slot.loaded_models))

    def _models(self) -> list[str]:
        """What the heartbeat declares: TASKMANAGER_MODELS, then the models loaded now."""
        return list(dict.fromkeys([*self._config.models, *self._loaded_models()]))

    # --- heartbeat ---

    def _heartbeat_loop(self) -> None:
        # Each heartbeat is a long poll: the API answers early when a task must stop, and then the
        # next heartbeat follows at once. It lasts one interval while tasks run; while none runs it
        # may last the longest wait the API allows (it keeps the worker alive meanwhile, and
        # answers at once when it gives the worker a task or drains it). A heartbeat that answers
        # early with nothing to stop (an error, or an API that does not hold it) waits out the
        # interval.
        while not self._finished.is_set():
            interval = self._registration.heartbeat_interval_seconds
            if not self._heartbeat(wait_seconds=interval, idle_wait_seconds=self._registration.max_wait_seconds):
                self._finished.wait(interval)

    def _heartbeat(self, wait_seconds: float = 0, idle_wait_seconds: float | None = None) -> bool:
        """One heartbeat; True when the next may follow at once (it named tasks to stop, it was a
        full long poll, or it was held idle and a task has started since)."""
        worker_id = self.worker_id
        running = [r for slot in self._slots if (r := slot.running()) is not None]
        if idle_wait_seconds and not running and wait_seconds > 0:
            wait_seconds = idle_wait_seconds
        started = time.monotonic()
        try:
            cancel, drain = self._client.heartbeat(worker_id, running, self._gpus.read(), self._models(),
                                                   wait_seconds=wait_seconds)
        except NotFound:
            self._register_again(worker_id)
            return False
        except ApiError as error:
            if not self._finished.is_set():  # else it was interrupted on shutdown
                log.warning("heartbeat failed", extra={"error": str(error)})
            return False
        for task_id in cancel:
            if any(slot.request_stop(task_id, StopReason.CANCELED) for slot in self._slots):
                log.info("cancel requested", extra={"task_id": task_id})
        if drain != self._draining:
            log.info("draining: leasing nothing more" if drain else "no longer draining")
            with self._cond:
                self._draining = drain
                self._cond.notify_all()
        # An answer that took most of its wait was a full long poll; the next may start at once.
        # An idle one answered early because the worker was given a task: the next, which names
        # it and so extends its lease, goes at once.
        full = wait_seconds > 0 and time.monotonic() - started >= wait_seconds * 0.8
        started_since = not running and any(slot.running() is not None for slot in self._slots)
        return bool(cancel) or full or started_since

    # --- leasing ---

    def _lease_loop(self) -> None:
        backoff = Backoff(*LEASE_BACKOFF)
        while True:
            with self._cond:
                while not self._stopping.is_set() and (self._draining or all(s.busy for s in self._slots)):
                    self._cond.wait()
                if self._stopping.is_set():
                    return
                free = [slot for slot in self._slots if not slot.busy]
            registration = self._registration
            # At least 1 s: a worker told to wait 0 would otherwise ask again and again at once.
            wait = int(min(MAX_WAIT_SECONDS, max(1, round(registration.max_wait_seconds))))
            try:
                tasks = self._client.lease(registration.worker_id, len(free), wait)
            except NotFound:
                self._register_again(registration.worker_id)
                continue
            except ApiError as error:
                if self._stopping.is_set():
                    return
                delay = backoff.next()
                log.warning("lease failed; retrying", extra={"error": str(error), "retry_in_seconds": delay})
                self._stopping.wait(delay)
                continue
            received_at = time.monotonic()
            backoff.reset()
            for slot, task in zip(free, tasks):
                log.debug("task leased", extra={**task.log_fields, "slot": slot.index})
                slot.assign(task, received_at)
            for task in tasks[len(free):]:
                log.error("the API sent more tasks than asked for; handing one back", extra=task.log_fields)
                self.fail(task, "worker_shutdown", "the worker had no free slot for this task", True)

    def _slot_idle(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _slot_crashed(self, error: BaseException) -> None:
        self._fail_fatally(f"a slot crashed ({type(error).__name__}: {error}); stopping the worker")

    # --- shutdown ---

    def _finish_running_tasks(self) -> None:
        """Gives running tasks the shutdown grace to finish; run() then hands back the rest."""
        grace = self._config.shutdown_grace_seconds
        deadline = time.monotonic() + grace
        running = sum(slot.busy for slot in self._slots)
        if running:
            log.info("waiting for running tasks", extra={"running": running, "grace_seconds": grace})
        with self._cond:
            while (any(slot.busy for slot in self._slots) and not self._hurry.is_set()
                   and (left := deadline - time.monotonic()) > 0):
                self._cond.wait(left)

    # --- reports (the runner's Reporter) ---

    def progress(self, task: LeasedTask, progress: float | None, message: str | None, chunks: list[str],
                 logs: list[str], *, final: bool) -> bool:
        return self._report(task, lambda worker_id: self._client.progress(
            worker_id, task.task_id, task.lease_token, progress=progress, message=message, chunks=chunks,
            logs=logs), retry=final)

    def upload(self, task: LeasedTask, artifact: Artifact) -> Any:
        return self._report(task, lambda worker_id: self._client.upload_artifact(
            worker_id, task.task_id, task.lease_token, artifact.name, artifact.content_type, artifact.data),
            retry=True)

    def complete(self, task: LeasedTask, output_json: str, chunks: list[str] | None = None,
                 lines: list[str] | None = None, next_tasks: int = 0,
                 timing: dict[str, str] | None = None) -> tuple[str | None, list[LeasedTask]]:
        """Reports the result with the attempt's last chunks and log lines and when this worker ran
        it, and takes up to `next_tasks` tasks in the same call. Returns the task's status (None
        when not reported) and the next tasks.

        Results are group-committed: while one slot's report is on its way, the slots that finish
        queue theirs, and the first of them sends them all, with the next tasks they all want, in
        one call. Under load a call then carries several results (fewer requests for the API and
        Redis, less HTTP work here); a lone result goes at once.
        """
        pending = _PendingResult(task, Result(task.task_id, task.lease_token, output_json, timing, chunks, lines),
                                 next_tasks)
        with self._results_cond:
            self._results.append(pending)
            while self._sending_results and not pending.done:
                self._results_cond.wait()
            batch = None
            if not pending.done:
                batch = self._results[:MAX_RESULTS_PER_CALL]
                del self._results[:len(batch)]
                self._sending_results = True
        if batch is not None:
            try:
                self._send_results(batch)
            finally:
                with self._results_cond:
                    for entry in batch:
                        entry.done = True
                    self._sending_results = False
                    self._results_cond.notify_all()
        return self._result_answer(pending)

    def _send_results(self, batch: list[_PendingResult]) -> None:
        """Sends `batch` in one call and sets each entry's answer, or its error. Where the API
        refuses the call as a whole (a 400 or a 413) for several results, each goes alone, so that
        one result's fault is not the others'."""
        try:
            answers, tasks = self._report(batch[0].task, lambda worker_id: self._client.complete_many(
                worker_id, [entry.result for entry in batch], sum(entry.next_tasks for entry in batch)), retry=True)
        except (TaskGone, ApiError) as error:
            if len(batch) > 1 and isinstance(error, ApiError) and not isinstance(error, TransientError):
                for entry in batch:
                    self._send_results([entry])
                return
            for entry in batch:
                entry.error = error
            return
        for entry, answer in zip(batch, answers):
            entry.answer = answer
            entry.tasks, tasks = tasks[:entry.next_tasks], tasks[entry.next_tasks:]
        batch[-1].tasks = batch[-1].tasks + tasks  # more than asked for: its slot hands them back

    def _result_answer(self, pending: _PendingResult) -> tuple[str | None, list[LeasedTask]]:
        task, error = pending.task, pending.error
        if isinstance(error, TaskGone):
            log.info("result not accepted: the attempt is no longer ours", extra={
                **task.log_fields, "error": str(error)})
            return None, []
        if isinstance(error, TransientError):
            log.error("could not report the result", extra={**task.log_fields, "error": str(error)})
            return None, []
        if isinstance(error, TooLarge):
            log.error("the API refused the result as too large", extra={**task.log_fields, "error": str(error)})
            return self.fail(task, "output_too_large", f"the API refused the result as too large: {error}", False,
                             pending.result.timing), []
        if isinstance(error, ApiError):
            # The API refuses this output: retrying cannot help.
            log.error("the API refused the result", extra={**task.log_fields, "error": str(error)})
            return self.fail(task, "backend_error", f"the API refused the result: {error}", False,
                             pending.result.timing), []
        if pending.answer is None:  # the sending slot crashed (logged there)
            return None, []
        code, status, detail = pending.answer
        if code != 200:
            log.info("result not accepted: the attempt is no longer ours", extra={
                **task.log_fields, "error": f"{code}: {detail}"})
            return None, pending.tasks
        return status, pending.tasks

    def wants_more(self) -> bool:
        """Whether a slot that finishes a task may take the next one with its result."""
        return not self._stopping.is_set() and not self._draining

    def fail(self, task: LeasedTask, code: str, message: str, retryable: bool,
             timing: dict[str, str] | None = None) -> str | None:
        try:
            return self._report(task, lambda worker_id: self._client.fail(
                worker_id, task.task_id, task.lease_token, code, message, retryable, timing), retry=True)
        except TaskGone as gone:
            log.info("failure not accepted: the attempt is no longer ours", extra={
                **task.log_fields, "error": str(gone)})
        except ApiError as error:
            log.error("could not report the failure", extra={**task.log_fields, "error": str(error)})
        return None

    def _report(self, task: LeasedTask, call: Callable[[str], T], *, retry: bool) -> T:
        """Makes a task report, retrying transient errors for REPORT_RETRY_SECONDS when `retry`.

        A 404 drops the task like a 409 and does not re-register: a report's 404 may mean an unknown
        task rather than an unknown worker, and the heartbeat finds out within one interval.
        """
        backoff = Backoff(*REPORT_BACKOFF)
        give_up_at = time.monotonic() + REPORT_RETRY_SECONDS
        while True:
            try:
                return call(self.worker_id)
            except (Conflict, NotFound) as error:
                raise TaskGone(str(error)) from None
            except TransientError as error:
                if not retry or time.monotonic() >= give_up_at:
                    raise
                delay = backoff.next()
                log.warning("report failed; retrying", extra={
                    **task.log_fields, "error": str(error), "retry_in_seconds": delay})
                time.sleep(delay)
