"""Time and memory against model size: ~0.5B and ~1.5B Qwen2-shaped models, random weights, built in code.

    python benchmarks/scaling.py [--sizes 0.5b 1.5b] [--steps 4] [--precisions int4 fp32 int8] [--eval-rows 4]
        [--max-rss-gb 14] [--work DIR] [--write benchmarks/RESULTS.md]

Per size (each command a process of its own, peak RSS of its process tree sampled every 50 ms, the tree
killed past ``--max-rss-gb``):

1. the model: transformers' Qwen2ForCausalLM with Qwen2.5's shapes (0.5b: hidden 896, 24 layers, 14
   heads / 2 KV heads, MLP 4864; 1.5b: hidden 1536, 28 layers, 12 / 2 heads, MLP 8960; 151,936-token
   tied vocabulary), seeded random weights saved in fp32, with the tests' small BPE tokenizer (nothing
   is downloaded; ``tiny`` is a 2-layer model to try the script);
2. ``olive-ext finetune`` (LoRA, fp32, ``--steps`` steps on 64 rows of the tone task, 16 eval rows);
3. per precision, ``olive-ext auto-opt --precision P --max_candidates 1 --gguf false`` on that output, with a
   light evaluation (``--eval-rows`` rows, one timed run of 16 prompt + 4 new tokens): build and parity
   seconds and peak RSS from lineage.json (each step's own peak in the auto-opt process), the rest of the
   candidate's seconds (evaluation), and the process tree's peak (evaluation workers included). One run per
   precision, so that one stopped for memory leaves the others' figures.

A ``--work`` folder from an earlier run keeps its models and fine-tunes (the build caches should be removed,
or the builds are cache hits). Memory does not depend on the machine's load; the seconds do (the load is
printed beside them). Warn whoever shares the machine before the 1.5b row: its builds need several GB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    OFFLINE_ENV,
    ROOT,
    load_average,
    machine_line,
    output_path,
    run_main,
    run_timed,
    today,
    write_section,
)

TASK = ROOT / "recipes" / "data" / "tone.jsonl"
TEMPLATE = "Phrase: {phrase}\\nTone: {tone}"
SHAPES: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "intermediate_size": 128, "vocab_size": 1024},
    "0.5b": {"hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
             "intermediate_size": 4864, "vocab_size": 151936},
    "1.5b": {"hidden_size": 1536, "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
             "intermediate_size": 8960, "vocab_size": 151936},
}  # fmt: skip

BUILD_MODEL = """
import json, sys, torch, transformers
sys.path.insert(0, sys.argv[2])
from tiny_models import build_tokenizer
from pathlib import Path
path = Path(sys.argv[1]); path.mkdir(parents=True, exist_ok=True)
tok = build_tokenizer(path)
shape = json.loads(sys.argv[3])
config = transformers.Qwen2Config(
    **shape, max_position_embeddings=4096, tie_word_embeddings=True, architectures=["Qwen2ForCausalLM"],
    bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
)
torch.manual_seed(0)
model = transformers.Qwen2ForCausalLM(config)
print(sum(p.numel() for p in model.parameters()))
model.save_pretrained(path)
"""


# auto-opt's log lines that start a phase (the candidate's number is counted from the builds)
MARKS = (("step build (", "build"), ("step parity (", "parity"), ("parity of ", "evaluate"))


@dataclass
class Phased:
    """A command's wall time, whole peak RSS and, per phase of its log, peak RSS (process tree) and seconds."""

    ok: bool
    seconds: float
    peak_rss_mb: float
    peaks: dict[str, float] = field(default_factory=dict)
    times: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def run_phased(argv: list[str], log: Path, max_rss_mb: float) -> Phased:
    """Run auto-opt; file each 50 ms RSS sample of its process tree under the phase its log says is running.

    Phases: ``start``, then ``build 1``, ``parity 1``, ``evaluate 1`` (the candidate's evaluation and the
    PyTorch reference's), ``build 2``... The tree is killed when it passes ``max_rss_mb``.
    """
    import psutil

    started = time.perf_counter()
    peaks: dict[str, float] = {}
    times: dict[str, float] = {}
    phase, candidate, since, over = "start", 0, started, False
    with open(log, "w") as out, open(log, errors="replace") as follow:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **OFFLINE_ENV})
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            for line in follow.readlines():
                mark = next((name for text, name in MARKS if text in line), None)
                if mark is None:
                    continue
                candidate += mark == "build"
                now = time.perf_counter()
                times[phase] = times.get(phase, 0.0) + now - since
                phase, since = f"{mark} {candidate}", now
            with contextlib.suppress(psutil.Error):
                rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20
                peaks[phase] = max(peaks.get(phase, 0.0), rss)
                if rss > max_rss_mb and not over:
                    over = True
                    for p in [*root.children(recursive=True), root]:
                        with contextlib.suppress(psutil.Error):
                            p.kill()
            time.sleep(0.05)
    now = time.perf_counter()
    times[phase] = times.get(phase, 0.0) + now - since
    error = f"stopped at {max(peaks.values()):.0f} MB (over --max-rss-gb) in {phase}" if over else None
    if proc.returncode and not over:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if "Error" in ln]
        error = (lines[0] if lines else f"exit {proc.returncode}")[:200].replace("|", "/")
    return Phased(not error, now - started, max(peaks.values(), default=0.0), peaks, times, error)


