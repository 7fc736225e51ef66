"""Protocol tests: a real worker (executors included) against the fake API."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest
from datetime import datetime
from unittest import mock

from fakeapi import FakeApi
from helpers import WAIT_SECONDS, executor_pids, pid_alive, read_png, read_wav, wait_until
from taskmanager_worker import __version__, worker as worker_module
from taskmanager_worker.config import load
from taskmanager_worker.worker import Worker

WORKER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPUS = [{"name": "Test GPU", "memory_total_mb": 1000, "memory_free_mb": 900, "utilization": 0.5}]


class WorkerTestCase(unittest.TestCase):
    def setUp(self):
        self.api = FakeApi()
        self.addCleanup(self.api.close)

    def env(self, **overrides):
        return {
            "TASKMANAGER_API_URL": self.api.url, "TASKMANAGER_WORKER_TOKEN": "s3cret",
            "TASKMANAGER_WORKER_NAME": "test-worker", "TASKMANAGER_GPUS": json.dumps(GPUS),
            "TASKMANAGER_MODELS": "tiny-llama", "TASKMANAGER_CANCEL_GRACE_SECONDS": "0.3",
            "TASKMANAGER_SHUTDOWN_GRACE_SECONDS": "5", "TASKMANAGER_LOG_LEVEL": "error", **overrides,
        }

    def start_worker(self, **overrides):
        """Runs a worker in a thread; the test's cleanup shuts it down and checks it exited 0."""
        self.worker = Worker(load(self.env(**overrides)))
        self.exit_code = None

        def run():
            self.exit_code = self.worker.run()

        self.thread = threading.Thread(target=run, name="worker-under-test")
        self.thread.start()
        self.addCleanup(self.stop_worker)
        self.api.wait_for_call("lease")
        return self.worker

    def stop_worker(self):
        if self.thread.is_alive():
            self.worker.request_shutdown()
            self.thread.join(WAIT_SECONDS)
        self.assertFalse(self.thread.is_alive(), "the worker stopped")
        self.assertEqual(self.exit_code, 0)
        self.assertEqual(executor_pids(), set(), "no executor outlives the worker")


