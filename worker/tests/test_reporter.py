"""The reporter: group commit of results, the next tasks they take, and how errors and the API's
answers become the protocol's failures. Against a fake client: no HTTP, no executor."""

import threading
import unittest
from unittest import mock

from helpers import WAIT_SECONDS, wait_until
from taskmanager_worker import reporter as reporter_module
from taskmanager_worker.backends import Artifact
from taskmanager_worker.client import ApiError, Conflict, NotFound, TooLarge, TransientError
from taskmanager_worker.reporter import (NO_FREE_SLOT, STOPPED_UNASKED, Failure, Reporter, StopReason, TaskGone,
                                         executor_died, result_failure, stop_failure, upload_failure)
from taskmanager_worker.task import LeasedTask

TIMING = {"started_at": "2026-11-26T05:44:15.100+00:00", "ended_at": "2026-11-26T05:44:15.123+00:00"}


def task(task_id):
    return LeasedTask.from_json({"task_id": task_id, "lease_token": f"lt-{task_id}", "type": "llm", "attempt": 1})


class FakeClient:
    """Records the reports; `complete_answer(results, max_tasks)` answers a complete call (default:
    200 for each, and as many new tasks as asked for) or raises. With `hold`, each complete call
    waits until it is set."""

    def __init__(self):
        self.cond = threading.Condition()
        self.completes = []  # (worker_id, [task ids], max_tasks)
        self.fails = []  # (worker_id, task_id, lease_token, code, message, retryable, timing)
        self.progress_errors = []  # raised by progress(), in order
        self.progress_calls = []  # the task ids of each progress call, single or batched, in order
        self.progress_answer = self.answer_progress
        self.complete_answer = self.answer_all
        self.hold = None
        self._ids = iter(range(100, 1000))

    def answer_all(self, results, max_tasks):
        return [(200, "succeeded", None) for _ in results], [task(f"n{next(self._ids)}") for _ in range(max_tasks)]

    def complete_many(self, worker_id, results, max_tasks=0):
        with self.cond:
            self.completes.append((worker_id, [r.task_id for r in results], max_tasks, [r.timing for r in results]))
            self.cond.notify_all()
        if self.hold is not None:
            self.hold.wait(WAIT_SECONDS)
        return self.complete_answer(results, max_tasks)

    def fail(self, worker_id, task_id, lease_token, code, message, retryable, timing=None):
        with self.cond:
            self.fails.append((worker_id, task_id, lease_token, code, message, retryable, timing))
        return "failed"

    def progress(self, worker_id, task_id, lease_token, **report):
        with self.cond:
            self.progress_calls.append([task_id])
            self.cond.notify_all()
        if self.hold is not None:
            self.hold.wait(WAIT_SECONDS)
        if self.progress_errors:
            raise self.progress_errors.pop(0)
        return report.get("progress") == 0.5

    def progress_many(self, worker_id, reports):
        with self.cond:
            self.progress_calls.append([r["task_id"] for r in reports])
            self.cond.notify_all()
        return self.progress_answer(reports)

    def answer_progress(self, reports):
        return [(200, r.get("progress") == 0.5, None) for r in reports]

    def upload_artifact(self, worker_id, task_id, lease_token, name, content_type, data):
        return {"url": f"/api/tasks/{task_id}/artifacts/{name}"}


class ReporterTestCase(unittest.TestCase):
    def setUp(self):
        self.client = FakeClient()
        self.taking_more = True
        self.reporter = Reporter(self.client, lambda: "w_1", lambda: self.taking_more)