def olive_ext(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "olive-ext"), *args]


def weights_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 2**20


def per_candidate(out: Path, run: Phased) -> list[dict[str, Any]]:
    """Each candidate's label, build and parity seconds (lineage), the rest (evaluation), peak RSS per phase."""
    if not (out / "candidates.json").exists():
        return []
    cands = json.loads((out / "candidates.json").read_text())["candidates"]
    lineage = json.loads((out / "lineage.json").read_text())
    rows = []
    for n, c in enumerate(cands, 1):
        steps = [r for r in lineage if r["candidate"] == c["id"]]
        build = sum(r["seconds"] for r in steps if r["type"] != "parity_check")
        parity = sum(r["seconds"] for r in steps if r["type"] == "parity_check")
        # the steps' own peaks (lineage: the auto-opt process's VmHWM, reset at each step); evaluation: the
        # process tree's from the log's phases (its workers and the reference's)
        build_rss = max((r.get("peak_rss_mb") or 0.0 for r in steps if r["type"] != "parity_check"), default=0.0)
        parity_rss = max((r.get("peak_rss_mb") or 0.0 for r in steps if r["type"] == "parity_check"), default=0.0)
        rows.append({
            "label": c["label"], "build_s": build, "parity_s": parity, "eval_s": c["seconds"] - build - parity,
            "error": c["error"], "build_rss_mb": build_rss, "parity_rss_mb": parity_rss,
            "evaluate_rss_mb": run.peaks.get(f"evaluate {n}", 0.0),
        })  # fmt: skip
    return rows


