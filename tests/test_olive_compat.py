"""Olive run configs (including the seed guide's YAML) are translated or refused with clear messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from olive_ext.recipe import check_recipe
from olive_ext.recipe.olive_compat import is_olive_config, translate


def test_olive_layout_is_detected() -> None:
    assert is_olive_config({"input_model": {"type": "HfModel", "model_path": "x"}})
    assert not is_olive_config({"input_model": {"path": "x"}})


def test_systems_data_search_output_are_translated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # Olive reads data files from the folder it runs in: they are made absolute
    (tmp_path / "train.jsonl").write_text('{"q": "1+1", "a": "2"}\n')
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
        "data_files": str(tmp_path.resolve() / "train.jsonl"),
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
        "passes": {"p": {"type": "NoSuchPass"}},
        "evaluators": {"e": {"metrics": [{"name": "m", "type": "custom"}]}},
        "workflow_host": "x",
    }
    _, problems = translate(raw)
    text = "\n".join(p.render() for p in problems)
    for needle in ("CompositeModel", "AzureML", "NoSuchPass", "custom", "workflow_host"):
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


def _paths(tree: object, path: tuple = ()) -> list[tuple]:
    """The key path of every value in the tree."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else []
    out = []
    for key, value in items:
        out.append((*path, key))
        out += _paths(value, (*path, key))
    return out


WRONG = [1, -5, "x", "", [], {}, None, [1], ["x"], {"a": 1}, {"str": []}, 1.5, float("nan"), True, [{}, []], 10**50]


def test_every_olive_value_of_a_wrong_type_is_a_problem_not_a_crash() -> None:
    """Each value of a full Olive config (and of the shipped Olive recipes) replaced by each wrong-typed value:
    the check names problems, it never raises. Before the shape check this crashed at 33 places."""
    import copy

    from recipe_mutants import OLIVE_FULL, SEED_FILES

    seeds = [yaml.safe_load(OLIVE_FULL)] + [yaml.safe_load(p.read_text()) for p in SEED_FILES if "olive" in p.parts]
    checked = 0
    for seed in seeds:
        for path in _paths(seed):
            for value in WRONG:
                tree = copy.deepcopy(seed)
                parent = tree
                for key in path[:-1]:
                    parent = parent[key]
                parent[path[-1]] = value
                _, problems = check_recipe(tree)
                assert all(isinstance(p.path, str) for p in problems)
                checked += 1
    assert checked > 1000


def test_olive_wrong_types_are_located() -> None:
    raw = yaml.safe_load(
        """
input_model: {type: HfModel, model_path: m, load_kwargs: [1]}
data_configs: [{name: d, load_dataset_config: {data_files: []}}]
systems: {s: {accelerators: [{device: cpu, execution_providers: CPUExecutionProvider}]}}
passes:
  q: {type: OnnxDynamicQuantization, weight_type: [QInt8]}
  b: {type: ModelBuilder, use_cuda_bf16: true, extra_options: 3}
evaluators: {e: {metrics: [{name: a, type: accuracy, sub_types: [{name: x, goal: {type: [1], value: high}}]}]}}
search_strategy: {sampler: tpe, max_samples: lots}
output_dir: {a: 1}
"""
    )
    _, problems = check_recipe(raw)
    paths = {p.path for p in problems if p.severity == "error"}
    expected = {
        "input_model.load_kwargs",
        "data_configs[0].load_dataset_config.data_files",
        "systems.s.accelerators[0].execution_providers",
        "passes.q.weight_type",
        "passes.b.extra_options",
        "evaluators.e.metrics[0].sub_types[0].goal.type",
        "evaluators.e.metrics[0].sub_types[0].goal.value",
        "search_strategy.max_samples",
        "output_dir",
    }
    assert expected <= paths, expected - paths