class GroupCommitTests(ReporterTestCase):
    def complete_in_threads(self, ids):
        """Completes each task in a thread of its own, as slots do; returns {task_id: answer}."""
        answers = {}

        def complete(task_id):
            answers[task_id] = self.reporter.complete(task(task_id), '{"ok":true}', ["c"], ["l"], TIMING)

        threads = [threading.Thread(target=complete, args=(task_id,)) for task_id in ids]
        for thread in threads:
            thread.start()
        return threads, answers

    def join(self, threads):
        for thread in threads:
            thread.join(WAIT_SECONDS)
            self.assertFalse(thread.is_alive())

    def test_results_that_wait_behind_a_call_go_together_in_the_next_with_their_next_tasks(self):
        self.client.hold = threading.Event()
        first, first_answer = self.complete_in_threads(["t1"])
        wait_until(lambda: self.client.completes, what="the first call")
        others, answers = self.complete_in_threads(["t2", "t3", "t4"])
        wait_until(lambda: len(self.reporter._results) == 3, what="the other results queued")
        self.client.hold.set()
        self.join(first + others)
        self.assertEqual([(ids, max_tasks) for _, ids, max_tasks, _ in self.client.completes],
                         [(["t1"], 1), (sorted(answers), 3)])
        self.assertEqual(self.client.completes[1][3], [TIMING] * 3, "each result with its run times")
        handed = [t.task_id for answer in (*answers.values(), first_answer["t1"]) for t in answer[1]]
        self.assertEqual(sorted(handed), ["n100", "n101", "n102", "n103"], "one next task for each")
        self.assertTrue(all(status == "succeeded" for status, _ in answers.values()))

    def test_a_lone_result_goes_at_once_and_takes_no_task_while_not_taking_more(self):
        self.taking_more = False
        self.assertEqual(self.reporter.complete(task("t1"), "{}", timing=TIMING), ("succeeded", []))
        self.assertEqual(self.client.completes, [("w_1", ["t1"], 0, [TIMING])])

    def test_tasks_beyond_those_asked_for_go_to_the_last_result(self):
        self.client.complete_answer = lambda results, max_tasks: ([(200, "succeeded", None)], [task("n1"), task("n2")])
        status, tasks = self.reporter.complete(task("t1"), "{}")
        self.assertEqual([t.task_id for t in tasks], ["n1", "n2"], "the slot hands back what it cannot take")

    def test_a_call_refused_as_a_whole_is_sent_again_one_result_at_a_time(self):
        def refuse_t3(results, max_tasks):
            if any(r.task_id == "t3" for r in results):
                raise ApiError(400, "400 Bad Request: results[1].output")
            return self.client.answer_all(results, max_tasks)

        self.client.complete_answer = refuse_t3
        self.client.hold = threading.Event()
        first, _ = self.complete_in_threads(["t1"])
        wait_until(lambda: self.client.completes, what="the first call")
        others, answers = self.complete_in_threads(["t2", "t3"])
        wait_until(lambda: len(self.reporter._results) == 2, what="the other results queued")
        self.client.hold.set()
        self.join(first + others)
        calls = [ids for _, ids, _, _ in self.client.completes]
        self.assertEqual(sorted(calls[1]), ["t2", "t3"])
        self.assertEqual(sorted(calls[2:]), [["t2"], ["t3"]], "then each alone")
        self.assertEqual(answers["t2"][0], "succeeded")
        self.assertEqual(answers["t3"], ("failed", []))
        [(_, task_id, lease_token, code, message, retryable, timing)] = self.client.fails
        self.assertEqual((task_id, lease_token, code, retryable, timing), ("t3", "lt-t3", "backend_error", False, TIMING))
        self.assertIn("the API refused the result", message)

    def test_a_result_refused_as_too_large_fails_its_task_for_good(self):
        self.client.complete_answer = mock.Mock(side_effect=TooLarge(413, "413 Payload Too Large"))
        self.assertEqual(self.reporter.complete(task("t1"), "{}", timing=TIMING), ("failed", []))
        self.assertEqual([(f[1], f[3], f[5], f[6]) for f in self.client.fails], [("t1", "output_too_large", False, TIMING)])

    def test_a_result_no_longer_ours_is_not_reported_again(self):
        for error in (Conflict(409, "409"), NotFound(404, "404")):
            with self.subTest(error=error):
                self.client.complete_answer = mock.Mock(side_effect=error)
                self.assertEqual(self.reporter.complete(task("t1"), "{}"), (None, []))
        self.assertEqual(self.client.fails, [])

    def test_a_result_refused_in_its_place_still_gets_the_next_tasks(self):
        self.client.complete_answer = lambda results, max_tasks: ([(409, None, "no longer current")], [task("n1")])
        status, tasks = self.reporter.complete(task("t1"), "{}")
        self.assertEqual((status, [t.task_id for t in tasks]), (None, ["n1"]))
        self.assertEqual(self.client.fails, [])


