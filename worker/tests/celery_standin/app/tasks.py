"""STAND-IN for the cluster-manager's Celery workers: a SIMULATION, not inference.

The platform's GPU workers are Celery workers that consume `app.tasks.run_llm_inference`,
`app.tasks.run_sd_inference`, `app.tasks.run_tts_inference` and
`app.tasks.run_image_to_text_inference` from the `gpu_queue` queue. This module defines tasks of
the same names and the same kwargs (`task_id`, `type`, `input`, `model`), so that the tests of
TaskManager's Celery bridge (TaskManager.Tests/Platform/CeleryBridgeTests.cs) run a real Celery
worker against it. It runs no model and touches no GPU: it waits, reports progress, and returns
made-up outputs (every one with `"standin": true`).

Run it as the cluster-manager runs its app (Debian's python3-celery and python3-redis):

    cd worker/tests/celery_standin
    CELERY_BROKER_URL=redis://:pw@127.0.0.1:6379/1 CELERY_RESULT_BACKEND=redis://:pw@127.0.0.1:6379/2 \\
        /usr/bin/python3 -m celery -A app.tasks worker -Q gpu_queue -c 2 -n standin@%h

Settings, from the environment: `CELERY_BROKER_URL`, `CELERY_RESULT_BACKEND`, and `STANDIN_PID_DIR`
(optional): a folder where each task writes `<celery task id>.pid`, the id of the pool process that
runs it, so that a test can check that a revoke killed it.

A task is steered by words in its text (the input's `prompt`, or `text` for tts), since TaskManager
validates the input of each type and takes no field of its own:
- `@seconds=S`: work that long (default 0.3), in steps that each report
  `update_state(state="PROGRESS", meta={"progress": i/n, "message": "STAND-IN: step i/n"})`;
- `@steps=N`: that many steps (default 3);
- `@hang`: ignore SIGTERM and loop forever, so that only a SIGKILL ends the task (it reports
  PROGRESS `"STAND-IN: hanging in process <pid>"` first);
- `@fail=retryable`: raise RuntimeError after the work (a failure worth a retry);
- `@fail=fatal`: raise ValueError after the work (bad input: the bridge does not retry it);
- `@fail=marked`: raise RuntimeError whose argument is `{"retryable": false, "code":
  "standin_refused", "message": ...}`, the way a task says explicitly that a retry is useless.

Outputs: `llm` and `image_to_text` return text; `sd` returns `images_base64` (a list of small PNGs
as base64) and `tts` `audio_base64` (a small WAV as base64), because Celery's json serializer in
kombu 5.2 cannot carry bytes; the bridge turns them into artifacts. Each output echoes the Celery
task id it ran under (`celery_task_id`), the `task_id` kwarg, the model and the pid.
"""

from __future__ import annotations

import base64
import io
import math
import os
import re
import signal
import struct
import time
import wave
import zlib

from celery import Celery

app = Celery("app", broker=os.environ.get("CELERY_BROKER_URL"), backend=os.environ.get("CELERY_RESULT_BACKEND"))
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=1,  # a GPU worker takes one task at a time per process
)

_STEER = re.compile(r"@(\w+)(?:=(\S+))?")


def _steering(text: str) -> dict[str, str]:
    return {name: value or "" for name, value in _STEER.findall(text)}


def _write_pid(celery_task_id: str) -> None:
    folder = os.environ.get("STANDIN_PID_DIR")
    if folder:
        with open(os.path.join(folder, f"{celery_task_id}.pid"), "w", encoding="ascii") as file:
            file.write(str(os.getpid()))


def _work(task, text: str) -> None:
    """Spends the time the text asks for, reporting PROGRESS; hangs or fails as it asks."""
    steer = _steering(text)
    _write_pid(task.request.id)
    if "hang" in steer:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        task.update_state(state="PROGRESS", meta={
            "progress": 0.0, "message": f"STAND-IN: hanging in process {os.getpid()}"})
        while True:
            time.sleep(0.05)
    seconds = float(steer.get("seconds") or 0.3)
    steps = max(1, int(steer.get("steps") or 3))
    task.update_state(state="PROGRESS", meta={"progress": 0.0, "message": f"STAND-IN: step 0/{steps}"})
    for step in range(1, steps + 1):
        time.sleep(seconds / steps)
        task.update_state(state="PROGRESS", meta={"progress": step / steps, "message": f"STAND-IN: step {step}/{steps}"})
    fail = steer.get("fail")
    if fail == "retryable":
        raise RuntimeError("STAND-IN: simulated CUDA out of memory (worth a retry)")
    if fail == "fatal":
        raise ValueError("STAND-IN: simulated bad input (a retry would fail the same way)")
    if fail == "marked":
        raise RuntimeError({"retryable": False, "code": "standin_refused",
                            "message": "STAND-IN: the task says a retry is useless"})


def _echo(task, task_id: str, model: str | None) -> dict:
    return {"standin": True, "celery_task_id": task.request.id, "task_id": task_id, "model": model,
            "pid": os.getpid()}


@app.task(bind=True, name="app.tasks.run_llm_inference")
def run_llm_inference(self, task_id, type, input, model):
    prompt = input.get("prompt") or " ".join(str(m.get("content", "")) for m in input.get("messages") or [])
    _work(self, prompt)
    words = prompt.split()
    return {"text": f"STAND-IN reply to {len(words)} words", "finish_reason": "stop",
            "usage": {"prompt_tokens": len(words), "completion_tokens": 5}, "max_tokens": input.get("max_tokens"),
            **_echo(self, task_id, model)}


@app.task(bind=True, name="app.tasks.run_sd_inference")
def run_sd_inference(self, task_id, type, input, model):
    _work(self, input["prompt"])
    images = [base64.b64encode(_png(8, 8, seed)).decode("ascii") for seed in range(input.get("num_images", 1))]
    return {"images_base64": images, "width": input.get("width"), "height": input.get("height"),
            "steps": input.get("steps"), **_echo(self, task_id, model)}


@app.task(bind=True, name="app.tasks.run_tts_inference")
def run_tts_inference(self, task_id, type, input, model):
    _work(self, input["text"])
    return {"audio_base64": base64.b64encode(_wav(0.25)).decode("ascii"), "format": "wav", "sample_rate": 8000,
            "voice": input.get("voice"), **_echo(self, task_id, model)}


@app.task(bind=True, name="app.tasks.run_image_to_text_inference")
def run_image_to_text_inference(self, task_id, type, input, model):
    _work(self, input.get("prompt") or "")
    return {"text": f"STAND-IN caption of {len(input['image'])} characters of base64",
            **_echo(self, task_id, model)}


def _png(width: int, height: int, seed: int) -> bytes:
    raw = b"".join(b"\x00" + bytes((seed * 40 + x * 20) % 256 for x in range(width * 3)) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _wav(seconds: float) -> bytes:
    rate = 8000
    frames = b"".join(struct.pack("<h", int(6000 * math.sin(2 * math.pi * 440 * i / rate)))
                      for i in range(int(seconds * rate)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()
