"""LeasedTask: a task object of a lease answer, read once into typed fields."""

import unittest
from datetime import datetime, timedelta, timezone

from taskmanager_worker.task import DEFAULT_TIMEOUT_SECONDS, LeasedTask, leased_tasks

FULL = {
    "task_id": "t1", "lease_token": "lt-1", "type": "llm", "model": "tiny-llama",
    "input": {"prompt": "hello"}, "metadata": {"sim": {"duration_ms": 50}},
    "attempt": 2, "max_attempts": 3, "timeout_seconds": 30,
    "deadline_at": "2026-11-26T05:44:15.1234567+00:00",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
}


class LeasedTaskTests(unittest.TestCase):
    def test_every_field_of_the_lease_answer_is_read(self):
        task = LeasedTask.from_json(dict(FULL))
        self.assertEqual(
            (task.task_id, task.lease_token, task.type, task.model, task.input, task.metadata, task.attempt,
             task.max_attempts, task.timeout_seconds, task.traceparent),
            ("t1", "lt-1", "llm", "tiny-llama", {"prompt": "hello"}, {"sim": {"duration_ms": 50}}, 2, 3, 30.0,
             FULL["traceparent"]))
        self.assertIsInstance(task.timeout_seconds, float)
        self.assertEqual(task.deadline_at, datetime(2026, 11, 26, 5, 44, 15, 123456, tzinfo=timezone.utc))
        self.assertEqual(task.log_fields, {"task_id": "t1", "attempt": 2})

    def test_the_payload_is_the_task_object_as_sent(self):
        value = dict(FULL, future_field=1)
        task = LeasedTask.from_json(value)
        self.assertIs(task.payload, value, "what the executor hands the backend, not a copy")
        self.assertEqual(value, dict(FULL, future_field=1), "nothing added to it")

    def test_a_task_grows_no_attributes(self):
        task = LeasedTask.from_json(dict(FULL))
        with self.assertRaises(AttributeError):
            task._timing = {}

    def test_a_deadline_in_utc_with_a_z(self):
        task = LeasedTask.from_json(dict(FULL, deadline_at="2026-11-26T05:44:15.123Z"))
        self.assertEqual(task.deadline_at, datetime(2026, 11, 26, 5, 44, 15, 123000, tzinfo=timezone.utc))
        self.assertEqual(task.deadline_at.utcoffset(), timedelta(0))

    def test_missing_optional_fields_read_as_none(self):
        task = LeasedTask.from_json({"task_id": "t1", "lease_token": "lt-1"})
        self.assertEqual(
            (task.type, task.model, task.input, task.metadata, task.attempt, task.max_attempts, task.deadline_at,
             task.traceparent),
            (None,) * 8)
        self.assertEqual(task.timeout_seconds, DEFAULT_TIMEOUT_SECONDS)
        self.assertEqual(task.log_fields, {"task_id": "t1", "attempt": None})

    def test_nulls_as_the_api_sends_them(self):
        task = LeasedTask.from_json(dict(FULL, model=None, metadata=None, traceparent=None))
        self.assertEqual((task.model, task.metadata, task.traceparent), (None, None, None))

    def test_fields_of_another_type_read_as_none(self):
        task = LeasedTask.from_json(dict(FULL, type=3, model=["m"], metadata=[1], attempt="2", max_attempts=True,
                                         deadline_at="not a time", traceparent=7))
        self.assertEqual(
            (task.type, task.model, task.metadata, task.attempt, task.max_attempts, task.deadline_at,
             task.traceparent),
            (None,) * 7)

    def test_an_unusable_timeout_is_the_default(self):
        for timeout in (0, -5, True, "30", None, float("nan")):
            with self.subTest(timeout=timeout):
                self.assertEqual(LeasedTask.from_json(dict(FULL, timeout_seconds=timeout)).timeout_seconds,
                                 DEFAULT_TIMEOUT_SECONDS)
        self.assertEqual(LeasedTask.from_json(dict(FULL, timeout_seconds=0.5)).timeout_seconds, 0.5)

    def test_without_an_id_or_a_lease_token_there_is_no_task(self):
        for value in ({"lease_token": "lt"}, {"task_id": "t1"}, {"task_id": 1, "lease_token": "lt"},
                      {"task_id": "t1", "lease_token": None}, ["t1"], None):
            with self.subTest(value=value):
                self.assertIsNone(LeasedTask.from_json(value))

    def test_an_answers_tasks_leave_out_the_malformed_ones(self):
        with self.assertLogs("taskmanager_worker.task", "ERROR") as logged:
            tasks = leased_tasks([dict(FULL), {"task_id": "t2"}, "x", dict(FULL, task_id="t3")])
        self.assertEqual([t.task_id for t in tasks], ["t1", "t3"])
        self.assertEqual(len(logged.records), 2)
        self.assertEqual(leased_tasks(None), [])
        self.assertEqual(leased_tasks({"task_id": "t1"}), [])


if __name__ == "__main__":
    unittest.main()
