"""The `transformers` backend: real `llm` tasks on a Hugging Face causal language model.

Needs `torch` and `transformers` (pip install torch transformers); they are imported only when a
model loads, inside the executor, so a worker that does not use this backend never imports them.

The model: the task's `model`, looked up as
1. `$TASKMANAGER_MODEL_DIR/<model>`, when that folder exists (`<model>` may be `org/name`);
2. `<model>` itself when it is an absolute path to a folder on the worker (an operator's choice:
   anyone who may submit tasks may name one);
3. else a Hugging Face model id, loaded from the Hugging Face cache (`HF_HOME`), or downloaded
   where the machine may. Without a network, set `HF_HUB_OFFLINE=1`: otherwise a model missing
   from the cache is retried against the hub for about a minute before the task fails.
It runs on CUDA in float16 when `torch.cuda.is_available()`, else on the CPU in float32. Remote code
is never trusted. The model stays loaded in its executor between tasks; a task that names another
model unloads it first (the executor calls unload(), then load()). `loaded_model` names it, and the
worker adds it to the models of its heartbeats.

Input (as the API validates it): `prompt` or `messages` (the tokenizer's chat template when it has
one, else "role: content" lines and "assistant:"), `max_tokens` (default 256), `temperature`
(0: greedy; absent: the model's own generation settings), `top_p`, `stop` (a string or a list: the
output ends before the first one), `stream` (emit the text as chunks while it is made: a word or
so at a time, as transformers' TextStreamer finalizes it; a stop string never reaches a chunk).
Output: `{"text", "finish_reason": "stop" | "length", "usage": {"prompt_tokens",
"completion_tokens"}, "model"}`. A stop request is checked between tokens (a StoppingCriteria),
so a cancel ends generation within one token. generate() runs in the task's own thread, with the
streamer and the criterion as callbacks: a second thread reading a TextIteratorStreamer was measured
many times slower per token on a GPU machine, from the hand-offs between the two threads.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from . import InvalidInput, TaskContext, TaskError, TaskStopped, input_integer, input_number, task_input

log = logging.getLogger(__name__)

MODEL_DIR_VARIABLE = "TASKMANAGER_MODEL_DIR"
DEFAULT_MAX_TOKENS = 256
MAX_TOKENS = 1_000_000
MAX_TEMPERATURE = 100.0
PROGRESS_INTERVAL_SECONDS = 0.25
DTYPE_KEYWORD_SINCE = (4, 56)
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")  # "gpt2", "org/name"  # transformers renamed from_pretrained's torch_dtype to dtype in 4.56


# --- the parts that need no library (unit-tested without transformers) ---


def resolve_model(name: str | None, model_dir: str | None) -> str:
    """Where from_pretrained loads `name` from; see the module docstring. Raises InvalidInput."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("an llm task for the transformers backend must name its model "
                           f"(a folder in ${MODEL_DIR_VARIABLE}, an absolute path, or a Hugging Face model id)")
    if model_dir:
        root = os.path.realpath(model_dir)
        candidate = os.path.realpath(os.path.join(root, name))
        # Only a folder inside the model directory: "../x" must not walk out of it.
        if candidate != root and os.path.commonpath([root, candidate]) == root and os.path.isdir(candidate):
            return candidate
    if os.path.isabs(name):
        if not os.path.isdir(name):
            raise InvalidInput(f"model {name!r}: no such folder on this worker")
        return name
    if not _HUB_ID.fullmatch(name) or ".." in name:
        where = f"a folder in {model_dir}, " if model_dir else ""
        raise InvalidInput(f"model {name!r} is neither {where}an absolute path nor a Hugging Face model id")
    return name