class RegisterLeaseCompleteTests(WorkerTestCase):
    def test_registers_leases_and_completes(self):
        self.start_worker(TASKMANAGER_CAPACITY="2")
        task_id = self.api.add_task("llm", {"prompt": "hello", "max_tokens": 3})
        report = self.api.final_report(task_id)

        register = self.api.calls("register")[0]
        self.assertEqual(register["headers"]["Authorization"], "Bearer s3cret")
        self.assertEqual(register["body"], {
            "name": "test-worker", "task_types": ["llm", "sd", "tts", "image_to_text"],
            "backends": {"llm": "sim", "sd": "sim", "tts": "sim", "image_to_text": "sim"},
            "models": ["tiny-llama"], "gpus": GPUS, "capacity": 2, "version": __version__})
        lease = self.api.calls("lease")[0]
        self.assertEqual((lease["worker_id"], lease["query"]["wait_seconds"], lease["body"]),
                         ("w_1", [str(self.api.max_wait)], {"max_tasks": 2}))
        self.assertEqual(report["kind"], "complete")
        self.assertEqual(report["body"]["lease_token"], f"lt-{task_id}")
        self.assertEqual(report["body"]["output"]["usage"]["completion_tokens"], 3)
        # The worker's own start and end of the execution, for the task's trace.
        started = datetime.fromisoformat(report["body"]["started_at"])
        ended = datetime.fromisoformat(report["body"]["ended_at"])
        self.assertIsNotNone(started.tzinfo)
        self.assertLessEqual(started, ended)

    def test_every_heartbeat_declares_gpus_and_models(self):
        self.start_worker(TASKMANAGER_MODELS="tiny-llama,sdxl")
        heartbeats = self.api.wait_for_call("heartbeat", count=3)
        for heartbeat in heartbeats:
            self.assertEqual((heartbeat["body"]["gpus"], heartbeat["body"]["models"]), (GPUS, ["tiny-llama", "sdxl"]))

    def test_an_idle_heartbeat_asks_for_the_longest_hold_and_a_busy_one_for_an_interval(self):
        # The fake API: interval 0.2 s (sent as 0 whole seconds), longest wait 1 s.
        self.start_worker()
        idle = self.api.wait_for_call("heartbeat", count=2)
        self.assertTrue(all(h["body"]["running"] == [] and h["query"]["wait_seconds"] == ["1"] for h in idle), idle)
        task_id = self.api.add_task(sim={"hang": True})
        running = {"task_id": task_id, "lease_token": f"lt-{task_id}"}
        busy = self.api.wait_for(lambda: [c for c in self.api._calls("heartbeat", None) if running in c["body"]["running"]],
                                 what="a heartbeat naming the task")
        self.assertEqual(busy[0]["query"]["wait_seconds"], ["0"])
        self.api.cancel.add(task_id)
        self.api.final_report(task_id)

    def test_every_type_completes(self):
        self.start_worker(TASKMANAGER_CAPACITY="2")
        inputs = {"llm": {"prompt": "hi"}, "sd": {"prompt": "a cat"}, "tts": {"text": "hello"},
                  "image_to_text": {"image": "aGVsbG8="}}
        ids = {task_type: self.api.add_task(task_type, task_input) for task_type, task_input in inputs.items()}
        for task_type, task_id in ids.items():
            with self.subTest(task_type=task_type):
                self.assertEqual(self.api.final_report(task_id)["kind"], "complete")

    def test_sim_failures_are_reported_with_their_retryability(self):
        self.start_worker()
        retryable = self.api.add_task(sim={"fail": "retryable"})
        fatal = self.api.add_task(sim={"fail": "fatal"})
        for task_id, expected in ((retryable, True), (fatal, False)):
            body = self.api.final_report(task_id)["body"]
            self.assertEqual((body["error"]["code"], body["retryable"]), ("sim_failure", expected))

    def test_no_op_tasks_cost_milliseconds_through_http(self):
        self.start_worker()
        self.api.final_report(self.api.add_task())  # warm up: the first task loads the sim's model
        ids = [self.api.add_task() for _ in range(50)]
        started = time.monotonic()
        for task_id in ids:
            self.api.final_report(task_id)
        per_task_ms = (time.monotonic() - started) / len(ids) * 1000
        # Lease and complete, over loopback, with the fake API in this process. A Nagle stall
        # (headers and body in separate sends waiting on a delayed ACK) would cost 40 ms a call.
        self.assertLess(per_task_ms, 15, f"{per_task_ms:.1f} ms per task")

    def test_chunks_reach_the_api_in_order_the_last_with_the_result(self):
        self.start_worker()
        task_id = self.api.add_task("llm", {"prompt": "hi"}, sim={"duration_ms": 200, "chunks": 10})
        report = self.api.final_report(task_id)
        self.assertEqual("".join(self.api.chunks(task_id)), report["body"]["output"]["text"])
        self.assertTrue(self.api.calls("progress", task_id), "chunks streamed while the task ran")
        self.assertTrue(report["body"].get("chunks"), "the last chunks came with the result")

    def test_a_short_tasks_log_line_goes_with_its_result_not_in_a_report_of_its_own(self):
        self.start_worker()
        ids = [self.api.add_task() for _ in range(5)]
        for task_id in ids:
            report = self.api.final_report(task_id)
            self.assertTrue(report["body"]["logs"][0].startswith("SIMULATION"), report["body"])
        self.assertEqual(self.api.calls("progress"), [], "no progress report for a no-op task")

    def test_a_result_takes_the_next_task_in_the_same_call(self):
        ids = [self.api.add_task() for _ in range(5)]
        self.start_worker(TASKMANAGER_CAPACITY="1")
        for task_id in ids:
            self.assertEqual(self.api.final_report(task_id)["kind"], "complete")
        completes = self.api.calls("complete")
        self.assertEqual([c["task_id"] for c in completes], ids)
        self.assertTrue(all(c.get("batch") for c in completes), "results go to the batch endpoint")
        # One lease brought the first task, each result the next; at most one more lease is
        # waiting now that the queue is empty. Leasing after each task would make five.
        self.assertLessEqual(len(self.api.calls("lease")), 2)


