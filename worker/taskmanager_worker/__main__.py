"""Entry point: `python3 -m taskmanager_worker`, configured by environment variables (see README)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

from . import config, logs
from .worker import Worker

log = logging.getLogger("taskmanager_worker")


def main() -> int:
    logs.setup()
    try:
        settings = config.load()
    except config.ConfigError as error:
        log.error(f"bad configuration: {error}")
        return 2
    logs.setup(settings.log_level)
    worker = Worker(settings)
    _on_stop_signals(worker.request_shutdown)
    return worker.run()


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
