"""The `celery` backend (the Celery bridge) without celery: its settings, the Celery task name and id
of an attempt, results turned into outputs and artifacts, failures turned into retryable or not,
and the backend's loop (send, follow, stop, lost worker, unreachable) on a stand-in for Celery's app.

Runs with the standard library only; the bridge with a real Celery worker is tested by
TaskManager.Tests/Platform/CeleryBridgeTests.cs."""

from __future__ import annotations

import base64
import importlib.util
import subprocess
import sys
import threading
import unittest
from typing import Any
from unittest import mock

from taskmanager_worker import config
from taskmanager_worker.backends import REGISTRY, TASK_TYPES, Artifact, TaskError, TaskStopped
from taskmanager_worker.backends import celery_bridge as bridge
from taskmanager_worker.config import CelerySettings, ConfigError

BROKER = "redis://:s3cret-password@redis-host:6379/1"
RESULTS = "redis://:s3cret-password@redis-host:6379/2"
CELERY = {"TASKMANAGER_API_URL": "http://api:8084", "TASKMANAGER_BACKEND": "celery",
          "TASKMANAGER_CELERY_BROKER_URL": BROKER, "TASKMANAGER_CELERY_RESULT_BACKEND": RESULTS}
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(24)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(16)
JPEG = b"\xff\xd8\xff\xe0" + bytes(16)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class SettingsTests(unittest.TestCase):
    def test_the_defaults_are_gpu_queue_and_the_platforms_task_names(self):
        settings = config.celery_settings(CELERY)
        self.assertEqual(settings, CelerySettings(BROKER, RESULTS, "gpu_queue", "app.tasks.run_{type}_inference"))

    def test_queue_and_task_name_are_read(self):
        settings = config.celery_settings({**CELERY, "TASKMANAGER_CELERY_QUEUE": "gpu_high",
                                           "TASKMANAGER_CELERY_TASK_NAME": "inference.{type}"})
        self.assertEqual((settings.queue, settings.task_name), ("gpu_high", "inference.{type}"))

    def test_the_worker_checks_them_when_a_type_uses_the_celery_backend(self):
        for variable in ("TASKMANAGER_CELERY_BROKER_URL", "TASKMANAGER_CELERY_RESULT_BACKEND"):
            with self.subTest(variable), self.assertRaisesRegex(ConfigError, f"{variable} must be set when a task "
                                                                              "type uses the celery backend"):
                config.load({**CELERY, variable: " "})

    def test_a_value_without_a_scheme_is_refused_without_showing_it(self):
        with self.assertRaises(ConfigError) as caught:
            config.load({**CELERY, "TASKMANAGER_CELERY_BROKER_URL": "user:s3cret-password@redis-host:6379"})
        self.assertIn("TASKMANAGER_CELERY_BROKER_URL must be a URL such as redis://", str(caught.exception))
        self.assertNotIn("s3cret", str(caught.exception))

    def test_other_schemes_are_accepted(self):
        settings = config.celery_settings({**CELERY, "TASKMANAGER_CELERY_BROKER_URL": "amqp://guest@rabbit//",
                                           "TASKMANAGER_CELERY_RESULT_BACKEND": "db+postgresql://u@db/celery"})
        self.assertEqual(settings.broker_url, "amqp://guest@rabbit//")

    def test_a_queue_or_task_name_with_spaces_is_refused(self):
        with self.assertRaisesRegex(ConfigError, "TASKMANAGER_CELERY_QUEUE"):
            config.celery_settings({**CELERY, "TASKMANAGER_CELERY_QUEUE": "gpu queue"})
        with self.assertRaisesRegex(ConfigError, "TASKMANAGER_CELERY_TASK_NAME"):
            config.celery_settings({**CELERY, "TASKMANAGER_CELERY_TASK_NAME": "app.tasks run"})

    def test_they_are_not_needed_without_the_celery_backend(self):
        self.assertEqual(set(config.load({"TASKMANAGER_API_URL": "http://api:8084"}).backends.values()), {"sim"})
        # celery named for tts only, and tts not served: nothing to check.
        loaded = config.load({"TASKMANAGER_API_URL": "http://api:8084", "TASKMANAGER_BACKEND": "llm=sim,tts=celery",
                              "TASKMANAGER_TASK_TYPES": "llm"})
        self.assertEqual(loaded.backends, {"llm": "sim"})

    def test_one_type_on_celery_is_enough_to_need_them(self):
        with self.assertRaisesRegex(ConfigError, "TASKMANAGER_CELERY_BROKER_URL"):
            config.load({"TASKMANAGER_API_URL": "http://api:8084", "TASKMANAGER_BACKEND": "llm=sim,tts=celery"})

    def test_the_backend_serves_all_four_types(self):
        loaded = config.load(CELERY)
        self.assertEqual(loaded.backends, {t: "celery" for t in TASK_TYPES})


