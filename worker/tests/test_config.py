import os
import socket
import tempfile
import unittest

from taskmanager_worker.config import ConfigError, load, sim_tokens_per_second

URL = {"TASKMANAGER_API_URL": "http://api:8084"}


class ApiUrlTests(unittest.TestCase):
    def test_taskmanager_api_url_wins_over_aspire(self):
        config = load({"TASKMANAGER_API_URL": "http://api:8084/", "services__api__http__0": "http://other:1"})
        self.assertEqual(config.api_url, "http://api:8084")

    def test_aspire_http_endpoint_is_used_when_no_url_is_set(self):
        config = load({"services__api__http__0": "http://localhost:5123", "services__api__https__0": "https://x:1"})
        self.assertEqual(config.api_url, "http://localhost:5123")

    def test_aspire_https_endpoint_is_the_last_resort(self):
        self.assertEqual(load({"services__api__https__0": "https://localhost:7001"}).api_url, "https://localhost:7001")

    def test_missing_url_names_the_variable(self):
        with self.assertRaisesRegex(ConfigError, "TASKMANAGER_API_URL"):
            load({})

    def test_url_without_scheme_is_rejected(self):
        with self.assertRaisesRegex(ConfigError, "TASKMANAGER_API_URL must be an http"):
            load({"TASKMANAGER_API_URL": "localhost:8084"})


class DefaultsTests(unittest.TestCase):
    def test_defaults_serve_all_types_with_sim(self):
        config = load(URL)
        self.assertEqual(config.task_types, ["llm", "sd", "tts", "image_to_text"])
        self.assertEqual(set(config.backends.values()), {"sim"})
        self.assertEqual(config.capacity, 1)
        self.assertEqual(config.models, ())
        self.assertIsNone(config.gpus)
        self.assertIsNone(config.token)
        self.assertEqual(config.cancel_grace_seconds, 5)
        self.assertEqual(config.shutdown_grace_seconds, 30)
        self.assertEqual(config.name, f"{socket.gethostname()}:{os.getpid()}")

    def test_empty_variables_mean_unset(self):
        config = load({**URL, "TASKMANAGER_CAPACITY": "", "TASKMANAGER_BACKEND": " ", "TASKMANAGER_GPUS": ""})
        self.assertEqual(config.capacity, 1)
        self.assertIsNone(config.gpus)

    def test_settings_are_read(self):
        config = load({**URL, "TASKMANAGER_WORKER_TOKEN": "s3cret", "TASKMANAGER_CAPACITY": "4",
                       "TASKMANAGER_MODELS": "tiny-llama, sdxl,,tiny-llama", "TASKMANAGER_WORKER_NAME": "gpu-1",
                       "TASKMANAGER_CANCEL_GRACE_SECONDS": "0.5", "TASKMANAGER_SHUTDOWN_GRACE_SECONDS": "0"})
        self.assertEqual(config.token, "s3cret")
        self.assertEqual(config.capacity, 4)
        self.assertEqual(config.models, ("tiny-llama", "sdxl"))
        self.assertEqual(config.name, "gpu-1")
        self.assertEqual(config.cancel_grace_seconds, 0.5)
        self.assertEqual(config.shutdown_grace_seconds, 0)


class BackendTests(unittest.TestCase):
    def test_per_type_backends_limit_the_types(self):
        config = load({**URL, "TASKMANAGER_BACKEND": "tts=sim, llm=sim"})
        self.assertEqual(config.backends, {"llm": "sim", "tts": "sim"})
        self.assertEqual(config.task_types, ["llm", "tts"])

    def test_task_types_narrow_what_the_backends_serve(self):
        config = load({**URL, "TASKMANAGER_TASK_TYPES": "sd,llm"})
        self.assertEqual(config.task_types, ["sd", "llm"])
        self.assertEqual(config.backends, {"sd": "sim", "llm": "sim"})

    def test_unknown_backend_lists_the_known_ones(self):
        with self.assertRaisesRegex(ConfigError, "unknown backend 'vllm'; known: sim"):
            load({**URL, "TASKMANAGER_BACKEND": "vllm"})

    def test_unknown_task_type_is_rejected(self):
        with self.assertRaisesRegex(ConfigError, "unknown task type 'video'"):
            load({**URL, "TASKMANAGER_BACKEND": "video=sim"})

    def test_task_type_without_backend_is_rejected(self):
        with self.assertRaisesRegex(ConfigError, "'sd', but TASKMANAGER_BACKEND gives it no backend"):
            load({**URL, "TASKMANAGER_BACKEND": "llm=sim", "TASKMANAGER_TASK_TYPES": "llm,sd"})

    def test_malformed_backend_entry_is_rejected(self):
        with self.assertRaisesRegex(ConfigError, "must look like llm=sim"):
            load({**URL, "TASKMANAGER_BACKEND": "llm=sim,tts"})


