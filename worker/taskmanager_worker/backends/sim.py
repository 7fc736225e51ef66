"""The `sim` backend: a SIMULATION of all four task types, for development and tests.

It loads no model and touches no GPU. Its outputs have the shape real backends return (text, PNG
images and WAV audio as artifacts the worker uploads) but made-up content, kept small: images at
most 64x64 pixels, audio 8 kHz mono of at most 4 seconds. Every output carries `"simulated": true`,
and every task logs a line that starts with "SIMULATION:".

A task steers it through its `metadata.sim` object:
- `duration_ms`: how long the task "runs", in small steps that report progress and notice a stop;
- `chunks`: how many output chunks to stream over that time (for `llm`, pieces of the text);
- `logs`: how many extra log lines to emit over that time;
- `fail`: `"retryable"` or `"fatal"`, to fail with code `sim_failure` once the duration is over;
- `fail_attempts`: with `fail`, fail only attempts 1 to this number, and succeed after (a task
  that a retry mends);
- `hang`: true to loop forever ignoring stop requests, so that only a kill ends the task.

The worker's TASKMANAGER_SIM_TOKENS_PER_SECOND, when set, paces `llm` tasks that set no
`duration_ms`: their tokens (as many as `max_tokens` allows) take that long to make, so a streamed
answer arrives token by token over time, as a real model's does, for clients that cannot set
`metadata.sim` (the OpenAI-compatible API).
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import random
import struct
import sys
import time
import wave
import zlib
from array import array
from dataclasses import dataclass
from typing import Any

from ..config import sim_tokens_per_second
from . import (Artifact, InvalidInput, TaskContext, TaskError, TaskStopped, input_integer, input_number, input_string,
               task_input)

log = logging.getLogger(__name__)

TICK_SECONDS = 0.02  # how often a running sim task reports progress and looks for a stop request
MAX_CHUNKS = 10_000
MAX_LOGS = 10_000
PNG_MAX_SIDE = 64
WAV_SAMPLE_RATE = 8000
WAV_MAX_SECONDS = 4.0
TTS_CHARS_PER_SECOND = 15.0  # about the pace of speech

_WORDS = (
    "the", "model", "answer", "simulated", "result", "task", "worker", "token", "stream", "value",
    "quickly", "returns", "a", "plausible", "response", "to", "your", "prompt", "with", "some",
    "words", "that", "mean", "nothing", "in", "particular", "but", "look", "like", "text",
)
_SUBJECTS = ("cat", "mountain", "city street", "bowl of fruit", "sailing boat", "forest path")
_ADJECTIVES = ("quiet", "colourful", "sunlit", "misty", "busy", "small")
_PLACES = ("at dusk", "in the rain", "under a clear sky", "seen from above", "in winter")


@dataclass(frozen=True)
class _Steering:
    duration_s: float = 0.0
    chunks: int = 0
    logs: int = 0
    fail: str | None = None
    fail_attempts: int | None = None
    hang: bool = False


@dataclass(frozen=True)
class _Plan:
    output: dict[str, Any]
    pieces: list[str]  # the chunks to stream while the task "runs"
    steps: int  # for progress messages ("step 15/30")
    log: str  # the line that says what the simulation does


class SimBackend:
    """SIMULATION backend serving `llm`, `sd`, `tts` and `image_to_text`; see the module docstring."""

    def __init__(self) -> None:
        self._model: str | None = None
        self._tokens_per_second = sim_tokens_per_second()

    def load(self, model: str | None) -> None:
        self._model = model or "sim"
        log.info("SIMULATION backend: model '%s' ready (nothing is loaded)", self._model)

    def unload(self) -> None:
        self._model = None

    def run(self, task: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        steering = _steering(task.get("metadata"))
        if steering.hang:
            log.warning("SIMULATION: hanging as metadata.sim.hang asks; only a kill ends this task")
            ctx.log("SIMULATION: hanging as metadata.sim.hang asks; only a kill ends this task")
            # The process id lets a test (or an operator) check that the kill really happened.
            ctx.progress(0.0, f"SIMULATION: hanging in process {os.getpid()}")
            while True:
                time.sleep(1)
        values = task_input(task)
        # Seeded by the input, so that the same request gives the same output.
        rng = random.Random(json.dumps(values, sort_keys=True))
        plan = _MAKERS[task["type"]](values, steering, rng)
        ctx.log(f"SIMULATION: {plan.log} (model '{self._model}': nothing loaded, no GPU used)")
        lines = [f"SIMULATION: log line {i + 1}/{steering.logs}" for i in range(steering.logs)]
        duration_s = steering.duration_s
        if task["type"] == "llm" and duration_s == 0 and self._tokens_per_second:
            # plan.steps is the number of tokens the answer has.
            duration_s = plan.steps / self._tokens_per_second
        _pace(ctx, duration_s, plan.pieces, lines, plan.steps)
        attempt = task.get("attempt") if type(task.get("attempt")) is int else 1
        if steering.fail is not None and (steering.fail_attempts is None or attempt <= steering.fail_attempts):
            ctx.log(f"SIMULATION: failing ({steering.fail}) as metadata.sim.fail asks")
            raise TaskError(
                "sim_failure",
                f"SIMULATION: {steering.fail} failure requested by metadata.sim.fail",
                retryable=steering.fail == "retryable",
            )
        return {**plan.output, "simulated": True}


def _steering(metadata: Any) -> _Steering:
    sim = metadata.get("sim") if isinstance(metadata, dict) else None
    if sim is None:
        return _Steering()
    if not isinstance(sim, dict):
        raise InvalidInput("metadata.sim must be an object")
    duration = sim.get("duration_ms", 0)
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 <= duration < 1e9:
        raise InvalidInput("metadata.sim.duration_ms must be a number of milliseconds >= 0")
    chunks = sim.get("chunks", 0)
    if isinstance(chunks, bool) or not isinstance(chunks, int) or not 0 <= chunks <= MAX_CHUNKS:
        raise InvalidInput(f"metadata.sim.chunks must be an integer from 0 to {MAX_CHUNKS}")
    lines = sim.get("logs", 0)
    if isinstance(lines, bool) or not isinstance(lines, int) or not 0 <= lines <= MAX_LOGS:
        raise InvalidInput(f"metadata.sim.logs must be an integer from 0 to {MAX_LOGS}")
    fail = sim.get("fail")
    if fail not in (None, "retryable", "fatal"):
        raise InvalidInput("metadata.sim.fail must be 'retryable' or 'fatal'")
    fail_attempts = sim.get("fail_attempts")
    if fail_attempts is not None and (type(fail_attempts) is not int or fail_attempts < 1):
        raise InvalidInput("metadata.sim.fail_attempts must be an integer of 1 or more")
    hang = sim.get("hang", False)
    if not isinstance(hang, bool):
        raise InvalidInput("metadata.sim.hang must be true or false")
    return _Steering(duration / 1000.0, chunks, lines, fail, fail_attempts, hang)


def _pace(ctx: TaskContext, duration_s: float, pieces: list[str], lines: list[str], steps: int) -> None:
    """Spends `duration_s` in ticks, emitting piece (and log line) i of n at (i+1)/n of the time,
    until done or stopped."""
    start = time.monotonic()
    sent = logged = 0
    while True:
        if ctx.stopped():
            raise TaskStopped()
        elapsed = time.monotonic() - start
        fraction = 1.0 if elapsed >= duration_s else elapsed / duration_s
        due = int(fraction * len(pieces))
        for piece in pieces[sent:due]:
            ctx.chunk(piece)
        sent = due
        due = int(fraction * len(lines))
        for line in lines[logged:due]:
            ctx.log(line)
        logged = due
        if fraction >= 1.0:
            return
        ctx.progress(fraction, f"step {int(fraction * steps)}/{steps}")
        time.sleep(min(TICK_SECONDS, duration_s - elapsed))


def _labelled_pieces(task_type: str, count: int) -> list[str]:
    return [f"[sim {task_type} chunk {i + 1}/{count}]" for i in range(count)]


def _llm(values: dict[str, Any], steering: _Steering, rng: random.Random) -> _Plan:
    prompt = input_string(values, "prompt", "")
    messages = values.get("messages") or []
    if not isinstance(messages, list):
        raise InvalidInput("input.messages must be a list")
    prompt_text = prompt + "".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
    max_tokens = input_integer(values, "max_tokens", 256, 1, 1_000_000)

    # A word stands for a token. Asked for chunks, the answer has at least that many words, so
    # that each chunk holds one or more; max_tokens is then respected only roughly.
    count = max(steering.chunks, min(rng.randint(12, 48), max_tokens))
    words = [rng.choice(_WORDS) for _ in range(count)]
    words[0] = words[0].capitalize()
    words[-1] += "."
    tokens = [word if i == 0 else " " + word for i, word in enumerate(words)]
    if steering.chunks:
        pieces = ["".join(tokens[i * count // steering.chunks:(i + 1) * count // steering.chunks])
                  for i in range(steering.chunks)]
    elif values.get("stream") is True:
        pieces = tokens
    else:
        pieces = []
    output = {
        "text": "".join(tokens),
        "finish_reason": "length" if count >= max_tokens else "stop",
        "usage": {"prompt_tokens": max(1, round(len(prompt_text) / 4)), "completion_tokens": count},
    }
    return _Plan(output, pieces, count, f"generating {count} tokens")


def _sd(values: dict[str, Any], steering: _Steering, rng: random.Random) -> _Plan:
    width = input_integer(values, "width", 512, 8, 16384)
    height = input_integer(values, "height", 512, 8, 16384)
    count = input_integer(values, "num_images", 1, 1, 16)
    steps = input_integer(values, "steps", 30, 1, 10_000)
    seed = input_integer(values, "seed", rng.randrange(2**32), 0, 2**32 - 1)
    scale = min(1.0, PNG_MAX_SIDE / max(width, height))
    png_width, png_height = max(1, round(width * scale)), max(1, round(height * scale))
    images = []
    for i in range(count):
        image_seed = (seed + i) % 2**32
        images.append(Artifact(f"image-{i}.png", "image/png", _png(png_width, png_height, image_seed), {
            "width": png_width,
            "height": png_height,
            "requested_width": width,
            "requested_height": height,
            "seed": image_seed,
            "format": "png",
        }))
    output = {"images": images, "note": f"SIMULATION: images are downscaled to at most {PNG_MAX_SIDE}x{PNG_MAX_SIDE}"}
    return _Plan(output, _labelled_pieces("sd", steering.chunks), steps,
                 f"drawing {count} gradient image(s) of {png_width}x{png_height} "
                 f"(asked for {width}x{height}) in {steps} steps")


def _tts(values: dict[str, Any], steering: _Steering, rng: random.Random) -> _Plan:
    text = input_string(values, "text", "")
    speed = input_number(values, "speed", 1.0, 0.1, 10.0)
    seconds = max(0.25, len(text) / TTS_CHARS_PER_SECOND / speed)
    truncated = seconds > WAV_MAX_SECONDS
    audio, frames = _wav(text, min(seconds, WAV_MAX_SECONDS), speed)
    duration = round(frames / WAV_SAMPLE_RATE, 3)
    output = {
        "audio": Artifact("audio.wav", "audio/wav", audio),
        "format": "wav",
        "sample_rate": WAV_SAMPLE_RATE,
        "duration_seconds": duration,
        "voice": input_string(values, "voice", "sim"),
        "truncated": truncated,
        "note": f"SIMULATION: beeps, always WAV, 8 kHz mono, at most {WAV_MAX_SECONDS:g} s",
    }
    return _Plan(output, _labelled_pieces("tts", steering.chunks), max(1, len(text)),
                 f"synthesizing {duration:g} s of beeps for {len(text)} characters"
                 + (f" (cut from {seconds:.3g} s)" if truncated else ""))


def _image_to_text(values: dict[str, Any], steering: _Steering, rng: random.Random) -> _Plan:
    input_string(values, "image", "")
    prompt = input_string(values, "prompt", "")
    max_tokens = input_integer(values, "max_tokens", 256, 1, 1_000_000)
    caption = f"A {rng.choice(_ADJECTIVES)} {rng.choice(_SUBJECTS)} {rng.choice(_PLACES)}."
    if prompt:
        caption = f"Regarding '{prompt[:80]}': {caption}"
    words = caption.split()
    text = " ".join(words[:max_tokens])
    output = {"text": text, "note": "SIMULATION: the image was not looked at"}
    return _Plan(output, _labelled_pieces("image_to_text", steering.chunks), len(words),
                 "captioning an image without looking at it")


_MAKERS = {"llm": _llm, "sd": _sd, "tts": _tts, "image_to_text": _image_to_text}


def _png(width: int, height: int, seed: int) -> bytes:
    """A real RGB PNG: a gradient whose colours come from the seed."""
    r0, g0, b0 = seed & 0xFF, (seed >> 8) & 0xFF, (seed >> 16) & 0xFF
    raw = bytearray()
    for y in range(height):
        row = bytearray()
        for x in range(width):
            row += bytes(((r0 + 4 * x) & 0xFF, (g0 + 4 * y) & 0xFF, (b0 + 2 * (x + y)) & 0xFF))
        # Filter "Sub" (each byte minus the same byte of the pixel to its left): a gradient then
        # becomes a run of equal bytes, which zlib squeezes to almost nothing.
        raw.append(1)
        raw += bytes((row[i] - (row[i - 3] if i >= 3 else 0)) & 0xFF for i in range(len(row)))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(raw), 9))
            + chunk(b"IEND", b""))


def _wav(text: str, seconds: float, speed: float) -> tuple[bytes, int]:
    """A real 16-bit mono WAV: one short tone per character, silence for spaces."""
    frames = int(seconds * WAV_SAMPLE_RATE)
    frames_per_char = WAV_SAMPLE_RATE / (TTS_CHARS_PER_SECOND * speed)
    samples = array("h", bytes(2 * frames))
    for i in range(frames):
        char = text[min(int(i / frames_per_char), len(text) - 1)] if text else " "
        if not char.isspace():
            frequency = 220.0 + (ord(char) % 32) * 20.0
            samples[i] = int(8000 * math.sin(2 * math.pi * frequency * i / WAV_SAMPLE_RATE))
    if sys.byteorder == "big":
        samples.byteswap()  # WAV samples are little-endian
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(WAV_SAMPLE_RATE)
        out.writeframes(samples.tobytes())
    return buffer.getvalue(), frames
