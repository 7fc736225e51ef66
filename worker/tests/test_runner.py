import json
import os
import signal
import threading
import time
import unittest

from helpers import ALL_SIM, WAIT_SECONDS, pid_alive, read_png, read_wav
from taskmanager_worker.client import MAX_CHUNKS_PER_REPORT, MAX_LOGS_PER_REPORT, ApiError, TooLarge, TransientError
from taskmanager_worker.reporter import StopReason, TaskGone
from taskmanager_worker.runner import Slot
from taskmanager_worker.task import LeasedTask

GRACE = 0.3


class StubReporter:
    """Records what a slot reports; can answer progress with a cancel, a 409 or a refusal, and
    uploads with an error."""

    def __init__(self):
        self.cond = threading.Condition()
        self.progress_calls = []
        self.uploads = []
        self.finals = {}
        self.cancel_on_progress = False
        self.gone_on_progress = False
        self.refuse_progress = 0  # answer this many progress reports with a 400
        self.upload_error = None  # raised by upload() when set
        self.next_tasks = []  # handed over with results, `hand_over` each, while give_next
        self.hand_over = 1
        self.give_next = True
        self.handed_back = []

    def progress(self, task, progress, message, chunks, logs, *, final):
        with self.cond:
            self.progress_calls.append({"task_id": task.task_id, "progress": progress, "chunks": list(chunks),
                                        "logs": list(logs), "final": final})
            self.cond.notify_all()
            if self.refuse_progress:
                self.refuse_progress -= 1
                raise ApiError(400, "400 Bad Request")
        if self.gone_on_progress:
            raise TaskGone("409 Conflict")
        return self.cancel_on_progress

    def upload(self, task, artifact):
        with self.cond:
            self.uploads.append((task.task_id, artifact))
        if self.upload_error is not None:
            raise self.upload_error
        return {"name": artifact.name, "url": f"/api/tasks/{task.task_id}/artifacts/{artifact.name}",
                "content_type": artifact.content_type, "bytes": len(artifact.data)}

    def sent(self, key, task_id):
        """Every chunk (or log line) reported for a task, in order."""
        with self.cond:
            return [item for call in self.progress_calls if call["task_id"] == task_id for item in call[key]]

    def complete(self, task, output_json, chunks=None, lines=None, timing=None):
        # The last chunks and lines come with the result: recorded as the report they replace.
        if chunks or lines:
            with self.cond:
                self.progress_calls.append({"task_id": task.task_id, "progress": None, "chunks": list(chunks or []),
                                            "logs": list(lines or []), "final": True, "with_result": True})
        following = []
        if self.give_next:
            following, self.next_tasks = self.next_tasks[:self.hand_over], self.next_tasks[self.hand_over:]
        return self._final(task, {"report": "complete", "output": json.loads(output_json), "timing": timing}), following

    def fail(self, task, failure, timing=None):
        return self._final(task, {"report": "fail", "code": failure.code, "message": failure.message,
                                  "retryable": failure.retryable, "timing": timing})

    def hand_back(self, task):
        with self.cond:
            self.handed_back.append(task.task_id)

    def _final(self, task, report):
        with self.cond:
            self.finals[task.task_id] = report
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
    return LeasedTask.from_json({"task_id": task_id, "lease_token": f"lt-{task_id}", "type": task_type, "model": None,
            "input": task_input or {"prompt": "hi"}, "metadata": {"sim": sim} if sim else {}, "attempt": 1,
            "timeout_seconds": timeout_seconds})


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
        return t.task_id

    def wait_idle(self):
        self.assertTrue(self.idle.wait(WAIT_SECONDS), "the slot did not become idle")
        self.assertFalse(self.slot.busy)

    def test_runs_a_task_and_reports_its_output(self):
        report = self.reporter.final(self.assign(task("t1", max_tokens=5)))
        self.assertEqual(report["output"]["usage"]["completion_tokens"], 5)
        self.assertEqual(set(report["timing"]), {"started_at", "ended_at"}, "when this worker ran it, for the trace")
        self.wait_idle()

    def test_runs_the_task_a_result_takes_and_hands_back_what_it_cannot_run(self):
        self.reporter.next_tasks, self.reporter.hand_over = [task("t2"), task("t3")], 2
        self.assertEqual(self.reporter.final(self.assign(task("t1")))["report"], "complete")
        self.assertEqual(self.reporter.final("t2")["report"], "complete", "the next task, run at once")
        self.wait_idle()
        self.assertEqual(self.reporter.handed_back, ["t3"])
        self.assertNotIn("t3", self.reporter.finals)

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
        self.assertLessEqual(report["timing"]["started_at"], report["timing"]["ended_at"])
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

    def test_a_stop_for_an_earlier_lease_of_the_task_leaves_this_one_running(self):
        self.assign(task("t1", sim={"duration_ms": 200}))
        self.assertFalse(self.slot.request_stop("t1", StopReason.CANCELED, lease_tokens={"lt-an-earlier-lease"}))
        self.assertEqual(self.reporter.final("t1")["report"], "complete")

    def test_a_stop_for_this_lease_stops_the_task(self):
        self.assign(task("t1", sim={"duration_ms": 60_000}))
        self.assertTrue(self.slot.request_stop("t1", StopReason.CANCELED, lease_tokens={"lt-t1"}))
        self.assertEqual(self.reporter.final("t1")["code"], "canceled")

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

    def test_log_lines_are_relayed_in_order(self):
        self.reporter.final(self.assign(task("t1", sim={"duration_ms": 200, "logs": 5})))
        lines = self.reporter.sent("logs", "t1")
        self.assertTrue(lines[0].startswith("SIMULATION: generating"), lines)
        self.assertEqual(lines[1:], [f"SIMULATION: log line {i}/5" for i in range(1, 6)])

    def test_a_backlog_is_split_into_reports_within_the_protocol_limits(self):
        # All at once (no duration): 2,500 chunks and 251 lines in one burst.
        output = self.reporter.final(self.assign(task("t1", sim={"chunks": 2500, "logs": 250})))["output"]
        with self.reporter.cond:
            calls = list(self.reporter.progress_calls)
        self.assertTrue(all(len(c["chunks"]) <= MAX_CHUNKS_PER_REPORT and len(c["logs"]) <= MAX_LOGS_PER_REPORT
                            for c in calls))
        self.assertEqual("".join(self.reporter.sent("chunks", "t1")), output["text"])
        self.assertEqual(self.reporter.sent("logs", "t1")[1:], [f"SIMULATION: log line {i}/250" for i in range(1, 251)])
        self.assertGreaterEqual(len(calls), 3)

    def test_a_refused_progress_report_does_not_stop_the_task(self):
        self.reporter.refuse_progress = 1
        self.assertEqual(self.reporter.final(self.assign(task("t1", sim={"duration_ms": 200})))["report"], "complete")
        self.wait_idle()

    def test_artifacts_are_uploaded_and_their_urls_put_in_the_output(self):
        output = self.reporter.final(self.assign(task("t1", "sd", prompt="x", num_images=2, seed=3)))["output"]
        self.assertEqual([(t, a.name, a.content_type) for t, a in self.reporter.uploads],
                         [("t1", "image-0.png", "image/png"), ("t1", "image-1.png", "image/png")])
        for i, (image, (_, artifact)) in enumerate(zip(output["images"], self.reporter.uploads)):
            self.assertEqual(read_png(artifact.data)[:2], (64, 64))
            self.assertEqual(image, {"url": f"/api/tasks/t1/artifacts/image-{i}.png", "content_type": "image/png",
                                     "bytes": len(artifact.data), "width": 64, "height": 64, "requested_width": 512,
                                     "requested_height": 512, "seed": 3 + i, "format": "png"})

    def test_tts_audio_is_uploaded(self):
        output = self.reporter.final(self.assign(task("t1", "tts", text="hello")))["output"]
        [(_, artifact)] = self.reporter.uploads
        self.assertEqual(read_wav(artifact.data)[:2], (1, output["sample_rate"]))
        self.assertEqual(output["audio"], {"url": "/api/tasks/t1/artifacts/audio.wav", "content_type": "audio/wav",
                                           "bytes": len(artifact.data)})

    def test_conflict_on_upload_drops_the_task_without_a_report(self):
        self.reporter.upload_error = TaskGone("409 Conflict")
        self.assign(task("t1", "sd", prompt="x", num_images=3))
        self.wait_idle()
        self.assertNotIn("t1", self.reporter.finals)
        self.assertEqual(len(self.reporter.uploads), 1, "no more uploads once the task is gone")

    def test_too_large_on_upload_fails_the_task_for_good(self):
        self.reporter.upload_error = TooLarge(413, "413 Payload Too Large")
        report = self.reporter.final(self.assign(task("t1", "tts", text="hello")))
        self.assertEqual((report["report"], report["code"], report["retryable"]), ("fail", "output_too_large", False))
        self.assertIn("audio.wav", report["message"])

    def test_unreachable_api_on_upload_fails_the_task_retryably(self):
        self.reporter.upload_error = TransientError(None, "connection refused")
        report = self.reporter.final(self.assign(task("t1", "tts", text="hello")))
        self.assertEqual((report["code"], report["retryable"]), ("backend_error", True))

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
