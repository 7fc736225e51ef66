"""Availability: a backend that cannot serve on this machine (a program or module it needs is
missing) has its task types left out of the registration, with one line that says why."""

import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

from fakeapi import FakeApi
from helpers import WAIT_SECONDS
from taskmanager_worker import config
from taskmanager_worker.backends import REGISTRY, BackendInfo, program, python_module, tesseract_language

WORKER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
URL = {"TASKMANAGER_API_URL": "http://api:8084"}
ESPEAK_MISSING = ("espeak backend unavailable: the program 'espeak-ng' is not on PATH "
                  "(Debian: apt-get install espeak-ng)")


class EmptyPath(unittest.TestCase):
    """Runs each test with PATH set to an empty folder (tests may put fake programs there)."""

    def setUp(self):
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.bin_dir = directory.name
        patcher = mock.patch.dict(os.environ, {"PATH": self.bin_dir})
        patcher.start()
        self.addCleanup(patcher.stop)

    def fake_program(self, name, script):
        path = os.path.join(self.bin_dir, name)
        with open(path, "w") as file:
            file.write("#!/bin/sh\n" + script + "\n")
        os.chmod(path, stat.S_IRWXU)


class AvailableTests(EmptyPath):
    def test_sim_needs_nothing(self):
        self.assertIsNone(REGISTRY["sim"].available())

    def test_a_missing_program_is_named_with_how_to_install_it(self):
        self.assertEqual(REGISTRY["espeak"].available(), ESPEAK_MISSING)
        self.assertEqual(REGISTRY["tesseract"].available(),
                         "tesseract backend unavailable: the program 'tesseract' is not on PATH "
                         "(Debian: apt-get install tesseract-ocr tesseract-ocr-eng)")

    def test_a_program_on_path_is_enough_for_espeak(self):
        self.fake_program("espeak-ng", "exit 0")
        self.assertIsNone(REGISTRY["espeak"].available())

    def test_tesseract_needs_its_english_data(self):
        self.fake_program("tesseract", "echo 'List of available languages in \"/x/\" (1):'; echo osd")
        self.assertEqual(REGISTRY["tesseract"].available(),
                         "tesseract backend unavailable: tesseract has no 'eng' language data "
                         "(Debian: apt-get install tesseract-ocr-eng)")
        self.fake_program("tesseract", "echo 'List of available languages (2):'; echo eng; echo osd")
        self.assertIsNone(REGISTRY["tesseract"].available())

    def test_a_missing_module_is_found_without_importing_anything(self):
        info = BackendInfo("demo", "x", "X", ("llm",), (python_module("taskmanager_no_such_module", "pip install it"),))
        self.assertEqual(info.available(), "demo backend unavailable: cannot import 'taskmanager_no_such_module' "
                                           "(No module named 'taskmanager_no_such_module'); pip install it")
        self.assertIsNone(python_module("json", "")())

    def test_requirements_are_checked_in_order_and_the_first_missing_one_is_said(self):
        info = BackendInfo("demo", "x", "X", ("tts",), (program("sh-no-such", "get A"), program("no-b", "get B")))
        self.assertEqual(info.available(), "demo backend unavailable: the program 'sh-no-such' is not on PATH (get A)")

    def test_a_language_check_that_cannot_run_says_so(self):
        self.assertIn("'tesseract --list-langs' failed", tesseract_language("eng", "")())


