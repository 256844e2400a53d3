"""Olive's MTEBEvaluator runs through mteb: metric 'mteb' scores a candidate with mteb's own tasks and scoring, through
the encoder wrappers Olive uses; tasks whose hub datasets are not on this machine are refused before any work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from convert_helpers import build

from olive_ext.errors import OliveExtError
from olive_ext.evaluate import mteb_tasks
from olive_ext.evaluate.spec import MtebSpec
from olive_ext.recipe import check_recipe, olive_compat

pytestmark = [
    pytest.mark.skipif(mteb_tasks.mteb_version() is None, reason="mteb is an extra (make install)"),
    pytest.mark.skipif(not olive_compat.olive_ai_installed(), reason="olive-ai is an extra (make install)"),
]

PAIRS = [  # (sentence1, sentence2, similarity 0-5)
    ("a man is playing a guitar", "a man plays the guitar", 4.8),
    ("a woman is slicing an onion", "a woman is cutting an onion", 4.5),
    ("a dog runs in the park", "the stock market fell today", 0.1),
    ("two kids are playing football", "children play soccer outside", 4.0),
    ("the cat sleeps on the sofa", "a plane takes off from the airport", 0.2),
    ("it is raining heavily", "there is a lot of rain", 4.4),
    ("he is cooking pasta", "a man sings on stage", 0.5),
    ("the sun is bright", "the sun shines brightly", 4.7),
]


def _local_sts_task(folder: Path) -> Any:
    """An MTEB STS task over a local JSON-lines file: mteb loads it with datasets, offline."""
    from mteb.abstasks.sts import AbsTaskSTS
    from mteb.abstasks.task_metadata import TaskMetadata

    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"sentence1": a, "sentence2": b, "score": s} for a, b, s in PAIRS]
    (folder / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows))

    class TinySTS(AbsTaskSTS):
        metadata = TaskMetadata(
            name="TinySTS", dataset={"path": str(folder), "revision": "local"}, description="eight pairs",
            reference=None, type="STS", category="t2t", modalities=["text"], eval_splits=["test"],
            eval_langs=["eng-Latn"], main_score="cosine_spearman", date=None, domains=None, task_subtypes=None,
            license=None, annotations_creators=None, dialect=None, sample_creation=None, bibtex_citation=None,
        )  # fmt: skip
        min_score = 0
        max_score = 5

    return TinySTS()


def test_hub_tasks_missing_offline_are_refused_naming_the_datasets_unknown_names_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The olive-recipes Qwen3-Embedding evaluator: STS17 and NFCorpus read hub datasets this machine lacks."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty Hugging Face cache
    raw = {
        "input_model": {"type": "HfModel", "model_path": "org/embedder"},
        "passes": {"m": {"type": "ModelBuilder", "precision": "int4", "extra_options": {"include_hidden_states": 1}}},
        "evaluators": {"mteb": {"type": "MTEBEvaluator", "tasks": ["STS17", "NFCorpus"], "batch_size": 32}},
        "evaluator": "mteb",
    }
    problems = {p.path: p for p in check_recipe(raw)[1] if p.severity == "error"}
    problem = problems["evaluators.mteb.tasks"]
    assert problem.category == "hub"
    assert "mteb/sts17-crosslingual-sts" in problem.message and "mteb/nfcorpus" in problem.message
    # once the datasets are in the hub cache, the same config is accepted and scored by metric 'mteb'
    for repo in ("mteb/sts17-crosslingual-sts", "mteb/nfcorpus"):
        (tmp_path / "hf" / "hub" / f"datasets--{repo.replace('/', '--')}" / "snapshots" / "abc").mkdir(parents=True)
    recipe, problems_after = check_recipe(raw)
    assert not [p for p in problems_after if p.severity == "error"]
    assert recipe is not None and recipe.evaluate is not None
    assert recipe.evaluate.metrics == ["mteb"] and recipe.evaluate.mteb is not None
    assert recipe.evaluate.mteb.tasks == ["STS17", "NFCorpus"] and recipe.evaluate.mteb.batch_size == 32
    raw["evaluators"]["mteb"]["tasks"] = ["STS71"]
    problem = {p.path: p for p in check_recipe(raw)[1] if p.severity == "error"}["evaluators.mteb.tasks"]
    assert "STS71" in problem.message and "STS17" in (problem.hint or "")


@pytest.mark.integration
def test_minilm_and_its_onnx_export_are_scored_by_mteb(minilm: Path, tmp_path: Path) -> None:
    """A local STS task on MiniLM in PyTorch (sentence-transformers) and as an ONNX export (Olive's ORT wrapper)."""
    from mteb import MTEB
    from sentence_transformers import SentenceTransformer

    from olive_ext.artifacts import Artifact
    from olive_ext.evaluate.metrics.mteb_metric import score_with_mteb

    task = _local_sts_task(tmp_path / "sts")
    spec = MtebSpec(tasks=["TinySTS"], batch_size=4)
    torch_scores = score_with_mteb(Artifact("hf", str(minilm)), spec, [task])
    direct = MTEB(tasks=[task]).run(SentenceTransformer(str(minilm), device="cpu"), output_folder=None, verbosity=0)
    assert torch_scores["mteb"] == pytest.approx(direct[0].main_score)
    assert torch_scores["TinySTS-main_score"] == torch_scores["mteb"] == torch_scores["TinySTS-test_default"]
    assert torch_scores["mteb"] > 0.8  # MiniLM ranks the paraphrases above the unrelated pairs

    exported = build(minilm, {"export": {"type": "onnx_export", "task": "feature-extraction"}})
    onnx_scores = score_with_mteb(exported, spec, [task])
    # Olive's ORT wrapper pools the last token (Qwen3-Embedding's pooling), not MiniLM's mean: a different score
    assert set(onnx_scores) == set(torch_scores) and -1.0 <= onnx_scores["mteb"] <= 1.0


def test_a_genai_build_with_hidden_states_is_scored_through_olives_genai_wrapper(
    tiny_llama: Path, tmp_path: Path
) -> None:
    """olive-recipes' Qwen3-Embedding path: ModelBuilder with include_hidden_states, then MTEB on the genai folder."""
    from olive_ext.evaluate.metrics.mteb_metric import score_with_mteb

    passes = {"m": {"type": "model_builder", "precision": "int4", "extra_options": {"include_hidden_states": 1}}}
    built = build(tiny_llama, passes)
    assert built.kind == "genai"
    scores = score_with_mteb(built, MtebSpec(tasks=["TinySTS"], batch_size=4), [_local_sts_task(tmp_path / "sts")])
    assert set(scores) == {"mteb", "TinySTS-main_score", "TinySTS-test_default"} and -1.0 <= scores["mteb"] <= 1.0
    # a genai folder built without hidden states has none to pool: mteb's failure is named, not a traceback
    plain = build(tiny_llama, {"m": {"type": "model_builder", "precision": "int4"}})
    with pytest.raises(OliveExtError, match="mteb could not score genai model"):
        score_with_mteb(plain, MtebSpec(tasks=["TinySTS"]), [_local_sts_task(tmp_path / "sts2")])


def test_a_recipe_written_for_olive_ext_is_checked_before_work_too(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """evaluate.mteb in our own recipe format: tasks needed, their hub datasets checked before any build."""
    from olive_ext.engine.preflight import check_recipe_before_work
    from olive_ext.errors import UserInputError
    from olive_ext.recipe import parse_recipe

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty Hugging Face cache
    raw: dict[str, Any] = {
        "input_model": {"path": str(tiny_llama)},
        "passes": {"b": {"type": "model_builder", "precision": "int4"}},
        "evaluate": {"metrics": ["mteb"]},
        "cache_dir": str(tmp_path / "cache"),
    }
    with pytest.raises(UserInputError, match="names no tasks"):
        check_recipe_before_work(parse_recipe(raw), write_output=False)
    raw["evaluate"]["mteb"] = {"tasks": ["STS17"]}
    with pytest.raises(UserInputError, match="mteb/sts17-crosslingual-sts"):
        check_recipe_before_work(parse_recipe(raw), write_output=False)
    (tmp_path / "hf" / "hub" / "datasets--mteb--sts17-crosslingual-sts" / "snapshots" / "abc").mkdir(parents=True)
    check_recipe_before_work(parse_recipe(raw), write_output=False)
