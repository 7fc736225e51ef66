"""`python3 -m taskmanager_worker run-once`: one task through a backend in an executor, no API."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from helpers import WAIT_SECONDS, read_png, read_wav

WORKER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAS_ESPEAK = shutil.which("espeak-ng") is not None


def run_once_environment(**variables):
    """This environment without the worker's settings, with `variables`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKMANAGER_", "services__"))}
    env.update(variables)
    return env


def run_once(*args, path=None, **variables):
    env = run_once_environment(**variables)
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "taskmanager_worker", "run-once", *args], cwd=WORKER_DIR,
                          env=env, capture_output=True, text=True, timeout=2 * WAIT_SECONDS)


def output_of(result):
    """The output JSON: what stdout holds after the chunks and their newline."""
    start = result.stdout.index("{") if result.stdout.startswith("{") else result.stdout.index("\n{") + 1
    return json.loads(result.stdout[start:])


class RunOnceTests(unittest.TestCase):
    def setUp(self):
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.out = directory.name

    def test_sim_llm_streams_its_chunks_then_prints_the_output(self):
        result = run_once("--type", "llm", "--input", '{"prompt": "hi", "max_tokens": 6, "stream": true}',
                          "--metadata", '{"sim": {"duration_ms": 100}}')
        self.assertEqual(result.returncode, 0, result.stderr)
        output = output_of(result)
        self.assertEqual(result.stdout, output["text"] + "\n" + json.dumps(output, indent=2) + "\n",
                         "stdout: the chunks as they came, a newline, the output")
        self.assertEqual(output["usage"]["completion_tokens"], 6)
        self.assertIn("on backend sim", result.stderr)
        self.assertIn("[log] SIMULATION: generating 6 tokens", result.stderr)
        self.assertRegex(result.stderr, r"time: [\d.]+ s in all: executor start [\d.]+ s, task [\d.]+ s")
        self.assertRegex(result.stderr, r"gpu memory")

    def test_artifacts_are_written_to_the_out_folder_and_named_by_path(self):
        result = run_once("--type", "sd", "--input", '{"prompt": "a cat", "num_images": 2}', "--out", self.out)
        self.assertEqual(result.returncode, 0, result.stderr)
        images = output_of(result)["images"]
        self.assertEqual([image["path"] for image in images],
                         [os.path.join(self.out, "image-0.png"), os.path.join(self.out, "image-1.png")])
        for image in images:
            with open(image["path"], "rb") as file:
                data = file.read()
            self.assertEqual(image["bytes"], len(data))
            self.assertEqual(read_png(data)[:2], (image["width"], image["height"]))
            self.assertIn(f"artifact: {image['path']}", result.stderr)

    def test_the_backend_comes_from_taskmanager_backend(self):
        result = run_once("--type", "tts", "--input", '{"text": "hi"}', path=self.out,  # no espeak-ng on PATH
                          TASKMANAGER_BACKEND="llm=sim,tts=espeak")
        self.assertEqual(result.returncode, 2)
        self.assertIn("espeak backend unavailable: the program 'espeak-ng' is not on PATH", result.stderr)

    def test_a_failed_task_exits_1(self):
        result = run_once("--type", "llm", "--input", '{"prompt": "x"}', "--metadata", '{"sim": {"fail": "fatal"}}')
        self.assertEqual(result.returncode, 1)
        self.assertIn("task failed: sim_failure (not retryable)", result.stderr)
        self.assertEqual(result.stdout, "")

    def test_a_task_past_its_timeout_is_stopped_then_killed(self):
        result = run_once("--type", "llm", "--input", '{"prompt": "x"}', "--metadata", '{"sim": {"hang": true}}',
                          "--timeout", "0.5", "--grace", "0.2")
        self.assertEqual(result.returncode, 1)
        self.assertIn("timed out after 0.5 s; asking the task to stop", result.stderr)
        self.assertIn("killing executor", result.stderr)

    def test_a_stoppable_task_past_its_timeout_stops(self):
        result = run_once("--type", "llm", "--input", '{"prompt": "x"}', "--metadata", '{"sim": {"duration_ms": 60000}}',
                          "--timeout", "0.3")
        self.assertEqual(result.returncode, 1)
        self.assertIn("task stopped (timed out after 0.3 s)", result.stderr)

    def test_usage_errors_exit_2(self):
        for args in (["--input", "{}"],  # no --type
                     ["--type", "llm", "--input", "not json"],
                     ["--type", "llm", "--input", "[1]"],
                     ["--type", "llm", "--input", "{}", "--backend", "nope"],
                     ["--type", "llm", "--input", "{}", "--backend", "espeak"],
                     ["--type", "llm", "--input", "{}", "--timeout", "0"],
                     ["--type", "llm", "--input", "@/no/such/file"]):
            with self.subTest(args=args):
                result = run_once(*args)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertEqual(result.stdout, "")

    @unittest.skipUnless(HAS_ESPEAK, "espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    def test_espeak_writes_the_wav_and_prints_its_path(self):
        input_file = os.path.join(self.out, "input.json")
        with open(input_file, "w") as file:
            json.dump({"text": "Hello from the worker, run once.", "voice": "en-us", "speed": 1.25}, file)
        result = run_once("--type", "tts", "--backend", "espeak", "--input", f"@{input_file}", "--out", self.out)
        self.assertEqual(result.returncode, 0, result.stderr)
        output = output_of(result)
        audio = output["audio"]
        self.assertEqual((audio["path"], audio["content_type"]), (os.path.join(self.out, "audio.wav"), "audio/wav"))
        with open(audio["path"], "rb") as file:
            channels, rate, seconds = read_wav(file.read())
        self.assertEqual((rate, output["voice"], output["words_per_minute"]), (output["sample_rate"], "en-us", 219))
        self.assertAlmostEqual(seconds, output["duration_seconds"], places=2)
        self.assertIn("[log] espeak-ng: ", result.stderr)


if __name__ == "__main__":
    unittest.main()
