"""Peak memory of every phase on a Gemma-3-270M-shaped model (262k-token vocabulary), random weights.

The model is built in code (transformers 5's Gemma3ForCausalLM: 18 layers, hidden 640, head_dim 256,
1 KV head, sliding window 512 on 5 of 6 layers, tied 262,144 x 640 embeddings; about 268M parameters)
with the tests' small BPE tokenizer, so nothing is downloaded. Then, each as its own process:

- ``olive-ext finetune`` (LoRA, fp32, a few steps): train_metrics.json's peak RSS per phase (load,
  base eval, train, fine-tuned eval, save) and the process's overall peak;
- ``olive-ext auto-opt --precision int4 --max_candidates 1`` on that output: the genai build (with
  its parity check) and the evaluation of the candidate and of the PyTorch reference, peak RSS of
  the whole process tree (workers included), sampled every 50 ms.

Target: every phase under 4 GB. Usage: ``python benchmarks/memory_phases.py [--write benchmarks/RESULTS.md]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import RESULTS, ROOT, load_average, machine_line, output_path, run_main, run_timed, today, write_section

LIMIT_MB = 4096
TASK = ROOT / "recipes" / "data" / "tone.jsonl"
TEMPLATE = "Phrase: {phrase}\\nTone: {tone}"

BUILD_MODEL = """
import sys, torch, transformers
sys.path.insert(0, sys.argv[2])
from tiny_models import build_tokenizer
from pathlib import Path
path = Path(sys.argv[1]); path.mkdir(parents=True, exist_ok=True)
tok = build_tokenizer(path)
config = transformers.Gemma3TextConfig(
    vocab_size=262144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18, num_attention_heads=4,
    num_key_value_heads=1, head_dim=256, sliding_window=512, max_position_embeddings=32768,
    query_pre_attn_scalar=256, tie_word_embeddings=True, architectures=["Gemma3ForCausalLM"],
    bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
)
torch.manual_seed(0)
model = transformers.Gemma3ForCausalLM(config)
print(sum(p.numel() for p in model.parameters()))
model.save_pretrained(path)
"""


def olive_ext(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "olive-ext"), *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=output_path, nargs="?", const=RESULTS, help="write the table into RESULTS.md")
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="memory-phases-"))
    model, cache = work / "gemma3-270m", work / "cache"
    built = subprocess.run(
        [sys.executable, "-c", BUILD_MODEL, str(model), str(ROOT / "tests")], capture_output=True, text=True, check=True
    )
    params = int(built.stdout.split()[-1])
    data = ["-d", "json", "--data_files", str(TASK), "--text_template", TEMPLATE]
    ft = run_timed(
        olive_ext(
            "finetune", "-m", str(model), *data, "--train_split", "train[:64]", "--eval_split", "train[480:512]",
            "--max_steps", str(args.steps), "--torch_dtype", "float32", "-o", str(work / "ft"),
            "--cache_dir", str(cache),
        ),
        work / "finetune.log",
    )  # fmt: skip
    if not ft.ok:
        raise SystemExit(f"finetune failed: {ft.error()} (log: {ft.log})")
    metrics = json.loads((work / "ft" / "train_metrics.json").read_text())
    ao = run_timed(
        olive_ext(
            "auto-opt", "-m", str(work / "ft"), "--precision", "int4", "--max_candidates", "1", *data,
            "--eval_split", "train[480:512]", "-o", str(work / "ao"), "--cache_dir", str(cache),
        ),
        work / "auto-opt.log",
    )  # fmt: skip
    rows = [(f"finetune: {k.replace('_', ' ')}", v) for k, v in metrics["peak_rss_mb_by_phase"].items()]
    rows.append(("finetune: whole process (sampled)", round(ft.peak_rss_mb, 1)))
    rows.append(("auto-opt int4: build + parity + evaluation, process tree (sampled)", round(ao.peak_rss_mb, 1)))
    table = ["| phase | peak RSS MB | under 4 GB |", "|---|---|---|"]
    table += [f"| {name} | {mb} | {'yes' if mb and mb < LIMIT_MB else 'NO'} |" for name, mb in rows]
    head = (
        f"`python benchmarks/memory_phases.py --write`, {today()}, {machine_line()}; 1-minute load average "
        f"{load_average():.1f} at the end. A Gemma-3-270M-shaped model built in code ({params / 1e6:.0f}M "
        f"parameters, 262,144-token vocabulary, random weights, fp32), LoRA for {args.steps} steps on 64 rows of "
        f"recipes/data/tone.jsonl, 32 eval rows; auto-opt {'ok' if ao.ok else 'failed: ' + ao.error()} "
        f"({ao.seconds:.0f} s), finetune {ft.seconds:.0f} s."
    )
    text = head + "\n\n" + "\n".join(table)
    print(text)
    if args.write:
        write_section(args.write, "Memory per phase (262k vocabulary)", text)


if __name__ == "__main__":
    run_main(main)
