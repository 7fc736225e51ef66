import json
import os
import signal
import multiprocessing
import subprocess
import sys
import threading
import time
import unittest

from helpers import WAIT_SECONDS, pid_alive, read_png, started_executor, wait_until
from taskmanager_worker.backends import Artifact
from taskmanager_worker.executor import MAX_LOG_LINE, READ_SIZE, Executor, ExecutorError, _Inbox, split_log_line

WORKER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FINAL = ("done", "failed", "stopped", "died")


def run_to_end(executor, task):
    """Sends `task` and collects its events up to the final one."""
    executor.run(task)
    return collect(executor)


def collect(executor):
    """Collects the executor's events up to a final one."""
    events = []
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        for event in executor.events(deadline - time.monotonic()):
            events.append(event)
            if event[0] in FINAL:
                return events
    raise AssertionError(f"no final event: {events}")


class ExecutorTests(unittest.TestCase):
    def setUp(self):
        self.executor = started_executor(self, "warning")

    def test_runs_a_task_and_returns_its_output_as_json(self):
        task = {"task_id": "t1", "type": "llm", "input": {"prompt": "hi", "max_tokens": 4}}
        final = run_to_end(self.executor, task)[-1]
        self.assertEqual(final[:2], ("done", "t1"))
        self.assertEqual(json.loads(final[2])["usage"]["completion_tokens"], 4)
        self.assertEqual(final[3], [], "no artifacts")

    def test_artifacts_travel_beside_the_output_with_placeholders_in_their_place(self):
        task = {"task_id": "t1", "type": "sd", "input": {"prompt": "x", "num_images": 2}}
        final = run_to_end(self.executor, task)[-1]
        self.assertEqual(final[0], "done")
        output, found = json.loads(final[2]), final[3]
        self.assertEqual([token for token, _ in found], output["images"])
        for token, artifact in found:
            self.assertIsInstance(artifact, Artifact)
            self.assertEqual(read_png(artifact.data)[:2], (64, 64))
        self.assertNotIn("base64", final[2])

    def test_log_lines_arrive_before_the_result(self):
        events = run_to_end(self.executor, {"task_id": "t1", "type": "llm", "input": {"prompt": "x"},
                                            "metadata": {"sim": {"logs": 2}}})
        lines = [e[2] for e in events if e[0] == "log"]
        self.assertEqual(len(lines), 3)
        self.assertTrue(all(line.startswith("SIMULATION: ") for line in lines))
        self.assertEqual(events[-1][0], "done")

    def test_stays_alive_between_tasks(self):
        pid = self.executor.pid
        for i in range(3):
            task = {"task_id": f"t{i}", "type": "tts", "input": {"text": "x"}}
            self.assertEqual(run_to_end(self.executor, task)[-1][0], "done")
        self.assertEqual(self.executor.pid, pid)
        self.assertTrue(pid_alive(pid))

    def test_relays_progress_and_chunks_before_the_result(self):
        events = run_to_end(self.executor, {"task_id": "t1", "type": "sd", "input": {"prompt": "x"},
                                            "metadata": {"sim": {"duration_ms": 100, "chunks": 2}}})
        kinds = [e[0] for e in events]
        self.assertIn("progress", kinds)
        self.assertEqual(kinds.count("chunk"), 2)
        self.assertEqual(kinds[-1], "done")

    def test_backend_errors_carry_their_code_and_retryability(self):
        final = run_to_end(self.executor, {"task_id": "t1", "type": "llm", "input": {"prompt": "x"},
                                           "metadata": {"sim": {"fail": "fatal"}}})[-1]
        self.assertEqual(final[0:3], ("failed", "t1", "sim_failure"))
        self.assertFalse(final[4])
        final = run_to_end(self.executor, {"task_id": "t2", "type": "sd", "input": {"num_images": 99}})[-1]
        self.assertEqual((final[2], final[4]), ("invalid_input", False))

    def test_stop_request_ends_a_running_task_and_keeps_the_executor(self):
        pid = self.executor.pid
        self.executor.run({"task_id": "t1", "type": "llm", "input": {}, "metadata": {"sim": {"duration_ms": 60_000}}})
        self.executor.stop("t1")
        self.assertEqual(collect(self.executor)[-1], ("stopped", "t1"))
        self.assertEqual(run_to_end(self.executor, {"task_id": "t2", "type": "llm", "input": {}})[-1][0], "done")
        self.assertEqual(self.executor.pid, pid)

    def test_death_is_reported(self):
        os.kill(self.executor.pid, signal.SIGKILL)
        events = run_to_end(self.executor, {"task_id": "t1", "type": "llm", "input": {}})
        self.assertEqual(events[-1], ("died", -signal.SIGKILL))


