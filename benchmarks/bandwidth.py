"""This machine's memory bandwidth, STREAM-style, in numpy: the ceiling for memory-bound LLM decoding.

Decoding one token reads every weight of the decoder once (batch 1: matrix-vector products), so
tok/s can be no higher than bandwidth / bytes read per token. Arrays are 512 MiB each, far larger
than the last-level cache, so every pass goes to DRAM. Kernels, with STREAM's byte counting:

- copy  ``b[:] = a``            16 bytes per element (read a, write b)
- sum   ``a.sum()``              8 bytes per element (read only, like decoding's weight reads)
- triad ``a[:] = b + s*c``      24 bytes per element (numpy makes a temporary for s*c, so the true
  traffic is higher and triad reads low; reported for comparison with STREAM figures)

Each kernel runs in 1 process and in N processes at once (N = cores; numpy kernels are
single-threaded, decoding uses every core); the N-process figure adds the processes' bytes over
the slowest process's time. Best of ``--repeats``, as STREAM reports.

    python benchmarks/bandwidth.py [--mib 512] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import time

KERNELS = {"copy": 16, "sum": 8, "triad": 24}


def _run(kernel: str, n: int, repeats: int, start: mp.Barrier | None = None) -> list[float]:  # type: ignore[valid-type]
    import numpy as np

    a = np.ones(n)
    b = np.ones(n)
    c = np.ones(n)
    out = []
    for _ in range(repeats + 1):  # first pass pages the arrays in
        if start is not None:
            start.wait()
        t = time.perf_counter()
        if kernel == "copy":
            np.copyto(b, a)
        elif kernel == "sum":
            a.sum()
        else:
            np.add(b, 3.0 * c, out=a)
        out.append(time.perf_counter() - t)
    return out[1:]


def _child(kernel: str, n: int, repeats: int, start: mp.Barrier, q: mp.Queue) -> None:  # type: ignore[valid-type]
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends a child quietly; the parent reports it
    q.put(_run(kernel, n, repeats, start))


def measure(mib: int = 512, repeats: int = 5, procs: int | None = None) -> dict[str, dict[str, float]]:
    """GB/s (1e9 bytes/s) per kernel, for 1 process and for ``procs`` processes at once."""
    procs = procs or os.cpu_count() or 1
    n = mib * 2**20 // 8
    result: dict[str, dict[str, float]] = {}
    for kernel, bytes_per in KERNELS.items():
        single = min(_run(kernel, n, repeats))
        row = {"1": bytes_per * n / single / 1e9}
        if procs > 1:
            ctx = mp.get_context("fork")
            start, q = ctx.Barrier(procs), ctx.Queue()
            ps = [ctx.Process(target=_child, args=(kernel, n, repeats, start, q), daemon=True) for _ in range(procs)]
            for p in ps:
                p.start()
            times = [q.get() for _ in ps]
            for p in ps:
                p.join()
            slowest = [max(t[i] for t in times) for i in range(repeats)]
            row[str(procs)] = procs * bytes_per * n / min(slowest) / 1e9
        result[kernel] = row
    return result


def table(result: dict[str, dict[str, float]]) -> str:
    cols = sorted({k for row in result.values() for k in row}, key=int)
    lines = [
        "| kernel | bytes/element | " + " | ".join(f"{c} process{'es' if c != '1' else ''} GB/s" for c in cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for kernel, row in result.items():
        lines.append(f"| {kernel} | {KERNELS[kernel]} | " + " | ".join(f"{row[c]:.1f}" for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=512, help="size of each array")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.mib < 1:
        ap.error(f"--mib {args.mib}: give the size of each array in MiB, 1 or more (512: far past the caches)")
    if args.repeats < 1:
        ap.error(f"--repeats {args.repeats}: give 1 or more timed passes")
    result = measure(args.mib, args.repeats)
    print(json.dumps(result) if args.json else table(result))


if __name__ == "__main__":
    from _common import run_main

    run_main(main)
