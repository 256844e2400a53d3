"""Olive run configs (including the seed guide's YAML) are translated or refused with clear messages."""

from __future__ import annotations

from pathlib import Path

import yaml

from olive_ext.recipe import check_recipe
from olive_ext.recipe.olive_compat import is_olive_config, translate


def test_olive_layout_is_detected() -> None:
    assert is_olive_config({"input_model": {"type": "HfModel", "model_path": "x"}})
    assert not is_olive_config({"input_model": {"path": "x"}})


def test_systems_data_search_output_are_translated() -> None:
    raw = {
        "input_model": {"type": "HfModel", "model_path": "org/model", "load_kwargs": {"trust_remote_code": True}},
        "systems": {
            "local_system": {
                "type": "LocalSystem",
                "accelerators": [{"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}],
            }
        },
        "data_configs": [
            {
                "name": "d",
                "type": "HuggingfaceContainer",
                "load_dataset_config": {"data_files": "train.jsonl", "split": "train[:90%]"},
                "pre_process_data_config": {"text_template": "Q: {q}\nA: {a}", "max_seq_len": 512},
            }
        ],
        "search_strategy": {"execution_order": "joint", "sampler": "tpe", "max_samples": 5, "seed": 3},
        "output_dir": "models/out",
        "host": "local_system",
        "target": "local_system",
    }
    out, problems = translate(raw)
    assert out["input_model"] == {"path": "org/model", "trust_remote_code": True}
    assert out["targets"] == [{"device": "cpu", "provider": "CPUExecutionProvider"}]
    assert out["data"]["d"] == {
        "name": "json",
        "data_files": "train.jsonl",
        "split": "train[:90%]",
        "text_template": "Q: {q}\nA: {a}",
    }
    assert out["search"] == {"strategy": "tpe", "max_candidates": 5, "seed": 3}
    assert out["output"] == {"path": "models/out"}
    assert [p.severity for p in problems] == ["note"]
    assert "max_seq_len" in problems[0].path


def test_unsupported_olive_pieces_are_named() -> None:
    raw = {
        "input_model": {"type": "CompositeModel", "model_path": "x"},
        "systems": {"aml": {"type": "AzureML"}},
        "passes": {"p": {"type": "SparseGPT"}},
        "evaluators": {"e": {"metrics": [{"name": "m", "type": "custom"}]}},
        "workflow_host": "x",
    }
    _, problems = translate(raw)
    text = "\n".join(p.render() for p in problems)
    for needle in ("CompositeModel", "AzureML", "SparseGPT", "custom", "workflow_host"):
        assert needle in text


def test_guide_search_yaml_is_refused_with_what_to_write(tmp_path: Path) -> None:
    guide = yaml.safe_load("""
search_strategy:
  type: "random"
  num_trials: 20
search_space:
  learning_rate: {type: float, low: 1e-6, high: 1e-3, log: true}
""")
    _, problems = check_recipe(guide)
    rendered = {p.path: p.render() for p in problems}
    assert "input_model" in rendered
    assert "list on the pass parameter" in rendered["search_space"]


def test_older_nested_config_format_is_flattened() -> None:
    raw = {
        "model": {
            "type": "PyTorchModel",
            "config": {"model_path": "microsoft/DialoGPT-medium", "task": "text-generation"},
        }
    }
    out, problems = translate(raw)
    assert out["input_model"] == {"path": "microsoft/DialoGPT-medium", "task": "text-generation"}
    assert not [p for p in problems if p.severity == "error"]