class ProgressGroupCommitTests(ReporterTestCase):
    """Progress reports made while a task runs: one call on its way at a time; the reports made
    meanwhile go together in the next, each answered in its place."""

    def report_in_threads(self, reports):
        """Reports (task_id, progress) each from a thread of its own, as slots do; returns {task_id:
        the answer, or the error raised}."""
        answers = {}

        def report(task_id, progress):
            try:
                answers[task_id] = self.reporter.progress(task(task_id), progress, None, ["c"], [], final=False)
            except Exception as error:  # noqa: BLE001 - the test looks at what each slot got
                answers[task_id] = error

        threads = [threading.Thread(target=report, args=r) for r in reports]
        for thread in threads:
            thread.start()
        return threads, answers

    def start_behind_a_held_call(self, reports):
        """A lone report's call is held; `reports` queue behind it; then it is let go."""
        self.client.hold = threading.Event()
        first, first_answers = self.report_in_threads([("t1", None)])
        wait_until(lambda: self.client.progress_calls, what="the first call")
        others, answers = self.report_in_threads(reports)
        wait_until(lambda: len(self.reporter._progress) == len(reports), what="the other reports queued")
        self.client.hold.set()
        for thread in first + others:
            thread.join(WAIT_SECONDS)
            self.assertFalse(thread.is_alive())
        return first_answers, answers

    def test_reports_made_while_one_is_on_its_way_go_together_in_one_call_each_with_its_answer(self):
        first, answers = self.start_behind_a_held_call([("t2", 0.5), ("t3", 0.1), ("t4", None)])
        self.assertEqual(self.client.progress_calls[0], ["t1"], "a lone report goes at once, to its own endpoint")
        self.assertEqual(sorted(self.client.progress_calls[1]), ["t2", "t3", "t4"])
        self.assertEqual(len(self.client.progress_calls), 2)
        self.assertEqual((first["t1"], answers), (False, {"t2": True, "t3": False, "t4": False}),
                         "the cancel of t2 only")

    def test_a_report_no_longer_ours_in_a_batch_drops_that_task_only(self):
        self.client.progress_answer = lambda reports: [
            (409 if r["task_id"] == "t3" else 200, False, "no longer current") for r in reports]
        _, answers = self.start_behind_a_held_call([("t2", None), ("t3", None)])
        self.assertIsInstance(answers["t3"], TaskGone)
        self.assertIs(answers["t2"], False)

    def test_a_batch_that_fails_on_the_way_fails_each_report_at_once(self):
        self.client.progress_answer = mock.Mock(side_effect=TransientError(None, "connection reset"))
        _, answers = self.start_behind_a_held_call([("t2", None), ("t3", None)])
        self.assertTrue(all(isinstance(a, TransientError) for a in answers.values()), answers)
        self.assertEqual(len(self.client.progress_calls), 2, "not retried: the chunks wait for the next report")

    def test_a_batch_refused_as_a_whole_is_sent_again_one_report_at_a_time(self):
        self.client.progress_answer = mock.Mock(side_effect=ApiError(400, "400 Bad Request: reports[1].chunks"))
        _, answers = self.start_behind_a_held_call([("t2", None), ("t3", 0.5)])
        self.assertEqual(sorted(map(tuple, self.client.progress_calls[2:])), [("t2",), ("t3",)], "then each alone")
        self.assertEqual(answers, {"t2": False, "t3": True})