class SplitLogLineTests(unittest.TestCase):
    def test_each_line_of_the_text_becomes_a_line(self):
        self.assertEqual(split_log_line("one\ntwo\r\nthree\n"), ["one", "two", "three"])
        self.assertEqual(split_log_line(""), [""])

    def test_long_lines_are_cut_into_pieces_and_nothing_is_lost(self):
        text = "x" * (2 * MAX_LOG_LINE + 5)
        self.assertEqual([len(p) for p in split_log_line(text)], [MAX_LOG_LINE, MAX_LOG_LINE, 5])
        self.assertEqual("".join(split_log_line(text)), text)

    def test_length_counts_utf16_code_units_as_the_api_does(self):
        text = "a" + "\U0001F600" * MAX_LOG_LINE  # each emoji is two UTF-16 code units
        pieces = split_log_line(text)
        self.assertEqual("".join(pieces), text)
        self.assertTrue(all(len(p.encode("utf-16-le")) // 2 <= MAX_LOG_LINE for p in pieces))
        self.assertEqual(len(pieces), 3)


class StartTests(unittest.TestCase):
    def test_unknown_backend_fails_the_start(self):
        executor = Executor({"llm": "no-such-backend"}, "critical")
        executor.start()
        self.addCleanup(executor.kill)
        with self.assertRaisesRegex(ExecutorError, "could not create its backends"):
            executor.wait_ready(WAIT_SECONDS)


class InboxTests(unittest.TestCase):
    """The pipe's reader takes what Connection.send wrote, whole and in order, however it is cut."""

    def setUp(self):
        self.reading, self.writing = multiprocessing.Pipe()
        self.addCleanup(self.reading.close)
        self.addCleanup(self.writing.close)
        self.inbox = _Inbox(self.reading)

    def test_one_read_takes_every_message_the_pipe_holds_in_order(self):
        sent = [("progress", "t1", i / 10, f"step {i}") for i in range(10)] + [("done", "t1", "{}", [])]
        for message in sent:
            self.writing.send(message)
        self.inbox.fill()
        received = []
        while self.inbox:
            received.append(self.inbox.pop())
        self.assertEqual(received, sent)

    def test_a_message_longer_than_one_read_arrives_whole(self):
        big = ("done", "t1", "x" * (3 * READ_SIZE + 17), [])
        # The send blocks until the reader has taken most of it: it writes from its own thread.
        writer = threading.Thread(target=lambda: (self.writing.send(big), self.writing.send(("stopped", "t2"))))
        writer.start()
        self.addCleanup(writer.join)
        self.inbox.fill()
        self.assertEqual(self.inbox.pop(), big)
        if not self.inbox:
            self.inbox.fill()
        self.assertEqual(self.inbox.pop(), ("stopped", "t2"))
        self.assertFalse(self.inbox)

    def test_a_closed_pipe_reads_as_the_end(self):
        self.writing.send(("ready",))
        self.writing.close()
        self.inbox.fill()
        self.assertEqual(self.inbox.pop(), ("ready",))
        with self.assertRaises(EOFError):
            self.inbox.fill()


class OrphanTests(unittest.TestCase):
    def test_executor_dies_with_its_worker(self):
        script = ("import sys, time\n"
                  "from taskmanager_worker.executor import Executor\n"
                  "if __name__ == '__main__':\n"
                  "    e = Executor({'llm': 'sim'}, 'warning'); e.start(); e.wait_ready(10)\n"
                  "    print(e.pid, flush=True); time.sleep(60)\n")
        parent = subprocess.Popen([sys.executable, "-c", script], cwd=WORKER_DIR, stdout=subprocess.PIPE, text=True)
        try:
            child = int(parent.stdout.readline())
            self.assertTrue(pid_alive(child))
            parent.kill()
            parent.wait(WAIT_SECONDS)
            wait_until(lambda: not pid_alive(child), what=f"executor {child} to die with its parent")
        finally:
            parent.kill()
            parent.wait()
            parent.stdout.close()


if __name__ == "__main__":
    unittest.main()
