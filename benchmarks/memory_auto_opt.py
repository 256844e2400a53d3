"""Peak RSS of one whole ``olive-ext auto-opt --precision int4`` run on the 262k-vocabulary model, parent and workers.

Builds benchmarks/memory_phases.py's Gemma-3-270M-shaped model in a temporary folder (unless --model names one),
then runs auto-opt with one int4 candidate (genai build + parity in the auto-opt process, evaluation of the
candidate and of the PyTorch reference in worker processes) on 8 rows of recipes/data/tone.jsonl, sampling
the RSS of the auto-opt process and of each child every 50 ms. Measures the olive_ext importable from the
working directory: run it from the checkout to measure (``cd <checkout> && python benchmarks/memory_auto_opt.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import OFFLINE_ENV, ROOT, Timed, load_average, machine_line, run_main, today
from memory_phases import BUILD_MODEL


def main() -> None:
    import psutil

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an existing model folder (else one is built)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="memory-auto-opt-"))
    model = args.model or work / "gemma3-270m"
    if args.model is None:
        subprocess.run([sys.executable, "-c", BUILD_MODEL, str(model), str(ROOT / "tests")], check=True,
                       capture_output=True)  # fmt: skip
    argv = [
        sys.executable, "-m", "olive_ext", "auto-opt", "-m", str(model), "--precision", "int4",
        "--max_candidates", "1", "--gguf", "false", "-d", "json", "--data_files", str(ROOT / "recipes/data/tone.jsonl"),
        "--text_template", "Phrase: {phrase}\\nTone: {tone}", "--eval_split", "train[480:488]", "--warmup", "0",
        "--repeats", "1", "--prompt_tokens", "16", "--new_tokens", "4", "--max_new_tokens", "4",
        "-o", str(work / "ao"), "--cache_dir", str(work / "cache"),
    ]  # fmt: skip
    started = time.time()
    parent = child = 0
    with open(work / "auto-opt.log", "w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **OFFLINE_ENV})
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                parent = max(parent, root.memory_info().rss)
                child = max([child, *(c.memory_info().rss for c in root.children(recursive=True))])
            time.sleep(0.05)
    seconds = time.time() - started
    if proc.returncode != 0:
        error = Timed(argv, proc.returncode, seconds, parent / 2**20, Path(log.name)).error()
        raise SystemExit(f"auto-opt exited {proc.returncode}: {error} (log {log.name})")
    command = "python benchmarks/memory_auto_opt.py" + (f" --model {args.model}" if args.model else "")
    print(
        f"`{command}`, {today()}, {machine_line()}, 1-minute load average "
        f"{load_average():.1f} at the end: exit {proc.returncode} after {seconds:.0f} s; "
        f"auto-opt process peak {parent / 2**20:.0f} MB, largest worker {child / 2**20:.0f} MB (log {log.name})"
    )


if __name__ == "__main__":
    run_main(main)
