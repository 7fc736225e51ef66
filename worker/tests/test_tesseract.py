"""The tesseract backend: real OCR of a PNG rendered with ImageMagick (CI installs both; skipped
where they are missing), and its input decoding."""

import base64
import os
import shutil
import subprocess
import tempfile
import unittest

from helpers import WAIT_SECONDS
from taskmanager_worker.backends import REGISTRY, InvalidInput
from taskmanager_worker.backends.tesseract import TesseractBackend, decode_image, image_format, keep_words

# Debian's ImageMagick; another `convert` on PATH may not be ImageMagick.
CONVERT = "/usr/bin/convert" if os.path.exists("/usr/bin/convert") else shutil.which("convert")
HAS_TESSERACT = REGISTRY["tesseract"].available() is None
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")


class Context:
    def __init__(self):
        self.logs = []

    def progress(self, progress, message=None):
        pass

    def chunk(self, text):
        pass

    def log(self, line):
        self.logs.append(line)

    def stopped(self):
        return False


def read(ctx=None, **task_input):
    backend = TesseractBackend()
    backend.load(None)
    return backend.run({"task_id": "t1", "type": "image_to_text", "input": task_input}, ctx or Context())


def render(text, width=800, height=200):
    """A PNG of black text on white, rendered by ImageMagick."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "text.png")
        subprocess.run([CONVERT, "-size", f"{width}x{height}", "xc:white", "-fill", "black", "-pointsize", "64",
                        "-annotate", "+20+120", text, path], check=True, capture_output=True, timeout=WAIT_SECONDS)
        with open(path, "rb") as file:
            return file.read()


class DecodingTests(unittest.TestCase):
    def test_base64_and_data_urls_decode(self):
        encoded = base64.b64encode(PNG_1X1).decode()
        self.assertEqual(decode_image(encoded), PNG_1X1)
        self.assertEqual(decode_image(f"data:image/png;base64,{encoded}"), PNG_1X1)
        self.assertEqual(decode_image(encoded[:20] + "\n" + encoded[20:]), PNG_1X1, "line breaks are allowed")

    def test_what_is_not_base64_is_invalid_input(self):
        for value in (None, "", "not base64!", "data:image/png,abc", "data:image/png;base64", 42):
            with self.subTest(value=value), self.assertRaises(InvalidInput):
                decode_image(value)

    def test_formats_are_told_by_their_first_bytes(self):
        self.assertEqual(image_format(PNG_1X1), "png")
        self.assertEqual(image_format(b"\xff\xd8\xff\xe0rest"), "jpeg")
        self.assertEqual(image_format(b"RIFF\0\0\0\0WEBPVP8 "), "webp")
        self.assertEqual(image_format(b"P6\n1 1\n255\n\0\0\0"), "pnm")
        self.assertIsNone(image_format(b"hello world"))

    def test_max_tokens_keeps_that_many_words(self):
        self.assertEqual(keep_words("one two\nthree", 2), ("one two", True))
        self.assertEqual(keep_words("one two", 2), ("one two", False))

    def test_an_input_that_is_no_image_fails_before_tesseract_runs(self):
        with self.assertRaises(InvalidInput) as caught:
            read(image=base64.b64encode(b"just some text").decode())
        self.assertIn("not an image", caught.exception.message)


@unittest.skipUnless(HAS_TESSERACT and CONVERT, "tesseract (with 'eng') or ImageMagick is not installed "
                                                "(Debian: apt-get install tesseract-ocr tesseract-ocr-eng imagemagick)")
class TesseractTests(unittest.TestCase):
    def test_reads_the_text_of_a_rendered_png(self):
        ctx = Context()
        output = read(ctx, image=base64.b64encode(render("HELLO WORLD")).decode())
        self.assertEqual(output, {"text": "HELLO WORLD", "engine": "tesseract", "language": "eng",
                                  "truncated": False})
        self.assertTrue(any("read 2 word(s)" in line for line in ctx.logs), ctx.logs)

    def test_reads_a_data_url_and_honours_max_tokens(self):
        image = "data:image/png;base64," + base64.b64encode(render("HELLO BIG WORLD", width=1000)).decode()
        output = read(image=image, max_tokens=2, prompt="what does it say?")
        self.assertEqual((output["text"], output["truncated"]), ("HELLO BIG", True))

    def test_a_blank_image_reads_as_empty_text(self):
        self.assertEqual(read(image=base64.b64encode(PNG_1X1).decode())["text"], "")


if __name__ == "__main__":
    unittest.main()