class DropUnavailableTests(EmptyPath):
    def test_the_types_of_an_unavailable_backend_are_dropped_with_one_line(self):
        settings = config.load({**URL, "TASKMANAGER_BACKEND": "llm=sim,tts=espeak,sd=sim"})
        lines = []
        kept = config.drop_unavailable(settings, lines.append)
        self.assertEqual(kept.backends, {"llm": "sim", "sd": "sim"})
        self.assertEqual(kept.task_types, ["llm", "sd"])
        self.assertEqual(lines, [f"{ESPEAK_MISSING}; not serving tts"])

    def test_available_backends_say_nothing(self):
        settings = config.load(URL)
        lines = []
        self.assertEqual(config.drop_unavailable(settings, lines.append), settings)
        self.assertEqual(lines, [])

    def test_nothing_left_is_a_configuration_error(self):
        settings = config.load({**URL, "TASKMANAGER_BACKEND": "tts=espeak,image_to_text=tesseract"})
        lines = []
        with self.assertRaisesRegex(config.ConfigError, "no task type left to serve"):
            config.drop_unavailable(settings, lines.append)
        self.assertEqual(len(lines), 2, "each backend's line comes before the error")


def worker_env(path_dir, **variables):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKMANAGER_", "services__"))}
    env.update(variables, PATH=path_dir)
    return env


class StartUpTests(unittest.TestCase):
    def setUp(self):
        directory = tempfile.TemporaryDirectory()  # PATH: empty, so neither espeak-ng nor tesseract
        self.addCleanup(directory.cleanup)
        self.bin_dir = directory.name

    def test_probe_leaves_out_the_type_and_logs_why(self):
        result = subprocess.run([sys.executable, "-m", "taskmanager_worker", "probe"], cwd=WORKER_DIR,
                                env=worker_env(self.bin_dir, TASKMANAGER_BACKEND="llm=sim,tts=espeak"),
                                capture_output=True, text=True, timeout=WAIT_SECONDS)
        self.assertEqual(result.returncode, 0, result.stderr)
        body = json.loads(result.stdout)
        self.assertEqual((body["task_types"], body["backends"]), (["llm"], {"llm": "sim"}))
        [line] = [json.loads(line) for line in result.stderr.splitlines()]
        self.assertEqual((line["level"], line["msg"]), ("warning", f"{ESPEAK_MISSING}; not serving tts"))

    def test_a_worker_with_no_type_left_exits_2(self):
        api = FakeApi()
        self.addCleanup(api.close)
        result = subprocess.run([sys.executable, "-m", "taskmanager_worker"], cwd=WORKER_DIR,
                                env=worker_env(self.bin_dir, TASKMANAGER_API_URL=api.url, TASKMANAGER_BACKEND="tts=espeak"),
                                capture_output=True, text=True, timeout=WAIT_SECONDS)
        self.assertEqual(result.returncode, 2)
        lines = [json.loads(line)["msg"] for line in result.stderr.splitlines()]
        self.assertEqual(lines[0], f"{ESPEAK_MISSING}; not serving tts")
        self.assertIn("no task type left to serve", lines[-1])
        self.assertEqual(api.calls("register"), [], "it never registered")

    def test_the_worker_registers_only_what_it_can_serve(self):
        api = FakeApi()
        self.addCleanup(api.close)
        env = worker_env(self.bin_dir, TASKMANAGER_API_URL=api.url, TASKMANAGER_BACKEND="llm=sim,tts=espeak",
                         TASKMANAGER_SHUTDOWN_GRACE_SECONDS="0")
        process = subprocess.Popen([sys.executable, "-m", "taskmanager_worker"], cwd=WORKER_DIR, env=env,
                                   stderr=subprocess.PIPE, text=True)
        try:
            [register] = api.wait_for_call("register")
            api.wait_for_call("lease")
            process.send_signal(signal.SIGTERM)
            self.assertEqual(process.wait(WAIT_SECONDS), 0)
        finally:
            process.kill()
            stderr = process.communicate()[1]
        self.assertEqual((register["body"]["task_types"], register["body"]["backends"]), (["llm"], {"llm": "sim"}))
        warnings = [line["msg"] for line in map(json.loads, stderr.splitlines()) if line["level"] == "warning"]
        self.assertEqual(warnings, [f"{ESPEAK_MISSING}; not serving tts"])


if __name__ == "__main__":
    unittest.main()