class ProgressGroupCommitTests(WorkerTestCase):
    """Progress reports made while another slot's report is on its way go together in the next call."""

    def test_reports_queued_behind_a_report_go_in_one_call_and_every_chunk_arrives_once_in_order(self):
        with self.api.cond:
            self.api.hold_progress = True
        ids = [self.api.add_task("llm", {"prompt": "hi"}, sim={"duration_ms": 1500, "chunks": 30}) for _ in range(4)]
        self.start_worker(TASKMANAGER_CAPACITY="4")
        first = self.api.wait_for_call("progress")[0]["task_id"]
        wait_until(lambda: len(self.worker._reporter._progress) == 3, what="the other slots' reports queued")
        with self.api.cond:
            self.api.hold_progress = False
            self.api.cond.notify_all()
        for task_id in ids:
            report = self.api.final_report(task_id)
            self.assertEqual("".join(self.api.chunks(task_id)), report["body"]["output"]["text"], "each chunk once, in order")
        batched = self.api.progress_batches[0]["reports"]
        self.assertEqual(sorted(r["task_id"] for r in batched), sorted(set(ids) - {first}))
        self.assertTrue(all(r["chunks"] for r in batched), batched)


class GroupCommitTests(WorkerTestCase):
    """Results that finish while another slot's report is on its way go together in the next call."""

    def hold_first_report_until_the_others_wait(self, ids, refuse_one=False):
        """Holds the first report until the other slots' results wait behind it; with `refuse_one`,
        the API then refuses, as a 400 for the whole call, the result of one of those. Returns the
        task reported first and the refused one."""
        with self.api.cond:
            self.api.hold_completes = True
        self.start_worker(TASKMANAGER_CAPACITY=str(len(ids)))
        self.api.wait_for(lambda: len(self.api.complete_batches) == 1, WAIT_SECONDS, "the first report")
        # The other slots finish their no-op tasks and queue their results behind the held call.
        wait_until(lambda: len(self.worker._reporter._results) == len(ids) - 1, what="the other results queued")
        first = self.api.complete_batches[0]["results"][0]["task_id"]
        refused = next(t for t in ids if t != first) if refuse_one else None
        with self.api.cond:
            if refused:
                self.api.refused_results.add(refused)
            self.api.hold_completes = False
            self.api.cond.notify_all()
        return first, refused

    def test_results_queued_behind_a_report_go_in_one_call_with_their_next_tasks(self):
        ids = [self.api.add_task() for _ in range(4)]
        first, _ = self.hold_first_report_until_the_others_wait(ids)
        more = [self.api.add_task() for _ in range(3)]
        for task_id in ids + more:
            self.assertEqual(self.api.final_report(task_id)["kind"], "complete")
        batches = self.api.complete_batches
        self.assertEqual([r["task_id"] for r in batches[0]["results"]], [first])
        self.assertEqual(sorted(r["task_id"] for r in batches[1]["results"]), sorted(set(ids) - {first}))
        self.assertEqual(batches[1]["max_tasks"], 3, "each result asks for its slot's next task")

    def test_a_call_refused_as_a_whole_is_sent_again_one_result_at_a_time(self):
        ids = [self.api.add_task() for _ in range(4)]
        first, refused = self.hold_first_report_until_the_others_wait(ids, refuse_one=True)
        fail = self.api.wait_for_call("fail", refused)[0]
        self.assertEqual((fail["body"]["error"]["code"], fail["body"]["retryable"]), ("backend_error", False))
        self.assertLessEqual(fail["body"]["started_at"], fail["body"]["ended_at"], "the refused result's run times")
        others = sorted(set(ids) - {first})
        self.api.wait_for(lambda: len(self.api.complete_batches) >= 5, WAIT_SECONDS, "each result sent alone")
        batches = self.api.complete_batches
        self.assertEqual(sorted(r["task_id"] for r in batches[1]["results"]), others, "refused together")
        self.assertEqual(sorted(b["results"][0]["task_id"] for b in batches[2:5]), others, "then sent alone")
        self.assertTrue(all(len(b["results"]) == 1 for b in batches[2:5]))
        self.assertEqual(self.api.calls("fail"), [fail], "only the refused result failed")


