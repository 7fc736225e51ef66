import os
import stat
import tempfile
import unittest
from unittest import mock

from taskmanager_worker.gpu import Gpus, parse


class ParseTests(unittest.TestCase):
    def test_lines_become_gpus_with_utilization_as_a_fraction(self):
        text = "NVIDIA H100 80GB HBM3, 81559, 80000, 37\nNVIDIA A10G, 23028, 22000, 0\n"
        self.assertEqual(parse(text), [
            {"name": "NVIDIA H100 80GB HBM3", "memory_total_mb": 81559, "memory_free_mb": 80000, "utilization": 0.37},
            {"name": "NVIDIA A10G", "memory_total_mb": 23028, "memory_free_mb": 22000, "utilization": 0.0},
        ])

    def test_unknown_utilization_is_left_out(self):
        self.assertEqual(parse("A100, 40000, 39000, [N/A]"),
                         [{"name": "A100", "memory_total_mb": 40000, "memory_free_mb": 39000}])

    def test_malformed_lines_are_skipped(self):
        self.assertEqual(parse("garbage\n\nA100, [N/A], 1, 2\n"), [])


class ReadTests(unittest.TestCase):
    def test_declared_gpus_win_over_probing(self):
        declared = ({"name": "Hand-declared", "memory_total_mb": 10, "memory_free_mb": 5},)
        self.assertEqual(Gpus(declared).read(), [dict(declared[0])])

    def test_no_nvidia_smi_means_no_gpus(self):
        with tempfile.TemporaryDirectory() as empty, mock.patch.dict(os.environ, {"PATH": empty}):
            self.assertEqual(Gpus(None).read(), [])

    def test_nvidia_smi_on_path_is_probed(self):
        with tempfile.TemporaryDirectory() as bin_dir, mock.patch.dict(os.environ, {"PATH": bin_dir}):
            fake = os.path.join(bin_dir, "nvidia-smi")
            with open(fake, "w") as script:
                script.write("#!/bin/sh\necho 'Fake GPU, 1000, 900, 50'\n")
            os.chmod(fake, stat.S_IRWXU)
            self.assertEqual(Gpus(None).read(),
                             [{"name": "Fake GPU", "memory_total_mb": 1000, "memory_free_mb": 900, "utilization": 0.5}])

    def test_each_read_probes_anew(self):
        # Heartbeats read the GPUs each time, so the API sees free memory as it is now.
        with tempfile.TemporaryDirectory() as bin_dir, mock.patch.dict(os.environ, {"PATH": bin_dir}):
            fake = os.path.join(bin_dir, "nvidia-smi")
            with open(fake, "w") as script:
                # Shell builtins only: PATH holds nothing else.
                script.write(f"#!/bin/sh\nn=0\n[ -f {bin_dir}/calls ] && read n < {bin_dir}/calls\n"
                             f"n=$((n + 1))\necho $n > {bin_dir}/calls\necho \"GPU, 1000, $((1000 - n)), 0\"\n")
            os.chmod(fake, stat.S_IRWXU)
            gpus = Gpus(None)
            self.assertEqual([gpus.read()[0]["memory_free_mb"] for _ in range(2)], [999, 998])


if __name__ == "__main__":
    unittest.main()