@dataclass(frozen=True)
class Generation:
    """A task's generation settings, checked."""

    max_new_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float | None = None  # None: the model's own setting
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_p == 0

    def generate_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of model.generate() for these settings (without the inputs)."""
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens}
        if self.greedy:
            kwargs["do_sample"] = False
            return kwargs
        if self.temperature is not None or self.top_p is not None:
            kwargs["do_sample"] = True
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if self.top_p is not None:
            kwargs["top_p"] = self.top_p
        return kwargs


def parse_generation(values: dict[str, Any]) -> Generation:
    """Reads max_tokens, temperature, top_p, stop and stream; raises InvalidInput."""
    max_tokens = input_integer(values, "max_tokens", DEFAULT_MAX_TOKENS, 1, MAX_TOKENS)
    temperature = input_number(values, "temperature", None, 0.0, MAX_TEMPERATURE)
    top_p = input_number(values, "top_p", None, 0.0, 1.0)
    stop = values.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and all(isinstance(item, str) for item in stop):
        stops = tuple(stop)
    else:
        raise InvalidInput("input.stop must be a string or a list of strings")
    if any(not item for item in stops):
        raise InvalidInput("input.stop must not hold an empty string")
    stream = values.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidInput("input.stream must be true or false")
    return Generation(max_tokens, temperature, top_p, stops, stream)


def parse_messages(values: dict[str, Any]) -> list[dict[str, str]] | None:
    """The chat messages, checked, or None when the task gives a prompt instead; raises InvalidInput."""
    messages = values.get("messages")
    if messages is None:
        return None
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("input.messages must be a non-empty list")
    checked = []
    for index, message in enumerate(messages):
        if (not isinstance(message, dict) or not isinstance(message.get("role"), str) or not message["role"]
                or not isinstance(message.get("content"), str)):
            raise InvalidInput(f"input.messages[{index}] must be an object with a role and a string content")
        checked.append({"role": message["role"], "content": message["content"]})
    return checked


def join_messages(messages: list[dict[str, str]]) -> str:
    """A prompt for a tokenizer without a chat template: one "role: content" line each, then the
    assistant's turn to speak."""
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"


def build_prompt(values: dict[str, Any], tokenizer: Any) -> tuple[str, bool]:
    """The text to generate from, and whether it already holds the model's special tokens (a chat
    template adds them itself). Raises InvalidInput."""
    messages = parse_messages(values)
    if messages is not None:
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), True
        return join_messages(messages), False
    prompt = values.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise InvalidInput("input must give a non-empty prompt or messages")
    return prompt, False


class StopCutter:
    """Cuts streamed text at the first stop string, and holds back the end of what it has seen
    while that end could still begin a stop string, so that no chunk ever holds a stop string
    or what follows one. The pieces it lets out add up to `text`."""

    def __init__(self, stops: tuple[str, ...] | list[str] = ()) -> None:
        self._stops = tuple(stop for stop in stops if stop)
        self._held = ""
        self.text = ""
        self.stopped = False  # a stop string was seen: everything after it is dropped

    def feed(self, piece: str) -> str:
        """Takes the next piece of generated text; returns what may be emitted now."""
        if self.stopped:
            return ""
        held = self._held + piece
        found = [index for stop in self._stops if (index := held.find(stop)) >= 0]
        if found:
            self.stopped = True
            self._held = ""
            return self._emit(held[:min(found)])
        keep = self._longest_stop_prefix_at_end(held)
        self._held = held[len(held) - keep:] if keep else ""
        return self._emit(held[:len(held) - keep])

    def finish(self) -> str:
        """The text still held back, once generation has ended."""
        rest, self._held = ("" if self.stopped else self._held), ""
        return self._emit(rest)

    def _longest_stop_prefix_at_end(self, text: str) -> int:
        longest = 0
        for stop in self._stops:
            for length in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:length]):
                    longest = length
                    break
        return longest

    def _emit(self, text: str) -> str:
        self.text += text
        return text


def finish_reason(completion_tokens: int, max_new_tokens: int, hit_stop: bool, ended_on_eos: bool) -> str:
    """"stop" when the model ended its answer (end-of-sequence token or a stop string), "length"
    when it ran out of max_tokens."""
    if hit_stop or ended_on_eos:
        return "stop"
    return "length" if completion_tokens >= max_new_tokens else "stop"