class LiveOutputTests(WorkerTestCase):
    def test_log_lines_reach_the_progress_endpoint(self):
        self.start_worker()
        task_id = self.api.add_task("llm", {"prompt": "hi"}, sim={"duration_ms": 200, "logs": 3})
        self.assertEqual(self.api.final_report(task_id)["kind"], "complete")
        lines = self.api.logs(task_id)
        self.assertRegex(lines[0], r"^SIMULATION: generating \d+ tokens")
        self.assertEqual(lines[1:], [f"SIMULATION: log line {i}/3" for i in (1, 2, 3)])

    def test_a_burst_beyond_one_report_arrives_whole_within_the_limits(self):
        self.start_worker()
        task_id = self.api.add_task("llm", {"prompt": "hi"}, sim={"chunks": 2345, "logs": 234})
        output = self.api.final_report(task_id)["body"]["output"]
        self.assertEqual("".join(self.api.chunks(task_id)), output["text"])
        self.assertEqual(len(self.api.logs(task_id)), 235)
        # 2,345 chunks and 235 lines need at least three reports of at most 1,000 chunks and 100
        # lines: progress reports, and the last batch with the result (the fake refuses more).
        reports = self.api.calls("progress", task_id) + self.api.calls("complete", task_id)
        self.assertGreaterEqual(len(reports), 3)
        for report in reports:
            self.assertLessEqual(len(report["body"].get("chunks", [])), 1000)
            self.assertLessEqual(len(report["body"].get("logs", [])), 100)

    def test_sd_images_are_uploaded_pngs_referenced_by_url(self):
        self.start_worker()
        task_id = self.api.add_task("sd", {"prompt": "a cat", "num_images": 2, "width": 96, "height": 64, "seed": 5})
        report = self.api.final_report(task_id)
        self.assertEqual(report["kind"], "complete")
        uploads = self.api.calls("artifacts", task_id)
        self.assertEqual([u["name"] for u in uploads], ["image-0.png", "image-1.png"])
        for i, (upload, image) in enumerate(zip(uploads, report["body"]["output"]["images"])):
            self.assertEqual(upload["method"], "PUT")
            self.assertEqual(upload["query"]["lease_token"], [f"lt-{task_id}"])
            self.assertEqual(upload["headers"]["Content-Type"], "image/png")
            self.assertEqual(upload["headers"]["Authorization"], "Bearer s3cret")
            self.assertEqual(read_png(upload["body"])[:2], (64, 43))
            self.assertEqual(image, {
                "url": f"/api/tasks/{task_id}/artifacts/image-{i}.png", "content_type": "image/png",
                "bytes": len(upload["body"]), "width": 64, "height": 43, "requested_width": 96,
                "requested_height": 64, "seed": 5 + i, "format": "png"})
        self.assertNotIn("base64", json.dumps(report["body"]))

    def test_tts_audio_is_an_uploaded_wav_referenced_by_url(self):
        self.start_worker()
        task_id = self.api.add_task("tts", {"text": "Hello there"})
        output = self.api.final_report(task_id)["body"]["output"]
        content_type, data = self.api.artifacts[(task_id, "audio.wav")]
        self.assertEqual(content_type, "audio/wav")
        channels, rate, seconds = read_wav(data)
        self.assertEqual(output["audio"], {"url": f"/api/tasks/{task_id}/artifacts/audio.wav",
                                           "content_type": "audio/wav", "bytes": len(data)})
        self.assertEqual((channels, rate, output["format"]), (1, output["sample_rate"], "wav"))
        self.assertAlmostEqual(seconds, output["duration_seconds"], places=2)
        self.assertNotIn("audio_base64", output)

    def test_conflict_on_upload_drops_the_task(self):
        self.start_worker()
        with self.api.cond:  # not leased before the conflict is set
            task_id = self.api.add_task("sd", {"prompt": "x", "num_images": 2})
            self.api.conflicts.add((task_id, "artifacts"))
        self.api.wait_for_call("artifacts", task_id)
        self.assertEqual(self.api.final_report(self.api.add_task())["kind"], "complete", "the slot is free again")
        self.assertEqual(self.api.calls("complete", task_id) + self.api.calls("fail", task_id), [])
        self.assertEqual(len(self.api.calls("artifacts", task_id)), 1)

    def test_too_large_on_upload_fails_the_task_for_good(self):
        self.api.output_limit = 100
        self.start_worker()
        task_id = self.api.add_task("tts", {"text": "Hello there"})
        report = self.api.final_report(task_id)
        self.assertEqual(report["kind"], "fail")
        self.assertEqual((report["body"]["error"]["code"], report["body"]["retryable"]), ("output_too_large", False))


