"""Thread count and OpenMP / onnxruntime wait policy on a machine another busy process shares.

    python benchmarks/busy_machine.py [--seconds 8] [--write benchmarks/RESULTS.md]

Two workloads, each in a fresh process per setting (thread settings are read at start-up):

- ``torch``: a training step (forward, backward, AdamW) of a 4-layer, 512-wide MLP on a batch of
  64, the shape of a LoRA fine-tune's compute on a small model; steps per second.
- ``ort``: onnxruntime on a chain of 8 MatMul+Relu layers (1024 wide, batch 1), the shape of a
  decode step; runs per second.

Settings: threads = all cores or the cores left free by the other process (cores - 1, at least 1);
waiting = spinning (OMP_WAIT_POLICY=ACTIVE, onnxruntime's default allow_spinning=1) or passive
(OMP_WAIT_POLICY=PASSIVE, session.intra_op.allow_spinning=0). Each setting is measured alone
(quiet) and beside a competitor: a process running the same kind of workload on all cores at
nice 19 (the issue's "other processes, even at lower priority"). The table gives both speeds and
loaded/quiet; a setting keeps a run "within 2x" when that ratio is at least 0.5.

``--as-is`` measures every setting (all cores or 1 thread, spinning or passive; ``--rounds`` interleaved
rounds) on the machine as it is, with no competitor of our own: on a shared machine, that is the load
other people's jobs put there, and the table says it (load average before and after).

The quiet numbers are only quiet when nothing else runs: the script prints the 1-minute load
average before it starts and refuses to write RESULTS.md above --max-load (default 0.5).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import output_path, run_main, write_section  # noqa: E402

_TORCH = """
import time, torch
torch.manual_seed(0)
layers = []
for _ in range(4):
    layers += [torch.nn.Linear(512, 512), torch.nn.ReLU()]
model = torch.nn.Sequential(*layers)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
x = torch.randn(64, 512)
def step():
    opt.zero_grad()
    model(x).square().mean().backward()
    opt.step()
"""

_ORT = """
import time, numpy as np, onnx, onnxruntime as ort
from onnx import helper, TensorProto, numpy_helper
rng = np.random.default_rng(0)
nodes, inits, prev = [], [], "x"
for i in range(8):
    w = numpy_helper.from_array(rng.standard_normal((1024, 1024)).astype(np.float32) / 32, f"w{i}")
    inits.append(w)
    nodes += [helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]), helper.make_node("Relu", [f"m{i}"], [f"r{i}"])]
    prev = f"r{i}"
graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1024])],
                          [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, 1024])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
so = ort.SessionOptions()
so.intra_op_num_threads = THREADS
so.inter_op_num_threads = 1
so.add_session_config_entry("session.intra_op.allow_spinning", "0" if PASSIVE else "1")
sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
x = rng.standard_normal((1, 1024)).astype(np.float32)
def step():
    sess.run(None, {"x": x})
"""

_LOOP = """
for _ in range(5):
    step()
n, start = 0, time.perf_counter()
while time.perf_counter() - start < SECONDS:
    step()
    n += 1
print(json.dumps({"per_s": n / (time.perf_counter() - start)}))
"""


def _script(kind: str, threads: int, passive: bool, seconds: float) -> str:
    head = f"import json\nTHREADS = {threads}\nPASSIVE = {passive}\nSECONDS = {seconds}\n"
    body = _TORCH + f"torch.set_num_threads({threads})\n" if kind == "torch" else _ORT
    return head + body + _LOOP


def _env(threads: int, passive: bool) -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "OMP_WAIT_POLICY": "PASSIVE" if passive else "ACTIVE",
    }


def measure(kind: str, threads: int, passive: bool, seconds: float) -> float:
    """Steps per second of one setting, in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", _script(kind, threads, passive, seconds)],
        env=_env(threads, passive),
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["per_s"])


