import json
import os
import signal
import threading
import time
import unittest

from helpers import ALL_SIM, WAIT_SECONDS, pid_alive
from taskmanager_worker.runner import Slot, StopReason, TaskGone

GRACE = 0.3


class StubReporter:
    """Records what a slot reports; can answer progress with a cancel or a 409."""

    def __init__(self):
        self.cond = threading.Condition()
        self.progress_calls = []
        self.finals = {}
        self.cancel_on_progress = False
        self.gone_on_progress = False

    def progress(self, task, progress, message, chunks, *, final):
        with self.cond:
            self.progress_calls.append({"task_id": task["task_id"], "progress": progress, "chunks": list(chunks),
                                        "final": final})
            self.cond.notify_all()
        if self.gone_on_progress:
            raise TaskGone("409 Conflict")
        return self.cancel_on_progress

    def complete(self, task, output_json):
        return self._final(task, {"report": "complete", "output": json.loads(output_json)})

    def fail(self, task, code, message, retryable):
        return self._final(task, {"report": "fail", "code": code, "message": message, "retryable": retryable})

    def _final(self, task, report):
        with self.cond:
            self.finals[task["task_id"]] = report
            self.cond.notify_all()
        return "ok"

    def wait(self, predicate, what):
        with self.cond:
            if not self.cond.wait_for(predicate, WAIT_SECONDS):
                raise AssertionError(f"timed out waiting for {what}")

    def final(self, task_id):
        self.wait(lambda: task_id in self.finals, f"the final report of {task_id}")
        return self.finals[task_id]


def task(task_id, task_type="llm", sim=None, timeout_seconds=300, **task_input):
    return {"task_id": task_id, "lease_token": f"lt-{task_id}", "type": task_type, "model": None,
            "input": task_input or {"prompt": "hi"}, "metadata": {"sim": sim} if sim else {}, "attempt": 1,
            "timeout_seconds": timeout_seconds}