class ApiAnswerTests(WorkerTestCase):
    def test_retries_registration_while_the_api_is_unavailable(self):
        self.api.register_failures = 2
        with mock.patch.object(worker_module, "REGISTER_BACKOFF", (0.01, 0.05)):
            self.start_worker()
        self.assertEqual(len(self.api.calls("register")), 3)
        self.assertEqual(self.api.final_report(self.api.add_task())["kind"], "complete")

    def test_conflict_on_complete_drops_the_task_and_goes_on(self):
        self.start_worker()
        with self.api.cond:  # not leased before the conflict is set
            first = self.api.add_task()
            self.api.conflicts.add((first, "complete"))
        self.api.final_report(first)
        self.assertEqual(self.api.final_report(self.api.add_task())["kind"], "complete")
        self.assertEqual(self.api.calls("fail", first), [], "a dropped task is not reported again")

    def test_conflict_on_progress_stops_the_task_without_a_report(self):
        self.start_worker()
        task_id = self.api.add_task(sim={"duration_ms": 60_000})
        self.api.conflicts.add((task_id, "progress"))
        self.api.wait_for_call("progress", task_id)
        self.assertEqual(self.api.final_report(self.api.add_task())["kind"], "complete", "the slot is free again")
        self.assertEqual(self.api.calls("complete", task_id) + self.api.calls("fail", task_id), [])

    def test_registers_again_when_a_heartbeat_gets_404(self):
        self.start_worker()
        self.api.wait_for_call("heartbeat")
        self.api.forget.add("w_1")
        self.api.wait_for(lambda: [c for c in self.api._calls("heartbeat", None) if c["worker_id"] == "w_2"],
                          what="a heartbeat under the new id")
        self.assertEqual(self.api.worker_ids, ["w_1", "w_2"])
        task_id = self.api.add_task()
        self.assertEqual(self.api.final_report(task_id)["worker_id"], "w_2")

    def test_heartbeat_names_running_tasks_and_its_cancel_kills_a_hanging_one(self):
        self.start_worker()
        task_id = self.api.add_task(sim={"hang": True})
        running = {"task_id": task_id, "lease_token": f"lt-{task_id}"}
        self.api.wait_for(lambda: [c for c in self.api._calls("heartbeat", None) if running in c["body"]["running"]],
                          what="a heartbeat naming the task")
        pids = executor_pids()
        self.api.cancel.add(task_id)
        body = self.api.final_report(task_id)["body"]
        self.assertEqual((body["error"]["code"], body["retryable"]), ("canceled", False))
        for pid in pids:
            wait_until(lambda: not pid_alive(pid), what=f"the hanging executor {pid} to be gone")

    def test_cancel_in_a_progress_answer_is_honoured(self):
        self.start_worker()
        task_id = self.api.add_task(sim={"duration_ms": 60_000})
        self.api.cancel_on_progress.add(task_id)
        self.assertEqual(self.api.final_report(task_id)["body"]["error"]["code"], "canceled")

    def test_hanging_task_times_out(self):
        self.start_worker()
        task_id = self.api.add_task(sim={"hang": True}, timeout_seconds=0.5)
        body = self.api.final_report(task_id)["body"]
        self.assertEqual((body["error"]["code"], body["retryable"]), ("timeout", True))

    def test_drain_stops_leasing_until_lifted(self):
        self.api.drain = True
        self.start_worker()
        task_id = self.api.add_task()
        self.api.wait_for_call("heartbeat", count=len(self.api.calls("heartbeat")) + 3)
        self.assertEqual(self.api.calls("complete", task_id), [])
        leases = len(self.api.calls("lease"))
        self.api.wait_for_call("heartbeat", count=len(self.api.calls("heartbeat")) + 3)
        self.assertLessEqual(len(self.api.calls("lease")), leases + 1, "a draining worker stops leasing")
        with self.api.cond:
            self.api.drain = False
        self.assertEqual(self.api.final_report(task_id)["kind"], "complete")


