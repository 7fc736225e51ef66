"""Entry point, configured by environment variables (see README):

    python3 -m taskmanager_worker                 runs the worker
    python3 -m taskmanager_worker probe           prints what it would register (JSON) and exits
    python3 -m taskmanager_worker run-once ...    runs one task through a backend, without the API
                                                  (run_once.py; --help lists its arguments)

At start-up (worker and probe alike) a task type whose backend cannot serve on this machine (a
program or a Python module it needs is missing) is left out, with one warning line that says why;
with no type left, the worker exits 2.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

from . import config, logs
from .gpu import Gpus
from .worker import Worker, registration_body

log = logging.getLogger("taskmanager_worker")
USAGE = "usage: python3 -m taskmanager_worker [probe | run-once --type TYPE --input JSON [...]]"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logs.setup()
    if args[:1] == ["run-once"]:
        from . import run_once
        return run_once.main(args[1:])
    if args in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if args not in ([], ["probe"]):
        log.error(f"unknown arguments {' '.join(args)!r}; {USAGE}")
        return 2
    probing = args == ["probe"]
    try:
        settings = config.load(need_api_url=not probing)
        settings = config.drop_unavailable(settings, log.warning)
    except config.ConfigError as error:
        log.error(f"bad configuration: {error}")
        return 2
    logs.setup(settings.log_level)
    if probing:
        return probe(settings)
    worker = Worker(settings)
    _on_stop_signals(worker.request_shutdown)
    return worker.run()


def probe(settings: config.Config) -> int:
    """Prints what the worker would register, without contacting the API."""
    print(json.dumps(registration_body(settings, Gpus(settings.gpus)), indent=2))
    return 0


def _on_stop_signals(callback: Callable[[], None]) -> None:
    """Calls `callback`, in a thread of its own, each time SIGTERM or SIGINT arrives.

    A Python signal handler runs in the main thread wherever it happens to be, possibly inside a
    lock the callback needs. So the handlers do nothing; signal.set_wakeup_fd makes the interpreter
    write each signal's number to a pipe, and a thread reading the pipe runs the callback.
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    stop_signals = (signal.SIGTERM, signal.SIGINT)
    for signum in stop_signals:
        signal.signal(signum, lambda *_: None)

    def watch() -> None:
        while True:
            for signum in os.read(read_fd, 64):
                if signum in stop_signals:
                    log.info("signal received", extra={"signal": signal.Signals(signum).name})
                    callback()

    threading.Thread(target=watch, name="signals", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
