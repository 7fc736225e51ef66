"""The espeak backend: real speech with espeak-ng (CI installs it; skipped where it is missing),
and the subprocess helper that kills a program when its task is asked to stop."""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

from helpers import WAIT_SECONDS, pid_alive, read_wav, wait_until
from taskmanager_worker.backends import Artifact, InvalidInput, TaskStopped, _process
from taskmanager_worker.backends.espeak import EspeakBackend, command, words_per_minute

WORKER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAS_ESPEAK = shutil.which("espeak-ng") is not None
SHORT = "Hello there friend."
LONG = ("TaskManager carries every task to a final state, enforces its timeout, retries it when it fails, "
        "and recovers it when its worker dies, so that nothing a client submits is ever lost on the way.")


class Context:
    """A TaskContext that records what the backend says; stopped() turns true after `stop_after` calls."""

    def __init__(self, stop_after=None):
        self.logs, self.chunks, self.progress_calls = [], [], []
        self.stop_after = stop_after
        self.polls = 0

    def progress(self, progress, message=None):
        self.progress_calls.append((progress, message))

    def chunk(self, text):
        self.chunks.append(text)

    def log(self, line):
        self.logs.append(line)

    def stopped(self):
        self.polls += 1
        return self.stop_after is not None and self.polls > self.stop_after


def speak(ctx=None, **task_input):
    backend = EspeakBackend()
    backend.load(None)
    return backend.run({"task_id": "t1", "type": "tts", "input": task_input}, ctx or Context())


class MappingTests(unittest.TestCase):
    def test_speed_is_175_words_a_minute_times_speed_within_espeaks_range(self):
        self.assertEqual([words_per_minute(s) for s in (1, 1.5, 2, 4)], [175, 262, 350, 700])
        self.assertEqual(words_per_minute(0.25), 80, "espeak-ng speaks no slower than 80")
        self.assertEqual(words_per_minute(0.5), 88)

    def test_command_reads_the_text_from_a_file_with_the_voice_and_rate(self):
        args = command("/t/text.txt", "/t/audio.wav", "en-us", 350)
        self.assertEqual(args[0], "espeak-ng")
        self.assertEqual(args[args.index("-v") + 1], "en-us")
        self.assertEqual(args[args.index("-s") + 1], "350")
        self.assertEqual(args[args.index("-w") + 1], "/t/audio.wav")
        self.assertEqual(args[args.index("-f") + 1], "/t/text.txt")

    def test_bad_inputs_are_invalid_before_anything_runs(self):
        for task_input in ({}, {"text": "  "}, {"text": 3}, {"text": "hi", "speed": 5}, {"text": "hi", "speed": True},
                           {"text": "hi", "voice": "-x"}, {"text": "hi", "voice": "a b"}, {"text": "hi", "format": "ogg"}):
            with self.subTest(task_input=task_input), self.assertRaises(InvalidInput):
                speak(**task_input)

    def test_mp3_is_refused_for_good_with_a_clear_message(self):
        with self.assertRaises(InvalidInput) as caught:
            speak(text="hello", format="mp3")
        self.assertEqual((caught.exception.code, caught.exception.retryable), ("invalid_input", False))
        self.assertIn("WAV only", caught.exception.message)


@unittest.skipUnless(HAS_ESPEAK, "espeak-ng is not installed (Debian: apt-get install espeak-ng)")
class EspeakTests(unittest.TestCase):
    def test_writes_a_wav_artifact_whose_duration_grows_with_the_text(self):
        short, long = speak(text=SHORT), speak(text=LONG)
        for output in (short, long):
            audio = output["audio"]
            self.assertIsInstance(audio, Artifact)
            self.assertEqual((audio.name, audio.content_type), ("audio.wav", "audio/wav"))
            channels, rate, seconds = read_wav(audio.data)
            self.assertEqual((channels, rate), (1, output["sample_rate"]))
            self.assertAlmostEqual(seconds, output["duration_seconds"], places=2)
            self.assertEqual((output["format"], output["voice"], output["engine"]), ("wav", "en", "espeak-ng"))
        # 3 words at 175 a minute take about a second, 34 words about twelve.
        self.assertGreater(short["duration_seconds"], 0.3)
        self.assertLess(short["duration_seconds"], 3.0)
        self.assertGreater(long["duration_seconds"], short["duration_seconds"] * 4)

    def test_speed_shortens_the_audio(self):
        normal, fast = speak(text=LONG), speak(text=LONG, speed=2)
        self.assertEqual((normal["words_per_minute"], fast["words_per_minute"]), (175, 350))
        ratio = normal["duration_seconds"] / fast["duration_seconds"]
        self.assertGreater(ratio, 1.5)
        self.assertLess(ratio, 2.5)

    def test_another_voice_speaks_and_an_unknown_one_is_invalid_input(self):
        self.assertEqual(speak(text="Bonjour tout le monde.", voice="fr")["voice"], "fr")
        with self.assertRaises(InvalidInput) as caught:
            speak(text="hello", voice="zz")
        self.assertIn("no voice 'zz'", caught.exception.message)

    def test_logs_what_it_does(self):
        ctx = Context()
        speak(ctx, text=SHORT, speed=0.25)
        self.assertIn("80 words per minute", ctx.logs[0])
        self.assertIn("held to what espeak-ng can do", ctx.logs[0])
        self.assertRegex(ctx.logs[-1], r"s of audio at \d+ Hz")

    def test_text_that_looks_like_an_option_is_spoken_not_parsed(self):
        output = speak(text="--help -v xx")
        self.assertGreater(output["duration_seconds"], 0.3)


class ProcessTests(unittest.TestCase):
    def setUp(self):
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.pid_file = os.path.join(directory.name, "pid")

    def sleeper(self):
        """A program that writes its pid, then sleeps for a minute."""
        return ["sh", "-c", f"echo $$ > {self.pid_file}; exec sleep 60"]

    def pid(self):
        def read():
            try:
                with open(self.pid_file) as file:
                    return int(file.read().strip() or 0)
            except FileNotFoundError:
                return 0
        return wait_until(read, what="the program's pid")

    def test_returns_the_exit_code_and_output(self):
        finished = _process.run(["sh", "-c", "echo out; echo err >&2; exit 3"], Context())
        self.assertEqual((finished.returncode, finished.stdout, finished.stderr), (3, b"out\n", b"err\n"))
        self.assertEqual(finished.error_text(), "err")

    def test_a_stop_request_kills_the_program(self):
        ctx = Context(stop_after=5)
        with self.assertRaises(TaskStopped):
            _process.run(self.sleeper(), ctx)
        self.assertFalse(pid_alive(self.pid()), "the program was killed and reaped")

    @unittest.skipUnless(shutil.which("setpriv"), "setpriv (util-linux) is not installed")
    def test_the_program_dies_with_a_killed_executor(self):
        script = textwrap.dedent(f"""
            import sys
            from taskmanager_worker.backends import _process
            class Ctx:
                def stopped(self):
                    return False
            _process.run({self.sleeper()!r}, Ctx())
        """)
        executor = subprocess.Popen([sys.executable, "-c", script], cwd=WORKER_DIR)
        self.addCleanup(executor.wait)
        self.addCleanup(executor.kill)
        pid = self.pid()
        self.assertTrue(pid_alive(pid))
        executor.kill()  # SIGKILL: no chance to clean up
        executor.wait(WAIT_SECONDS)
        wait_until(lambda: not pid_alive(pid), what="the orphaned program to die")


if __name__ == "__main__":
    unittest.main()
