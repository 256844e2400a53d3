"""Per-step time of one LoRA training step on a CUDA GPU, by dtype: the first steps against the steady state.

    python benchmarks/gpu_dtype_steps.py [--size 0.5b] [--steps 40] [--batch 16] [--seq 56]

benchmarks/gpu_training.py measured olive-ext's dtype choice (bf16, by a matmul timing) training slower than
fp32 over 30 steps on an H200, and Trainer + peft in bf16 the same. This separates a one-off cost (kernels
loaded or tuned at their first use) from the cost of every step: one process, benchmarks/scaling.py's model
shape with random weights built in memory, peft LoRA (r 16, all linear layers), AdamW, a fixed batch of
``--batch`` x ``--seq`` random tokens; per dtype (fp32 weights; bf16 weights; fp32 weights under bf16 autocast)
every step timed with CUDA synchronisation. Also olive-ext's own matmul timing (train/device.py) at its default
shape and at the model's. Prints one JSON line per dtype.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def steps_of(size: str, mode: str, steps: int, batch: int, seq: int) -> list[float]:
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from scaling import SHAPES

    torch.manual_seed(0)
    config = transformers.Qwen2Config(**SHAPES[size], tie_word_embeddings=True)
    dtype = torch.bfloat16 if mode == "bf16" else torch.float32
    model = transformers.Qwen2ForCausalLM(config).to("cuda", dtype)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-4)
    ids = torch.randint(0, config.vocab_size, (batch, seq), device="cuda")
    times = []
    for _ in range(steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", torch.bfloat16, enabled=mode == "fp32+autocast-bf16"):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    del model, opt
    torch.cuda.empty_cache()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="0.5b")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=56)
    args = ap.parse_args()
    from scaling import SHAPES

    if args.size not in SHAPES:
        ap.error(f"--size {args.size}: unknown; give one of {', '.join(SHAPES)}")
    if args.steps < 6:
        ap.error(f"--steps {args.steps}: give 6 or more (the steady time is the median after 5 steps)")
    import torch

    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU visible to torch: nothing to measure here (CPU figures: benchmarks/finetune.py)")
    from olive_ext.train.device import measure_matmul

    hidden = SHAPES[args.size]["hidden_size"]
    for dt in ("float32", "bfloat16", "float16"):
        print(json.dumps({"matmul": dt, "default_shape_ms": measure_matmul("cuda", dt) * 1e3,
                          "model_shape_ms": measure_matmul("cuda", dt, hidden, args.batch * args.seq) * 1e3}),
              flush=True)  # fmt: skip
    for mode in ("fp32", "bf16", "fp32+autocast-bf16", "fp32"):  # fp32 again: is the first one's start warm-up?
        times = steps_of(args.size, mode, args.steps, args.batch, args.seq)
        print(json.dumps({"mode": mode, "first_s": round(times[0], 3), "second_s": round(times[1], 4),
                          "steady_ms": round(statistics.median(times[5:]) * 1e3, 2),
                          "total_s": round(sum(times), 2)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    from _common import run_main

    run_main(main)
