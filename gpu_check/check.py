#!/usr/bin/env python3
"""GPU check of the worker's `transformers` LLM backend (scratch; run by gpu_check/run.sh).

    python3 gpu_check/check.py make-model DIR   tiny random Llama + WordLevel tokenizer, saved to DIR
    python3 gpu_check/check.py executor         tasks through a real executor process, as the worker runs them
    python3 gpu_check/check.py inprocess        the backend class in this process, with torch.cuda memory stats
    python3 gpu_check/check.py report           merges the parts into $OUT/gpu_check.json, prints a summary

Each mode writes $OUT/part_<mode>.json, saved again after every measurement, so a step that is
killed by its timeout still leaves what it had measured. Environment: OUT (the results folder),
TASKMANAGER_MODEL_DIR and GPU_CHECK_MODEL (the model's folder and name), GPU_CHECK_STOP_AFTER
(seconds of streaming before the long task is stopped, default 3), GPU_CHECK_LONG_PROMPT_WORDS
(default 4000).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import traceback
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORKER_DIR = os.path.join(REPO, "worker")
if WORKER_DIR not in sys.path:
    sys.path.insert(0, WORKER_DIR)

OUT = os.environ.get("OUT") or os.path.join(HERE, "out")
MODEL = os.environ.get("GPU_CHECK_MODEL", "tiny-llama")
STOP_AFTER = float(os.environ.get("GPU_CHECK_STOP_AFTER", "3"))
LONG_PROMPT_WORDS = int(os.environ.get("GPU_CHECK_LONG_PROMPT_WORDS", "4000"))
LONG_MAX_TOKENS = 50_000
GRACE = 10.0  # how long a stopped task may take before this check kills its executor
MIB = 2 ** 20

# The tiny model. Attention heads of 64 dimensions, as real models have (flash/SDPA kernels).
# Big enough that a 4,000-token prompt's KV cache and activations (tens of MiB) show in nvidia-smi.
HIDDEN, INTERMEDIATE, LAYERS, HEADS = 512, 1024, 4, 8
MAX_POSITIONS = 65_536
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]  # ids 0..3
WORDS = ("hello world the a of and to in is it that on for with as was at by this be from or an are "
         "not have but what all were when we there can one your which their said if do will each about "
         "how up out them then she many some so these would other into has more her two like him see "
         "time could no make than first been its who now people my made over did down only way find use "
         "may water long little very after words called just where most know get through back much go "
         "good new write our me man too any day same right look think also around another came come work "
         "three word must because does part even place well such here take why things help put years "
         "different away again off went old number great tell men say small every found still between "
         "name should home big give air line set own under read last never us left end along while might "
         "next sound below saw something thought both few those always looked show large often together "
         "asked house don world going want school important until form food keep children feet land side "
         "without boy once animals life enough took sometimes four head above kind began almost live page "
         "got earth need far hand high year mother light parts country father let night following picture "
         "being study second eyes soon times story boys since white days ever paper hard near sentence "
         "better best across during today others however sure means knew try told young miles sun ways "
         "thing whole hear example heard several change answer room sea against top turned learn point "
         "city play toward five using himself usually test short task stop").split()


def mib(value):
    return None if value is None else round(value / MIB, 2)


def now():
    return time.monotonic()


class Part:
    """One mode's results, as JSON in $OUT/part_<name>.json, rewritten at every save()."""

    def __init__(self, name):
        self.name = name
        self.data = {"mode": name, "ok": None, "checks": [], "errors": []}
        self._lock = threading.Lock()  # the in-process stopper thread saves too
        os.makedirs(OUT, exist_ok=True)
        self.save()

    def __setitem__(self, key, value):
        self.data[key] = value
        self.save()

    def __getitem__(self, key):
        return self.data[key]

    def check(self, name, ok, detail=""):
        """A pass/fail line (ok None: not measurable here)."""
        self.data["checks"].append({"name": name, "ok": ok, "detail": detail})
        mark = {True: "PASS", False: "FAIL", None: "N/A "}[ok]
        print(f"  [{mark}] {name}{': ' + detail if detail else ''}", flush=True)
        self.save()

    def error(self, text):
        self.data["errors"].append(text)
        print(f"  ERROR: {text}", flush=True)
        self.save()

    def save(self):
        path = os.path.join(OUT, f"part_{self.name}.json")
        with self._lock:
            with open(path + ".tmp", "w", encoding="utf-8") as file:
                json.dump(self.data, file, indent=2, default=str)
            os.replace(path + ".tmp", path)

    def finish(self):
        oks = [check["ok"] for check in self.data["checks"]]
        self.data["ok"] = not self.data["errors"] and all(ok is not False for ok in oks)
        self.save()
        return 0 if self.data["ok"] else 1