class RunOnceTests(unittest.TestCase):
    def test_run_once_checks_the_settings_as_the_worker_does(self):
        from dataclasses import replace

        from taskmanager_worker import run_once

        args = run_once.parser().parse_args(["--type", "llm", "--input", "{}", "--backend", "celery"])
        installed = replace(REGISTRY["celery"], requires=())  # as where celery is installed
        with mock.patch.dict(REGISTRY, {"celery": installed}):
            with mock.patch.dict("os.environ", {"TASKMANAGER_CELERY_BROKER_URL": ""}), \
                    self.assertRaisesRegex(ConfigError, "TASKMANAGER_CELERY_BROKER_URL must be set"):
                run_once._backend(args)
            with mock.patch.dict("os.environ", {"TASKMANAGER_CELERY_BROKER_URL": BROKER,
                                                "TASKMANAGER_CELERY_RESULT_BACKEND": RESULTS}):
                self.assertEqual(run_once._backend(args), "celery")


class RegistryTests(unittest.TestCase):
    def test_registered_for_the_four_types_with_the_celery_module_as_requirement(self):
        info = REGISTRY["celery"]
        self.assertEqual((info.module, info.class_name, info.types),
                         ("taskmanager_worker.backends.celery_bridge", "CeleryBackend", TASK_TYPES))
        with mock.patch.object(importlib.util, "find_spec", return_value=None):
            self.assertEqual(info.available(), "celery backend unavailable: cannot import 'celery' (No module named "
                                               "'celery'); Debian: apt-get install python3-celery python3-redis")

    def test_the_module_imports_no_celery(self):
        code = ("import sys; import taskmanager_worker.backends.celery_bridge; "
                "print(sorted(m for m in sys.modules if m.split('.')[0] in ('celery', 'kombu', 'redis')))")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                                cwd=bridge.__file__.rsplit("/taskmanager_worker/", 1)[0])
        self.assertEqual((result.returncode, result.stdout.strip()), (0, "[]"), result.stderr)


class NamesAndIdsTests(unittest.TestCase):
    def test_type_is_put_in_the_template(self):
        self.assertEqual(bridge.task_name("app.tasks.run_{type}_inference", "image_to_text"),
                         "app.tasks.run_image_to_text_inference")
        self.assertEqual(bridge.task_name("app.tasks.dispatch", "llm"), "app.tasks.dispatch")

    def test_the_first_attempt_runs_under_the_task_id_and_a_retry_under_id_dot_attempt(self):
        self.assertEqual(bridge.celery_id({"task_id": "t1", "attempt": 1}), "t1")
        self.assertEqual(bridge.celery_id({"task_id": "t1"}), "t1")
        self.assertEqual(bridge.celery_id({"task_id": "t1", "attempt": 2}), "t1.2")
        self.assertEqual(bridge.celery_id({"task_id": "t1", "attempt": 10}), "t1.10")

    def test_the_kwargs_carry_the_plain_task_id_type_input_and_model(self):
        task = {"task_id": "t1", "attempt": 3, "type": "tts", "input": {"text": "hi", "speed": 1.0},
                "model": "voice-1", "metadata": {"x": 1}, "lease_token": "secret"}
        self.assertEqual(bridge.task_kwargs(task),
                         {"task_id": "t1", "type": "tts", "input": {"text": "hi", "speed": 1.0}, "model": "voice-1"})


