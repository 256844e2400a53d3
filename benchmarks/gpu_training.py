"""Fine-tuning on a CUDA GPU: olive-ext's LoRA (measured dtype, fp32), QLoRA and DoRA beside Trainer + peft.

    python benchmarks/gpu_training.py [--sizes 0.5b] [--steps 30] [--batch 16] [--rows ...] [--json OUT.json]
        [--write benchmarks/RESULTS.md]

Per size, one model built in code (benchmarks/scaling.py's Qwen2.5 shapes, seeded random weights, the
tests' small BPE tokenizer: nothing is downloaded), then each row a process of its own on the same data (the
tone task's 480 training rows, recipes/data/tone.jsonl), the same steps, batch, rank, learning rate and seed:

- ``olive-ext finetune`` with ``--torch_dtype auto`` (the dtype measured on this GPU), then ``float32``;
- ``olive-ext finetune --method qlora`` (4-bit NF4 base through bitsandbytes, compute dtype measured) and
  ``--method dora``;
- the hand-written Trainer + peft script (benchmarks/_plain_finetune.py) in fp32 and in bf16 (weights loaded in
  bf16, ``bf16=True``), the baseline a careful user writes.

Train tokens/s counts the tokens that are not padding over the training loop's own time (olive-ext's
train_metrics.json, the plain script's callback); GPU peak is ``torch.cuda.max_memory_allocated`` of the
training process. Random weights: the loss shows the adapter learns the task's shape, not answer quality.
Without a CUDA GPU the script says so and stops (the CPU figures are benchmarks/finetune.py's). On a device
machine lent to a session: benchmarks/gpu_device.sh (the wheels to carry, the run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import output_path, run_main  # noqa: E402

ROWS = ("lora-auto", "lora-fp32", "qlora", "dora", "plain-fp32", "plain-bf16")
TEMPLATE = "Phrase: {phrase}\\nTone: {tone}"


def build_model(size: str, path: Path) -> None:
    """benchmarks/scaling.py's model of ``size``, written to ``path`` (fp32 safetensors + tokenizer)."""
    from scaling import BUILD_MODEL, SHAPES

    if not (path / "config.json").exists():
        subprocess.run([sys.executable, "-c", BUILD_MODEL, str(path), str(ROOT / "tests"), json.dumps(SHAPES[size])],
                       check=True)  # fmt: skip


def make_row(name: str, hf: Path, data: Path, steps: int, work: Path):  # type: ignore[no-untyped-def]
    from finetune import olive_ext_row, plain_row

    if name.startswith("plain"):
        dtype = "bfloat16" if name == "plain-bf16" else "float32"
        row = plain_row(hf, data, TEMPLATE, steps, work / name)
        row.argv += ["--dtype", dtype]
        row.dtype = dtype
        return row
    dtype = "float32" if name == "lora-fp32" else "auto"
    row = olive_ext_row(hf, data, TEMPLATE, steps, work / name, dtype)
    if name in ("qlora", "dora"):
        row.argv += ["--method", name]
        row.command += f" --method {name}"
    if not Path(row.argv[0]).exists():  # the package importable but not installed (a device image's python3)
        row.argv[:1] = [sys.executable, "-m", "olive_ext"]
    return row


def gpu_peak_mb(row) -> float | None:  # type: ignore[no-untyped-def]
    for name in ("train_metrics.json", "plain_metrics.json"):
        path = row.out / "result" / name
        if path.exists():
            return json.loads(path.read_text()).get("gpu_peak_mb")
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["0.5b"])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of: {', '.join(ROWS)}")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--json", type=output_path, default=None, help="also write the rows as JSON here")
    ap.add_argument("--write", type=output_path, default=None, help="replace the '## Fine-tuning on a GPU' section")
    ap.add_argument("--cpu", action="store_true", help="try the script without a GPU (use --sizes tiny)")
    args = ap.parse_args()
    from scaling import SHAPES

    unknown = [r for r in args.rows.split(",") if r not in ROWS]
    if unknown:
        ap.error(f"--rows: unknown {', '.join(unknown)}; give a comma-separated list of {', '.join(ROWS)}")
    unknown = [s for s in args.sizes if s not in SHAPES]
    if unknown:
        ap.error(f"--sizes: unknown {', '.join(unknown)}; give some of {', '.join(SHAPES)}")
    import torch

    if not torch.cuda.is_available() and not args.cpu:
        sys.exit("no CUDA GPU visible to torch: nothing to measure here (CPU figures: benchmarks/finetune.py)")
    import finetune

    finetune.SHARED["batch"] = args.batch
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU)"
    data = ROOT / "recipes" / "data" / "tone.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    results = []
    for size in args.sizes:
        hf = work / f"model-{size}"
        build_model(size, hf)
        for name in args.rows.split(","):
            row = make_row(name, hf, data, args.steps, work / size)
            print(f"[bench] {size} {name}: {' '.join(row.argv)}", file=sys.stderr, flush=True)
            finetune.measure(row, env)
            finetune.collect(row, args.steps, 0.0)
            result = {"size": size, "row": name, "ok": row.ok, "note": row.note, "dtype": row.dtype,
                      "steps": row.steps, "wall_s": round(row.wall, 1), "train_s": row.train_seconds,
                      "tokens": row.tokens, "tok_per_s": row.tokens_per_second, "gpu_peak_mb": gpu_peak_mb(row),
                      "rss_mb": round(row.peak_rss_mb), "first_loss": row.losses[0] if row.losses else None,
                      "final_loss": row.final_loss}  # fmt: skip
            if not row.ok:
                result["log_tail"] = (row.out / "run.log").read_text(errors="replace")[-3000:]
            print(json.dumps(result), flush=True)
            results.append(result)
            if args.json:
                args.json.write_text(json.dumps({"device": device, "torch": torch.__version__,
                                                 "rows": results}, indent=1))  # fmt: skip
    text = table(results, device)
    print(text)
    if args.write:
        from _common import write_section

        write_section(args.write, "Fine-tuning on a GPU", text)


def table(results: list[dict], device: str) -> str:
    lines = [f"GPU: {device}.", "",
             "| size | row | dtype | steps | wall s | train s | train tok/s | GPU peak MB | loss first -> last 5 |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        tps = "" if r["tok_per_s"] is None else f"{r['tok_per_s']:.0f}"
        peak = "" if r["gpu_peak_mb"] is None else f"{r['gpu_peak_mb']:.0f}"
        train = "" if r["train_s"] is None else f"{r['train_s']:.1f}"
        loss = "" if r["final_loss"] is None else f"{r['first_loss']:.2f} -> {r['final_loss']:.2f}"
        steps = str(r["steps"]) + ("" if r["ok"] else f" ({r['note']})")
        lines.append(f"| {r['size']} | {r['row']} | {r['dtype']} | {steps} | {r['wall_s']:.0f} | {train} | {tps} | "
                     f"{peak} | {loss} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    run_main(main)