def dtype_keyword(version: str) -> str:
    """from_pretrained's keyword for the dtype in this transformers version."""
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(char for char in part if char.isdigit())
        parts.append(int(digits) if digits else 0)
    return "dtype" if tuple(parts) >= DTYPE_KEYWORD_SINCE else "torch_dtype"


def _eos_ids(*sources: Any) -> set[int]:
    ids: set[int] = set()
    for source in sources:
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, (list, tuple, set)):
            ids.update(item for item in source if isinstance(item, int))
    return ids


# --- the backend (needs torch and transformers) ---


class TransformersBackend:
    """`llm` with a Hugging Face causal language model; see the module docstring."""

    def __init__(self) -> None:
        self._name: str | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._device = "cpu"
        self._load_note: str | None = None  # said in the log of the task that caused the load

    @property
    def loaded_model(self) -> str | None:
        """The model held now (the name tasks give), for the worker's heartbeats."""
        return self._name

    def load(self, model: str | None) -> None:
        if model == self._name and self._model is not None:
            return
        self.unload()
        source = resolve_model(model, os.environ.get(MODEL_DIR_VARIABLE, "").strip() or None)
        # Progress bars on stderr would break the worker's one-JSON-object-a-line log.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import torch
        import transformers

        try:
            transformers.utils.logging.disable_progress_bar()
        except AttributeError:
            pass

        cuda = torch.cuda.is_available()
        self._device = "cuda" if cuda else "cpu"
        dtype = torch.float16 if cuda else torch.float32
        log.info("loading model", extra={"model": model, "source": source, "device": self._device,
                                         "dtype": str(dtype)})
        started = time.monotonic()
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(source, trust_remote_code=False)
            loaded = transformers.AutoModelForCausalLM.from_pretrained(
                source, trust_remote_code=False, **{dtype_keyword(transformers.__version__): dtype})
            loaded.to(self._device)
            loaded.eval()
        except torch.cuda.OutOfMemoryError as error:
            self.unload()
            raise TaskError("backend_error", f"CUDA out of memory loading model {model!r}: {error}",
                            retryable=True) from None
        except (OSError, ValueError) as error:
            # Not found in the folder, the cache or the hub, or not a causal language model.
            raise TaskError("backend_error", f"cannot load model {model!r} from {source}: {error}",
                            retryable=True) from None
        self._model, self._tokenizer, self._name = loaded, tokenizer, model
        seconds = time.monotonic() - started
        memory = ""
        if cuda:
            memory = f"; CUDA memory allocated {torch.cuda.memory_allocated() / 2**20:,.0f} MiB"
        self._load_note = (f"loaded model '{model}' from {source} on {self._device} ({str(dtype).removeprefix('torch.')}) "
                           f"in {seconds:.1f} s{memory}")
        log.info(self._load_note)

    def unload(self) -> None:
        if self._model is None and self._name is None:
            return
        self._model = self._tokenizer = self._name = None
        gc.collect()
        import sys
        torch = sys.modules.get("torch")  # imported by load(); not imported here just to unload
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _release_working_memory(self) -> None:
        """Returns the CUDA caching allocator's unused blocks to the driver (the loaded model's
        weights stay); a no-op on the CPU."""
        if self._device != "cuda":
            return
        import torch

        gc.collect()
        torch.cuda.empty_cache()

    def run(self, task: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        if self._model is None:
            raise TaskError("backend_error", "no model is loaded", retryable=True)
        values = task_input(task)
        settings = parse_generation(values)
        prompt, templated = build_prompt(values, self._tokenizer)
        if self._load_note:
            ctx.log(self._load_note)
            self._load_note = None

        import torch
        import transformers

        tokenizer, model = self._tokenizer, self._model
        encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=not templated)
        input_ids = encoded["input_ids"].to(self._device)
        attention_mask = encoded.get("attention_mask")
        prompt_tokens = int(input_ids.shape[-1])
        ctx.log(f"generating up to {settings.max_new_tokens} tokens after {prompt_tokens} prompt tokens "
                f"({'greedy' if settings.greedy else 'sampling'}) with '{self._name}' on {self._device}")

        # generate() runs in this thread, and calls the streamer and the stopping criterion between
        # tokens: no second thread, so no lock ping-pong per token, and chunks leave from this thread.
        cutter = StopCutter(settings.stop)
        generated = [0]  # tokens made so far
        next_progress = [0.0]
        stop_flags: dict[bool, Any] = {}  # done -> the criterion's answer, made once

        class Halt(transformers.StoppingCriteria):
            """Ends generation between two tokens when the task is asked to stop or hit a stop string."""

            def __call__(self, ids: Any, scores: Any, **kwargs: Any) -> Any:
                generated[0] = int(ids.shape[-1]) - prompt_tokens
                done = cutter.stopped or ctx.stopped()
                if done not in stop_flags:
                    stop_flags[done] = torch.full((ids.shape[0],), done, dtype=torch.bool, device=ids.device)
                return stop_flags[done]

        class Stream(transformers.TextStreamer):
            """Takes the new text as TextStreamer finalizes it (at word ends), cuts it at a stop
            string, and emits it as chunks."""

            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                emitted = cutter.feed(text)
                if stream_end:
                    emitted += cutter.finish()
                if emitted and settings.stream:
                    ctx.chunk(emitted)
                now = time.monotonic()
                if now >= next_progress[0]:
                    ctx.progress(min(1.0, generated[0] / settings.max_new_tokens),
                                 f"{generated[0]}/{settings.max_new_tokens} tokens")
                    next_progress[0] = now + PROGRESS_INTERVAL_SECONDS

        kwargs = settings.generate_kwargs()
        kwargs.update(input_ids=input_ids, streamer=Stream(tokenizer, skip_prompt=True, skip_special_tokens=True),
                      stopping_criteria=transformers.StoppingCriteriaList([Halt()]))
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask.to(self._device)
        if getattr(tokenizer, "pad_token_id", None) is None and getattr(tokenizer, "eos_token_id", None) is not None:
            kwargs["pad_token_id"] = tokenizer.eos_token_id
        started = time.monotonic()
        try:
            with torch.inference_mode():
                output = model.generate(**kwargs)
        except torch.cuda.OutOfMemoryError as error:
            kwargs.clear()
            self._release_working_memory()
            if ctx.stopped():
                raise TaskStopped() from None
            raise TaskError("backend_error", f"CUDA out of memory while generating: {error}", retryable=True) from None
        if ctx.stopped():
            # Cancelled or timed out: the model stays loaded for the next task, but what this
            # generation held (its KV cache, activations) goes back to the driver now, so the GPU
            # memory the worker reports is true at once rather than after the grace period's kill.
            del output
            kwargs.clear()
            input_ids = attention_mask = None
            self._release_working_memory()
            raise TaskStopped()
        rest = cutter.finish()  # generate() ends the stream; this is in case a version does not
        if rest and settings.stream:
            ctx.chunk(rest)

        sequences = getattr(output, "sequences", output)
        new_ids = sequences[0][prompt_tokens:].tolist()
        eos = _eos_ids(getattr(tokenizer, "eos_token_id", None),
                       getattr(getattr(model, "generation_config", None), "eos_token_id", None))
        completion_tokens = len(new_ids)
        reason = finish_reason(completion_tokens, settings.max_new_tokens, cutter.stopped,
                               bool(new_ids) and new_ids[-1] in eos)
        seconds = time.monotonic() - started
        ctx.log(f"generated {completion_tokens} tokens in {seconds:.2f} s "
                f"({completion_tokens / seconds if seconds > 0 else 0:.1f} tokens/s), finish_reason {reason}")
        return {
            "text": cutter.text,
            "finish_reason": reason,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
            "model": self._name,
        }
