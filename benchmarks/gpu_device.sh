#!/bin/bash
# The GPU checks, for a session lent a device machine (tool `device`; its image has torch/transformers/peft but
# not our other dependencies, and nothing can be installed there but carried wheels).
#
#   bash benchmarks/gpu_device.sh prepare        # here: wheels for the device's Python 3.12 into .gpu/wheels (~44 MB)
#   (device run, carry [".gpu"], timeout ~520)   bash benchmarks/gpu_device.sh run
#   (device run, carry [".gpu"], timeout ~400)   bash benchmarks/gpu_device.sh check   # the dtype choice only
#
# `run` installs the wheels, prints the versions, then benchmarks/gpu_training.py on the 0.5B shape (every row)
# and the 1.5B shape (lora-auto, qlora, plain-bf16); JSON rows and the log land in $OUT. 2026-12-04 on an H200
# the whole run took 395 s (RESULTS.md "Fine-tuning on a GPU").
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    mkdir -p .gpu/wheels
    .venv/bin/pip download --no-deps -q -d .gpu/wheels --python-version 3.12 --only-binary=:all: \
        pydantic pydantic-core annotated-types typing-inspection datasets dill multiprocess gguf "bitsandbytes==0.50.0"
    du -sh .gpu ;;
run)
    : "${OUT:?run this on the device machine, where \$OUT is set}"
    exec > >(tee "$OUT/log.txt") 2>&1
    date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -m pip install -q --no-deps --no-index .gpu/wheels/*.whl
    python3 -c "import torch, transformers, peft, bitsandbytes as b; print(torch.__version__, torch.cuda.get_device_name(0), transformers.__version__, peft.__version__, b.__version__)"
    export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
    timeout "${BENCH_TIMEOUT:-280}" python3 benchmarks/gpu_training.py --sizes 0.5b --steps 30 --batch 16 \
        --work /tmp/gw --json "$OUT/gpu-0.5b.json" || true
    timeout "${BENCH2_TIMEOUT:-170}" python3 benchmarks/gpu_training.py --sizes 1.5b --steps 30 --batch 16 \
        --rows lora-auto,qlora,plain-bf16 --work /tmp/gw --json "$OUT/gpu-1.5b.json" || true
    date -u ;;
check)
    # The shorter check of `--torch_dtype auto` on CUDA (one timed training step per dtype): lora-auto beside
    # lora-fp32 on both shapes, then the dtype lines the fine-tunes logged.
    : "${OUT:?run this on the device machine, where \$OUT is set}"
    exec > >(tee "$OUT/log.txt") 2>&1
    date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -m pip install -q --no-deps --no-index .gpu/wheels/*.whl
    export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
    timeout "${BENCH_TIMEOUT:-200}" python3 benchmarks/gpu_training.py --sizes 0.5b --steps 30 --batch 16 \
        --rows lora-auto,lora-fp32,qlora --work /tmp/gw --json "$OUT/gpu-0.5b.json" || true
    timeout "${BENCH2_TIMEOUT:-150}" python3 benchmarks/gpu_training.py --sizes 1.5b --steps 30 --batch 16 \
        --rows lora-auto,lora-fp32 --work /tmp/gw --json "$OUT/gpu-1.5b.json" || true
    grep -rh "torch_dtype auto" /tmp/gw || true
    date -u ;;
*)
    echo "usage: bash benchmarks/gpu_device.sh prepare|run|check" >&2; exit 2 ;;
esac
