import base64
import os
import time
import unittest
from unittest import mock

from helpers import read_png, read_wav
from taskmanager_worker.backends import Artifact, InvalidInput, TaskError, TaskStopped
from taskmanager_worker.backends.sim import PNG_MAX_SIDE, WAV_MAX_SECONDS, SimBackend


class FakeContext:
    def __init__(self, stop_after_progress: int | None = None):
        self.progress_calls = []
        self.chunks = []
        self.logs = []
        self._stop_after = stop_after_progress

    def progress(self, progress, message=None):
        self.progress_calls.append((progress, message))

    def chunk(self, text):
        self.chunks.append(text)

    def log(self, line):
        self.logs.append(line)

    def stopped(self):
        return self._stop_after is not None and len(self.progress_calls) >= self._stop_after


def run(task_type, task_input, sim=None, ctx=None, attempt=1):
    backend = SimBackend()
    backend.load(None)
    task = {"task_id": "t1", "type": task_type, "input": task_input, "metadata": {"sim": sim} if sim else {},
            "attempt": attempt}
    return backend.run(task, ctx or FakeContext())


class LlmTests(unittest.TestCase):
    def test_output_has_text_finish_reason_and_usage(self):
        output = run("llm", {"prompt": "Tell me a story about a cat"})
        self.assertTrue(output["text"])
        self.assertIn(output["finish_reason"], ("stop", "length"))
        self.assertGreater(output["usage"]["prompt_tokens"], 0)
        self.assertEqual(output["usage"]["completion_tokens"], len(output["text"].split()))
        self.assertTrue(output["simulated"])

    def test_max_tokens_caps_the_answer(self):
        output = run("llm", {"prompt": "hi", "max_tokens": 3})
        self.assertEqual(output["usage"]["completion_tokens"], 3)
        self.assertEqual(output["finish_reason"], "length")

    def test_messages_count_as_the_prompt(self):
        output = run("llm", {"messages": [{"role": "user", "content": "x" * 400}]})
        self.assertEqual(output["usage"]["prompt_tokens"], 100)

    def test_stream_emits_one_chunk_per_token_that_add_up_to_the_text(self):
        ctx = FakeContext()
        output = run("llm", {"prompt": "hi", "stream": True}, ctx=ctx)
        self.assertEqual(len(ctx.chunks), output["usage"]["completion_tokens"])
        self.assertEqual("".join(ctx.chunks), output["text"])

    def test_chunks_steering_emits_exactly_that_many_chunks(self):
        ctx = FakeContext()
        output = run("llm", {"prompt": "hi", "max_tokens": 2}, sim={"chunks": 7}, ctx=ctx)
        self.assertEqual(len(ctx.chunks), 7)
        self.assertTrue(all(ctx.chunks))
        self.assertEqual("".join(ctx.chunks), output["text"])

    def test_same_input_gives_same_output(self):
        self.assertEqual(run("llm", {"prompt": "same"}), run("llm", {"prompt": "same"}))

    def test_logs_a_line_marked_as_simulation(self):
        ctx = FakeContext()
        output = run("llm", {"prompt": "hi"}, ctx=ctx)
        self.assertEqual(ctx.logs, [f"SIMULATION: generating {output['usage']['completion_tokens']} tokens "
                                    "(model 'sim': nothing loaded, no GPU used)"])


