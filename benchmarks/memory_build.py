"""Peak RSS of the int4 genai build and its parity check, per phase, on a Gemma-3-270M-shaped model.

The model is benchmarks/memory_phases.py's (transformers 5 Gemma3ForCausalLM, 262,144-token tied vocabulary,
268M parameters, random weights, fp32) with a random LoRA adapter on q/k/v/o (r 8), as a fine-tune leaves it.
In one process, as auto-opt's model_builder pass runs them today: ``build_genai`` at int4 (block 32) with the
adapter merged by the builder, then the parity check (PyTorch + peft reference against the genai model on the
8 default prompts, 8 greedy tokens). A thread samples VmRSS every 20 ms and files it under the phase running
(builder phases are marked by wrapping the builder's own methods). Measures the olive_ext on PYTHONPATH, so
``PYTHONPATH=/path/to/older/checkout`` gives the figures before a change.

``--model`` measures an existing model folder instead (a random LoRA adapter is made for it the same way) and
``--precision`` another precision: ``--model <qwen2-0.5b> --precision int8`` is benchmarks/scaling.py's case.

Usage: ``PYTHONPATH=$PWD python benchmarks/memory_build.py [--label after] [--model DIR] [--precision int8]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import ROOT, load_average, machine_line, run_main, today
from memory_phases import BUILD_MODEL

ADAPTER = """
import sys, torch
from transformers import AutoModelForCausalLM
from peft import LoraConfig, get_peft_model
model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
torch.manual_seed(0)
config = LoraConfig(r=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], init_lora_weights=False)
get_peft_model(model, config).save_pretrained(sys.argv[2])
"""


class Sampler:
    """Peak VmRSS per phase name, sampled by a daemon thread."""

    def __init__(self) -> None:
        self.phase = "start"
        self.peaks: dict[str, float] = {}
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            with open("/proc/self/status") as f:
                mb = next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), mb)
            time.sleep(0.02)

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            before, self.phase = self.phase, label
            try:
                return original(*args, **kwargs)
            finally:
                self.phase = before

        setattr(owner, name, wrapped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="", help="a name for this run in the printed table")
    parser.add_argument("--model", type=Path, help="an existing model folder (else a Gemma-3-270M shape is built)")
    parser.add_argument("--precision", default="int4", choices=["fp32", "int8", "int4"])
    parser.add_argument(
        "--both-loaded",
        action="store_true",
        help="parity with both models in memory (compare_llm) instead of the pass's one at a time",
    )
    args = parser.parse_args()
    if args.model is not None and not (args.model / "config.json").is_file():
        parser.error(f"--model {args.model}: no config.json there; give a Hugging Face model folder")
    work = Path(tempfile.mkdtemp(prefix="memory-build-"))
    try:
        measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, work: Path) -> None:
    """Build and parity-check in ``work`` (a temporary folder), printing each phase's peak RSS."""
    model, adapter = args.model or work / "gemma3-270m", work / "lora"
    scripts = ((BUILD_MODEL, [model, ROOT / "tests"]),) if args.model is None else ()
    for script, argv in (*scripts, (ADAPTER, [model, adapter])):
        done = subprocess.run([sys.executable, "-c", script, *map(str, argv)], capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise SystemExit(f"preparing {'the adapter' if script is ADAPTER else 'the model'} failed: {last}")

    sampler = Sampler()
    import onnxruntime_genai.models.builder  # noqa: F401  (puts the builder's folder on sys.path)
    from builders import base
    from onnxruntime.quantization import matmul_nbits_quantizer

    from olive_ext.memory import peak_rss_mb
    from olive_ext.onnx import parity
    from olive_ext.onnx.genai_builder import build_genai
    from olive_ext.onnx.parity import DEFAULT_PROMPTS, GenAICandidate, TorchReference, compare_llm

    sampler.wrap(base.Model, "make_model", "build: load the HF model (adapter merged) and make the graph")
    sampler.wrap(base.Model, "to_nbits", f"build: {args.precision} quantization (to_nbits)")
    sampler.wrap(matmul_nbits_quantizer.MatMulNBitsQuantizer, "process", "build: MatMulNBits quantizer")
    sampler.wrap(base.Model, "save_model", "build: save")
    sampler.wrap(TorchReference, "__init__", "parity: load the PyTorch reference")
    sampler.wrap(GenAICandidate, "__init__", "parity: load the genai model")
    sampler.wrap(TorchReference, "logits", "parity: PyTorch logits")
    sampler.wrap(GenAICandidate, "logits", "parity: genai logits")
    sampler.wrap(parity.LogitStats, "add", "parity: statistics")
    sampler.wrap(TorchReference, "greedy", "parity: PyTorch greedy tokens")
    sampler.wrap(GenAICandidate, "greedy", "parity: genai greedy tokens")
    start = time.time()
    sampler.phase = "build: other (config, genai_config, tokenizer)"
    options = {"int4_block_size": "32", "adapter_path": str(adapter)} if args.precision == "int4" else {}
    options["adapter_path"] = str(adapter)
    build_genai(str(model), work / "out", args.precision, "cpu", options, work / "cache", "model_builder")
    build_s = time.time() - start
    gc.collect()
    sampler.phase = "parity: other"
    from transformers import AutoTokenizer

    prompts = [AutoTokenizer.from_pretrained(model)(p)["input_ids"] for p in DEFAULT_PROMPTS]
    parity_start = time.time()
    if args.both_loaded:
        stats = compare_llm(TorchReference(str(model), str(adapter), True), GenAICandidate(str(work / "out"), None),
                            prompts, 8)  # fmt: skip
    else:
        stats = parity.compare_llm_in_turn(
            lambda: TorchReference(str(model), str(adapter), True), lambda: GenAICandidate(str(work / "out"), None),
            prompts, 8,
        )  # fmt: skip
    parity_s = time.time() - parity_start
    time.sleep(0.1)
    rows = [f"| {phase} | {mb:.0f} |" for phase, mb in sampler.peaks.items() if phase != "start"]
    rows.append(f"| whole run (VmHWM) | {peak_rss_mb() or 0:.0f} |")
    print(
        f"{args.label or 'run'}: `PYTHONPATH=<checkout> python benchmarks/memory_build.py` ({args.precision}, "
        f"{'both models loaded' if args.both_loaded else 'one model at a time'}), {today()}, {machine_line()}, "
        f"1-minute load average {load_average():.1f} at the end; build {build_s:.0f} s, parity {parity_s:.0f} s; "
        f"parity {json.dumps(stats)}\n\n"
        "| phase | peak RSS MB |\n|---|---|\n" + "\n".join(rows)
    )


if __name__ == "__main__":
    run_main(main)