class OutputTests(unittest.TestCase):
    def test_a_json_object_is_the_output_as_it_is(self):
        value = {"text": "hello", "usage": {"prompt_tokens": 3}, "tokens": [1, 2], "ok": True, "none": None}
        self.assertEqual(bridge.output_of(value), value)

    def test_anything_but_an_object_fails_without_retry(self):
        for value in (["a"], "text", 3, None):
            with self.subTest(value=value), self.assertRaises(TaskError) as caught:
                bridge.output_of(value)
            self.assertEqual((caught.exception.code, caught.exception.retryable), ("celery_bad_result", False))
            self.assertIn("not a JSON object", caught.exception.message)

    def test_base64_under_a_suffixed_key_becomes_an_artifact_under_the_key_without_it(self):
        output = bridge.output_of({"audio_base64": b64(WAV), "format": "wav", "cover_b64": b64(PNG)})
        self.assertEqual(set(output), {"audio", "format", "cover"})
        self.assertEqual(output["audio"], Artifact("audio.wav", "audio/wav", WAV))
        self.assertEqual(output["cover"], Artifact("cover.png", "image/png", PNG))

    def test_a_list_of_base64_becomes_a_list_of_artifacts_named_by_place(self):
        output = bridge.output_of({"images_base64": [b64(PNG), b64(JPEG)]})
        self.assertEqual(output, {"images": [Artifact("images-0.png", "image/png", PNG),
                                             Artifact("images-1.jpg", "image/jpeg", JPEG)]})

    def test_nested_base64_is_found_and_named_by_its_path(self):
        output = bridge.output_of({"results": [{"image_base64": b64(PNG)}, {"image_base64": b64(PNG)}]})
        self.assertEqual([r["image"].name for r in output["results"]], ["results-0-image.png", "results-1-image.png"])

    def test_a_data_url_gives_its_own_content_type(self):
        output = bridge.output_of({"audio_base64": "data:audio/mpeg;base64," + b64(b"\xff\xfbmp3 frames")})
        self.assertEqual((output["audio"].name, output["audio"].content_type), ("audio.mp3", "audio/mpeg"))

    def test_base64_with_line_breaks_or_without_padding_is_read(self):
        text = base64.encodebytes(WAV * 4).decode("ascii")
        self.assertIn("\n", text)
        self.assertEqual(bridge.output_of({"a_base64": text})["a"].data, WAV * 4)
        self.assertEqual(bridge.output_of({"a_base64": b64(b"abcd").rstrip("=")})["a"].data, b"abcd")

    def test_a_key_without_the_suffix_already_there_keeps_the_base64_key(self):
        output = bridge.output_of({"audio": "described elsewhere", "audio_base64": b64(WAV)})
        self.assertEqual(output["audio"], "described elsewhere")
        self.assertEqual(output["audio_base64"], Artifact("audio_base64.wav", "audio/wav", WAV))

    def test_a_suffixed_key_that_holds_no_string_is_left_alone(self):
        self.assertEqual(bridge.output_of({"x_base64": None, "y_b64": 3, "_base64": "abc"}),
                         {"x_base64": None, "y_b64": 3, "_base64": "abc"})

    def test_a_suffixed_key_that_is_not_base64_fails_without_retry(self):
        with self.assertRaises(TaskError) as caught:
            bridge.output_of({"audio_base64": "not base64!"})
        self.assertEqual((caught.exception.code, caught.exception.retryable), ("celery_bad_result", False))
        self.assertIn("'audio_base64'", caught.exception.message)

    def test_raw_bytes_become_artifacts_where_they_are(self):
        output = bridge.output_of({"audio": WAV, "images": [PNG, bytearray(JPEG)], "raw": b"\x00\x01"})
        self.assertEqual(output["audio"], Artifact("audio.wav", "audio/wav", WAV))
        self.assertEqual([a.name for a in output["images"]], ["images-0.png", "images-1.jpg"])
        self.assertEqual(output["raw"], Artifact("raw", "application/octet-stream", b"\x00\x01"))

    def test_kombu_5_3_json_bytes_become_artifacts(self):
        output = bridge.output_of({"audio": {"__type__": "base64", "__value__": b64(WAV)},
                                   "note": {"__type__": "bytes", "__value__": "plain text"},
                                   "other": {"__type__": "datetime", "__value__": "2026-01-01T00:00:00"}})
        self.assertEqual(output["audio"], Artifact("audio.wav", "audio/wav", WAV))
        self.assertEqual(output["note"], Artifact("note", "application/octet-stream", b"plain text"))
        self.assertEqual(output["other"], {"__type__": "datetime", "__value__": "2026-01-01T00:00:00"})

    def test_artifact_names_are_unique_and_valid(self):
        output = bridge.output_of({"a b/c": PNG, "a_b_c": PNG, ".hidden": b"x", "z" * 150: b"y"})
        names = [a.name for a in output.values()]
        self.assertEqual(names[:3], ["a_b_c.png", "a_b_c-2.png", "hidden"])
        self.assertLessEqual(len(names[3]), 100)
        self.assertEqual(len(set(names)), 4)

    def test_a_key_that_is_no_string_fails(self):
        with self.assertRaisesRegex(TaskError, "JSON keys are strings"):
            bridge.output_of({"ok": {1: "x"}})


