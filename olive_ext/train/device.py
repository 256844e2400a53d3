"""Where training runs and in which dtype: the GPU when there is one; the dtype measured, not assumed.

``torch_dtype: auto`` times a matrix multiply of the model's shape in each dtype the device
can train in correctly (fp32 and bf16 on CPUs; fp32, bf16 where supported, and fp16 with
loss scaling on CUDA) and keeps the fastest. On a CPU without native bf16 (AVX2 only) a bf16
matmul runs ~100x slower than fp32, so fp32 wins; on CPUs with AMX or AVX512-BF16 and on
GPUs bf16 usually wins. The result is cached per machine, device and torch version. On CUDA, finetune
times the training step itself instead (:mod:`olive_ext.train.dtype_step`: an H200 showed the matmul misleads
there).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from olive_ext.cpu_threads import plan_threads
from olive_ext.errors import UserInputError
from olive_ext.targets.base import cpu_model

logger = logging.getLogger("olive_ext")

# A lower precision must be at least this much faster to be chosen over fp32.
MIN_SPEEDUP = 1.3
# Rounds of the dtype measurement (each: every candidate dtype, best of 5 runs).
ROUNDS = 3


def training_device() -> str:
    """'cuda' when a CUDA GPU is visible, else 'mps' on Apple silicon, else 'cpu'."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def use_all_cores() -> int:
    """Intra-op threads = the cores free for this process (olive_ext/cpu_threads.py decides; torch's default
    can be lower in containers and higher than what a busy machine leaves).

    ``OLIVE_EXT_THREADS`` overrides it (e.g. on a machine shared with other heavy jobs).
    """
    import torch

    threads = plan_threads().threads
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def device_name(device: str) -> str:
    """The CPU model or GPU name, for metrics and benchmark tables."""
    if device == "cuda":
        import torch

        return str(torch.cuda.get_device_name(0))
    return cpu_model()


def candidate_dtypes(device: str) -> list[str]:
    import torch

    if device == "cuda":
        out = ["float32", "float16"]
        if torch.cuda.is_bf16_supported():
            out.insert(1, "bfloat16")
        return out
    if device == "mps":
        return ["float32"]
    return ["float32", "bfloat16"]


_SWITCHES = {"float16": "--fp16", "bfloat16": "--bf16"}  # the TrainingArguments switches that ask for a dtype


def dtype_problem(requested: str, device: str | None = None, in_recipe: bool = False) -> UserInputError | None:
    """Why training cannot run in ``requested`` on ``device`` (this machine's by default), or None; worded for the
    command's flags, or for a recipe's torch_dtype key (``in_recipe``: the key's path names it)."""
    if requested == "auto":
        return None
    device = device or training_device()
    allowed = candidate_dtypes(device)
    if requested in allowed:
        return None
    if in_recipe:
        return UserInputError(f"{requested} cannot train on {device}",
                              hint=f"this device trains in: {', '.join(allowed)}; write one of those, or auto "
                              "(measures which is fastest)")  # fmt: skip
    switch = f" (or {_SWITCHES[requested]} true)" if requested in _SWITCHES else ""
    flag = _SWITCHES.get(requested, "--torch_dtype")
    return UserInputError(f"--torch_dtype {requested}{switch} cannot train on {device}",
                          hint=f"this device trains in: {', '.join(allowed)}; leave out {flag} (--torch_dtype auto "
                          "measures which is fastest)")  # fmt: skip


def measure_matmul(device: str, dtype: str, hidden: int = 576, tokens: int = 256, repeats: int = 5) -> float:
    """Seconds for one (tokens x hidden) @ (hidden x 2*hidden) matmul, best of ``repeats``."""
    import torch

    dt = getattr(torch, dtype)
    a = torch.randn(tokens, hidden, device=device).to(dt)
    b = torch.randn(hidden, 2 * hidden, device=device).to(dt)
    best = float("inf")
    for i in range(repeats + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(10 if device == "cuda" else 1):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        if i:  # the first run warms up
            best = min(best, time.perf_counter() - start)
    return best


def pick_dtype(seconds: dict[str, float]) -> str:
    """The dtype to train in from each candidate's seconds (a matmul's here, a training step's on CUDA).

    A lower precision must be ``MIN_SPEEDUP`` times faster than fp32. Between bf16 and fp16, bf16 unless fp16 is
    ``MIN_SPEEDUP`` times faster than bf16 too: on GPUs both run on the same tensor cores (an H200 timed them
    within 3% of each other, and the order flipped between runs), and fp16 needs loss scaling and can overflow
    where bf16 does not.
    """
    fp32 = seconds["float32"]
    fast = {dt: t for dt, t in seconds.items() if dt != "float32" and fp32 / t >= MIN_SPEEDUP}
    if not fast:
        return "float32"
    if "bfloat16" in fast and "float16" in fast and fast["bfloat16"] / fast["float16"] < MIN_SPEEDUP:
        return "bfloat16"
    return min(fast, key=fast.__getitem__)


def choose_dtype(requested: str, device: str, cache_root: Path | None = None) -> tuple[str, dict[str, Any]]:
    """(dtype, how it was chosen). ``requested`` other than 'auto' is checked, then used as given."""

    if requested != "auto":
        if problem := dtype_problem(requested, device):
            raise problem
        return requested, {"requested": requested}
    import torch

    key = f"{device}|{device_name(device)}|torch {torch.__version__}|threads {torch.get_num_threads()}"
    known = read_choices(cache_root)
    if key in known:
        entry = known[key]
        return entry["dtype"], {**entry, "cached": True}
    # alternate the dtypes over a few rounds and keep each one's best, so that load from other
    # processes during the measurement falls on every dtype alike
    allowed = candidate_dtypes(device)
    timings = {dt: float("inf") for dt in allowed}
    for _ in range(ROUNDS):
        for dt in allowed:
            timings[dt] = min(timings[dt], measure_matmul(device, dt))
    choice = pick_dtype(timings)
    entry = {"dtype": choice, "matmul_seconds": {k: round(v, 6) for k, v in timings.items()}, "key": key}
    logger.info(
        "torch_dtype auto: %s (matmul %s)", choice, ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in timings.items())
    )
    write_choice(cache_root, key, entry)
    return choice, {**entry, "cached": False}


def _store(cache_root: Path | None) -> Path | None:
    return cache_root / "dtype-choice.json" if cache_root else None


def read_choices(cache_root: Path | None) -> dict[str, Any]:
    """The dtype choices remembered under ``cache_root`` (by key), {} when none or unreadable."""
    store = _store(cache_root)
    if store is None or not store.exists():
        return {}
    try:
        known = json.loads(store.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return known if isinstance(known, dict) else {}


def write_choice(cache_root: Path | None, key: str, entry: dict[str, Any]) -> None:
    """Remember one choice (atomically; a cache that cannot be written only costs a new measurement)."""
    store = _store(cache_root)
    if store is None:
        return
    known = {**read_choices(cache_root), key: entry}
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        tmp = store.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(known, indent=1))
        os.replace(tmp, store)
    except OSError:
        pass
