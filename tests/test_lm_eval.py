"""Olive's LMEvaluator runs through lm-eval: an Olive config's lm-eval task is scored on every candidate by lm-eval
itself and lands in candidates.json equal to lm-eval's own result; tasks whose hub datasets are not on this machine
are refused before any work, naming the dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import olive_ext
from olive_ext.evaluate import lm_eval_tasks
from olive_ext.recipe import check_recipe, olive_compat

pytestmark = [
    pytest.mark.skipif(lm_eval_tasks.lm_eval_version() is None, reason="lm-eval is an extra (make install)"),
    pytest.mark.skipif(not olive_compat.olive_ai_installed(), reason="olive-ai is an extra (make install)"),
]


def _mc_task(folder: Path, n: int = 8) -> dict[str, Any]:
    """An inline lm-eval multiple-choice task over a local JSON-lines file (Olive passes task configs through)."""
    rows = [{"q": f"what is {i} plus {i}?", "choices": [str(2 * i), str(2 * i + 1), str(i)], "label": i % 3}
            for i in range(n)]  # fmt: skip
    data = folder / "mc.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    return {
        "task": "tiny_mc",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{q}}",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{label}}",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1},
    }


def _lm_eval_directly(model: Path, task: dict[str, Any]) -> float:
    """lm-eval's own score of ``task`` on the PyTorch model, without olive-ext."""
    from lm_eval import simple_evaluate
    from lm_eval.api.registry import get_model
    from lm_eval.tasks import TaskManager

    lm = get_model("hf")(pretrained=str(model), device="cpu", dtype="float32", batch_size=1)
    result = simple_evaluate(model=lm, tasks=[task], task_manager=TaskManager(include_defaults=False),
                             bootstrap_iters=0)  # fmt: skip
    return float(result["results"]["tiny_mc"]["acc,none"])


def test_an_olive_lm_evaluator_is_scored_by_lm_eval_on_every_candidate(tiny_llama: Path, tmp_path: Path) -> None:
    task = _mc_task(tmp_path)
    raw = {
        "input_model": {"type": "HfModel", "model_path": str(tiny_llama)},
        "passes": {"builder": {"type": "ModelBuilder", "precision": "fp32"}},
        "evaluators": {"lm": {"type": "LMEvaluator", "tasks": [task], "batch_size": 2, "bootstrap_iters": 0}},
        "evaluator": "lm",
        "output_dir": str(tmp_path / "out"),
    }
    path = tmp_path / "olive.json"
    path.write_text(json.dumps(raw))
    result = olive_ext.run(path)
    data = json.loads((result.output_dir / "candidates.json").read_text())
    scored = [c for c in data["candidates"] if not c.get("error")]
    assert scored, data
    expected = _lm_eval_directly(tiny_llama, task)
    for candidate in scored:  # the genai fp32 build scores what the PyTorch model scores on 8 questions
        assert candidate["metrics"]["lm_eval"] == pytest.approx(expected)
        assert candidate["metrics"]["tiny_mc-acc"] == pytest.approx(expected)


def test_hub_tasks_missing_offline_are_refused_before_work_naming_the_dataset_groups_expand_unknown_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty Hugging Face cache
    raw = {
        "input_model": {"type": "HfModel", "model_path": "org/llm"},
        "passes": {"builder": {"type": "ModelBuilder", "precision": "int4"}},
        "evaluators": {"lm": {"type": "LMEvaluator", "tasks": ["hellaswag", "arc_easy"], "batch_size": 8}},
    }
    problems = {p.path: p for p in check_recipe(raw)[1] if p.severity == "error"}
    problem = problems["evaluators.lm.tasks"]
    assert problem.category == "hub"
    assert "Rowan/hellaswag" in problem.message and "allenai/ai2_arc" in problem.message
    # once the dataset is in the hub cache, the same config is accepted
    for repo in ("Rowan/hellaswag", "allenai/ai2_arc"):
        (tmp_path / "hf" / "hub" / f"datasets--{repo.replace('/', '--')}" / "snapshots" / "abc").mkdir(parents=True)
    assert not [p for p in check_recipe(raw)[1] if p.severity == "error"]
    # a group is expanded to its tasks' datasets; an unknown name is refused naming the closest ones
    assert {d.path for d in lm_eval_tasks.task_datasets(["mmlu"])} == {"cais/mmlu"}
    assert len(lm_eval_tasks.task_datasets(["mmlu"])) == 57  # its 57 subjects
    raw["evaluators"]["lm"]["tasks"] = ["helaswag"]
    problem = {p.path: p for p in check_recipe(raw)[1] if p.severity == "error"}["evaluators.lm.tasks"]
    assert "helaswag" in problem.message and "hellaswag" in (problem.hint or "")


def test_a_native_recipes_benchmark_tasks_are_checked_by_validate_and_found_beside_it(
    tiny_llama: Path, tmp_path: Path
) -> None:
    """`validate` said "valid" to an lm-eval task lm-eval does not have (`run` refused it, with exit code 1), and an
    inline task's relative data file resolved against the working folder, not the recipe's."""
    import yaml

    folder = tmp_path / "recipes"
    folder.mkdir()
    task = _mc_task(folder)
    task["dataset_kwargs"] = {"data_files": {"test": "mc.jsonl"}}  # beside the recipe
    recipe = {
        "input_model": {"path": str(tiny_llama)},
        "passes": {"build": {"type": "model_builder", "precision": "fp32"}},
        "evaluate": {"metrics": ["lm_eval"], "lm_eval": {"tasks": [task], "batch_size": 2, "bootstrap_iters": 0}},
        "output": {"path": str(tmp_path / "out")},
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert olive_ext.validate(path) == []  # the working folder is the tests', where mc.jsonl is not
    from olive_ext.recipe.load import load_recipe

    tasks = load_recipe(path).evaluate.lm_eval.tasks  # type: ignore[union-attr]
    assert tasks[0]["dataset_kwargs"]["data_files"] == {"test": str(folder / "mc.jsonl")}
    recipe["evaluate"]["lm_eval"]["tasks"] = ["helaswag"]
    path.write_text(yaml.safe_dump(recipe))
    problems = olive_ext.validate(path)
    assert [p.path for p in problems] == ["evaluate"] and "no task, group or tag 'helaswag'" in problems[0].message
    assert lm_eval_tasks.UnknownTask("x").exit_code == 2
