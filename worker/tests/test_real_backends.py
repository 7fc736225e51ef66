"""The real backends (espeak, tesseract) in a real worker against the fake API: from lease to
uploaded artifact and reported output. CI installs the programs; skipped where they are missing."""

import base64
import shutil
import unittest

from helpers import read_wav
from taskmanager_worker.backends import REGISTRY
from test_tesseract import CONVERT, render
from test_worker import WorkerTestCase


@unittest.skipUnless(shutil.which("espeak-ng"), "espeak-ng is not installed (Debian: apt-get install espeak-ng)")
class EspeakWorkerTests(WorkerTestCase):
    def test_a_tts_task_uploads_real_speech(self):
        self.start_worker(TASKMANAGER_BACKEND="llm=sim,tts=espeak")
        task_id = self.api.add_task("tts", {"text": "Hello there, how are you today?", "speed": 1.0, "format": "wav"})
        report = self.api.final_report(task_id)
        self.assertEqual(report["kind"], "complete", report["body"])
        output = report["body"]["output"]
        content_type, data = self.api.artifacts[(task_id, "audio.wav")]
        self.assertEqual(output["audio"], {"url": f"/api/tasks/{task_id}/artifacts/audio.wav",
                                           "content_type": "audio/wav", "bytes": len(data)})
        self.assertEqual(content_type, "audio/wav")
        channels, rate, seconds = read_wav(data)
        self.assertEqual((channels, rate), (1, output["sample_rate"]))
        self.assertAlmostEqual(seconds, output["duration_seconds"], places=2)
        self.assertGreater(seconds, 1.0)
        self.assertNotIn("simulated", output)
        # Its log lines reach the API, in a progress report or with the result.
        logs = [line for call in self.api.calls("progress", task_id) + self.api.calls("complete", task_id)
                for line in call["body"].get("logs", [])]
        self.assertTrue(any(line.startswith("espeak-ng: ") for line in logs), logs)

    def test_mp3_fails_for_good(self):
        self.start_worker(TASKMANAGER_BACKEND="llm=sim,tts=espeak")
        task_id = self.api.add_task("tts", {"text": "hello", "format": "mp3"})
        body = self.api.final_report(task_id)["body"]
        self.assertEqual((body["error"]["code"], body["retryable"]), ("invalid_input", False))


@unittest.skipUnless(REGISTRY["tesseract"].available() is None and CONVERT,
                     "tesseract (with 'eng') or ImageMagick is not installed")
class TesseractWorkerTests(WorkerTestCase):
    def test_an_image_to_text_task_reads_the_text(self):
        self.start_worker(TASKMANAGER_BACKEND="llm=sim,image_to_text=tesseract")
        image = base64.b64encode(render("HELLO WORLD")).decode()
        task_id = self.api.add_task("image_to_text", {"image": image, "max_tokens": 256})
        report = self.api.final_report(task_id)
        self.assertEqual(report["kind"], "complete", report["body"])
        self.assertEqual(report["body"]["output"]["text"], "HELLO WORLD")


if __name__ == "__main__":
    unittest.main()