class ReportTests(ReporterTestCase):
    def test_a_conflict_or_a_404_on_a_report_means_the_task_is_gone(self):
        for error in (Conflict(409, "409 Conflict"), NotFound(404, "404 Not Found")):
            with self.subTest(error=error):
                self.client.progress_errors = [error]
                with self.assertRaises(TaskGone):
                    self.reporter.progress(task("t1"), 0.1, None, [], [], final=True)

    def test_a_progress_report_that_fails_on_the_way_is_retried_only_when_final(self):
        self.client.progress_errors = [TransientError(None, "connection refused")]
        with self.assertRaises(TransientError):
            self.reporter.progress(task("t1"), 0.1, None, ["c"], [], final=False)
        self.client.progress_errors = [TransientError(503, "503")] * 2
        with mock.patch.object(reporter_module, "REPORT_BACKOFF", (0.001, 0.001)):
            self.assertTrue(self.reporter.progress(task("t1"), 0.5, None, ["c"], [], final=True), "the API's cancel")
        self.assertEqual(self.client.progress_errors, [])

    def test_a_failure_is_reported_with_its_code_and_run_times(self):
        self.assertEqual(self.reporter.fail(task("t1"), Failure("sim_failure", "boom", True), TIMING), "failed")
        self.assertEqual(self.client.fails, [("w_1", "t1", "lt-t1", "sim_failure", "boom", True, TIMING)])

    def test_a_task_no_slot_can_take_is_handed_back_to_run_again(self):
        self.reporter.hand_back(task("t9"))
        self.assertEqual(self.client.fails, [("w_1", "t9", "lt-t9", "worker_shutdown",
                                              "the worker had no free slot for this task", True, None)])
        self.assertEqual(NO_FREE_SLOT.code, "worker_shutdown")


class FailureTests(unittest.TestCase):
    """Every way a task ends without its result, as the protocol reports it."""

    def test_stop_reasons(self):
        self.assertEqual(stop_failure(StopReason.CANCELED, 5), Failure("canceled", "canceled on request", False))
        self.assertEqual(stop_failure(StopReason.TIMEOUT, 0.5), Failure("timeout", "no result within the task's 0.5 s", True))
        self.assertEqual(stop_failure(StopReason.SHUTDOWN, 5),
                         Failure("worker_shutdown", "the worker shut down before the task finished", True))
        self.assertIsNone(stop_failure(StopReason.DROPPED, 5), "a dropped task is not reported")

    def test_executor_and_backend(self):
        self.assertEqual(executor_died(-9),
                         Failure("executor_died", "the executor exited (code -9) while running the task", True))
        self.assertEqual(STOPPED_UNASKED, Failure("backend_error", "the backend stopped unasked", True))

    def test_artifact_uploads(self):
        artifact = Artifact("audio.wav", "audio/wav", b"x" * 10)
        cases = [(TooLarge(413, "413"), "output_too_large", False, "the API refused the artifact audio.wav (10 bytes) as too large: 413"),
                 (TransientError(None, "refused"), "backend_error", True, "the artifact audio.wav could not be uploaded: refused"),
                 (ApiError(400, "400"), "backend_error", False, "the API refused the artifact audio.wav: 400"),
                 (ValueError("no url"), "backend_error", False, "the API refused the artifact audio.wav: no url")]
        for error, code, retryable, message in cases:
            with self.subTest(error=error):
                self.assertEqual(upload_failure(artifact, error), Failure(code, message, retryable))

    def test_refused_results(self):
        self.assertEqual(result_failure(TooLarge(413, "413")),
                         Failure("output_too_large", "the API refused the result as too large: 413", False))
        self.assertEqual(result_failure(ApiError(400, "400")),
                         Failure("backend_error", "the API refused the result: 400", False))


if __name__ == "__main__":
    unittest.main()
