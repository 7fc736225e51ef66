"""Loaded models: an executor tells its worker which models its backends hold (a backend with a
`loaded_model` attribute), and the worker declares them in its heartbeats beside TASKMANAGER_MODELS."""

import os
import threading
import time
import unittest

from fakeapi import FakeApi
from helpers import WAIT_SECONDS
from taskmanager_worker.config import load
from taskmanager_worker.executor import _ExecutorLoop
from taskmanager_worker.runner import Slot
from test_runner import StubReporter, task
from taskmanager_worker.worker import Worker


class RecordingConn:
    """The executor's end of its pipe: records what it sends; nothing ever comes to read."""

    def __init__(self):
        self.sent = []
        self._read, self._write = os.pipe()

    def fileno(self):
        return self._read

    def send(self, message):
        self.sent.append(message)

    def close(self):
        os.close(self._read)
        os.close(self._write)


class ModelBackend:
    """Holds one model at a time, as the transformers backend does."""

    def __init__(self, fail_on=None):
        self.loaded_model = None
        self.fail_on = fail_on
        self.calls = []

    def load(self, model):
        self.calls.append(("load", model))
        if model == self.fail_on:
            raise RuntimeError("no such model")
        self.loaded_model = model

    def unload(self):
        self.calls.append(("unload", self.loaded_model))
        self.loaded_model = None

    def run(self, task, ctx):
        return {"model": self.loaded_model}


class PlainBackend:
    """Says nothing about models, as sim does."""

    def load(self, model):
        pass

    def unload(self):
        pass

    def run(self, task, ctx):
        return {}


class ExecutorReportTests(unittest.TestCase):
    def setUp(self):
        self.conn = RecordingConn()
        self.addCleanup(self.conn.close)
        self.backend = ModelBackend(fail_on="broken")
        self.loop = _ExecutorLoop(self.conn, {"llm": "hf", "tts": "plain"},
                                  {"hf": self.backend, "plain": PlainBackend()})

    def run_task(self, task_type, model):
        self.conn.sent.clear()
        self.loop._run({"task_id": "t", "type": task_type, "model": model, "input": {}})
        return [message for message in self.conn.sent if message[0] == "models"]

    def test_a_load_and_a_switch_are_reported_once_each(self):
        self.assertEqual(self.run_task("llm", "m1"), [("models", ["m1"])])
        self.assertEqual(self.run_task("llm", "m1"), [], "the same model: nothing changed")
        self.assertEqual(self.run_task("llm", "m2"), [("models", ["m2"])])
        self.assertEqual(self.backend.calls, [("load", "m1"), ("unload", "m1"), ("load", "m2")])

    def test_a_backend_without_loaded_model_reports_nothing(self):
        self.assertEqual(self.run_task("tts", "voice-model"), [])

    def test_a_failed_load_reports_that_the_old_model_is_gone(self):
        self.run_task("llm", "m1")
        self.assertEqual(self.run_task("llm", "broken"), [("models", [])])
        final = self.loop._run({"task_id": "t", "type": "llm", "model": "broken", "input": {}})
        self.assertEqual(final[0], "failed")


class FakeExecutor:
    """Plays back executor events, one per wait."""

    pid = 1

    def __init__(self, events):
        self._events = list(events)

    def run(self, task):
        pass

    def stop(self, task_id):
        pass

    def events(self, timeout, wake=None):
        return [self._events.pop(0)] if self._events else []


class SlotTests(unittest.TestCase):
    def test_a_models_event_sets_what_the_slot_declares(self):
        reporter = StubReporter()
        slot = Slot(0, {"llm": "sim"}, "error", 0.3, reporter, lambda: None, lambda error: None)
        slot._executor = FakeExecutor([("models", ["m1"]), ("done", "t1", "{}", [])])
        self.assertEqual(slot.loaded_models, ())
        slot._run(task("t1"), time.monotonic())
        self.assertEqual(slot.loaded_models, ("m1",))
        self.assertEqual(reporter.final("t1")["report"], "complete")


class HeartbeatTests(unittest.TestCase):
    def test_heartbeats_and_a_new_registration_declare_the_loaded_models(self):
        api = FakeApi()
        self.addCleanup(api.close)
        worker = Worker(load({"TASKMANAGER_API_URL": api.url, "TASKMANAGER_MODELS": "tiny-llama",
                              "TASKMANAGER_GPUS": "[]", "TASKMANAGER_LOG_LEVEL": "error"}))
        thread = threading.Thread(target=worker.run)
        thread.start()
        try:
            api.wait_for_call("lease")
            slot = worker._slots[0]
            slot._loaded_models = ("Qwen/Qwen2.5-0.5B", "tiny-llama")  # as a "models" event sets it
            count = len(api.calls("heartbeat"))
            heartbeat = api.wait_for_call("heartbeat", count=count + 2)[-1]
            self.assertEqual(heartbeat["body"]["models"], ["tiny-llama", "Qwen/Qwen2.5-0.5B"])
            api.forget.add(worker.worker_id)  # the next heartbeat gets a 404: register again
            [_, again] = api.wait_for_call("register", count=2)
            self.assertEqual(again["body"]["models"], ["tiny-llama", "Qwen/Qwen2.5-0.5B"])
        finally:
            worker.request_shutdown()
            thread.join(WAIT_SECONDS)
        self.assertFalse(thread.is_alive())


class LoggingBackend(PlainBackend):
    """Logs two lines, then (with wait_for_send) polls ctx.stopped() until the executor has sent something."""

    def __init__(self, conn, wait_for_send=False):
        self.conn = conn
        self.wait_for_send = wait_for_send

    def run(self, task, ctx):
        ctx.log("first line\nsecond line")
        deadline = time.monotonic() + WAIT_SECONDS
        while self.wait_for_send and not self.conn.sent and time.monotonic() < deadline:
            ctx.stopped()
        return {"ok": True}


class ExecutorLogTests(unittest.TestCase):
    """Log lines wait in the executor for the task's next message and go with it in one write; a
    line that has waited LOG_FLUSH_SECONDS goes alone at the backend's next ctx.stopped()."""

    def setUp(self):
        self.conn = RecordingConn()
        self.addCleanup(self.conn.close)

    def run_task(self, backend):
        loop = _ExecutorLoop(self.conn, {"llm": "logs"}, {"logs": backend})
        loop.send(loop._run({"task_id": "t", "type": "llm", "input": {}}))
        return self.conn.sent

    def test_a_short_tasks_log_lines_go_with_its_outcome_in_one_message(self):
        sent = self.run_task(LoggingBackend(self.conn))
        self.assertEqual(len(sent), 1, sent)
        kind, messages = sent[0]
        self.assertEqual(kind, "many")
        self.assertEqual(messages[:2], [("log", "t", "first line"), ("log", "t", "second line")])
        self.assertEqual(messages[2][:3], ("done", "t", '{"ok":true}'))

    def test_log_lines_that_have_waited_go_alone_at_a_stopped_check(self):
        sent = self.run_task(LoggingBackend(self.conn, wait_for_send=True))
        self.assertEqual(sent[0], ("many", [("log", "t", "first line"), ("log", "t", "second line")]))
        self.assertEqual(len(sent), 2, sent)
        self.assertEqual(sent[1][:2], ("done", "t"))


if __name__ == "__main__":
    unittest.main()
