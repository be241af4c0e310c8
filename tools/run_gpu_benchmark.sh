#!/usr/bin/env bash
# The one GPU benchmark run (one CUDA GPU; budget < 330 s with Python start-up). From the repo root:
#     bash tools/run_gpu_benchmark.sh
# 1) bf16 + channels_last, batch 128, 224 px: search-plain, search-kd, search-meta, static, retrain (287), eval (287)
#    with the defaults (the original's behaviour), each phase on its own: img/s and peak memory
# 2) the same for search-plain and search-kd with configs/train_corrected.yaml (img/s and peak memory)
# 3) fp32, same batch and size: search-plain and search-kd, for the peak-memory comparison, counting the
#    host syncs of their steps (torch sync debug mode: syncs_per_step, sync_sites in the JSON lines)
# 4) bf16 + channels_last: search-plain and search-kd with the defaults and with configs/train_corrected.yaml,
#    interleaved in the same rounds (what the fidelity defaults cost on a GPU: the kd/plain ratios)
# 5) torch.profiler over the defaults' distillation step (bf16 + channels_last): its parts and the kernels with
#    the most GPU time (tools/profile_step.py; also a Chrome trace)
# 6) only with WITH_COMPILE=1: bf16 + channels_last with torch.compile (per supernet block; fixed networks
#    whole) for search-plain, static and retrain, under a 240 s limit: does compiling pay on this GPU?
# then one table of all. JSON lines, the table and the profile go to $OUT/tmp/ (gpu_benchmark.jsonl / .txt,
# profile_search_kd.txt, profile_search_kd.json). Nothing is written outside $OUT/tmp (temporary and compile
# caches are pointed there too).
set -euo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's lib, whether or not pip install -e . ran

TMP_DIR="${OUT:-/tmp/cream_benchmark}/tmp"
mkdir -p "$TMP_DIR"
export TMPDIR="$TMP_DIR" TORCHINDUCTOR_CACHE_DIR="$TMP_DIR/inductor" TRITON_CACHE_DIR="$TMP_DIR/triton"
LOG="$TMP_DIR/gpu_benchmark.jsonl"
: > "$LOG"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -c 'import torch, timm; print("torch", torch.__version__, "timm", timm.__version__, "cuda", torch.version.cuda)'

COMMON=(--device cuda --batch-size 128 --image-size 224 --selection 287 --seed 0 --jsonl "$LOG")
timeout 100 python tools/benchmark.py "${COMMON[@]}" --amp bf16 --channels-last --warmup 3 --steps 10 \
    --phases search-plain,search-kd,search-meta,static,retrain,eval
timeout 45 python tools/benchmark.py "${COMMON[@]}" --amp bf16 --channels-last --warmup 2 --steps 6 \
    --phases search-plain,search-kd --cfg configs/train_corrected.yaml \
    || echo "corrected-config phases did not finish (exit $?)"
timeout 40 python tools/benchmark.py "${COMMON[@]}" --amp none --warmup 2 --steps 5 --sync-debug \
    --phases search-plain,search-kd || echo "fp32 memory comparison did not finish (exit $?)"

timeout 60 python tools/benchmark.py "${COMMON[@]}" --amp bf16 --channels-last --warmup 2 --steps 8 --interleave \
    --phases search-plain,search-kd --compare-cfg configs/train_corrected.yaml \
    || echo "original-vs-corrected comparison did not finish (exit $?)"

timeout 50 python tools/profile_step.py --device cuda --batch-size 128 --image-size 224 --amp bf16 --channels-last \
    --phase search-kd --warmup 2 --steps 3 --ops 15 --trace "$TMP_DIR/profile_search_kd.json" \
    | tee "$TMP_DIR/profile_search_kd.txt" || echo "profile did not finish (exit $?)"

if [ "${WITH_COMPILE:-0}" = 1 ]; then
    timeout 240 python tools/benchmark.py "${COMMON[@]}" --amp bf16 --channels-last --compile --warmup 3 --steps 10 \
        --phases search-plain,static,retrain || echo "compiled run did not finish (exit $?)"
fi

echo "=== all phases ==="
python tools/benchmark.py --table-from "$LOG" | tee "$TMP_DIR/gpu_benchmark.txt"
