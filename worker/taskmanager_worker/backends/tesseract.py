"""The `tesseract` backend: real OCR for `image_to_text` tasks with the tesseract program (Debian:
tesseract-ocr and tesseract-ocr-eng).

It reads the text in the image, in English (`tesseract <image> stdout -l eng`); it does not
describe pictures. Input:

- `image` (required): the image as base64, or as a `data:` URL with base64 (PNG, JPEG, GIF, BMP,
  TIFF, WebP or PNM);
- `max_tokens`: the output keeps at most that many words (whitespace-separated), and says
  `truncated: true` when it cut some;
- `prompt`: not used (OCR takes no instructions); the task's log says so.

Output: `{"text": <the text read, stripped>, "engine": "tesseract", "language": "eng", "truncated": bool}`.
The task's `model` is not used.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import tempfile
from typing import Any

from . import InvalidInput, TaskContext, TaskError, _process, input_integer, task_input

log = logging.getLogger(__name__)

PROGRAM = "tesseract"
LANGUAGE = "eng"
MAX_TOKENS = 1_000_000

# What tesseract (leptonica) reads, by the file's first bytes.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)


def decode_image(value: Any) -> bytes:
    """The image's bytes from base64 or a base64 `data:` URL; raises InvalidInput."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("input.image must be an image as base64 (optionally a data: URL)")
    payload = value.strip()
    if payload.startswith("data:"):
        header, comma, payload = payload.partition(",")
        if not comma or not header.endswith(";base64"):
            raise InvalidInput("input.image: a data: URL must hold base64 (data:image/png;base64,...)")
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("input.image must be base64 (optionally a data: URL)") from None
    if not data:
        raise InvalidInput("input.image is empty")
    return data


def image_format(data: bytes) -> str | None:
    """The image's format by its first bytes, or None when tesseract would not read it."""
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if len(data) > 2 and data[0:1] == b"P" and data[1:2] in b"123456" and data[2:3].isspace():
        return "pnm"
    return None


def keep_words(text: str, limit: int) -> tuple[str, bool]:
    """The text up to its `limit`-th word (whitespace-separated), and whether anything was cut."""
    words = list(re.finditer(r"\S+", text))
    if len(words) <= limit:
        return text, False
    return text[:words[limit - 1].end()], True


class TesseractBackend:
    """`image_to_text` with tesseract; see the module docstring."""

    def load(self, model: str | None) -> None:
        if model:
            log.info("tesseract backend: the task's model is not used", extra={"model": model})

    def unload(self) -> None:
        pass

    def run(self, task: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        values = task_input(task)
        data = decode_image(values.get("image"))
        kind = image_format(data)
        if kind is None:
            raise InvalidInput("input.image is not an image tesseract reads (PNG, JPEG, GIF, BMP, TIFF, WebP, PNM)")
        max_tokens = input_integer(values, "max_tokens", None, 1, MAX_TOKENS)
        if values.get("prompt"):
            ctx.log("tesseract reads the text in the image; input.prompt is not used")
        ctx.log(f"tesseract: reading a {len(data)}-byte {kind.upper()} image, language '{LANGUAGE}'")
        ctx.progress(0.0, "reading the image")
        with tempfile.TemporaryDirectory(prefix="taskmanager-tesseract-") as directory:
            path = os.path.join(directory, f"image.{kind}")
            with open(path, "wb") as file:
                file.write(data)
            finished = _process.run([PROGRAM, path, "stdout", "-l", LANGUAGE], ctx)
        if finished.returncode != 0:
            problem = finished.error_text()
            if "cannot be read" in problem or "pixRead" in problem:
                raise InvalidInput(f"tesseract could not read the image: {problem}")
            raise TaskError("backend_error", f"tesseract failed (exit code {finished.returncode}): {problem}",
                            retryable=True)
        text = finished.stdout.decode("utf-8", "replace").strip()
        truncated = False
        if max_tokens is not None:
            text, truncated = keep_words(text, max_tokens)
        words = len(text.split())
        ctx.log(f"tesseract: read {words} word(s) in {finished.seconds:.2f} s" + (" (cut at max_tokens)" if truncated else ""))
        return {"text": text, "engine": "tesseract", "language": LANGUAGE, "truncated": truncated}
