"""Peak memory of writing a bundle zip: olive-ext's streamed write against reading each file whole (the code before
stop 53, zipfile's ``writestr``), on the same folder, each in a child process of its own.

    python benchmarks/zip_memory.py [--mb 400]

Prints a table: method, peak RSS of the child (MB), wall seconds, zip bytes, and whether the two zips are equal.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_STREAMED = """
from pathlib import Path
from olive_ext.deploy.archive import write_zip
write_zip(Path(sys.argv[1]), Path(sys.argv[2]))
"""
# the write_zip of before stop 53: each member read whole and given to writestr (same names, times, modes, level)
_WHOLE = """
import stat, zipfile
from pathlib import Path
from olive_ext.deploy.archive import _FIXED_TIME, _LEVEL, _UNIX
from olive_ext.deploy.files import scan_tree
folder, archive = Path(sys.argv[1]), Path(sys.argv[2])
with zipfile.ZipFile(archive, "w") as z:
    for rel in scan_tree(folder).files:
        info = zipfile.ZipInfo(f"{folder.name}/{rel}", date_time=_FIXED_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = (stat.S_IFREG | 0o644) << 16
        info.create_system = _UNIX
        with open(folder / rel, "rb") as src:
            z.writestr(info, src.read(), compresslevel=_LEVEL)
"""


def _child(code: str, folder: Path, archive: Path) -> tuple[float, float]:
    """Run ``code`` in a fresh interpreter; (its peak RSS in MB, wall seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sys\n" + code, str(folder), str(archive)], check=True)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far, in KB
    return (peak if peak > before else float("nan")) / 1024, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=400, help="size of the one weight file in the folder (MB)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zip-memory-") as tmp:
        folder = Path(tmp) / "bundle"
        (folder / "model").mkdir(parents=True)
        with open(folder / "model" / "model.onnx.data", "wb") as f:
            for _ in range(args.mb):
                f.write(os.urandom(1 << 20))  # random: weights barely compress either
        (folder / "manifest.json").write_text("{}\n")
        rows = []
        # RUSAGE_CHILDREN keeps the largest child's peak: the streamed write (the smaller) runs first
        streamed = Path(tmp) / "streamed.zip"
        rss_s, wall_s = _child(_STREAMED, folder, streamed)
        whole = Path(tmp) / "whole.zip"
        rss_w, wall_w = _child(_WHOLE, folder, whole)
        rows.append(("streamed (now)", rss_s, wall_s, streamed.stat().st_size))
        rows.append(("whole file read (before)", rss_w, wall_w, whole.stat().st_size))
        same = streamed.read_bytes() == whole.read_bytes()
    print(f"one {args.mb} MB file; CPU {_cpu()}; load {os.getloadavg()[0]:.2f}; zips identical: {same}")
    print("| method | peak RSS MB | wall s | zip bytes |")
    print("|---|---:|---:|---:|")
    for name, rss, wall, size in rows:
        print(f"| {name} | {rss:.0f} | {wall:.1f} | {size:,} |")


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