class SniffTests(unittest.TestCase):
    def test_known_signatures(self):
        cases = {WAV: "audio/wav", PNG: "image/png", JPEG: "image/jpeg", b"GIF89a...": "image/gif",
                 b"RIFF\x00\x00\x00\x00WEBPVP8 ": "image/webp", b"OggS\x00": "audio/ogg", b"fLaC\x00": "audio/flac",
                 b"ID3\x04": "audio/mpeg"}
        for data, content_type in cases.items():
            with self.subTest(content_type):
                self.assertEqual(bridge.sniff(data), content_type)

    def test_anything_else_is_octet_stream(self):
        for data in (b"", b"RIFF", b"RIFF\x00\x00\x00\x00AVI ", b"hello", b"\x89PN"):
            self.assertEqual(bridge.sniff(data), "application/octet-stream")


class FailureTests(unittest.TestCase):
    def test_an_exception_is_retryable_by_default(self):
        error = bridge.failure_of("RuntimeError", ("CUDA out of memory",))
        self.assertEqual((error.code, error.message, error.retryable),
                         ("celery_task_failed", "RuntimeError: CUDA out of memory", True))

    def test_exceptions_that_mean_bad_input_are_not_retried(self):
        for name in ("ValueError", "TypeError", "KeyError", "ValidationError"):
            with self.subTest(name):
                self.assertFalse(bridge.failure_of(name, ["bad prompt"]).retryable)

    def test_a_dict_with_retryable_in_the_args_decides_with_its_code_and_message(self):
        error = bridge.failure_of("ModelMissing", ({"retryable": False, "code": "model_missing",
                                                    "message": "no such model"},))
        self.assertEqual((error.code, error.message, error.retryable),
                         ("model_missing", "ModelMissing: no such model", False))
        # It wins over the class name, both ways.
        self.assertTrue(bridge.failure_of("ValueError", ("busy", {"retryable": True})).retryable)

    def test_a_bad_code_in_the_dict_is_replaced(self):
        error = bridge.failure_of("RuntimeError", ({"retryable": False, "code": "has spaces", "message": 3},))
        self.assertEqual(error.code, "celery_task_failed")
        self.assertFalse(error.retryable)

    def test_a_lost_pool_process_is_retried_as_worker_lost(self):
        error = bridge.failure_of("WorkerLostError", ("Worker exited prematurely: signal 9 (SIGKILL).",))
        self.assertEqual((error.code, error.retryable), ("celery_worker_lost", True))
        self.assertIn("signal 9", error.message)

    def test_messages_are_cut(self):
        error = bridge.failure_of("RuntimeError", ("x" * 50_000,))
        self.assertEqual(len(error.message), bridge.MAX_MESSAGE)

    def test_no_args_and_several_args(self):
        self.assertEqual(bridge.failure_of("Boom", ()).message, "Boom: (no message)")
        self.assertEqual(bridge.failure_of("Boom", ("a", 2)).message, "Boom: a, 2")


