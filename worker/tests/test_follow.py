"""follow(): the executor-follow loop that a slot and run-once share (the timeout, stop requests,
the grace before a kill, the events handed to the watcher). Its two callers are also tested through
it in test_runner.py and test_run_once.py."""

import signal
import subprocess
import sys
import time
import unittest

from helpers import WAIT_SECONDS, pid_alive, started_executor
from taskmanager_worker.follow import KILLED, Watcher, follow
from taskmanager_worker.task import LeasedTask
from test_run_once import WORKER_DIR, run_once_environment

FAR = 3600.0  # a deadline or grace that a test never reaches


def task(task_id="t1", sim=None, task_type="llm"):
    return LeasedTask.from_json({"task_id": task_id, "lease_token": "lt", "type": task_type, "input": {"prompt": "x"},
                                 "metadata": {"sim": sim or {}}})


class ScriptedExecutor:
    """Answers each wait with the next batch of events, and a stop request with `on_stop`; records
    what the loop asked of it."""

    pid = 1

    def __init__(self, batches, on_stop=()):
        self.batches = list(batches)
        self.on_stop = list(on_stop)
        self.calls = []
        self.waits = []

    def run(self, payload):
        self.calls.append(("run", payload["task_id"]))

    def stop(self, task_id):
        self.calls.append(("stop", task_id))
        self.batches[:0] = [self.on_stop] if self.on_stop else []

    def kill(self):
        self.calls.append(("kill",))

    def events(self, timeout, wake=None):
        self.waits.append(timeout)
        return self.batches.pop(0) if self.batches else []


class RecordingWatcher(Watcher):
    """Records what follow() tells it; asks for a stop (`stop`, `at_once`) from its `stop_after`th turn."""

    def __init__(self, stop=None, at_once=False, stop_after=0, due_at=None):
        self.seen = []
        self.stop, self.at_once, self.stop_after = stop, at_once, stop_after
        self.due_at = due_at
        self.turns = 0

    def stop_request(self):
        return (self.stop, self.at_once) if self.stop is not None and self.turns >= self.stop_after else (None, False)

    def stopping(self, reason):
        self.seen.append(("stopping", reason))

    def killing(self, reason, at_once):
        self.seen.append(("killing", reason, at_once))

    def progress(self, progress, message):
        self.seen.append(("progress", progress, message))

    def chunk(self, text):
        self.seen.append(("chunk", text))

    def log(self, line):
        self.seen.append(("log", line))

    def models(self, names):
        self.seen.append(("models", names))

    def due(self):
        return self.due_at

    def turn(self):
        self.turns += 1


class FollowLoopTests(unittest.TestCase):
    def test_events_go_to_the_watcher_in_order_until_the_outcome(self):
        done = ("done", "t1", "{}", [])
        executor = ScriptedExecutor([[("models", ["m1"]), ("progress", "t1", 0.5, "half")],
                                     [("chunk", "t1", "a"), ("log", "t1", "line"), done, ("log", "t1", "late")]])
        watcher = RecordingWatcher()
        ending = follow(executor, task(), time.monotonic() + FAR, FAR, watcher, "timeout")
        self.assertEqual(ending, (done, None))
        self.assertEqual(watcher.seen, [("models", ["m1"]), ("progress", 0.5, "half"), ("chunk", "a"), ("log", "line")])
        self.assertEqual(executor.calls, [("run", "t1")])
        self.assertEqual(watcher.turns, 1, "a turn after each wait that did not end the task")

    def test_at_the_deadline_the_task_is_asked_to_stop_for_the_timeout_reason(self):
        stopped = ("stopped", "t1")
        executor = ScriptedExecutor([], on_stop=[stopped])
        watcher = RecordingWatcher()
        ending = follow(executor, task(), time.monotonic() - 1, FAR, watcher, "timed out")
        self.assertEqual(ending, (stopped, "timed out"))
        self.assertEqual(watcher.seen, [("stopping", "timed out")])
        self.assertEqual(executor.calls, [("run", "t1"), ("stop", "t1")])

    def test_a_task_that_ignores_the_stop_is_killed_after_the_grace(self):
        executor = ScriptedExecutor([])
        watcher = RecordingWatcher()
        event, reason = follow(executor, task(), time.monotonic() - 1, 0.0, watcher, "timed out")
        self.assertIs(event, KILLED)
        self.assertEqual(reason, "timed out")
        self.assertEqual(watcher.seen, [("stopping", "timed out"), ("killing", "timed out", False)])
        self.assertEqual(executor.calls, [("run", "t1"), ("stop", "t1"), ("kill",)])

    def test_a_stop_request_wins_over_a_result_that_comes_anyway(self):
        done = ("done", "t1", "{}", [])
        executor = ScriptedExecutor([[], [], [done]])
        watcher = RecordingWatcher(stop="canceled", stop_after=2)
        ending = follow(executor, task(), time.monotonic() + FAR, FAR, watcher, "timed out")
        self.assertEqual(ending, (done, "canceled"), "the caller learns both")
        self.assertEqual(watcher.seen, [("stopping", "canceled")])
        self.assertEqual(executor.calls, [("run", "t1"), ("stop", "t1")])

    def test_a_stop_at_once_kills_without_the_grace(self):
        executor = ScriptedExecutor([])
        watcher = RecordingWatcher(stop="shutdown", at_once=True)
        ending = follow(executor, task(), time.monotonic() + FAR, FAR, watcher, "timed out")
        self.assertEqual(ending, (KILLED, "shutdown"))
        self.assertEqual(watcher.seen, [("stopping", "shutdown"), ("killing", "shutdown", True)])

    def test_an_executor_that_died_ends_the_task(self):
        executor = ScriptedExecutor([[("died", -9)]])
        self.assertEqual(follow(executor, task(), time.monotonic() + FAR, FAR, RecordingWatcher(), "t"), (("died", -9), None))

    def test_a_wait_ends_when_the_watcher_is_due(self):
        executor = ScriptedExecutor([[], [("stopped", "t1")]])
        follow(executor, task(), time.monotonic() + FAR, FAR, RecordingWatcher(due_at=time.monotonic() + 0.05), "t")
        self.assertTrue(all(wait <= 0.05 for wait in executor.waits), executor.waits)
        executor = ScriptedExecutor([[("stopped", "t1")]])
        follow(executor, task(), time.monotonic() + 30, FAR, RecordingWatcher(), "t")
        self.assertTrue(25 < executor.waits[0] <= 30, "until the deadline")


