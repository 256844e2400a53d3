"""Teacher forcing with the rows' shared prompt prefix run once, against each row run whole, per backend.

    python benchmarks/teacher_forcing_prefix.py --out AUTO_OPT_OUTPUT [--ft FOLDER] [--write]

AUTO_OPT_OUTPUT is an auto-opt output folder of the demo fine-tune (its candidates.json names the built
candidates, which must still be in the cache): the fp32, int8 and int4 genai builds and the Q8_0 and Q4_K_M
GGUF candidates, plus the fine-tune itself in PyTorch (its adapter applied), are each scored on the tone
task's 90 held-out rows both ways in one process, one after the other; the table gives the seconds of each
and whether the argmax at every answer position is the same. Nothing else should run meanwhile.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import load_average, machine_line, run_main, today, write_section  # noqa: E402

WANTED = {  # label fragment -> name in the table
    "model_builder(precision=fp32)": "genai fp32",
    "model_builder(accuracy_level=4, block_size=32, precision=int8)": "genai int8",
    "model_builder(accuracy_level=4, block_size=32, precision=int4)": "genai int4",
    "gguf_export(quant=Q8_0)": "llama.cpp Q8_0",
    "gguf_export(quant=Q4_K_M)": "llama.cpp Q4_K_M",
}


def tone_rows(ft: Path) -> list[tuple[list[int], list[int]]]:
    """The fine-tune's eval rows (model_config.json's eval_data) as the evaluator prepares them for teacher forcing."""
    from olive_ext.evaluate.context import EvalContext
    from olive_ext.evaluate.evaluator import prepare_data
    from olive_ext.evaluate.spec import EvaluateSpec
    from olive_ext.models.folder import resolve_model_arg
    from olive_ext.workflows.auto_opt import data_from_model_config

    source = resolve_model_arg(str(ft), None)
    dataset = data_from_model_config(source)
    if dataset is None:
        raise SystemExit(f"{ft} records no eval data whose files exist (model_config.json's eval_data)")
    data = prepare_data(source, EvalContext(EvaluateSpec(), dataset=dataset), {"generate"})
    return list(zip(data.prompts, data.answers, strict=True))


def both_ways(backend: Any, rows: list[tuple[list[int], list[int]]]) -> dict[str, Any]:
    from olive_ext.evaluate.backends import base

    backend.forced_predictions(rows[:4])  # warm-up
    t = time.perf_counter()
    shared = backend.forced_predictions(rows)
    t_shared = time.perf_counter() - t
    kept = base.MIN_SHARED_PREFIX
    base.MIN_SHARED_PREFIX = 10**6
    try:
        t = time.perf_counter()
        whole = backend.forced_predictions(rows)
        t_whole = time.perf_counter() - t
    finally:
        base.MIN_SHARED_PREFIX = kept
    same = sum(a.tokens == b.tokens for a, b in zip(shared, whole, strict=True))
    return {"whole_s": t_whole, "shared_s": t_shared, "same": same}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="an auto-opt output folder of the demo fine-tune")
    p.add_argument("--ft", type=Path, help="the fine-tune folder (default: the one candidates.json names)")
    p.add_argument("--write", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = p.parse_args()
    if not (args.out / "candidates.json").is_file():
        p.error(f"--out {args.out}: no candidates.json there; give the output folder of an `olive-ext auto-opt` run")
    if args.ft is not None and not (args.ft / "model").is_dir():
        p.error(f"--ft {args.ft}: no model/ folder there; give the fine-tune folder (`olive-ext finetune -o`)")

    from olive_ext.evaluate.backends import open_backend
    from olive_ext.evaluate.backends.base import shared_prefix
    from olive_ext.evaluate.backends.torch_lm import TorchLMBackend

    report = json.loads((args.out / "candidates.json").read_text())
    ft = args.ft or Path(report["reference"]["artifact"]["path"]).parent
    rows = tone_rows(ft)
    load_before = load_average()
    results = {}
    torch_backend = TorchLMBackend(str(ft / "model"), str(ft / "adapter"), 2)
    results["PyTorch (adapter applied)"] = both_ways(torch_backend, rows)
    del torch_backend
    for candidate in report["candidates"]:
        name = next((n for label, n in WANTED.items() if candidate["label"].startswith(label)), None)
        if name is None or name in results:
            continue
        artifact = candidate["artifact"]
        backend = open_backend(artifact["kind"], artifact["path"], None, "CPUExecutionProvider", 2)
        results[name] = both_ways(backend, rows)
        del backend
    prompt_tokens = sum(len(p) for p, _ in rows) / len(rows)
    lines = [
        f"`python benchmarks/teacher_forcing_prefix.py --out OUT --ft FT --write`, {today()}, {machine_line()}; OUT is "
        f"an auto-opt output of the demo fine-tune FT. {len(rows)} tone rows, prompts {prompt_tokens:.1f} tokens on "
        f"average, of which the first {shared_prefix(rows)} are the same in every row; 2 threads; 1-minute load "
        f"average {load_before:.2f} before, {load_average():.2f} after. Each backend scores the rows both ways in one "
        "process (after 4 rows of warm-up): each row whole, and the shared prefix once with each row's rest on "
        "its KV cache.",
        "",
        "| backend | each row whole s | shared prefix once s | speed-up | same argmax at every answer position |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['whole_s']:.2f} | {r['shared_s']:.2f} | {r['whole_s'] / r['shared_s']:.1f}x "
            f"| {r['same']}/{len(rows)} |"
        )
    body = "\n".join(lines)
    print(body)
    if args.write:
        write_section(ROOT / "benchmarks" / "RESULTS.md", "Teacher forcing: the shared prefix once", body)


if __name__ == "__main__":
    run_main(main)