class HelperTests(unittest.TestCase):
    def test_progress_from_a_custom_states_meta(self):
        self.assertEqual(bridge.progress_of({"progress": 0.4, "message": "step 4/10"}), (0.4, "step 4/10"))
        self.assertEqual(bridge.progress_of({"progress": 3}), (1.0, None))
        for meta in (None, {"message": "x"}, {"progress": True}, {"progress": "0.5"}, {"progress": float("nan")},
                     {"pid": 12, "hostname": "w1"}):
            self.assertIsNone(bridge.progress_of(meta))

    def test_passwords_are_hidden_from_logs(self):
        self.assertEqual(bridge.redact(BROKER), "redis://:***@redis-host:6379/1")
        self.assertEqual(bridge.redact("amqp://user:pw@rabbit//"), "amqp://user:***@rabbit//")
        self.assertEqual(bridge.redact("redis://redis-host:6379/0"), "redis://redis-host:6379/0")


# --- the backend's loop, on a stand-in for Celery's app ---


class FakeResults:
    """The result backend: get_task_meta answers from a script (the last entry repeats); an exception
    in the script is raised."""

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.reads = 0

    def get_task_meta(self, task_id: str) -> dict[str, Any]:
        self.reads += 1
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, BaseException):
            raise item
        return item


class FakeInspect:
    def __init__(self, app: FakeApp, destination: list[str] | None) -> None:
        self.app = app
        self.destination = destination

    def query_task(self, task_id: str) -> dict[str, Any]:
        self.app.queries.append(self.destination)
        holders = self.app.holders(task_id)
        return {node: {task_id: ["active", {}]} for node in holders
                if self.destination is None or node in self.destination}


class FakeControl:
    def __init__(self, app: FakeApp) -> None:
        self.app = app

    def revoke(self, task_id: str, terminate: bool = False, signal: str | None = None) -> None:
        self.app.revokes.append((task_id, terminate, signal))

    def inspect(self, timeout: float = 1.0, destination: list[str] | None = None, limit: int | None = None) -> Any:
        return FakeInspect(self.app, destination)


class FakeApp:
    def __init__(self, script: list[Any], holders: Any = lambda task_id: [], send_error: Exception | None = None):
        self.backend = FakeResults(script)
        self.control = FakeControl(self)
        self.holders = holders
        self.send_error = send_error
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.revokes: list[tuple[str, bool, str | None]] = []
        self.queries: list[list[str] | None] = []

    def send_task(self, name: str, **options: Any) -> None:
        if self.send_error is not None:
            raise self.send_error
        self.sent.append((name, options))


class FakeContext:
    def __init__(self, stop_after_reads: int | None = None, results: FakeResults | None = None) -> None:
        self.progress_reports: list[tuple[float, str | None]] = []
        self.lines: list[str] = []
        self._stop_after = stop_after_reads
        self._results = results

    def progress(self, progress: float, message: str | None = None) -> None:
        self.progress_reports.append((progress, message))

    def chunk(self, text: str) -> None:
        raise AssertionError("the bridge streams no chunks")

    def log(self, line: str) -> None:
        self.lines.append(line)

    def stopped(self) -> bool:
        return self._stop_after is not None and self._results.reads >= self._stop_after


SETTINGS = CelerySettings(BROKER, RESULTS, "gpu_queue", "app.tasks.run_{type}_inference")
TASK = {"task_id": "t1", "lease_token": "l", "type": "tts", "model": None, "input": {"text": "hi"}, "attempt": 1,
        "timeout_seconds": 30}
PROGRESS = {"status": "PROGRESS", "result": {"progress": 0.5, "message": "half"}}
PENDING = {"status": "PENDING", "result": None}


def success(value: Any) -> dict[str, Any]:
    return {"status": "SUCCESS", "result": value}


