"""`python3 -m taskmanager_worker probe`: what the worker would register, without an API."""

import json
import os
import stat
import subprocess
import sys
import tempfile
import unittest

from helpers import WAIT_SECONDS
from taskmanager_worker import __version__

WORKER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_TYPES = ["llm", "sd", "tts", "image_to_text"]


def probe(path_dir, **variables):
    """Runs the probe with only `variables` set (no API address) and `path_dir` as PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKMANAGER_", "services__"))}
    env.update(variables, PATH=path_dir)
    return subprocess.run([sys.executable, "-m", "taskmanager_worker", "probe"], cwd=WORKER_DIR, env=env,
                          capture_output=True, text=True, timeout=WAIT_SECONDS)


class ProbeTests(unittest.TestCase):
    def setUp(self):
        directory = tempfile.TemporaryDirectory()  # PATH: empty, so no nvidia-smi unless a test puts one there
        self.addCleanup(directory.cleanup)
        self.bin_dir = directory.name

    def test_prints_the_registration_with_declared_gpus(self):
        gpus = [{"name": "NVIDIA H100", "memory_total_mb": 81559, "memory_free_mb": 80000, "utilization": 0.25}]
        result = probe(self.bin_dir, TASKMANAGER_GPUS=json.dumps(gpus), TASKMANAGER_WORKER_NAME="gpu-1",
                       TASKMANAGER_MODELS="tiny-llama,sdxl", TASKMANAGER_CAPACITY="2",
                       TASKMANAGER_BACKEND="llm=sim,tts=sim")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(json.loads(result.stdout), {
            "name": "gpu-1", "task_types": ["llm", "tts"], "backends": {"llm": "sim", "tts": "sim"},
            "models": ["tiny-llama", "sdxl"], "gpus": gpus, "capacity": 2, "version": __version__})
        self.assertIn('\n  "name": "gpu-1",\n', result.stdout, "pretty-printed")

    def test_without_nvidia_smi_declares_no_gpus(self):
        result = probe(self.bin_dir)
        self.assertEqual(result.returncode, 0, result.stderr)
        output = json.loads(result.stdout)
        self.assertEqual(output["gpus"], [])
        self.assertEqual((output["task_types"], output["capacity"], output["models"]), (ALL_TYPES, 1, []))
        self.assertRegex(output["name"], r".+:\d+$")

    def test_probes_nvidia_smi_where_it_exists(self):
        fake = os.path.join(self.bin_dir, "nvidia-smi")
        with open(fake, "w") as script:
            script.write("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 81559, 81079, 3'\n")
        os.chmod(fake, stat.S_IRWXU)
        result = probe(self.bin_dir)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(json.loads(result.stdout)["gpus"], [
            {"name": "NVIDIA H100 80GB HBM3", "memory_total_mb": 81559, "memory_free_mb": 81079, "utilization": 0.03}])

    def test_a_bad_setting_exits_2_with_one_line(self):
        result = probe(self.bin_dir, TASKMANAGER_GPUS="[{}]")
        self.assertEqual((result.returncode, result.stdout), (2, ""))
        [line] = result.stderr.splitlines()
        self.assertIn("TASKMANAGER_GPUS[0]", json.loads(line)["msg"])

    def test_a_malformed_api_url_is_still_a_bad_setting(self):
        result = probe(self.bin_dir, TASKMANAGER_API_URL="localhost:8084")
        self.assertEqual(result.returncode, 2)
        self.assertIn("TASKMANAGER_API_URL", result.stderr)


if __name__ == "__main__":
    unittest.main()
