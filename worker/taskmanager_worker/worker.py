"""The worker: registers, keeps up its heartbeat, leases tasks for its free slots (whose outcomes
reporter.py reports), and shuts down gracefully.

Threads: the caller's thread runs registration, the lease loop and the shutdown; one heartbeat
thread; one thread per slot (see runner.py). They meet in a Condition that says when a slot is
free, when the API asks to drain, and when to stop.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from . import __version__
from .backoff import Backoff
from .client import ApiClient, ApiError, NotFound, Registration, TransientError
from .config import Config
from .executor import ExecutorError
from .gpu import Gpus
from .reporter import Reporter, StopReason
from .runner import Slot

log = logging.getLogger(__name__)

REGISTER_BACKOFF = (0.5, 10.0)  # first and longest wait between attempts, in seconds
LEASE_BACKOFF = (0.5, 10.0)
EXECUTOR_START_SECONDS = 120.0  # creating a backend may import large libraries
MAX_WAIT_SECONDS = 60  # the protocol's limit on a lease's wait_seconds


class FatalError(Exception):
    """The worker cannot go on (the API refuses its registration)."""


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
        self._registration: Registration | None = None
        self._reporter = Reporter(self._client, lambda: self.worker_id, self._taking_more)
        self._slots = [
            Slot(i, config.backends, config.log_level, config.cancel_grace_seconds, self._reporter, self._slot_idle,
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
        # The answer is about the leases this heartbeat named: a task that was taken back and
        # leased here again meanwhile (a new token) is not the one to stop.
        named: dict[str, set[str]] = {}
        for r in running:
            named.setdefault(r["task_id"], set()).add(r["lease_token"])
        for task_id in cancel:
            if any(slot.request_stop(task_id, StopReason.CANCELED, lease_tokens=named.get(task_id)) for slot in self._slots):
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
                self._reporter.hand_back(task)

    def _taking_more(self) -> bool:
        """Whether a slot that finishes a task may take the next one with its result."""
        return not self._stopping.is_set() and not self._draining

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
