"""The transformers backend without the library: model lookup, input mapping, prompts, stop
strings, and its generation loop (streaming, stop strings, cancel, usage) on stand-ins for torch and
transformers (fake_hf/). No test here needs torch or transformers (they are not installed where CI
runs); a real model was tried on a GPU machine by hand (see the README)."""

import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
import unittest
from unittest import mock

from helpers import WAIT_SECONDS
from taskmanager_worker.backends import REGISTRY, InvalidInput, TaskError, TaskStopped
from taskmanager_worker.backends.transformers_llm import (
    Generation, StopCutter, TransformersBackend, build_prompt, dtype_keyword, finish_reason, join_messages,
    parse_generation, resolve_model)

WORKER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_hf")


class AvailabilityTests(unittest.TestCase):
    @unittest.skipIf(importlib.util.find_spec("transformers"), "transformers is installed here")
    def test_without_the_library_it_says_so_in_one_line(self):
        self.assertEqual(REGISTRY["transformers"].available(),
                         "transformers backend unavailable: cannot import 'transformers' (No module named "
                         "'transformers'); install it with: pip install torch transformers")

    def test_importing_the_backend_imports_neither_torch_nor_transformers(self):
        script = ("import sys, taskmanager_worker.backends.transformers_llm as m; m.TransformersBackend(); "
                  "print(sorted(n for n in ('torch', 'transformers') if n in sys.modules))")
        result = subprocess.run([sys.executable, "-c", script], cwd=WORKER_DIR, capture_output=True, text=True,
                                timeout=WAIT_SECONDS)
        self.assertEqual((result.returncode, result.stdout.strip()), (0, "[]"), result.stderr)

    def test_a_task_without_a_model_is_invalid_before_any_import(self):
        with self.assertRaises(InvalidInput) as caught:
            TransformersBackend().load(None)
        self.assertIn("must name its model", caught.exception.message)

    def test_running_with_no_model_loaded_is_a_backend_error(self):
        with self.assertRaises(TaskError):
            TransformersBackend().run({"task_id": "t", "type": "llm", "input": {"prompt": "hi"}}, None)

    def test_it_reports_no_model_until_one_is_loaded(self):
        self.assertIsNone(TransformersBackend().loaded_model)


class ResolveModelTests(unittest.TestCase):
    def setUp(self):
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.models = directory.name
        os.makedirs(os.path.join(self.models, "tiny-llama"))
        os.makedirs(os.path.join(self.models, "org", "name"))

    def test_a_folder_in_the_model_dir_wins(self):
        self.assertEqual(resolve_model("tiny-llama", self.models), os.path.realpath(os.path.join(self.models, "tiny-llama")))
        self.assertEqual(resolve_model("org/name", self.models), os.path.realpath(os.path.join(self.models, "org", "name")))

    def test_otherwise_a_hugging_face_id_goes_to_the_cache(self):
        self.assertEqual(resolve_model("Qwen/Qwen2.5-0.5B-Instruct", self.models), "Qwen/Qwen2.5-0.5B-Instruct")
        self.assertEqual(resolve_model("gpt2", None), "gpt2")

    def test_an_absolute_path_to_a_folder_is_used_as_it_is(self):
        path = os.path.join(self.models, "tiny-llama")
        self.assertEqual(resolve_model(path, None), path)
        with self.assertRaises(InvalidInput):
            resolve_model(os.path.join(self.models, "missing"), None)

    def test_a_name_cannot_walk_out_of_the_model_dir(self):
        self.assertTrue(os.path.isdir(os.path.join(self.models, "org", "..", "tiny-llama")))
        for name in ("../tiny-llama", ".", "org/../../x", "./tiny-llama"):
            with self.subTest(name=name), self.assertRaises(InvalidInput):
                resolve_model(name, os.path.join(self.models, "org"))

    def test_no_name_is_invalid_input(self):
        for name in (None, "", "  "):
            with self.subTest(name=name), self.assertRaises(InvalidInput):
                resolve_model(name, self.models)