class ShutdownTests(WorkerTestCase):
    def test_shutdown_lets_a_short_task_finish(self):
        self.start_worker()
        task_id = self.api.add_task(sim={"duration_ms": 300})
        self.api.wait_for_call("progress", task_id)
        self.worker.request_shutdown()
        self.assertEqual(self.api.final_report(task_id)["kind"], "complete")
        self.thread.join(WAIT_SECONDS)
        self.assertEqual(self.exit_code, 0)

    def test_shutdown_hands_back_what_outlives_the_grace(self):
        self.start_worker(TASKMANAGER_SHUTDOWN_GRACE_SECONDS="0.3")
        task_id = self.api.add_task(sim={"duration_ms": 60_000})
        self.api.wait_for_call("progress", task_id)
        self.worker.request_shutdown()
        self.thread.join(WAIT_SECONDS)
        self.assertEqual(self.exit_code, 0)
        body = self.api.final_report(task_id)["body"]
        self.assertEqual((body["error"]["code"], body["retryable"]), ("worker_shutdown", True))

    def test_sigterm_hands_back_running_tasks_and_exits_zero(self):
        env = {**os.environ, **self.env(TASKMANAGER_SHUTDOWN_GRACE_SECONDS="0.3", TASKMANAGER_LOG_LEVEL="info")}
        process = subprocess.Popen([sys.executable, "-m", "taskmanager_worker"], cwd=WORKER_DIR, env=env,
                                   stderr=subprocess.PIPE, text=True)
        try:
            task_id = self.api.add_task(sim={"duration_ms": 60_000})
            self.api.wait_for_call("progress", task_id)
            executors = executor_pids(process.pid)
            self.assertEqual(len(executors), 1)
            process.send_signal(signal.SIGTERM)
            self.assertEqual(process.wait(WAIT_SECONDS), 0)
        finally:
            process.kill()
            stderr = process.communicate()[1]
        body = self.api.final_report(task_id)["body"]
        self.assertEqual((body["error"]["code"], body["retryable"]), ("worker_shutdown", True))
        lines = [json.loads(line) for line in stderr.splitlines()]
        self.assertIn("worker stopped", [line["msg"] for line in lines])
        self.assertFalse(any(pid_alive(pid) for pid in executors), "the executor is gone")


if __name__ == "__main__":
    unittest.main()