# --- nvidia-smi ---


def smi_rows(query):
    """nvidia-smi's CSV answer to `query` (e.g. "--query-gpu=index,name"), a list of stripped fields
    per line; None when nvidia-smi is missing or fails."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        result = subprocess.run([exe, query, "--format=csv,noheader,nounits"],
                                capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return [[part.strip() for part in line.split(",")] for line in result.stdout.splitlines()]


def smi_used():
    """GPU memory in use (MiB) from nvidia-smi: {"total": sum over GPUs, "gpus": [...]}, or None."""
    gpus = []
    for parts in smi_rows("--query-gpu=index,name,memory.used,memory.total") or []:
        try:
            gpus.append({"index": int(parts[0]), "name": parts[1], "used_mib": int(parts[2]), "total_mib": int(parts[3])})
        except (ValueError, IndexError):
            continue
    return {"total_used_mib": sum(gpu["used_mib"] for gpu in gpus), "gpus": gpus} if gpus else None


def smi_process_mib(pid):
    """The GPU memory nvidia-smi charges to `pid` (MiB), or None (not listed: in a container the
    PIDs nvidia-smi shows are often the host's)."""
    if pid is None:
        return None
    total, found = 0, False
    for parts in smi_rows("--query-compute-apps=pid,used_memory") or []:
        try:
            if int(parts[0]) == pid:
                total += int(parts[1])
                found = True
        except (ValueError, IndexError):
            continue
    return total if found else None


def smi(pid=None):
    used = smi_used()
    return {"total_used_mib": used["total_used_mib"] if used else None,
            "process_mib": smi_process_mib(pid) if pid else None}


class SmiSampler:
    """The peak of nvidia-smi's used memory, sampled in a thread."""

    def __init__(self, pid=None, interval=0.25):
        self.pid, self.interval = pid, interval
        self.peak_total = self.peak_process = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(15)

    def _run(self):
        while not self._stop.is_set():
            sample = smi(self.pid)
            for key, attr in (("total_used_mib", "peak_total"), ("process_mib", "peak_process")):
                if sample[key] is not None:
                    setattr(self, attr, max(getattr(self, attr) or 0, sample[key]))
            self._stop.wait(self.interval)


# --- prompts and tasks ---


def long_prompt():
    return " ".join(WORDS[i % len(WORDS)] for i in range(LONG_PROMPT_WORDS))


def task(task_input):
    """A task as the worker gets it from a lease (see run_once._task)."""
    return {"task_id": f"gpu-check-{uuid.uuid4().hex[:12]}", "lease_token": "gpu-check", "type": "llm",
            "model": MODEL, "input": task_input, "metadata": {}, "attempt": 1, "max_attempts": 1,
            "timeout_seconds": 300, "traceparent": None}


SHORT_1 = {"prompt": "hello world this is a test of the", "max_tokens": 200, "temperature": 0, "stream": True}
SHORT_2 = {"prompt": "the people of the city went to school and", "max_tokens": 200, "temperature": 0, "stream": True}
AFTER_STOP = {"prompt": "one more short task after the stop", "max_tokens": 20, "temperature": 0, "stream": True}


def long_input():
    return {"prompt": long_prompt(), "max_tokens": LONG_MAX_TOKENS, "temperature": 0, "stream": True}


def tokens_per_second(logs):
    for line in logs:
        if line.startswith("generated ") and "tokens/s" in line:
            return line
    return None


# --- make-model ---


def make_model(path):
    part = Part("make_model")
    try:
        try:
            import torch
            import transformers
            import tokenizers
        except ImportError as error:
            part.error(f"cannot import torch/transformers/tokenizers: {error} (this check needs them installed "
                       f"for {sys.executable})")
            return part.finish()
        versions = {"python": sys.version.split()[0], "torch": torch.__version__, "torch_cuda": torch.version.cuda,
                    "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}
        part["versions"] = versions
        print("  versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), flush=True)
        cuda = torch.cuda.is_available()
        part["cuda_available"] = cuda
        if cuda:
            props = torch.cuda.get_device_properties(0)
            gpu = {"name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
                   "total_mib": round(props.total_memory / MIB), "capability": list(torch.cuda.get_device_capability(0))}
            part["gpu"] = gpu
            print(f"  GPU: {gpu['name']} x{gpu['count']}, {gpu['total_mib']} MiB, capability {gpu['capability']}",
                  flush=True)
        part.check("torch.cuda.is_available()", cuda,
                   "" if cuda else "no CUDA: the backend would silently run on the CPU in float32")

        from tokenizers import Tokenizer, decoders, models, pre_tokenizers

        vocab = {token: index for index, token in enumerate(SPECIALS + list(dict.fromkeys(WORDS)))}
        backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
        backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        # Decoding joins the words with spaces, so TextStreamer finalizes (and the backend streams)
        # one word at a time.
        backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)
        fast_class = getattr(transformers, "PreTrainedTokenizerFast", None) or transformers.TokenizersBackend
        tokenizer = fast_class(
            tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>")
        os.makedirs(path, exist_ok=True)
        tokenizer.save_pretrained(path)
        config_file = os.path.join(path, "tokenizer_config.json")
        try:
            with open(config_file, encoding="utf-8") as file:
                tokenizer_config = json.load(file)
        except (OSError, ValueError):
            tokenizer_config = {}
        if not tokenizer_config.get("tokenizer_class"):
            # Without it AutoTokenizer would pick the llama model type's own tokenizer class.
            tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"
            with open(config_file, "w", encoding="utf-8") as file:
                json.dump(tokenizer_config, file, indent=2)
        part["tokenizer"] = {"class": type(tokenizer).__name__, "saved_tokenizer_class": tokenizer_config.get("tokenizer_class"),
                             "vocab_size": len(vocab)}

        config = transformers.LlamaConfig(
            vocab_size=len(vocab), hidden_size=HIDDEN, intermediate_size=INTERMEDIATE, num_hidden_layers=LAYERS,
            num_attention_heads=HEADS, num_key_value_heads=HEADS, max_position_embeddings=MAX_POSITIONS,
            bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"], pad_token_id=vocab["<pad>"], tie_word_embeddings=False)
        torch.manual_seed(0)
        model = transformers.LlamaForCausalLM(config)
        with torch.no_grad():
            # A random model could say </s> and end the long generation early: the special tokens
            # get a zero logit, below the best of ~500 random ones, so greedy decoding never picks them.
            for token in SPECIALS:
                model.lm_head.weight[vocab[token]].zero_()
        model.save_pretrained(path)
        params = sum(p.numel() for p in model.parameters())
        files = sorted(os.listdir(path))
        part["model"] = {"path": path, "params": params, "files": files,
                         "config": {"hidden": HIDDEN, "intermediate": INTERMEDIATE, "layers": LAYERS, "heads": HEADS,
                                    "vocab": len(vocab), "max_positions": MAX_POSITIONS}}
        print(f"  saved a random Llama ({params / 1e6:.2f} M parameters) and its tokenizer to {path}: "
              f"{', '.join(files)}", flush=True)

        # What the backend will do: AutoTokenizer on the folder must give back this tokenizer.
        reloaded = transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        sample = "hello world this is a test"
        ids, again = tokenizer(sample)["input_ids"], reloaded(sample)["input_ids"]
        decoded = reloaded.decode(again, skip_special_tokens=True)
        part["tokenizer_reload"] = {"class": type(reloaded).__name__, "ids": again, "decoded": decoded,
                                    "eos_token_id": reloaded.eos_token_id, "pad_token_id": reloaded.pad_token_id}
        part.check("AutoTokenizer reloads the saved tokenizer", ids == again and vocab["<unk>"] not in again
                   and decoded == sample,
                   f"{type(reloaded).__name__}: {sample!r} -> {again} -> {decoded!r}")
        return part.finish()
    except Exception:
        part.error(traceback.format_exc())
        return part.finish()


# --- executor: the worker's own code path ---


class ExecutorRun:
    def __init__(self, part):
        from taskmanager_worker.executor import Executor

        self.part = part
        self.executor = Executor({"llm": "transformers"}, "info")
        self.loads_seen = 0  # "loaded model ..." task log lines: one per load (the backend's load note)
        self.models_events = []

    def run(self, name, task_input, stop_after=None):
        """Runs one task; with stop_after, asks it to stop that many seconds after its first chunk,
        as the worker does on a cancel (Executor.stop). Returns the record, also saved in the part."""
        ex = self.executor
        job = task(task_input)
        record = {"max_tokens": task_input["max_tokens"], "chunks": 0, "logs": [], "models": [], "outcome": None}
        pieces = []
        started = now()
        first_chunk = stop_sent = None
        deadline = started + 90
        with SmiSampler(ex.pid, interval=0.5) as sampler:
            ex.run(job)
            while record["outcome"] is None:
                t = now()
                if stop_after is not None and stop_sent is None and (
                        (first_chunk is not None and t - first_chunk >= stop_after) or t - started > 60):
                    record["gpu_before_stop"] = smi(ex.pid)
                    record["chunks_before_stop"] = record["chunks"]
                    stop_sent = now()
                    ex.stop(job["task_id"])
                if stop_sent is not None and t - stop_sent > GRACE:
                    record["outcome"] = "killed (did not stop within %g s)" % GRACE
                    ex.kill()
                    break
                if t > deadline:
                    record["outcome"] = "no outcome within 90 s"
                    break
                for event in ex.events(0.02):
                    kind = event[0]
                    if kind == "chunk":
                        record["chunks"] += 1
                        pieces.append(event[2])
                        if first_chunk is None:
                            first_chunk = now()
                            record["first_chunk_s"] = round(first_chunk - started, 3)
                    elif kind == "log":
                        record["logs"].append(event[2])
                        if event[2].startswith("loaded model"):
                            self.loads_seen += 1
                    elif kind == "models":
                        record["models"].append(event[1])
                        self.models_events.append(event[1])
                    elif kind == "done":
                        record["outcome"] = "done"
                        record["output"] = json.loads(event[2])
                    elif kind == "failed":
                        record["outcome"] = "failed"
                        record["error"] = {"code": event[2], "message": event[3], "retryable": event[4]}
                    elif kind == "stopped":
                        record["outcome"] = "stopped"
                    elif kind == "died":
                        record["outcome"] = f"executor died (exit code {event[1]})"
            ended = now()
        record["seconds"] = round(ended - started, 3)
        if stop_sent is not None:
            record["stop_seconds"] = round(ended - stop_sent, 3)
            record["streamed_seconds_before_stop"] = round(stop_sent - (first_chunk or started), 3)
        record["gpu_after"] = smi(ex.pid)
        record["gpu_peak"] = {"total_used_mib": sampler.peak_total, "process_mib": sampler.peak_process}
        record["tokens_per_second_log"] = tokens_per_second(record["logs"])
        text = "".join(pieces)
        record["chunk_text_head"] = text[:300]
        record["chunks_joined_equal_text"] = (text == record["output"].get("text")) if record["outcome"] == "done" else None
        if record["outcome"] == "done" and len(record["output"].get("text", "")) > 2000:
            record["output"]["text"] = record["output"]["text"][:2000] + "..."
        self.part[name] = record
        print(f"  {name}: {record['outcome']} in {record['seconds']} s, {record['chunks']} chunks"
              + (f", stop took {record['stop_seconds']} s" if "stop_seconds" in record else "")
              + (f"; {record['tokens_per_second_log']}" if record["tokens_per_second_log"] else ""), flush=True)
        for line in record["logs"]:
            if line.startswith("loaded model"):
                print(f"    [log] {line}", flush=True)
        if record["outcome"] == "failed":
            print(f"    error: {record['error']}", flush=True)
        return record


def executor_mode():
    part = Part("executor")
    run = None
    try:
        from taskmanager_worker.executor import ExecutorError

        part["gpu_before_executor"] = smi()
        run = ExecutorRun(part)
        started = now()
        run.executor.start()
        try:
            run.executor.wait_ready(120)
        except ExecutorError as error:
            part.error(f"executor did not start: {error}")
            return part.finish()
        part["executor"] = {"pid": run.executor.pid, "ready_seconds": round(now() - started, 3)}
        part["gpu_executor_ready"] = smi(run.executor.pid)

        first = run.run("task1", SHORT_1)
        loads_after_first = run.loads_seen
        part["gpu_after_task1"] = smi(run.executor.pid)
        second = run.run("task2", SHORT_2)
        loads_after_second = run.loads_seen
        long = run.run("long_task", long_input(), stop_after=STOP_AFTER)
        time.sleep(1.0)
        part["gpu_1s_after_stop"] = smi(run.executor.pid)
        after = run.run("after_stop", AFTER_STOP)
        closing = now()
        run.executor.close(15)
        part["executor"]["close_seconds"] = round(now() - closing, 3)
        time.sleep(0.5)
        part["gpu_after_executor_exit"] = smi()
        part["loads_seen"] = run.loads_seen
        part["models_events"] = run.models_events

        # The checks.
        out1 = first.get("output") or {}
        part.check("task 1 done through the executor", first["outcome"] == "done",
                   first.get("error", {}).get("message", "") if first["outcome"] != "done" else
                   f"finish_reason {out1.get('finish_reason')}, usage {out1.get('usage')}")
        load_line = next((line for line in first["logs"] if line.startswith("loaded model")), "")
        part.check("the model loaded on CUDA in float16", "on cuda (float16)" in load_line, load_line or "no load line")
        part.check("task 1 streamed chunks", first["chunks"] > 1 and first.get("first_chunk_s") is not None
                   and first["first_chunk_s"] < first["seconds"],
                   f"{first['chunks']} chunks, first after {first.get('first_chunk_s')} s of {first['seconds']} s")
        part.check("the chunks add up to the output text", first["chunks_joined_equal_text"] is True,
                   f"text {out1.get('text', '')[:60]!r}...")
        part.check("task 2 done", second["outcome"] == "done", second.get("error", {}).get("message", ""))
        part.check("task 2 did not load the model again", loads_after_first == 1 and loads_after_second == 1
                   and len(run.models_events) == 1,
                   f"load log lines after task 1: {loads_after_first}, after task 2: {loads_after_second}; "
                   f"models events {run.models_events}; task 1 {first['seconds']} s, task 2 {second['seconds']} s")
        part.check("the long task was stopped (not killed, not finished)", long["outcome"] == "stopped",
                   f"outcome {long['outcome']} after {long['chunks']} chunks"
                   + (f", streamed {long.get('streamed_seconds_before_stop')} s before the stop" if long.get(
                       'streamed_seconds_before_stop') is not None else ""))
        if long.get("stop_seconds") is not None:
            part.check("the stop took under 1 s (cancel grace is 5 s)", long["stop_seconds"] < 1.0,
                       f"{long['stop_seconds']} s from Executor.stop() to the 'stopped' event")
        before, after_stop = long.get("gpu_before_stop") or {}, long.get("gpu_after") or {}
        key = "process_mib" if before.get("process_mib") is not None and after_stop.get("process_mib") is not None \
            else "total_used_mib"
        if before.get(key) is not None and after_stop.get(key) is not None:
            part.check(f"nvidia-smi memory dropped after the stop ({key})", after_stop[key] < before[key],
                       f"{before[key]} MiB just before the stop -> {after_stop[key]} MiB after it "
                       f"(after task 1: {(part['gpu_after_task1'] or {}).get(key)} MiB, "
                       f"peak during the long task {long['gpu_peak'].get(key)} MiB)")
        else:
            part.check("nvidia-smi memory dropped after the stop", None, "nvidia-smi gave no numbers")
        part.check("a task after the stop is done without reloading", after["outcome"] == "done"
                   and run.loads_seen == 1 and len(run.models_events) == 1,
                   f"outcome {after['outcome']}, load log lines in all {run.loads_seen}")
        stderr_file = os.environ.get("GPU_CHECK_STDERR_FILE")
        if stderr_file and os.path.exists(stderr_file):
            sys.stderr.flush()
            with open(stderr_file, encoding="utf-8", errors="replace") as file:
                loading = sum(1 for line in file if '"msg": "loading model"' in line)
            part["loading_model_log_lines"] = loading
            part.check("the executor's own log says 'loading model' once", loading == 1, f"{loading} lines")
        return part.finish()
    except Exception:
        part.error(traceback.format_exc())
        return part.finish()
    finally:
        if run is not None and run.executor.pid is not None:
            try:
                run.executor.kill()
            except Exception:
                pass


# --- in-process: the backend class itself, with torch.cuda memory stats ---


class Ctx:
    """A TaskContext as the executor gives one; stop() is set from another thread, as the
    executor's reader thread does on a stop message."""

    def __init__(self, torch):
        self.torch = torch
        self.chunks, self.logs = [], []
        self.first_chunk = threading.Event()
        self.first_chunk_at = None
        self.stop_event = threading.Event()
        self.max_reserved = 0

    def progress(self, progress, message=None):
        pass

    def chunk(self, text):
        self.chunks.append(text)
        if self.first_chunk_at is None:
            self.first_chunk_at = now()
            self.first_chunk.set()
        self.max_reserved = max(self.max_reserved, self.torch.cuda.memory_reserved())

    def log(self, line):
        self.logs.append(line)

    def stopped(self):
        return self.stop_event.is_set()


def inprocess_mode():
    part = Part("inprocess")
    try:
        import torch
        import transformers
        from taskmanager_worker.backends import TaskError, TaskStopped
        from taskmanager_worker.backends.transformers_llm import TransformersBackend

        cuda = torch.cuda.is_available()
        part["cuda_available"] = cuda
        if not cuda:
            part.error("torch.cuda.is_available() is False: nothing to measure on a GPU")
            return part.finish()

        def memory(label):
            torch.cuda.synchronize() if torch.cuda.is_initialized() else None
            value = {"allocated_mib": mib(torch.cuda.memory_allocated()), "reserved_mib": mib(torch.cuda.memory_reserved()),
                     "max_allocated_mib": mib(torch.cuda.max_memory_allocated()),
                     "max_reserved_mib": mib(torch.cuda.max_memory_reserved()), **smi(os.getpid())}
            part.data.setdefault("memory", {})[label] = value
            part.save()
            return value

        loads = []
        original = transformers.AutoModelForCausalLM.from_pretrained

        def counting_from_pretrained(*args, **kwargs):
            loads.append(now())
            return original(*args, **kwargs)

        transformers.AutoModelForCausalLM.from_pretrained = counting_from_pretrained

        backend = TransformersBackend()
        memory("before_load")

        def run(name, task_input, stop_after=None):
            ctx = Ctx(torch)
            job = task(task_input)
            record = {"max_tokens": task_input["max_tokens"]}
            started = now()
            backend.load(job["model"])  # what the executor does before a task; a no-op when it is loaded
            record["load_seconds"] = round(now() - started, 3)
            stopper = None
            if stop_after is not None:
                torch.cuda.reset_peak_memory_stats()

                def stop_later():
                    ctx.first_chunk.wait(60)
                    time.sleep(stop_after)
                    record["memory_before_stop"] = {"allocated_mib": mib(torch.cuda.memory_allocated()),
                                                    "reserved_mib": mib(torch.cuda.memory_reserved())}
                    record["chunks_before_stop"] = len(ctx.chunks)
                    record["stop_at"] = now()
                    ctx.stop_event.set()
                    part[f"{name}_stop_requested"] = {"chunks": len(ctx.chunks), **record["memory_before_stop"]}

                stopper = threading.Thread(target=stop_later, daemon=True)
                stopper.start()
            try:
                output = backend.run(job, ctx)
                record["outcome"] = "done"
                record["output"] = output
            except TaskStopped:
                record["outcome"] = "stopped"
            except TaskError as error:
                record["outcome"] = "failed"
                record["error"] = {"code": error.code, "message": error.message}
            ended = now()
            record["seconds"] = round(ended - started, 3)
            record["chunks"] = len(ctx.chunks)
            record["chunk_text_head"] = "".join(ctx.chunks)[:300]
            record["chunks_joined_equal_text"] = ("".join(ctx.chunks) == record.get("output", {}).get("text")
                                                  if record["outcome"] == "done" else None)
            record["first_chunk_s"] = round(ctx.first_chunk_at - started, 3) if ctx.first_chunk_at else None
            record["max_reserved_seen_in_chunks_mib"] = mib(ctx.max_reserved)
            record["logs"] = ctx.logs
            record["tokens_per_second_log"] = tokens_per_second(ctx.logs)
            if "stop_at" in record:
                record["stop_seconds"] = round(ended - record.pop("stop_at"), 3)
            record["memory_after"] = memory(f"after_{name}")
            record["loads_so_far"] = len(loads)
            part[name] = record
            print(f"  {name}: {record['outcome']} in {record['seconds']} s, {record['chunks']} chunks"
                  + (f", stop took {record['stop_seconds']} s" if "stop_seconds" in record else "")
                  + f"; allocated {record['memory_after']['allocated_mib']} MiB, reserved "
                  f"{record['memory_after']['reserved_mib']} MiB"
                  + (f"; {record['tokens_per_second_log']}" if record["tokens_per_second_log"] else ""), flush=True)
            return record

        first = run("task1", SHORT_1)
        model_object = id(backend._model)
        second = run("task2", SHORT_2)
        long = run("long_task", long_input(), stop_after=STOP_AFTER)
        time.sleep(1.0)
        memory("1s_after_stop")
        after = run("after_stop", AFTER_STOP)
        part["from_pretrained_calls"] = len(loads)
        part["loaded_model"] = backend.loaded_model

        mem = part["memory"]
        part.check("task 1 done on CUDA", first["outcome"] == "done" and any("on cuda (float16)" in l for l in first["logs"]),
                   next((l for l in first["logs"] if l.startswith("loaded model")), first.get("error", "")))
        part.check("task 1 streamed chunks that add up to its text", first["chunks"] > 1 and first["chunks_joined_equal_text"],
                   f"{first['chunks']} chunks")
        part.check("task 2 did not load the model again", second["outcome"] == "done" and second["loads_so_far"] == 1
                   and second["load_seconds"] < 0.01,
                   f"from_pretrained calls {second['loads_so_far']}, load() took {second['load_seconds']} s; "
                   f"allocated after task 1 {mem['after_task1']['allocated_mib']} MiB, after task 2 "
                   f"{mem['after_task2']['allocated_mib']} MiB")
        part.check("the long task was stopped", long["outcome"] == "stopped",
                   f"{long['outcome']} after {long['chunks']} chunks")
        if long.get("stop_seconds") is not None:
            part.check("the stop took under 1 s", long["stop_seconds"] < 1.0,
                       f"{long['stop_seconds']} s from ctx.stopped() turning true to TaskStopped")
        before = long.get("memory_before_stop") or {}
        after_stop = long["memory_after"]
        if before:
            part.check("torch.cuda.memory_reserved dropped after the stop",
                       after_stop["reserved_mib"] < before["reserved_mib"],
                       f"reserved {before['reserved_mib']} MiB just before the stop (peak {after_stop['max_reserved_mib']})"
                       f" -> {after_stop['reserved_mib']} MiB after; allocated {before['allocated_mib']} -> "
                       f"{after_stop['allocated_mib']} MiB; after load+task 1: reserved {mem['after_task1']['reserved_mib']}")
            part.check("the model's weights stayed allocated after the stop",
                       abs(after_stop["allocated_mib"] - mem["after_task1"]["allocated_mib"]) < 2.0
                       and after_stop["allocated_mib"] > 0,
                       f"allocated after task 1 {mem['after_task1']['allocated_mib']} MiB, after the stop "
                       f"{after_stop['allocated_mib']} MiB")
        part.check("a task after the stop is done without reloading",
                   after["outcome"] == "done" and len(loads) == 1 and id(backend._model) == model_object
                   and backend.loaded_model == MODEL,
                   f"from_pretrained calls {len(loads)}, loaded_model {backend.loaded_model!r}")
        backend.unload()
        memory("after_unload")
        return part.finish()
    except Exception:
        part.error(traceback.format_exc())
        return part.finish()


# --- run-once (parsed from its captured output) and the report ---


def parse_run_once():
    """What run.sh captured from `python3 -m taskmanager_worker run-once`."""
    result = {"ran": False}
    try:
        with open(os.path.join(OUT, "run_once.rc"), encoding="utf-8") as file:
            result["rc"] = int(file.read().strip() or -1)
        result["ran"] = True
    except (OSError, ValueError):
        return result
    stdout = stderr = ""
    try:
        with open(os.path.join(OUT, "run_once.stdout"), encoding="utf-8", errors="replace") as file:
            stdout = file.read()
        with open(os.path.join(OUT, "run_once.stderr"), encoding="utf-8", errors="replace") as file:
            stderr = file.read()
    except OSError:
        pass
    # In a pipe: the chunks exactly as they came, a newline, then the output as indented JSON.
    output, chunk_text = None, stdout
    index = stdout.rfind("\n{\n")
    json_text = stdout[index + 1:] if index >= 0 else stdout if stdout.startswith("{") else ""
    if json_text:
        chunk_text = stdout[:index] if index >= 0 else ""
        try:
            output = json.loads(json_text)
        except ValueError:
            output = None
    result["output"] = output
    result["chunk_text"] = chunk_text
    lines = stderr.splitlines()
    result["stderr_summary"] = [line for line in lines if line.startswith(("run-once:", "[log]", "[models]", "time:",
                                                                          "models loaded", "gpu memory", "task "))][:40]
    return result


def report():
    parts = {}
    for name in ("make_model", "executor", "inprocess"):
        path = os.path.join(OUT, f"part_{name}.json")
        try:
            with open(path, encoding="utf-8") as file:
                parts[name] = json.load(file)
        except (OSError, ValueError):
            parts[name] = None
    run_once = parse_run_once()
    checks = []
    if run_once["ran"]:
        output = run_once.get("output") or {}
        text = output.get("text")
        checks.append({"name": "run-once: exit code 0 and an output", "ok": run_once["rc"] == 0 and bool(output),
                       "detail": f"rc {run_once['rc']}, finish_reason {output.get('finish_reason')}, usage {output.get('usage')}"})
        checks.append({"name": "run-once: chunks streamed to stdout equal the output text",
                       "ok": text is not None and run_once["chunk_text"] == text,
                       "detail": f"{len(run_once['chunk_text'])} chars streamed"})
        load = next((line for line in run_once["stderr_summary"] if "loaded model" in line), "")
        checks.append({"name": "run-once: loaded on cuda (float16)", "ok": "on cuda (float16)" in load, "detail": load})
    else:
        checks.append({"name": "run-once", "ok": False, "detail": "did not run or was killed by its timeout"})
    for name in ("make_model", "executor", "inprocess"):
        part = parts[name]
        if part is None:
            checks.append({"name": f"{name}", "ok": False, "detail": "no results: it did not run"})
            continue
        for check in part.get("checks", []):
            checks.append({**check, "name": f"{name}: {check['name']}"})
        for error in part.get("errors", []):
            checks.append({"name": f"{name}: error", "ok": False, "detail": error.strip().splitlines()[-1]})
        if part.get("ok") is None:
            checks.append({"name": f"{name}: finished", "ok": False,
                           "detail": "it did not finish (killed by its timeout?); partial results kept"})
    ok = all(check["ok"] is not False for check in checks)
    summary = {}
    make = parts.get("make_model") or {}
    summary["versions"] = make.get("versions")
    summary["gpu"] = make.get("gpu")
    ex = parts.get("executor") or {}
    ip = parts.get("inprocess") or {}

    def pick(record, *keys):
        for key in keys:
            if not isinstance(record, dict):
                return None
            record = record.get(key)
        return record

    summary["executor"] = {
        "task1_seconds": pick(ex, "task1", "seconds"), "task2_seconds": pick(ex, "task2", "seconds"),
        "task1_tokens_per_second": pick(ex, "task1", "tokens_per_second_log"),
        "task2_tokens_per_second": pick(ex, "task2", "tokens_per_second_log"),
        "loads_seen": ex.get("loads_seen"), "stop_seconds": pick(ex, "long_task", "stop_seconds"),
        "gpu_before_executor": ex.get("gpu_before_executor"), "gpu_after_task1": ex.get("gpu_after_task1"),
        "gpu_before_stop": pick(ex, "long_task", "gpu_before_stop"), "gpu_after_stop": pick(ex, "long_task", "gpu_after"),
        "gpu_peak_long_task": pick(ex, "long_task", "gpu_peak"), "gpu_1s_after_stop": ex.get("gpu_1s_after_stop"),
        "gpu_after_executor_exit": ex.get("gpu_after_executor_exit")}
    summary["inprocess"] = {
        "memory": ip.get("memory"), "memory_before_stop": pick(ip, "long_task", "memory_before_stop"),
        "stop_seconds": pick(ip, "long_task", "stop_seconds"), "from_pretrained_calls": ip.get("from_pretrained_calls"),
        "task1_tokens_per_second": pick(ip, "task1", "tokens_per_second_log")}
    result = {"ok": ok, "checks": checks, "summary": summary, "run_once": run_once, "parts": parts}
    with open(os.path.join(OUT, "gpu_check.json"), "w", encoding="utf-8") as file:
        json.dump(result, file, indent=2, default=str)

    print("\n==== GPU check summary ====")
    if summary["versions"]:
        print("versions: " + ", ".join(f"{k} {v}" for k, v in summary["versions"].items()))
    if summary["gpu"]:
        print(f"GPU: {summary['gpu'].get('name')}")
    for check in checks:
        mark = {True: "PASS", False: "FAIL", None: "N/A "}[check["ok"]]
        print(f"[{mark}] {check['name']}" + (f" -- {check['detail']}" if check.get("detail") else ""))
    s = summary["executor"]
    print(f"executor: task1 {s['task1_seconds']} s (incl. load), task2 {s['task2_seconds']} s; "
          f"stop {s['stop_seconds']} s; loads {s['loads_seen']}")
    print(f"  tokens/s: task1 {s['task1_tokens_per_second']}; task2 {s['task2_tokens_per_second']}")

    def gpu(value):
        if not value:
            return "?"
        return f"{value.get('total_used_mib')} (process {value.get('process_mib')})"

    print(f"  nvidia-smi MiB: before executor {gpu(s['gpu_before_executor'])}, after task1 {gpu(s['gpu_after_task1'])}, "
          f"before stop {gpu(s['gpu_before_stop'])}, peak {gpu(s['gpu_peak_long_task'])}, after stop "
          f"{gpu(s['gpu_after_stop'])}, 1 s later {gpu(s['gpu_1s_after_stop'])}, after exit {gpu(s['gpu_after_executor_exit'])}")
    m = summary["inprocess"]["memory"] or {}
    if m:
        print("in-process torch.cuda MiB (allocated/reserved): " + ", ".join(
            f"{label} {value.get('allocated_mib')}/{value.get('reserved_mib')}" for label, value in m.items()))
        b = summary["inprocess"]["memory_before_stop"]
        if b:
            print(f"  just before the stop {b.get('allocated_mib')}/{b.get('reserved_mib')}; stop took "
                  f"{summary['inprocess']['stop_seconds']} s; from_pretrained calls {summary['inprocess']['from_pretrained_calls']}")
    print(f"OVERALL: {'PASS' if ok else 'FAIL'}  (details: {os.path.join(OUT, 'gpu_check.json')})")
    return 0 if ok else 1


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    mode = argv[0]
    if mode == "make-model" and len(argv) == 2:
        return make_model(argv[1])
    if mode == "executor":
        return executor_mode()
    if mode == "inprocess":
        return inprocess_mode()
    if mode == "report":
        return report()
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