class FollowExecutorTests(unittest.TestCase):
    """Against a real executor running sim."""

    def setUp(self):
        self.executor = started_executor(self)

    def test_a_cooperative_task_stops_at_its_timeout_and_its_executor_lives_on(self):
        watcher = RecordingWatcher()
        started = time.monotonic()
        ending = follow(self.executor, task(sim={"duration_ms": 60_000}), started + 0.3, WAIT_SECONDS, watcher, "timeout")
        self.assertEqual(ending, (("stopped", "t1"), "timeout"))
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        self.assertIn(("stopping", "timeout"), watcher.seen)
        self.assertTrue(any(seen[0] == "progress" for seen in watcher.seen))
        self.assertTrue(pid_alive(self.executor.pid))
        event, _ = follow(self.executor, task("t2"), time.monotonic() + WAIT_SECONDS, 0.3, RecordingWatcher(), "timeout")
        self.assertEqual(event[:2], ("done", "t2"), "the same executor runs the next task")

    def test_a_canceled_task_that_hangs_is_killed_after_the_grace(self):
        pid = self.executor.pid
        watcher = RecordingWatcher(stop="canceled", stop_after=1)
        ending = follow(self.executor, task(sim={"hang": True}), time.monotonic() + WAIT_SECONDS, 0.3, watcher, "timeout")
        self.assertEqual(ending, (KILLED, "canceled"))
        self.assertEqual([s for s in watcher.seen if s[0] in ("stopping", "killing")],
                         [("stopping", "canceled"), ("killing", "canceled", False)])
        self.assertFalse(pid_alive(pid))


class RunOnceFollowTests(unittest.TestCase):
    """run-once's side of the loop: Ctrl-C is its stop request, a second one kills at once."""

    def start(self, *args):
        process = subprocess.Popen(
            [sys.executable, "-m", "taskmanager_worker", "run-once", "--type", "llm", "--input", '{"prompt": "x"}',
             "--metadata", '{"sim": {"hang": true}}', *args],
            cwd=WORKER_DIR, env=run_once_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(process.kill)
        self.addCleanup(process.communicate)
        return process

    def read_until(self, process, text):
        """Reads stderr lines until one holds `text` (bounded by the task's own timeout: 60 s)."""
        lines = []
        for line in process.stderr:
            lines.append(line)
            if text in line:
                return lines
        raise AssertionError(f"stderr ended without {text!r}: {lines}")

    def test_ctrl_c_asks_the_task_to_stop_then_kills_it_after_the_grace(self):
        process = self.start("--timeout", "60", "--grace", "0.2")
        self.read_until(process, "SIMULATION: hanging")
        process.send_signal(signal.SIGINT)
        stderr = "".join(self.read_until(process, "its executor was killed")) + process.communicate(timeout=WAIT_SECONDS)[1]
        self.assertEqual(process.returncode, 1)
        self.assertIn("run-once: interrupted; asking the task to stop (killed after 0.2 s)", stderr)
        self.assertIn("run-once: the task did not stop; killing executor", stderr)
        self.assertIn("task interrupted: its executor was killed", stderr)

    def test_a_second_ctrl_c_kills_at_once(self):
        process = self.start("--timeout", "60", "--grace", "60")
        self.read_until(process, "SIMULATION: hanging")
        process.send_signal(signal.SIGINT)
        self.read_until(process, "asking the task to stop")
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        stderr = process.communicate(timeout=WAIT_SECONDS)[1]
        self.assertEqual(process.returncode, 1)
        self.assertLess(time.monotonic() - started, WAIT_SECONDS, "not after the 60 s grace")
        self.assertIn("task interrupted: its executor was killed", stderr)


if __name__ == "__main__":
    unittest.main()