class GenerationTests(unittest.TestCase):
    def test_defaults(self):
        settings = parse_generation({"prompt": "hi"})
        self.assertEqual(settings, Generation(256, None, None, (), False))
        self.assertEqual(settings.generate_kwargs(), {"max_new_tokens": 256}, "the model's own sampling settings")

    def test_temperature_zero_is_greedy(self):
        kwargs = parse_generation({"max_tokens": 5, "temperature": 0, "top_p": 0.9}).generate_kwargs()
        self.assertEqual(kwargs, {"max_new_tokens": 5, "do_sample": False})

    def test_top_p_zero_is_greedy_too(self):
        self.assertEqual(parse_generation({"top_p": 0}).generate_kwargs(), {"max_new_tokens": 256, "do_sample": False})

    def test_temperature_and_top_p_sample(self):
        kwargs = parse_generation({"max_tokens": 42, "temperature": 0.7, "top_p": 0.9}).generate_kwargs()
        self.assertEqual(kwargs, {"max_new_tokens": 42, "do_sample": True, "temperature": 0.7, "top_p": 0.9})
        self.assertEqual(parse_generation({"top_p": 0.5}).generate_kwargs(),
                         {"max_new_tokens": 256, "do_sample": True, "top_p": 0.5})

    def test_stop_is_a_string_or_a_list_and_stream_a_flag(self):
        self.assertEqual(parse_generation({"stop": "\n"}).stop, ("\n",))
        self.assertEqual(parse_generation({"stop": ["a", "bc"], "stream": True}).stop, ("a", "bc"))
        self.assertTrue(parse_generation({"stream": True}).stream)

    def test_bad_values_are_invalid_input(self):
        for task_input in ({"max_tokens": 0}, {"max_tokens": "5"}, {"max_tokens": True}, {"temperature": -1},
                           {"top_p": 1.5}, {"stop": 3}, {"stop": [""]}, {"stop": ["a", 1]}, {"stream": "yes"}):
            with self.subTest(task_input=task_input), self.assertRaises(InvalidInput):
                parse_generation(task_input)


class FakeTokenizer:
    def __init__(self, chat_template=None):
        self.chat_template = chat_template
        self.calls = []

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        self.calls.append((messages, tokenize, add_generation_prompt))
        return "<s>" + "".join(f"<|{m['role']}|>{m['content']}" for m in messages) + "<|assistant|>"


class PromptTests(unittest.TestCase):
    MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]

    def test_a_prompt_is_used_as_it_is(self):
        self.assertEqual(build_prompt({"prompt": "Once upon"}, FakeTokenizer("tmpl")), ("Once upon", False))

    def test_messages_go_through_the_chat_template_when_the_tokenizer_has_one(self):
        tokenizer = FakeTokenizer("{% for m in messages %}...{% endfor %}")
        text, templated = build_prompt({"messages": self.MESSAGES}, tokenizer)
        self.assertEqual((text, templated), ("<s><|system|>Be brief.<|user|>Hi?<|assistant|>", True))
        self.assertEqual(tokenizer.calls, [(self.MESSAGES, False, True)])

    def test_without_a_template_messages_become_role_lines(self):
        self.assertEqual(join_messages(self.MESSAGES), "system: Be brief.\nuser: Hi?\nassistant:")
        self.assertEqual(build_prompt({"messages": self.MESSAGES}, FakeTokenizer(None)),
                         ("system: Be brief.\nuser: Hi?\nassistant:", False))

    def test_neither_or_bad_messages_are_invalid_input(self):
        for task_input in ({}, {"prompt": ""}, {"messages": []}, {"messages": [{"role": "user"}]},
                           {"messages": "hi"}):
            with self.subTest(task_input=task_input), self.assertRaises(InvalidInput):
                build_prompt(task_input, FakeTokenizer())


