"""Builder candidates of one run, sharing their inputs or not: CPU and wall seconds per candidate, same bytes.

    python benchmarks/build_phases.py [--candidates 7] [--profile] [--write benchmarks/RESULTS.md]

SmolLM2-135M-Instruct (from its PyPI package, converted once) with a seeded random LoRA adapter (r 8 on
q/v, like the demo's fine-tune in shape) goes through the CPU profile's model_builder candidates twice,
each time from an empty cache in this one process:

- ``shared``: as auto-opt runs them: one adapter merge, one PyTorch model and tokenizer load for all
  candidates (olive_ext/passes/shared.py, olive_ext/onnx/genai_builder.py:reused_loads);
- ``separate``: what every candidate cost before: the shared inputs are dropped after each candidate,
  so each merges and loads again.

Per candidate: CPU seconds of this process (``time.process_time``: all its threads; a number that
other people's jobs on the machine change little) and wall seconds, and whether the two built
folders are byte-identical. ``--profile`` prints the top cProfile entries of the first shared
candidate and of the second (where reuse shows). Nothing is evaluated: this is the build half of an
auto-opt run (benchmarks/auto_opt.py times a whole run).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import load_average, machine_line, output_path, run_main, today, write_section  # noqa: E402


def digest(folder: str) -> str:
    h = hashlib.sha256()
    for f in sorted(Path(folder).iterdir()):
        if f.is_file():
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:12]


def source_model(work: Path) -> Any:
    """SmolLM2 as an HF folder plus a seeded random LoRA adapter, as a fingerprinted artifact."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from olive_ext.artifacts import Artifact, fingerprint_input
    from olive_ext.engine.runner import open_context, run_steps
    from olive_ext.engine.steps import Step
    from olive_ext.models.folder import resolve_model_arg
    from olive_ext.models.pypi import fetch_pypi_model

    ctx = open_context(str(work / "convert-cache"))
    gguf = fetch_pypi_model("smollm2-135m-instruct")
    hf, _ = run_steps(fingerprint_input(resolve_model_arg(str(gguf), None), ctx.cache.memo), [
        Step("convert", "gguf_to_hf", {})], ctx)  # fmt: skip
    adapter = work / "adapter"
    if not (adapter / "adapter_config.json").exists():
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(hf.path)
        lora = LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        get_peft_model(model, lora).save_pretrained(adapter)
    return fingerprint_input(Artifact("hf", hf.path, str(adapter)), ctx.cache.memo)


def builder_params(n: int) -> list[dict[str, Any]]:
    from olive_ext.targets.profiles import get_profile

    chains = get_profile("cpu").candidate_chains("text-generation")
    params = [dict(step.params) for chain in chains for step in chain if step.type == "model_builder"]
    return params[:n]


def run_all(source: Any, params: list[dict[str, Any]], cache: Path, shared: bool, profile: bool) -> list[dict]:
    from olive_ext.engine.runner import open_context, run_steps
    from olive_ext.engine.steps import Step
    from olive_ext.onnx.genai_builder import release_loads
    from olive_ext.passes.shared import forget_shared

    ctx = open_context(str(cache))
    rows = []
    for i, p in enumerate(params):
        prof = cProfile.Profile() if profile and shared and i < 2 else None
        cpu, wall = time.process_time(), time.perf_counter()
        if prof:
            prof.enable()
        out, _ = run_steps(source, [Step("build", "model_builder", p)], ctx, f"c{i}")
        if prof:
            prof.disable()
            print(f"--- cProfile, shared candidate {i} ({p})", file=sys.stderr)
            pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
        rows.append({"params": p, "cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall,
                     "digest": digest(out.path)})  # fmt: skip
        if not shared:
            release_loads()
            forget_shared()
        print(f"[build] {'shared' if shared else 'separate'} {p}: cpu {rows[-1]['cpu']:.1f} s, "
              f"wall {rows[-1]['wall']:.1f} s", file=sys.stderr, flush=True)  # fmt: skip
    release_loads()
    forget_shared()
    return rows


def label(p: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in p.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidates", type=int, default=7, help="how many of the CPU profile's builder candidates")
    ap.add_argument("--profile", action="store_true", help="print cProfile tops of the first two shared builds")
    ap.add_argument("--write", type=output_path, default=None, help="append the table to this RESULTS.md")
    args = ap.parse_args()
    work = Path(os.environ.get("OLIVE_EXT_BENCH_DIR", ROOT / ".bench")) / "build-phases"
    work.mkdir(parents=True, exist_ok=True)
    source = source_model(work)
    params = builder_params(args.candidates)
    load_before = load_average()
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        separate = run_all(source, params, Path(tmp) / "separate", shared=False, profile=False)
        shutil.rmtree(Path(tmp) / "separate")
        shared = run_all(source, params, Path(tmp) / "shared", shared=True, profile=args.profile)
    load_after = load_average()
    lines = [
        "## Builder candidates sharing their inputs",
        "",
        f"`python benchmarks/build_phases.py --candidates {args.candidates}`, {today()}, {machine_line()}; "
        f"1-minute load {load_before:.1f} before, {load_after:.1f} after. SmolLM2-135M + a random LoRA "
        "adapter (r 8, q/v); CPU seconds of the building process (all threads), wall seconds beside them.",
        "",
        "| candidate | separate cpu s | shared cpu s | separate wall s | shared wall s | same bytes |",
        "|---|---|---|---|---|---|",
    ]
    for a, b in zip(separate, shared, strict=True):
        same = "yes" if a["digest"] == b["digest"] else "NO"
        lines.append(f"| {label(a['params'])} | {a['cpu']:.1f} | {b['cpu']:.1f} | {a['wall']:.1f} | "
                     f"{b['wall']:.1f} | {same} |")  # fmt: skip
    tot = {k: sum(r[m] for r in rows) for k, rows in (("sep", separate), ("sh", shared)) for m in ("cpu",)}
    walls = sum(r["wall"] for r in separate), sum(r["wall"] for r in shared)
    lines.append(f"| **all** | {tot['sep']:.1f} | {tot['sh']:.1f} | {walls[0]:.1f} | {walls[1]:.1f} | |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(args.write, lines[0].removeprefix("## "), "\n".join(lines[2:]))  # replaces its section


if __name__ == "__main__":
    run_main(main)