class NumberTests(unittest.TestCase):
    def test_bad_capacity_is_rejected(self):
        for value in ("0", "-1", "two", "1.5"):
            with self.subTest(value=value), self.assertRaisesRegex(ConfigError, "TASKMANAGER_CAPACITY"):
                load({**URL, "TASKMANAGER_CAPACITY": value})

    def test_bad_grace_is_rejected(self):
        for value in ("-1", "soon", "nan", "inf"):
            with self.subTest(value=value), self.assertRaisesRegex(ConfigError, "TASKMANAGER_CANCEL_GRACE_SECONDS"):
                load({**URL, "TASKMANAGER_CANCEL_GRACE_SECONDS": value})

    def test_sim_token_pace_is_read_and_checked(self):
        self.assertEqual(sim_tokens_per_second({"TASKMANAGER_SIM_TOKENS_PER_SECOND": "12.5"}), 12.5)
        self.assertIsNone(sim_tokens_per_second({}))
        for value in ("0", "-1", "fast", "nan", "inf"):
            with self.subTest(value=value), self.assertRaisesRegex(ConfigError, "TASKMANAGER_SIM_TOKENS_PER_SECOND"):
                load({**URL, "TASKMANAGER_SIM_TOKENS_PER_SECOND": value})
        # Only a worker with a sim backend reads it.
        load({**URL, "TASKMANAGER_BACKEND": "tts=espeak", "TASKMANAGER_SIM_TOKENS_PER_SECOND": "fast"})


class GpuTests(unittest.TestCase):
    def test_declared_gpus_are_kept(self):
        gpus = '[{"name": "NVIDIA H100", "memory_total_mb": 81559, "memory_free_mb": 80000}]'
        config = load({**URL, "TASKMANAGER_GPUS": gpus})
        self.assertEqual(config.gpus, ({"name": "NVIDIA H100", "memory_total_mb": 81559, "memory_free_mb": 80000},))

    def test_empty_list_declares_no_gpu(self):
        self.assertEqual(load({**URL, "TASKMANAGER_GPUS": "[]"}).gpus, ())

    def test_bad_gpus_say_what_is_wrong(self):
        cases = {
            "not json": "must be a JSON list",
            '{"name": "x"}': "must be a JSON list",
            '[{"name": "x", "memory_total_mb": 10}]': r"TASKMANAGER_GPUS\[0\].memory_free_mb",
            '[{"name": "x", "memory_total_mb": 10, "memory_free_mb": 20}]': "must not exceed",
            '[{"name": "x", "memory_total": 10, "memory_free_mb": 5}]': "unknown fields",
            '[{"name": "", "memory_total_mb": 10, "memory_free_mb": 5}]': "name must be a non-empty string",
        }
        for value, message in cases.items():
            with self.subTest(value=value), self.assertRaisesRegex(ConfigError, message):
                load({**URL, "TASKMANAGER_GPUS": value})


class ModelDirTests(unittest.TestCase):
    def test_a_folder_is_taken_and_anything_else_named(self):
        with tempfile.TemporaryDirectory() as directory:
            self.assertEqual(load({**URL, "TASKMANAGER_MODEL_DIR": directory}).model_dir, directory)
            with self.assertRaisesRegex(ConfigError, "TASKMANAGER_MODEL_DIR must be a folder"):
                load({**URL, "TASKMANAGER_MODEL_DIR": os.path.join(directory, "missing")})
        self.assertIsNone(load(URL).model_dir)

    def test_the_real_backends_are_known(self):
        config = load({**URL, "TASKMANAGER_BACKEND": "llm=transformers,tts=espeak,image_to_text=tesseract,sd=sim"})
        self.assertEqual(config.backends, {"llm": "transformers", "sd": "sim", "tts": "espeak",
                                           "image_to_text": "tesseract"})
        with self.assertRaisesRegex(ConfigError, "backend 'espeak' does not serve 'llm'"):
            load({**URL, "TASKMANAGER_BACKEND": "llm=espeak"})
        self.assertEqual(load({**URL, "TASKMANAGER_BACKEND": "espeak"}).task_types, ["tts"])


if __name__ == "__main__":
    unittest.main()
