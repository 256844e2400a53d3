"""merge_adapter: the merged model gives the same logits as base + peft adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_models import make_random_adapter

from olive_ext.errors import UserInputError
from olive_ext.recipe import parse_recipe
from olive_ext.workflows.run import run_recipe as run


def test_merged_logits_equal_peft_logits(tiny_llama: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = make_random_adapter(tiny_llama, tmp_path / "adapter")
    recipe = parse_recipe(
        {
            "input_model": {"path": str(tiny_llama), "adapter_path": str(adapter)},
            "passes": {"merge": {"type": "merge_adapter"}},
            "output": {"path": str(tmp_path / "out")},
        }
    )
    result = run(recipe)
    merged_path = result.chosen.artifact.path
    tok = AutoTokenizer.from_pretrained(merged_path)
    ids = tok("the capital of france is paris", return_tensors="pt")
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    with torch.no_grad():
        base_logits = base(**ids).logits
        expected = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), adapter)(**ids).logits
        merged = AutoModelForCausalLM.from_pretrained(merged_path)(**ids).logits
    assert (expected - base_logits).abs().max() > 1e-2, (
        "the adapter must change the outputs for this test to mean anything"
    )
    assert (merged - expected).abs().max() < 1e-4
    assert (tmp_path / "out" / "model" / "config.json").exists()


def test_merge_without_adapter_is_refused(tiny_llama: Path, tmp_path: Path) -> None:
    recipe = parse_recipe(
        {
            "input_model": {"path": str(tiny_llama)},
            "passes": {"m": {"type": "merge_adapter"}},
            "output": {"path": str(tmp_path / "o")},
        }
    )
    with pytest.raises(UserInputError, match="no adapter to merge"):
        run(recipe)
