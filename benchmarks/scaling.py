"""Time and memory against model size: ~0.5B and ~1.5B Qwen2-shaped models, random weights, built in code.

    python benchmarks/scaling.py [--sizes 0.5b 1.5b] [--steps 4] [--write benchmarks/RESULTS.md]

Per size (each command a process of its own, peak RSS of its process tree sampled every 50 ms):

1. the model: transformers' Qwen2ForCausalLM with Qwen2.5's shapes (0.5b: hidden 896, 24 layers, 14
   heads / 2 KV heads, MLP 4864; 1.5b: hidden 1536, 28 layers, 12 / 2 heads, MLP 8960; 151,936-token
   tied vocabulary), seeded random weights saved in fp32, with the tests' small BPE tokenizer (nothing
   is downloaded; ``tiny`` is a 2-layer model to try the script);
2. ``olive-ext finetune`` (LoRA, fp32, ``--steps`` steps on 64 rows of the tone task, 16 eval rows);
3. ``olive-ext auto-opt --max_candidates 2 --gguf false`` on that output (the CPU profile's first two
   candidates, fp32 and int8): seconds per candidate, build (lineage.json) and the rest (evaluation);
4. ``olive-ext auto-opt --precision int4 --max_candidates 1 --gguf false``: the int4 build's peak RSS,
   against the target of 2x the model's fp32 weight size.

Memory does not depend on the machine's load; the seconds do (the load is printed beside them).
Warn whoever shares the machine before the 1.5b row: its builds need several GB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import ROOT, load_average, machine_line, run_timed, today, write_section

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


def olive_ext(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "olive-ext"), *args]


def weights_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 2**20


def per_candidate(out: Path) -> list[dict[str, Any]]:
    """Each candidate's label, build seconds (its lineage steps) and the rest of its seconds (evaluation)."""
    cands = json.loads((out / "candidates.json").read_text())["candidates"]
    lineage = json.loads((out / "lineage.json").read_text())
    rows = []
    for c in cands:
        build = sum(r["seconds"] for r in lineage if r["candidate"] == c["id"])
        rows.append({"label": c["label"], "build_s": build, "eval_s": c["seconds"] - build, "error": c["error"]})
    return rows


def run_size(size: str, work: Path, steps: int) -> dict[str, Any]:
    model, cache = work / f"qwen2-{size}", work / f"cache-{size}"
    built = subprocess.run([sys.executable, "-c", BUILD_MODEL, str(model), str(ROOT / "tests"),
                            json.dumps(SHAPES[size])], capture_output=True, text=True, check=True)  # fmt: skip
    row: dict[str, Any] = {"size": size, "params": int(built.stdout.split()[-1]), "fp32_mb": weights_mb(model)}
    data = ["-d", "json", "--data_files", str(TASK), "--text_template", TEMPLATE]
    ft = run_timed(
        olive_ext(
            "finetune", "-m", str(model), *data, "--train_split", "train[:64]", "--eval_split", "train[480:496]",
            "--max_steps", str(steps), "--torch_dtype", "float32", "-o", str(work / f"ft-{size}"),
            "--cache_dir", str(cache),
        ),
        work / f"finetune-{size}.log",
    )  # fmt: skip
    if not ft.ok:
        raise SystemExit(f"{size}: finetune failed: {ft.error()} (log: {ft.log})")
    row.update(finetune_s=ft.seconds, finetune_rss_mb=ft.peak_rss_mb)
    common = [*data, "--eval_split", "train[480:496]", "--gguf", "false", "--cache_dir", str(cache)]
    two = run_timed(
        olive_ext("auto-opt", "-m", str(work / f"ft-{size}"), "--max_candidates", "2", *common,
                  "-o", str(work / f"ao-{size}")),
        work / f"auto-opt-{size}.log",
    )  # fmt: skip
    row.update(autoopt_s=two.seconds, autoopt_rss_mb=two.peak_rss_mb, autoopt_error=None if two.ok else two.error())
    row["candidates"] = per_candidate(work / f"ao-{size}") if (work / f"ao-{size}" / "candidates.json").exists() else []
    int4 = run_timed(
        olive_ext("auto-opt", "-m", str(work / f"ft-{size}"), "--precision", "int4", "--max_candidates", "1",
                  *common, "-o", str(work / f"int4-{size}")),
        work / f"int4-{size}.log",
    )  # fmt: skip
    row.update(int4_s=int4.seconds, int4_rss_mb=int4.peak_rss_mb, int4_error=None if int4.ok else int4.error())
    print(f"[scaling] {json.dumps(row)}", file=sys.stderr, flush=True)
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | parameters | fp32 weights MB | finetune s | finetune peak RSS MB | candidate | build s | "
        "evaluate s | auto-opt peak RSS MB | int4 build+eval peak RSS MB | int4 under 2x fp32 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ok = "yes" if r["int4_rss_mb"] < 2 * r["fp32_mb"] else "NO"
        cands = r["candidates"] or [{"label": f"failed: {r['autoopt_error']}", "build_s": 0.0, "eval_s": 0.0}]
        for i, c in enumerate(cands):
            head = (
                f"| Qwen2 {r['size']} | {r['params'] / 1e6:.0f}M | {r['fp32_mb']:.0f} | {r['finetune_s']:.0f} | "
                f"{r['finetune_rss_mb']:.0f}"
                if i == 0
                else "| | | | |"
            )
            tail = f"{r['autoopt_rss_mb']:.0f} | {r['int4_rss_mb']:.0f} | {ok} |" if i == 0 else " | | |"
            lines.append(f"{head} | {c['label']} | {c['build_s']:.1f} | {c['eval_s']:.1f} | {tail}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["0.5b", "1.5b"], choices=list(SHAPES))
    ap.add_argument("--steps", type=int, default=4, help="fine-tuning steps")
    ap.add_argument("--write", type=Path, default=None, help="write the table into this RESULTS.md")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="scaling-"))
    load = load_average()
    rows = [run_size(size, work, args.steps) for size in args.sizes]
    text = (
        f"`python benchmarks/scaling.py --sizes {' '.join(args.sizes)} --steps {args.steps}`, {today()}, "
        f"{machine_line()}; 1-minute load {load:.1f} at the start, {load_average():.1f} at the end (seconds "
        f"depend on it, memory does not). Random-weight Qwen2 shapes built in code, fp32; work folder {work}.\n\n"
        + table(rows)
    )
    print(text)
    if args.write:
        write_section(args.write, "Scaling with model size", text)


if __name__ == "__main__":
    main()
