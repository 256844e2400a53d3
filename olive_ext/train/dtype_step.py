"""``--torch_dtype auto`` on a GPU: the dtypes raced on the training step itself, not on a matmul.

On an H200 (benchmarks/gpu_training.py and gpu_dtype_steps.py, RESULTS.md "Fine-tuning on a GPU") the matmul
timing of :mod:`olive_ext.train.device` made bf16 1.5x faster than fp32 (5.5x at the model's shape), yet one LoRA
step of a 0.5B model at ~900 tokens took 134 ms in fp32 and 157 ms in bf16, and the bf16 run trained 3x slower:
a step that small is bound by kernel launches, not by matmul arithmetic. So on CUDA each candidate dtype is loaded
as training will load it (LoRA, QLoRA or DoRA; bf16/fp16 under autocast, as the Trainer runs them), and forward +
backward on the first training batch is timed; :func:`~olive_ext.train.device.pick_dtype`'s 1.3x rule decides.
The choice is remembered per GPU, torch version, model config, adapter and batch shape. CPUs keep the matmul
timing: there it matched training (bf16 1.6x on AVX512-BF16) at a fraction of the cost.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import time
from pathlib import Path
from typing import Any

from olive_ext.train.device import candidate_dtypes, device_name, pick_dtype, read_choices, write_choice
from olive_ext.train.features import Collator
from olive_ext.train.loss import LossFunction
from olive_ext.train.model import add_adapter, load_model
from olive_ext.train.options import FinetuneOptions

logger = logging.getLogger("olive_ext")

STEPS = 3  # timed forward + backward passes per dtype, after one warm-up


def time_step(model: Any, batch: dict[str, Any], device: str, dtype: str) -> float:
    """Best of :data:`STEPS` forward + backward passes on ``batch`` (after one warm-up), in seconds; gradients are
    dropped after, so the adapter is as it was."""
    import torch

    loss_fn = LossFunction()
    best = float("inf")
    with torch.autocast(device_type=device, dtype=getattr(torch, dtype), enabled=dtype != "float32"):
        for i in range(STEPS + 1):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            loss_sum, count = loss_fn(model, batch)
            (loss_sum / max(int(count), 1)).backward()
            if device == "cuda":
                torch.cuda.synchronize()
            if i:
                best = min(best, time.perf_counter() - start)
    model.zero_grad(set_to_none=True)
    return best


def step_key(model_path: str, opts: FinetuneOptions, device: str, shape: tuple[int, ...]) -> str:
    """What the step's time depends on: the device, torch, the model's config, the adapter and the batch shape."""
    import torch

    config = Path(model_path, "config.json")
    model = hashlib.sha256(config.read_bytes()).hexdigest()[:16] if config.is_file() else model_path
    adapter = f"{opts.method} r{opts.lora_r} {opts.target_modules}"
    return f"step|{device}|{device_name(device)}|torch {torch.__version__}|{model}|{adapter}|batch {list(shape)}"


def choose_dtype_by_step(
    model_path: str,
    opts: FinetuneOptions,
    rows: list[dict[str, list[int]]],
    pad_id: int,
    device: str,
    cache_root: Path | None = None,
    trust_remote_code: bool = False,
) -> tuple[str, dict[str, Any]]:
    """(dtype, how it was chosen): each dtype ``device`` trains in, timed on one step of the first training batch."""
    import torch

    batch = Collator(pad_id)(rows[: opts.per_device_train_batch_size])
    batch.pop("real_tokens", None)
    key = step_key(model_path, opts, device, tuple(batch["input_ids"].shape))
    known = read_choices(cache_root)
    if key in known:
        return known[key]["dtype"], {**known[key], "cached": True}
    batch = {k: v.to(device) for k, v in batch.items()}
    seconds: dict[str, float] = {}
    for dt in candidate_dtypes(device):
        model = add_adapter(load_model(model_path, opts, device, dt, trust_remote_code), opts)
        model.train()
        seconds[dt] = time_step(model, batch, device, dt)
        del model
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    choice = pick_dtype(seconds)
    entry = {"dtype": choice, "step_seconds": {k: round(v, 6) for k, v in seconds.items()}, "key": key}
    logger.info("torch_dtype auto: %s (one training step: %s)", choice,
                ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in seconds.items()))  # fmt: skip
    write_choice(cache_root, key, entry)
    return choice, {**entry, "cached": False}