class SdTests(unittest.TestCase):
    def test_images_are_png_artifacts_downscaled_to_at_most_64(self):
        ctx = FakeContext()
        output = run("sd", {"prompt": "a cat", "width": 1024, "height": 512, "num_images": 2, "seed": 7}, ctx=ctx)
        self.assertEqual(len(output["images"]), 2)
        self.assertIn("64x64", output["note"])
        for i, image in enumerate(output["images"]):
            self.assertIsInstance(image, Artifact)
            self.assertEqual((image.name, image.content_type), (f"image-{i}.png", "image/png"))
            width, height, scanlines = read_png(image.data)
            self.assertEqual((width, height), (image.meta["width"], image.meta["height"]))
            self.assertEqual((width, height), (PNG_MAX_SIDE, PNG_MAX_SIDE // 2))
            self.assertEqual(len(scanlines), height * (1 + 3 * width))
            self.assertEqual((image.meta["requested_width"], image.meta["requested_height"]), (1024, 512))
            self.assertEqual(image.meta["format"], "png")
            self.assertEqual(image.meta["seed"], 7 + i)
        self.assertEqual(len(ctx.logs), 1)
        self.assertTrue(ctx.logs[0].startswith("SIMULATION: drawing 2 gradient image(s) of 64x32"), ctx.logs)

    def test_small_request_is_not_upscaled(self):
        image = run("sd", {"prompt": "x", "width": 32, "height": 16})["images"][0]
        self.assertEqual(read_png(image.data)[:2], (32, 16))

    def test_no_base64_in_the_output(self):
        image = run("sd", {"prompt": "x"})["images"][0]
        self.assertFalse({"data_base64", "url", "bytes", "content_type"} & set(image.meta))


class TtsTests(unittest.TestCase):
    def wav(self, output):
        return read_wav(output["audio"].data)

    def test_audio_is_a_wav_artifact_of_the_stated_duration(self):
        ctx = FakeContext()
        output = run("tts", {"text": "Hello there, this is a test."}, ctx=ctx)
        self.assertEqual((output["audio"].name, output["audio"].content_type), ("audio.wav", "audio/wav"))
        self.assertEqual(output["audio"].meta, {})
        self.assertNotIn("audio_base64", output)
        channels, rate, seconds = self.wav(output)
        self.assertEqual((channels, rate, output["format"]), (1, output["sample_rate"], "wav"))
        self.assertAlmostEqual(seconds, output["duration_seconds"], places=2)
        self.assertFalse(output["truncated"])
        self.assertEqual(len(ctx.logs), 1)
        self.assertTrue(ctx.logs[0].startswith("SIMULATION: synthesizing"), ctx.logs)

    def test_duration_grows_with_text_and_shrinks_with_speed(self):
        short = run("tts", {"text": "a" * 15})["duration_seconds"]
        long = run("tts", {"text": "a" * 30})["duration_seconds"]
        fast = run("tts", {"text": "a" * 30, "speed": 2.0})["duration_seconds"]
        self.assertAlmostEqual(long, 2 * short, places=2)
        self.assertAlmostEqual(fast, short, places=2)

    def test_long_text_is_capped(self):
        output = run("tts", {"text": "word " * 1000})
        self.assertEqual(output["duration_seconds"], WAV_MAX_SECONDS)
        self.assertTrue(output["truncated"])


class ImageToTextTests(unittest.TestCase):
    def test_output_is_a_caption(self):
        output = run("image_to_text", {"image": base64.b64encode(b"not really an image").decode()})
        self.assertIsInstance(output["text"], str)
        self.assertGreater(len(output["text"]), 10)


class SteeringTests(unittest.TestCase):
    def test_fail_retryable_raises_retryable_sim_failure(self):
        with self.assertRaises(TaskError) as caught:
            run("llm", {"prompt": "x"}, sim={"fail": "retryable"})
        self.assertEqual((caught.exception.code, caught.exception.retryable), ("sim_failure", True))

    def test_fail_attempts_fails_only_the_first_attempts(self):
        sim = {"fail": "fatal", "fail_attempts": 2}
        for attempt in (1, 2):
            with self.assertRaises(TaskError):
                run("llm", {"prompt": "x"}, sim=sim, attempt=attempt)
        self.assertTrue(run("llm", {"prompt": "x"}, sim=sim, attempt=3)["text"])

    def test_fail_fatal_raises_non_retryable_sim_failure(self):
        with self.assertRaises(TaskError) as caught:
            run("sd", {"prompt": "x"}, sim={"fail": "fatal"})
        self.assertEqual((caught.exception.code, caught.exception.retryable), ("sim_failure", False))

    def test_duration_reports_progress_and_spreads_chunks(self):
        ctx = FakeContext()
        run("tts", {"text": "hi"}, sim={"duration_ms": 100, "chunks": 3}, ctx=ctx)
        self.assertGreater(len(ctx.progress_calls), 1)
        self.assertEqual(ctx.chunks, ["[sim tts chunk 1/3]", "[sim tts chunk 2/3]", "[sim tts chunk 3/3]"])
        self.assertTrue(all(0 <= p < 1 for p, _ in ctx.progress_calls))

    def test_logs_steering_spreads_extra_lines(self):
        ctx = FakeContext()
        run("llm", {"prompt": "hi"}, sim={"duration_ms": 50, "logs": 3}, ctx=ctx)
        self.assertEqual(ctx.logs[1:], [f"SIMULATION: log line {i}/3" for i in (1, 2, 3)])

    def test_a_requested_failure_is_logged(self):
        ctx = FakeContext()
        with self.assertRaises(TaskError):
            run("llm", {"prompt": "x"}, sim={"fail": "fatal"}, ctx=ctx)
        self.assertEqual(ctx.logs[-1], "SIMULATION: failing (fatal) as metadata.sim.fail asks")

    def test_stop_request_ends_the_task(self):
        with self.assertRaises(TaskStopped):
            run("llm", {"prompt": "x"}, sim={"duration_ms": 60_000}, ctx=FakeContext(stop_after_progress=2))

    def test_bad_steering_is_invalid_input(self):
        for sim in ({"duration_ms": -1}, {"fail": "sometimes"}, {"fail": "fatal", "fail_attempts": 0}, {"chunks": "3"}, {"hang": "yes"}, {"logs": -1}):
            with self.subTest(sim=sim), self.assertRaises(InvalidInput):
                run("llm", {"prompt": "x"}, sim=sim)

    def test_bad_input_is_invalid_input(self):
        with self.assertRaisesRegex(InvalidInput, "input.num_images"):
            run("sd", {"prompt": "x", "num_images": 0})


class TimedContext(FakeContext):
    """Notes when each chunk came, from the start of the run."""

    def __init__(self):
        super().__init__()
        self.start = time.monotonic()
        self.times = []

    def chunk(self, text):
        super().chunk(text)
        self.times.append(time.monotonic() - self.start)


class TokenPaceTests(unittest.TestCase):
    """TASKMANAGER_SIM_TOKENS_PER_SECOND paces llm tasks that metadata.sim does not time."""

    def run_paced(self, rate, task_input, sim=None, task_type="llm"):
        ctx = TimedContext()
        with mock.patch.dict(os.environ, {"TASKMANAGER_SIM_TOKENS_PER_SECOND": rate}):
            output = run(task_type, task_input, sim=sim, ctx=ctx)
        return output, ctx, time.monotonic() - ctx.start

    def test_tokens_come_one_by_one_at_the_rate(self):
        # max_tokens 10 caps the answer at 10 tokens: a second at 10 tokens a second.
        output, ctx, elapsed = self.run_paced("10", {"prompt": "hi", "max_tokens": 10, "stream": True})
        self.assertEqual(output["usage"]["completion_tokens"], 10)
        self.assertEqual("".join(ctx.chunks), output["text"])
        self.assertGreaterEqual(elapsed, 0.95)
        # Token i of 10 comes at about (i + 1) / 10 s: the first after about 0.1 s, not all at the end.
        self.assertGreaterEqual(ctx.times[0], 0.09)
        self.assertLess(ctx.times[0], 0.6)
        self.assertGreaterEqual(ctx.times[-1], 0.95)
        self.assertEqual(ctx.times, sorted(ctx.times))

    def test_without_the_setting_an_answer_comes_at_once(self):
        ctx = TimedContext()
        run("llm", {"prompt": "hi", "max_tokens": 10, "stream": True}, ctx=ctx)
        self.assertLess(ctx.times[-1], 0.5)

    def test_a_duration_in_metadata_wins(self):
        _, _, elapsed = self.run_paced("1", {"prompt": "hi", "max_tokens": 10}, sim={"duration_ms": 50})
        self.assertLess(elapsed, 2.0)

    def test_other_types_are_not_paced(self):
        _, _, elapsed = self.run_paced("1", {"text": "hi"}, task_type="tts")
        self.assertLess(elapsed, 0.5)


if __name__ == "__main__":
    unittest.main()