def run_size(
    size: str, work: Path, steps: int, max_rss_mb: float, precisions: list[str], eval_rows: int
) -> dict[str, Any]:
    model, cache = work / f"qwen2-{size}", work / f"cache-{size}"
    load = load_average()
    if not (model / "config.json").exists():  # a --work folder from an earlier run keeps its model
        subprocess.run([sys.executable, "-c", BUILD_MODEL, str(model), str(ROOT / "tests"),
                        json.dumps(SHAPES[size])], capture_output=True, text=True, check=True)  # fmt: skip
    params = int(weights_mb(model) * 2**20 // 4)  # fp32 safetensors: 4 bytes a parameter (headers: < 1 kB)
    row: dict[str, Any] = {"size": size, "params": params, "fp32_mb": weights_mb(model)}
    data = ["-d", "json", "--data_files", str(TASK), "--text_template", TEMPLATE]
    if not (work / f"ft-{size}" / "train_metrics.json").exists():  # else that earlier run's fine-tune
        ft = run_timed(
            olive_ext(
                "finetune", "-m", str(model), *data, "--train_split", "train[:64]", "--eval_split", "train[480:496]",
                "--max_steps", str(steps), "--torch_dtype", "float32", "-o", str(work / f"ft-{size}"),
                "--cache_dir", str(cache),
            ),
            work / f"finetune-{size}.log",
            max_rss_mb=max_rss_mb,
        )  # fmt: skip
        if not ft.ok:
            raise SystemExit(f"{size}: finetune failed: {ft.error()} (log: {ft.log})")
    metrics = json.loads((work / f"ft-{size}" / "train_metrics.json").read_text())
    # the fine-tune is one process: its own peak (VmHWM) is the command's
    row.update(finetune_s=metrics["wall_seconds"], finetune_steps_s=metrics["train_seconds"],
               finetune_rss_mb=metrics["peak_rss_mb"],
               finetune_phases=metrics.get("peak_rss_mb_by_phase", {}))  # fmt: skip
    common = [*data, "--eval_split", f"train[480:{480 + eval_rows}]", "--gguf", "false", "--cache_dir", str(cache),
              "--overwrite", "--log_level", "INFO", "--warmup", "0", "--repeats", "1", "--max_repeats", "1",
              "--prompt_tokens", "16", "--new_tokens", "4", "--max_new_tokens", "4"]  # fmt: skip
    row["runs"] = {}
    for precision in precisions:  # one auto-opt per precision: a run stopped for memory leaves the others
        out = work / f"ao-{size}-{precision}"
        run = run_phased(
            olive_ext("auto-opt", "-m", str(work / f"ft-{size}"), "--precision", precision, "--max_candidates", "1",
                      *common, "-o", str(out)),
            work / f"auto-opt-{size}-{precision}.log", max_rss_mb,
        )  # fmt: skip
        cands = per_candidate(out, run) if run.ok else []
        row["runs"][precision] = {"seconds": run.seconds, "rss_mb": run.peak_rss_mb, "error": run.error,
                                  "phases": run.peaks, "phase_seconds": run.times,
                                  "candidate": cands[0] if cands else None}  # fmt: skip
        print(f"[scaling] {size} {precision}: {json.dumps(row['runs'][precision])}", file=sys.stderr, flush=True)
    row["load"] = f"{load:.1f} -> {load_average():.1f}"
    print(f"[scaling] {json.dumps(row)}", file=sys.stderr, flush=True)
    return row


def _precision(label: str) -> str:
    return next((p for p in ("int4", "int8", "fp16") if f"precision={p}" in label), "fp32")


def table(rows: list[dict[str, Any]]) -> str:
    """Per model, per precision: seconds and peak RSS per phase; then the growth from the first model to the last."""
    out = [
        "| model | parameters | fp32 weights MB | finetune 4 steps s | finetune peak RSS MB | candidate | build s | "
        "parity s | evaluate s | build peak RSS MB (x fp32 weights) | parity peak RSS MB | auto-opt tree peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for i, (precision, run) in enumerate(r["runs"].items()):
            head = (
                f"| Qwen2 {r['size']} | {r['params'] / 1e6:.0f}M | {r['fp32_mb']:.0f} | {r['finetune_steps_s']:.1f} | "
                f"{r['finetune_rss_mb']:.0f}"
                if i == 0
                else "| | | | |"
            )
            c = run["candidate"]
            if c is None:
                out.append(f"{head} | {precision}: {run['error']} | | | | | | {run['rss_mb']:.0f} |")
                continue
            out.append(
                f"{head} | {precision} | {c['build_s']:.0f} | {c['parity_s']:.0f} | {c['eval_s']:.0f} | "
                f"{c['build_rss_mb']:.0f} ({c['build_rss_mb'] / r['fp32_mb']:.2f}x) | {c['parity_rss_mb']:.0f} | "
                f"{run['rss_mb']:.0f} |"
            )
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        out += ["", f"| {first['size']} -> {last['size']} | ratio |", "|---|---|"]
        pairs = (("parameters", "params"), ("fp32 weights", "fp32_mb"), ("finetune steps s", "finetune_steps_s"),
                 ("finetune peak RSS", "finetune_rss_mb"))  # fmt: skip
        for name, key in pairs:
            out.append(f"| {name} | {last[key] / first[key]:.2f} |")
        for precision in first["runs"]:
            a, b = first["runs"][precision]["candidate"], last["runs"].get(precision, {}).get("candidate")
            if not a or not b:
                continue
            for key in ("build_s", "parity_s", "eval_s", "build_rss_mb", "parity_rss_mb"):
                if a[key] > 0:
                    out.append(f"| {precision} {key.replace('_rss_mb', ' peak RSS').replace('_s', ' s')} | "
                               f"{b[key] / a[key]:.2f} |")  # fmt: skip
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["0.5b", "1.5b"], choices=list(SHAPES))
    ap.add_argument("--steps", type=int, default=4, help="fine-tuning steps")
    ap.add_argument("--max-rss-gb", type=float, default=14.0, help="kill a command whose process tree passes this")
    ap.add_argument("--precisions", nargs="+", default=["int4", "fp32", "int8"], choices=["fp32", "int8", "int4"])
    ap.add_argument("--eval-rows", type=int, default=4, help="evaluation rows of the tone task")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a new temporary one)")
    ap.add_argument("--write", type=output_path, default=None, help="write the table into this RESULTS.md")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="scaling-"))
    work.mkdir(parents=True, exist_ok=True)
    load = load_average()
    rows = [run_size(s, work, args.steps, args.max_rss_gb * 1024, args.precisions, args.eval_rows) for s in args.sizes]
    rows.sort(key=lambda r: r["params"])
    text = (
        f"`python benchmarks/scaling.py --sizes {' '.join(args.sizes)} --steps {args.steps}`, {today()}, "
        f"{machine_line()}; 1-minute load {load:.1f} at the start, {load_average():.1f} at the end (seconds "
        f"depend on it, memory does not). Random-weight Qwen2 shapes built in code, fp32; process trees killed "
        f"above {args.max_rss_gb:g} GB.\n\n" + table(rows)
    )
    print(text)
    if args.write:
        write_section(args.write, "Scaling with model size", text)


if __name__ == "__main__":
    run_main(main)