def competitor(kind: str, cores: int, seconds: float) -> subprocess.Popen[str]:
    """The other busy process: the same workload on every core, default (spinning) waits, nice 19."""
    return subprocess.Popen(
        ["nice", "-n", "19", sys.executable, "-c", _script(kind, cores, False, seconds)],
        env=_env(cores, False),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8.0, help="timed seconds per setting")
    ap.add_argument("--max-load", type=float, default=0.5, help="refuse --write above this 1-minute load average")
    ap.add_argument("--write", type=output_path, default=None, help="append the table to this RESULTS.md")
    ap.add_argument("--as-is", action="store_true", help="no competitor: measure on the machine as it is")
    ap.add_argument("--rounds", type=int, default=2, help="with --as-is: interleaved rounds per setting")
    args = ap.parse_args()
    if args.as_is:
        as_is(args)
        return
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    if args.write and load > args.max_load:
        sys.exit(f"not writing {args.write}: load {load:.2f} > {args.max_load} now; rerun when the machine is quiet "
                 "or drop --write")  # fmt: skip
    print(f"[busy] {cores} cores, 1-minute load {load:.2f} at the start", file=sys.stderr)
    free = max(1, cores - 1)
    rows = []
    for kind in ("torch", "ort"):
        for threads in sorted({cores, free}, reverse=True):
            for passive in (False, True):
                quiet = measure(kind, threads, passive, args.seconds)
                other = competitor(kind, cores, args.seconds + 10)
                time.sleep(2)  # let it start spinning
                try:
                    loaded = measure(kind, threads, passive, args.seconds)
                finally:
                    other.kill()
                    other.wait()
                rows.append((kind, threads, "passive" if passive else "spin", quiet, loaded))
                print(f"[busy] {rows[-1]}", file=sys.stderr, flush=True)
    end_load = os.getloadavg()[0]
    lines = [
        "## Busy machine",
        "",
        f"`python benchmarks/busy_machine.py --seconds {args.seconds:g}`, {time.strftime('%Y-%m-%d')}, "
        f"{cores} cores; 1-minute load average {load:.2f} at the start, {end_load:.2f} at the end. "
        "Competitor: the same workload on every core at nice 19, spinning waits.",
        "",
        "| workload | threads | waiting | quiet /s | beside a busy process /s | loaded / quiet |",
        "|---|---|---|---|---|---|",
    ]
    for kind, threads, wait, quiet, loaded in rows:
        lines.append(f"| {kind} | {threads} | {wait} | {quiet:.1f} | {loaded:.1f} | {loaded / quiet:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(args.write, lines[0].removeprefix("## "), "\n".join(lines[2:]))  # replaces its section


def as_is(args: argparse.Namespace) -> None:
    """Every setting on the machine as it is (other people's load), ``--rounds`` interleaved rounds."""
    cores = os.cpu_count() or 1
    start = os.getloadavg()
    results: dict[tuple[str, int, bool], list[float]] = {}
    for _ in range(args.rounds):
        for kind in ("torch", "ort"):
            for threads in sorted({cores, 1}, reverse=True):
                for passive in (False, True):
                    results.setdefault((kind, threads, passive), []).append(
                        measure(kind, threads, passive, args.seconds)
                    )
    end = os.getloadavg()
    lines = [
        "## Busy machine, as it is",
        "",
        f"`python benchmarks/busy_machine.py --as-is --seconds {args.seconds:g} --rounds {args.rounds}`, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, {cores} cores, no competitor of ours; 1-minute load average "
        f"{start[0]:.1f} before, {end[0]:.1f} after (other people's jobs).",
        "",
        "| workload | threads | waiting | per round /s |",
        "|---|---|---|---|",
    ]
    for (kind, threads, passive), values in results.items():
        runs = ", ".join(f"{v:.1f}" for v in values)
        lines.append(f"| {kind} | {threads} | {'passive' if passive else 'spin'} | {runs} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(args.write, lines[0].removeprefix("## "), "\n".join(lines[2:]))  # replaces its section


if __name__ == "__main__":
    run_main(main)
