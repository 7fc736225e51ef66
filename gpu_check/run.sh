#!/usr/bin/env bash
# GPU check of the worker's `transformers` LLM backend, on a machine with an NVIDIA GPU and torch +
# transformers installed for python3 (no network needed). Run from the repository root:
#
#     OUT=/some/folder bash gpu_check/run.sh
#
# Writes $OUT/gpu_check.json (all measurements and checks) and step logs, prints a summary.
# Steps (each under `timeout`, the whole run under GPU_CHECK_TOTAL_SECONDS, default 220 s):
#   0. nvidia-smi, python/torch/transformers found?
#   1. make-model: a tiny random Llama + a WordLevel tokenizer built in code, saved to a temp folder
#   2. run-once:   one streamed llm task through `python3 -m taskmanager_worker run-once` on CUDA
#   3. executor:   tasks through a real executor process as the worker runs them: two tasks (one
#                  model load), a long generation stopped with Executor.stop(), a task after it
#   4. inprocess:  the same on TransformersBackend in this process, with torch.cuda memory stats
#   5. report:     $OUT/gpu_check.json and the summary
set -u

cd "$(dirname "$0")/.." || exit 2
REPO=$(pwd)
OUT=${OUT:-$REPO/gpu_check/out}
mkdir -p "$OUT" || { echo "cannot create OUT=$OUT"; exit 2; }
OUT=$(cd "$OUT" && pwd)
export OUT
PY=${PYTHON:-python3}
TOTAL=${GPU_CHECK_TOTAL_SECONDS:-220}
START=$SECONDS
MODEL_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-models.XXXXXX") || exit 2
trap 'rm -rf "$MODEL_ROOT"' EXIT

export TASKMANAGER_MODEL_DIR="$MODEL_ROOT"
export GPU_CHECK_MODEL=tiny-llama
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 HF_HUB_DISABLE_TELEMETRY=1
export PYTHONPATH="$REPO/worker${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export TOKENIZERS_PARALLELISM=false

# A step's time limit: its own cap, or what is left of the total (keeping 15 s for the report);
# 0 when too little is left to start it.
limit() {
    local cap=$1 left=$((TOTAL - (SECONDS - START) - 15))
    if ((left < 5)); then echo 0; elif ((cap < left)); then echo "$cap"; else echo "$left"; fi
}

# step NAME CAP COMMAND...: runs it under timeout; stdout to $OUT/NAME.log and here, stderr to $OUT/NAME.stderr
step() {
    local name=$1 cap=$2 t rc began=$SECONDS
    shift 2
    t=$(limit "$cap")
    if ((t == 0)); then echo "== $name: SKIPPED, the total time (${TOTAL} s) is used up =="; return 124; fi
    echo "== $name (limit ${t} s) =="
    timeout -k 5 "$t" "$@" 2>"$OUT/$name.stderr" | tee "$OUT/$name.log"
    rc=${PIPESTATUS[0]}
    if ((rc == 124 || rc == 137)); then
        echo "  !! $name timed out after ${t} s (partial results kept; see $OUT/$name.stderr)"
    elif ((rc != 0)); then
        echo "  !! $name exited $rc; the last lines of its stderr (JSON log lines left out):"
        grep -v '^{' "$OUT/$name.stderr" | tail -n 8 | sed 's/^/     /'
    fi
    echo "  ($name took $((SECONDS - began)) s)"
    return $rc
}

echo "== environment =="
{
    echo "date: $(date -u +%FT%TZ)"; echo "host: $(hostname)"; echo "repo: $REPO"; echo "OUT: $OUT"
    echo "git: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null) $(git -C "$REPO" status --porcelain 2>/dev/null | wc -l) changed files"
    command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv \
        || echo "nvidia-smi: not found or failed"
    echo "python: $(command -v "$PY") $($PY --version 2>&1)"
} 2>&1 | tee "$OUT/environment.txt"
if ! command -v "$PY" >/dev/null; then echo "FATAL: $PY not found"; exit 2; fi
if ! timeout 60 "$PY" -c 'import torch, transformers, tokenizers' 2>"$OUT/import.stderr"; then
    echo "FATAL: $PY cannot import torch, transformers and tokenizers:"; tail -n 5 "$OUT/import.stderr"
    echo '{"ok": false, "error": "cannot import torch/transformers/tokenizers"}' >"$OUT/gpu_check.json"
    exit 2
fi

step make_model 60 "$PY" gpu_check/check.py make-model "$MODEL_ROOT/$GPU_CHECK_MODEL"
if [ ! -f "$MODEL_ROOT/$GPU_CHECK_MODEL/config.json" ]; then
    echo "FATAL: no model was made; see $OUT/make_model.stderr"
    "$PY" gpu_check/check.py report
    exit 1
fi

# run-once: one task in an executor process of its own, as `python3 -m taskmanager_worker run-once`.
t=$(limit 50)
if ((t > 0)); then
    echo "== run_once (limit $t s) =="
    began=$SECONDS
    (cd worker && timeout -k 5 "$t" "$PY" -m taskmanager_worker run-once --type llm --backend transformers \
        --model "$GPU_CHECK_MODEL" --timeout 40 --grace 5 --log-level info \
        --input '{"prompt": "hello world this is a test of the", "max_tokens": 64, "temperature": 0, "stream": true}' \
        >"$OUT/run_once.stdout" 2>"$OUT/run_once.stderr")
    echo $? >"$OUT/run_once.rc"
    grep -E '^(run-once|\[log\]|\[models\]|time:|models loaded|gpu memory|task )' "$OUT/run_once.stderr" | sed 's/^/  /'
    echo "  rc $(cat "$OUT/run_once.rc"); stdout: $(head -c 300 "$OUT/run_once.stdout" | tr '\n' ' ')"
    echo "  (run_once took $((SECONDS - began)) s)"
else
    echo "== run_once: SKIPPED, the total time is used up =="
fi

export GPU_CHECK_STDERR_FILE="$OUT/executor.stderr"
step executor 75 "$PY" gpu_check/check.py executor
step inprocess 55 "$PY" gpu_check/check.py inprocess

timeout -k 2 15 "$PY" gpu_check/check.py report
rc=$?
echo "(total $((SECONDS - START)) s; files in $OUT: $(ls "$OUT" | tr '\n' ' '))"
exit $rc
