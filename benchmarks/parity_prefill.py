"""The parity check's candidate side: prompt logits and greedy tokens from one prefill, against two.

    python benchmarks/parity_prefill.py --model GENAI_FOLDER [--rounds 3] [--write]

GENAI_FOLDER is an onnxruntime-genai build of the demo fine-tune (an auto-opt candidate's ``model`` folder,
e.g. the int8 one). The prompts are the parity check's: the first 8 of the tone task's held-out rows
(recipes/data/tone.jsonl from row 480), through the demo's template. Each round times both ways in one process,
one after the other: ``logits()`` then ``greedy()`` per prompt (two generators, the prompt run twice, as before
stop 35) and ``logits_and_greedy()`` (one generator); the table gives the median seconds and whether the logits
(bit for bit) and the greedy tokens are the same. Nothing else should run meanwhile.
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

from benchmarks._common import load_average, machine_line, run_main, today, write_section  # noqa: E402

TEMPLATE = (
    "<|im_start|>user\nWhat is the tone of this phrase? Answer with one word: joyful, sad, angry, fearful, grateful "
    "or surprised.\nPhrase: {phrase}<|im_end|>\n<|im_start|>assistant\n"
)
GREEDY_TOKENS = 16  # the parity check's default (passes/parity_check.py)
PROMPTS = 8  # the parity check's default samples


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True, help="a genai model folder of the demo fine-tune")
    p.add_argument("--label", default="the demo fine-tune's genai int8 candidate", help="what MODEL is, for the table")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--write", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = p.parse_args()
    if not (args.model / "genai_config.json").is_file():
        p.error(f"--model {args.model}: no genai_config.json there; give an onnxruntime-genai model folder")
    if args.rounds < 1:
        p.error(f"--rounds {args.rounds}: give 1 or more rounds")

    import numpy as np
    from transformers import AutoTokenizer

    from olive_ext.onnx.parity import GenAICandidate

    rows = [json.loads(line) for line in (ROOT / "recipes/data/tone.jsonl").read_text().splitlines() if line.strip()]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    prompts = [tokenizer(TEMPLATE.format(**r))["input_ids"] for r in rows[480 : 480 + PROMPTS]]
    candidate = GenAICandidate(str(args.model), None)
    candidate.logits_and_greedy(prompts[0], GREEDY_TOKENS)  # warm-up
    load_before = load_average()
    two, one, same_logits, same_tokens = [], [], True, True
    for _ in range(args.rounds):
        t = time.perf_counter()
        separate = [(candidate.logits(ids), _greedy_alone(candidate, ids)) for ids in prompts]
        two.append(time.perf_counter() - t)
        t = time.perf_counter()
        joint = [candidate.logits_and_greedy(ids, GREEDY_TOKENS) for ids in prompts]
        one.append(time.perf_counter() - t)
        same_logits &= all(np.array_equal(a[0], b[0]) for a, b in zip(separate, joint, strict=True))
        same_tokens &= all(a[1] == b[1] for a, b in zip(separate, joint, strict=True))
    body = "\n".join(
        [
            f"`python benchmarks/parity_prefill.py --model MODEL --rounds {args.rounds}`, {today()}, {machine_line()}; "
            f"MODEL = {args.label}. "
            f"{len(prompts)} prompts of {statistics.mean(map(len, prompts)):.1f} tokens on average, {GREEDY_TOKENS} "
            f"greedy tokens at most; 1-minute load {load_before:.2f} before, {load_average():.2f} after; median of "
            f"{args.rounds} rounds.",
            "",
            "| way | seconds | same prompt logits (bit for bit) | same greedy tokens |",
            "|---|---|---|---|",
            f"| two generators (logits, then greedy) | {statistics.median(two):.2f} | | |",
            f"| one generator (logits_and_greedy) | {statistics.median(one):.2f} | {same_logits} | {same_tokens} |",
        ]
    )
    print(body)
    if args.write:
        write_section(ROOT / "benchmarks" / "RESULTS.md", "Parity check: one prefill per prompt", body)


def _greedy_alone(candidate: object, ids: list[int]) -> list[int]:
    """The greedy tokens from a generator of their own (what ``greedy()`` did before it shared the prefill)."""
    import numpy as np

    gen = candidate._generator(len(ids) + GREEDY_TOKENS)  # type: ignore[attr-defined]
    gen.append_tokens(np.asarray(ids, dtype=np.int32))
    tokens: list[int] = []
    while not gen.is_done() and len(tokens) < GREEDY_TOKENS:
        gen.generate_next_token()
        tokens.append(int(gen.get_next_tokens()[0]))
    eos = candidate.eos  # type: ignore[attr-defined]
    return tokens[: next((i for i, t in enumerate(tokens) if t in eos), len(tokens))]


if __name__ == "__main__":
    run_main(main)