class SlotTests(unittest.TestCase):
    def setUp(self):
        self.reporter = StubReporter()
        self.idle = threading.Event()
        self.slot = Slot(0, ALL_SIM, "critical", GRACE, self.reporter, self.idle.set, self.fail_on_crash)
        self.slot.start()
        self.addCleanup(self.slot.close)
        self.slot.wait_ready(WAIT_SECONDS)

    def fail_on_crash(self, error):
        raise AssertionError(f"slot crashed: {error}")

    def assign(self, t):
        self.idle.clear()
        self.slot.assign(t, time.monotonic())
        return t["task_id"]

    def wait_idle(self):
        self.assertTrue(self.idle.wait(WAIT_SECONDS), "the slot did not become idle")
        self.assertFalse(self.slot.busy)

    def test_runs_a_task_and_reports_its_output(self):
        output = self.reporter.final(self.assign(task("t1", max_tokens=5)))["output"]
        self.assertEqual(output["usage"]["completion_tokens"], 5)
        self.wait_idle()

    def test_reuses_its_executor_between_tasks(self):
        pid = self.slot.executor_pid
        for i in range(3):
            self.assertEqual(self.reporter.final(self.assign(task(f"t{i}", "sd", prompt="x")))["report"], "complete")
            self.wait_idle()
        self.assertEqual(self.slot.executor_pid, pid)

    def test_hanging_task_is_killed_at_its_timeout_and_replaced(self):
        pid = self.slot.executor_pid
        started = time.monotonic()
        report = self.reporter.final(self.assign(task("t1", sim={"hang": True}, timeout_seconds=0.5)))
        self.assertEqual((report["report"], report["code"], report["retryable"]), ("fail", "timeout", True))
        self.assertGreaterEqual(time.monotonic() - started, 0.5 + GRACE)
        self.assertFalse(pid_alive(pid), "the hanging executor is gone")
        self.wait_idle()
        self.assertNotEqual(self.slot.executor_pid, pid)
        self.assertEqual(self.reporter.final(self.assign(task("t2")))["report"], "complete")

    def test_cancel_kills_a_task_that_ignores_it(self):
        pid = self.slot.executor_pid
        self.assign(task("t1", sim={"hang": True}))
        self.assertTrue(self.slot.request_stop("t1", StopReason.CANCELED))
        report = self.reporter.final("t1")
        self.assertEqual((report["code"], report["retryable"]), ("canceled", False))
        self.assertFalse(pid_alive(pid))

    def test_cancel_stops_a_cooperative_task_without_killing_its_executor(self):
        pid = self.slot.executor_pid
        self.assign(task("t1", sim={"duration_ms": 60_000}))
        self.reporter.wait(lambda: self.reporter.progress_calls, "the task to report progress")
        self.slot.request_stop("t1", StopReason.CANCELED)
        self.assertEqual(self.reporter.final("t1")["code"], "canceled")
        self.assertEqual(self.slot.executor_pid, pid)
        self.assertTrue(pid_alive(pid))

    def test_stop_request_for_another_task_is_ignored(self):
        self.assign(task("t1", sim={"duration_ms": 200}))
        self.assertFalse(self.slot.request_stop("other", StopReason.CANCELED))
        self.assertEqual(self.reporter.final("t1")["report"], "complete")

    def test_cancel_in_a_progress_answer_stops_the_task(self):
        self.reporter.cancel_on_progress = True
        self.assertEqual(self.reporter.final(self.assign(task("t1", sim={"duration_ms": 60_000})))["code"], "canceled")

    def test_conflict_on_progress_drops_the_task_without_a_report(self):
        self.reporter.gone_on_progress = True
        self.assign(task("t1", sim={"duration_ms": 60_000}))
        self.wait_idle()
        self.assertNotIn("t1", self.reporter.finals)
        self.reporter.gone_on_progress = False
        self.assertEqual(self.reporter.final(self.assign(task("t2")))["report"], "complete")

    def test_chunks_arrive_in_order_batched_and_all_of_them(self):
        output = self.reporter.final(self.assign(task("t1", sim={"duration_ms": 300, "chunks": 40})))["output"]
        with self.reporter.cond:
            calls = list(self.reporter.progress_calls)
        self.assertEqual("".join(c for call in calls for c in call["chunks"]), output["text"])
        self.assertLess(len(calls), 15, "chunks are batched, not sent one by one")

    def test_executor_death_is_reported_and_a_fresh_executor_takes_over(self):
        pid = self.slot.executor_pid
        self.assign(task("t1", sim={"duration_ms": 60_000}))
        self.reporter.wait(lambda: self.reporter.progress_calls, "the task to report progress")
        os.kill(pid, signal.SIGKILL)
        report = self.reporter.final("t1")
        self.assertEqual((report["code"], report["retryable"]), ("executor_died", True))
        self.wait_idle()
        self.assertEqual(self.reporter.final(self.assign(task("t2")))["report"], "complete")
        self.assertNotEqual(self.slot.executor_pid, pid)

    def test_hand_back_kills_at_once_and_reports_worker_shutdown(self):
        pid = self.slot.executor_pid
        self.assign(task("t1", sim={"hang": True}))
        started = time.monotonic()
        self.slot.hand_back()
        report = self.reporter.final("t1")
        self.assertEqual((report["code"], report["retryable"]), ("worker_shutdown", True))
        self.assertLess(time.monotonic() - started, GRACE, "no grace on hand-back")
        self.assertFalse(pid_alive(pid))

    def test_no_op_task_costs_well_under_a_millisecond_of_worker_time(self):
        self.reporter.final(self.assign(task("warm-up")))
        self.wait_idle()
        count = 200
        started = time.perf_counter()
        for i in range(count):
            self.assign(task(f"t{i}", max_tokens=1))
            self.wait_idle()
        per_task_ms = (time.perf_counter() - started) / count * 1000
        # A process start or a model load per task would cost 50 ms or more; the test machine may
        # be slow and busy, so the bound is loose.
        self.assertLess(per_task_ms, 5, f"{per_task_ms:.2f} ms per no-op task")


if __name__ == "__main__":
    unittest.main()