class BackendTests(unittest.TestCase):
    def setUp(self) -> None:
        for name, value in (("POLL_SECONDS", 0.001), ("HOLDER_CHECK_SECONDS", 0.01), ("RECHECK_SECONDS", 0.01),
                            ("UNREACHABLE_SECONDS", 0.05)):
            patcher = mock.patch.object(bridge, name, value)
            patcher.start()
            self.addCleanup(patcher.stop)

    def run_task(self, app: FakeApp, task: dict[str, Any] = TASK, ctx: FakeContext | None = None) -> Any:
        return bridge.CeleryBackend(SETTINGS, app).run(task, ctx or FakeContext())

    def test_sends_the_task_then_relays_progress_and_returns_the_result_as_output(self):
        app = FakeApp([PENDING, PROGRESS, PROGRESS, success({"audio_base64": b64(WAV), "voice": "x"})])
        ctx = FakeContext()
        output = self.run_task(app, ctx=ctx)
        self.assertEqual(output, {"audio": Artifact("audio.wav", "audio/wav", WAV), "voice": "x"})
        name, options = app.sent[0]
        self.assertEqual(name, "app.tasks.run_tts_inference")
        self.assertEqual(options["kwargs"], {"task_id": "t1", "type": "tts", "input": {"text": "hi"}, "model": None})
        self.assertEqual((options["task_id"], options["queue"], options["expires"]), ("t1", "gpu_queue", 30.0))
        # One report per change: queued, then the task's own.
        self.assertEqual(ctx.progress_reports, [(0.0, "queued in Celery (gpu_queue)"), (0.5, "half")])
        self.assertIn("celery: sent app.tasks.run_tts_inference as t1 to queue gpu_queue", ctx.lines)
        self.assertEqual(app.revokes, [])

    def test_a_retry_is_sent_under_its_own_celery_id_with_the_plain_task_id_as_kwarg(self):
        app = FakeApp([success({"text": "ok"})])
        self.run_task(app, {**TASK, "type": "llm", "attempt": 2})
        name, options = app.sent[0]
        self.assertEqual((name, options["task_id"], options["kwargs"]["task_id"]),
                         ("app.tasks.run_llm_inference", "t1.2", "t1"))

    def test_a_stop_revokes_with_sigkill_and_raises_task_stopped(self):
        app = FakeApp([PROGRESS])
        results = app.backend
        with self.assertRaises(TaskStopped):
            self.run_task(app, ctx=FakeContext(stop_after_reads=3, results=results))
        self.assertEqual(app.revokes, [("t1", True, "SIGKILL")])

    def test_a_task_stopped_before_it_is_sent_is_not_sent(self):
        app = FakeApp([PENDING])
        with self.assertRaises(TaskStopped):
            self.run_task(app, ctx=FakeContext(stop_after_reads=0, results=app.backend))
        self.assertEqual((app.sent, app.revokes), ([], []))

    def test_a_failure_fails_the_attempt_with_the_traceback_in_the_log(self):
        failure = {"status": "FAILURE", "result": ValueError("bad prompt"),
                   "traceback": "Traceback (most recent call last):\n  File x\nValueError: bad prompt\n"}
        ctx = FakeContext()
        with self.assertRaises(TaskError) as caught:
            self.run_task(FakeApp([PROGRESS, failure]), ctx=ctx)
        self.assertEqual((caught.exception.code, caught.exception.message, caught.exception.retryable),
                         ("celery_task_failed", "ValueError: bad prompt", False))
        self.assertIn("Traceback (most recent call last):\n  File x\nValueError: bad prompt", ctx.lines)

    def test_a_failure_in_its_stored_form_is_read_too(self):
        failure = {"status": "FAILURE", "result": {"exc_type": "RuntimeError", "exc_message": ["oom"]}}
        with self.assertRaises(TaskError) as caught:
            self.run_task(FakeApp([failure]))
        self.assertEqual((caught.exception.message, caught.exception.retryable), ("RuntimeError: oom", True))

    def test_a_revoke_from_the_celery_side_fails_without_retry(self):
        with self.assertRaises(TaskError) as caught:
            self.run_task(FakeApp([PROGRESS, {"status": "REVOKED", "result": None}]))
        self.assertEqual((caught.exception.code, caught.exception.retryable), ("celery_revoked", False))

    def test_a_broker_that_cannot_be_reached_fails_the_attempt_retryable_without_the_password(self):
        app = FakeApp([PENDING], send_error=ConnectionRefusedError(f"Error 111 connecting to {BROKER}"))
        with self.assertRaises(TaskError) as caught:
            self.run_task(app)
        self.assertEqual((caught.exception.code, caught.exception.retryable), ("celery_unreachable", True))
        self.assertIn("could not send the task to the Celery deployment: ConnectionRefusedError", caught.exception.message)
        self.assertNotIn("s3cret", caught.exception.message)

    def test_result_backend_errors_are_borne_a_while(self):
        app = FakeApp([PENDING, ConnectionError("blip"), ConnectionError("blip"), success({"text": "ok"})])
        self.assertEqual(self.run_task(app), {"text": "ok"})

    def test_a_result_backend_that_stays_unreachable_fails_the_attempt_retryable_and_revokes(self):
        app = FakeApp([PENDING, ConnectionError("Connection refused")])
        with self.assertRaises(TaskError) as caught:
            self.run_task(app)
        self.assertEqual((caught.exception.code, caught.exception.retryable), ("celery_unreachable", True))
        self.assertIn("read the task's result", caught.exception.message)
        self.assertEqual(app.revokes, [("t1", True, "SIGKILL")])

    def test_a_worker_that_held_the_task_and_is_gone_fails_it_as_worker_lost(self):
        gone = threading.Event()
        app = FakeApp([PROGRESS], holders=lambda task_id: [] if gone.is_set() else ["celery@gpu-1"])
        ctx = FakeContext()
        original = bridge._HolderWatch._find

        def find(watch: Any) -> str | None:
            found = original(watch)
            if found is not None:
                gone.set()  # seen once, then the worker vanishes
            return found

        with mock.patch.object(bridge._HolderWatch, "_find", find), self.assertRaises(TaskError) as caught:
            self.run_task(app, ctx=ctx)
        self.assertEqual((caught.exception.code, caught.exception.retryable), ("celery_worker_lost", True))
        self.assertIn("celery@gpu-1", caught.exception.message)
        self.assertIn("celery: t1 taken by celery@gpu-1", ctx.lines)
        self.assertEqual(app.revokes, [("t1", True, "SIGKILL")])
        # Once seen, its holder is asked first, then everyone.
        self.assertIn(["celery@gpu-1"], app.queries)
        self.assertIn(None, app.queries)

    def test_a_worker_killed_before_any_check_saw_it_is_lost_too_once_the_task_reported_running(self):
        # No worker ever answers for it, but its PROGRESS state says one ran it.
        app = FakeApp([PENDING, PROGRESS])
        with self.assertRaises(TaskError) as caught:
            self.run_task(app)
        self.assertEqual((caught.exception.code, caught.exception.retryable), ("celery_worker_lost", True))
        self.assertTrue(caught.exception.message.startswith("the Celery worker that ran task t1 is gone"),
                        caught.exception.message)

    def test_a_task_nobody_has_taken_yet_is_not_lost(self):
        reads = {"n": 0}
        app = FakeApp([PENDING] * 200 + [success({"text": "late"})])
        app.holders = lambda task_id: reads.__setitem__("n", reads["n"] + 1) or []
        self.assertEqual(self.run_task(app), {"text": "late"})
        self.assertGreater(reads["n"], MISSES)

    def test_a_worker_that_answers_keeps_the_task_alive(self):
        app = FakeApp([PROGRESS] * 100 + [success({"text": "done"})], holders=lambda task_id: ["celery@gpu-1"])
        self.assertEqual(self.run_task(app), {"text": "done"})
        self.assertIn(["celery@gpu-1"], app.queries)

    def test_a_result_that_came_as_the_worker_went_wins_over_lost(self):
        app = FakeApp([PROGRESS])
        backend = bridge.CeleryBackend(SETTINGS, app)
        watch = bridge._HolderWatch(app, "t1")
        watch.holder, watch.lost = "celery@gpu-1", True
        app.backend.script = [PROGRESS, success({"text": "just in time"})]
        self.assertEqual(backend._follow("t1", FakeContext(), watch), {"text": "just in time"})
        self.assertEqual(app.revokes, [])


MISSES = bridge.MISSES_FOR_LOST

if __name__ == "__main__":
    unittest.main()
