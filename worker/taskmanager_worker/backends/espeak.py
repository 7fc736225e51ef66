"""The `espeak` backend: real speech for `tts` tasks with the espeak-ng program (Debian: espeak-ng).

espeak-ng is a formant synthesizer: robotic but intelligible speech, fast on a CPU, no model and
no GPU. Each task runs `espeak-ng -w <file>` on its text and returns the WAV as the `audio.wav`
artifact. Input:

- `text` (required): what to say;
- `voice`: an espeak-ng voice (`en`, `en-us`, `fr`, `en+f3`, ...; `espeak-ng --voices` lists
  them), default `en`; an unknown one fails the task with `invalid_input`;
- `speed`: 0.25 to 4, 1 being normal: espeak-ng's `-s` is 175 x speed words per minute, held
  within what espeak-ng can do (80 to 700);
- `format`: `wav` only. `mp3` fails with `invalid_input`: espeak-ng writes WAV, and the standard
  library has no MP3 encoder.

The task's `model` is not used: espeak-ng has voices, not models.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
import wave
from typing import Any

from . import Artifact, InvalidInput, TaskContext, TaskError, _process, input_number, task_input

log = logging.getLogger(__name__)

PROGRAM = "espeak-ng"
DEFAULT_VOICE = "en"
NORMAL_WORDS_PER_MINUTE = 175  # espeak-ng's default rate: speed 1
MIN_WORDS_PER_MINUTE = 80  # espeak-ng speaks no slower
MAX_WORDS_PER_MINUTE = 700  # speed 4; espeak-ng built without libsonic stops at 450 by itself
MIN_SPEED, MAX_SPEED = 0.25, 4.0
MAX_TEXT_LENGTH = 100_000  # the API allows 5,000 characters; this only bounds a run-once
_VOICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+.:/-]{0,99}")


def words_per_minute(speed: float) -> int:
    """espeak-ng's -s for a speed (1 = normal), held within what espeak-ng can do."""
    return max(MIN_WORDS_PER_MINUTE, min(MAX_WORDS_PER_MINUTE, round(NORMAL_WORDS_PER_MINUTE * speed)))


def command(text_path: str, wav_path: str, voice: str, wpm: int) -> list[str]:
    """The espeak-ng command line: UTF-8 text read from a file (so no text is taken for an option),
    WAV written to a file."""
    return [PROGRAM, "-b", "1", "-v", voice, "-s", str(wpm), "-w", wav_path, "-f", text_path]


class EspeakBackend:
    """`tts` with espeak-ng; see the module docstring."""

    def load(self, model: str | None) -> None:
        if model:
            log.info("espeak backend: the task's model is not used (espeak-ng has voices, not models)",
                     extra={"model": model})

    def unload(self) -> None:
        pass

    def run(self, task: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        values = task_input(task)
        text = values.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("input.text must be a non-empty string")
        if len(text) > MAX_TEXT_LENGTH:
            raise InvalidInput(f"input.text must be at most {MAX_TEXT_LENGTH} characters")
        voice = values.get("voice") or DEFAULT_VOICE
        if not isinstance(voice, str) or not _VOICE.fullmatch(voice):
            raise InvalidInput("input.voice must be an espeak-ng voice name such as 'en', 'en-us' or 'en+f3'")
        speed = input_number(values, "speed", 1.0, MIN_SPEED, MAX_SPEED)
        audio_format = values.get("format") or "wav"
        if audio_format == "mp3":
            raise InvalidInput("input.format 'mp3' is not available from the espeak backend: espeak-ng writes "
                               "WAV only and this worker has no MP3 encoder; ask for 'wav'")
        if audio_format != "wav":
            raise InvalidInput("input.format must be 'wav'")

        wpm = words_per_minute(float(speed))
        note = ""
        if wpm != round(NORMAL_WORDS_PER_MINUTE * speed):
            note = f" (speed {speed:g} held to what espeak-ng can do)"
        ctx.log(f"espeak-ng: {len(text)} characters, voice '{voice}', {wpm} words per minute{note}")
        ctx.progress(0.0, "synthesizing")
        with tempfile.TemporaryDirectory(prefix="taskmanager-espeak-") as directory:
            text_path = os.path.join(directory, "text.txt")
            wav_path = os.path.join(directory, "audio.wav")
            with open(text_path, "w", encoding="utf-8") as file:
                file.write(text)
            finished = _process.run(command(text_path, wav_path, voice, wpm), ctx)
            if finished.returncode != 0:
                problem = finished.error_text()
                if "voice" in problem.lower():
                    raise InvalidInput(f"espeak-ng has no voice '{voice}' ('espeak-ng --voices' lists them): {problem}")
                raise TaskError("backend_error", f"espeak-ng failed (exit code {finished.returncode}): {problem}",
                                retryable=True)
            try:
                with open(wav_path, "rb") as file:
                    data = file.read()
            except OSError as error:
                raise TaskError("backend_error", f"espeak-ng wrote no audio: {error}", retryable=True) from None
        try:
            with wave.open(io.BytesIO(data)) as audio:
                sample_rate, frames = audio.getframerate(), audio.getnframes()
        except (wave.Error, EOFError) as error:
            raise TaskError("backend_error", f"espeak-ng wrote an unreadable WAV: {error}", retryable=True) from None
        duration = round(frames / sample_rate, 3) if sample_rate else 0.0
        ctx.log(f"espeak-ng: {duration:g} s of audio at {sample_rate} Hz in {finished.seconds:.2f} s")
        return {
            "audio": Artifact("audio.wav", "audio/wav", data),
            "format": "wav",
            "sample_rate": sample_rate,
            "duration_seconds": duration,
            "voice": voice,
            "words_per_minute": wpm,
            "engine": "espeak-ng",
        }