class StopCutterTests(unittest.TestCase):
    def feed(self, stops, pieces):
        cutter = StopCutter(stops)
        emitted = [cutter.feed(piece) for piece in pieces] + [cutter.finish()]
        self.assertEqual("".join(emitted), cutter.text, "the chunks add up to the text")
        return cutter, [piece for piece in emitted if piece]

    def test_without_stops_everything_passes_at_once(self):
        cutter, emitted = self.feed((), ["Hel", "lo", " world"])
        self.assertEqual((cutter.text, emitted, cutter.stopped), ("Hello world", ["Hel", "lo", " world"], False))

    def test_cuts_at_the_first_stop_string(self):
        cutter, _ = self.feed(("\n\n", "END"), ["one two", " END three", "\n\nfour"])
        self.assertEqual((cutter.text, cutter.stopped), ("one two ", True))

    def test_a_stop_string_split_over_pieces_never_reaches_a_chunk(self):
        cutter, emitted = self.feed(("STOP",), ["abc S", "T", "OP def"])
        self.assertEqual(cutter.text, "abc ")
        self.assertTrue(all("S" not in piece for piece in emitted), emitted)

    def test_a_false_start_is_let_out_once_it_cannot_be_a_stop(self):
        cutter = StopCutter(("STOP",))
        self.assertEqual(cutter.feed("abc ST"), "abc ")
        self.assertEqual(cutter.feed("ART"), "START")
        self.assertEqual(cutter.finish(), "")
        self.assertFalse(cutter.stopped)

    def test_held_text_comes_out_at_the_end(self):
        cutter = StopCutter(("STOP",))
        self.assertEqual(cutter.feed("the end ST"), "the end ")
        self.assertEqual(cutter.finish(), "ST")
        self.assertEqual(cutter.text, "the end ST")

    def test_the_earliest_of_several_stops_wins(self):
        cutter, _ = self.feed(("b", "a"), ["xxab"])
        self.assertEqual(cutter.text, "xx")

    def test_nothing_is_emitted_after_a_stop(self):
        cutter = StopCutter(("!",))
        self.assertEqual(cutter.feed("hi!"), "hi")
        self.assertEqual((cutter.feed("more"), cutter.finish()), ("", ""))


class FinishReasonTests(unittest.TestCase):
    def test_reasons(self):
        self.assertEqual(finish_reason(10, 10, False, False), "length")
        self.assertEqual(finish_reason(10, 10, False, True), "stop", "the end-of-sequence token came last")
        self.assertEqual(finish_reason(4, 10, True, False), "stop")
        self.assertEqual(finish_reason(4, 10, False, True), "stop")

    def test_the_dtype_keyword_follows_the_transformers_version(self):
        self.assertEqual(dtype_keyword("4.45.2"), "torch_dtype")
        self.assertEqual(dtype_keyword("4.56.0"), "dtype")
        self.assertEqual(dtype_keyword("5.17.0"), "dtype")
        self.assertEqual(dtype_keyword("4.57.0.dev0"), "dtype")


class Context:
    """A TaskContext; asks the task to stop once `stop_after_chunks` chunks have come."""

    def __init__(self, stop_after_chunks=None):
        self.chunks, self.logs, self.progress_calls = [], [], []
        self._stop = threading.Event()
        self._stop_after = stop_after_chunks

    def progress(self, progress, message=None):
        self.progress_calls.append((progress, message))

    def chunk(self, text):
        self.chunks.append(text)
        if self._stop_after is not None and len(self.chunks) >= self._stop_after:
            self._stop.set()

    def log(self, line):
        self.logs.append(line)

    def stopped(self):
        return self._stop.is_set()


class GenerationLoopTests(unittest.TestCase):
    """The backend on fake_hf's torch and transformers: a "model" that says a fixed script."""

    def setUp(self):
        patcher = mock.patch.dict(sys.modules)  # the fakes leave with the test
        patcher.start()
        self.addCleanup(patcher.stop)
        for name in ("torch", "transformers"):
            spec = importlib.util.spec_from_file_location(name, os.path.join(FAKE_DIR, f"{name}.py"))
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        self.torch, self.hf = sys.modules["torch"], sys.modules["transformers"]
        environment = mock.patch.dict(os.environ)
        environment.start()
        self.addCleanup(environment.stop)
        os.environ.pop("TASKMANAGER_MODEL_DIR", None)
        self.backend = TransformersBackend()

    def run_task(self, ctx=None, model="talker", **task_input):
        self.backend.load(model)
        ctx = ctx or Context()
        task = {"task_id": "t1", "type": "llm", "model": model, "input": task_input or {"prompt": "hi there"}}
        return self.backend.run(task, ctx), ctx

    def test_streams_the_text_and_reports_usage_and_the_model(self):
        output, ctx = self.run_task(prompt="hi there", max_tokens=100, stream=True)
        self.assertEqual(output, {"text": "Hello world, this is STOP and more words", "finish_reason": "stop",
                                  "usage": {"prompt_tokens": 2, "completion_tokens": 9}, "model": "talker"})
        self.assertEqual("".join(ctx.chunks), output["text"])
        self.assertGreater(len(ctx.chunks), 1)
        self.assertRegex(ctx.logs[0], r"^loaded model 'talker' from talker on cpu \(float32\) in [\d.]+ s$")
        self.assertRegex(ctx.logs[-1], r"^generated 9 tokens in [\d.]+ s .*finish_reason stop$")
        self.assertEqual(self.hf.loads, [("talker", {"trust_remote_code": False, "dtype": self.torch.float32})])

    def test_without_stream_nothing_is_chunked(self):
        output, ctx = self.run_task(prompt="hi", max_tokens=100)
        self.assertEqual((output["text"], ctx.chunks), ("Hello world, this is STOP and more words", []))

    def test_max_tokens_ends_with_length(self):
        output, _ = self.run_task(prompt="hi", max_tokens=3, stream=True)
        self.assertEqual((output["text"], output["finish_reason"], output["usage"]["completion_tokens"]),
                         ("Hello world, this", "length", 3))

    def test_a_stop_string_cuts_the_text_and_the_chunks(self):
        output, ctx = self.run_task(prompt="hi", max_tokens=100, stop=["STOP"], stream=True)
        self.assertEqual((output["text"], output["finish_reason"]), ("Hello world, this is ", "stop"))
        self.assertEqual("".join(ctx.chunks), output["text"])

    def test_messages_without_a_chat_template_become_role_lines(self):
        output, _ = self.run_task(messages=[{"role": "user", "content": "hi"}], max_tokens=1)
        self.assertEqual(output["usage"]["prompt_tokens"], 3, "user: hi assistant:")

    def test_a_stop_request_ends_generation_between_tokens(self):
        ctx = Context(stop_after_chunks=3)
        with self.assertRaises(TaskStopped):
            self.run_task(ctx, model="endless", prompt="sing", max_tokens=100_000, stream=True)
        self.assertLess(len(ctx.chunks), 100, "it stopped within a few tokens")

    def test_a_stop_on_cuda_returns_the_generation_memory_and_keeps_the_model(self):
        self.torch.cuda.available = True
        ctx = Context(stop_after_chunks=3)
        with self.assertRaises(TaskStopped):
            self.run_task(ctx, model="endless", prompt="sing", max_tokens=100_000, stream=True)
        self.assertEqual(self.torch.cuda.empty_cache_calls, 1, "the cache went back to the driver")
        self.assertEqual(self.backend.loaded_model, "endless", "the model stays for the next task")

    def test_a_finished_task_leaves_the_cache_alone(self):
        self.torch.cuda.available = True
        self.run_task(prompt="hi", max_tokens=2)
        self.assertEqual(self.torch.cuda.empty_cache_calls, 0)

    def test_the_model_stays_loaded_and_a_new_one_replaces_it(self):
        self.run_task(prompt="hi")
        self.run_task(prompt="hi again")
        self.assertEqual(len(self.hf.loads), 1, "loaded once for both tasks")
        self.backend.load("endless")
        self.assertEqual((self.backend.loaded_model, len(self.hf.loads)), ("endless", 2))
        self.backend.unload()
        self.assertIsNone(self.backend.loaded_model)

    def test_a_model_that_cannot_load_is_a_retryable_backend_error(self):
        with self.assertRaises(TaskError) as caught:
            self.backend.load("nope")
        self.assertEqual((caught.exception.code, caught.exception.retryable), ("backend_error", True))
        self.assertIn("cannot load model 'nope'", caught.exception.message)
        self.assertIsNone(self.backend.loaded_model)

    def test_the_model_dir_is_looked_in_first(self):
        with tempfile.TemporaryDirectory() as directory:
            os.makedirs(os.path.join(directory, "talker"))
            os.environ["TASKMANAGER_MODEL_DIR"] = directory
            self.backend.load("talker")
        self.assertEqual(self.hf.loads[0][0], os.path.join(os.path.realpath(directory), "talker"))

    def test_on_cuda_it_loads_in_float16_and_frees_the_cache_on_unload(self):
        self.torch.cuda.available = True
        output, ctx = self.run_task(prompt="hi", max_tokens=2)
        self.assertEqual(self.hf.loads[0][1]["dtype"], self.torch.float16)
        self.assertIn("on cuda (float16)", ctx.logs[0])
        self.assertIn("CUDA memory allocated 123 MiB", ctx.logs[0])
        self.backend.unload()
        self.assertEqual(self.torch.cuda.empty_cache_calls, 1)

    def test_older_transformers_get_torch_dtype(self):
        self.hf.__version__ = "4.45.0"
        self.backend.load("talker")
        self.assertIn("torch_dtype", self.hf.loads[0][1])


if __name__ == "__main__":
    unittest.main()
