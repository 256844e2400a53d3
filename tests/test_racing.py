"""Racing: candidates that cannot meet the accuracy constraint stop early; the choice does not change."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from test_teacher_forcing import TEMPLATE, greedy_eval_file

from olive_ext.artifacts import Artifact, fingerprint_input
from olive_ext.cache import Cache
from olive_ext.engine.run import execute
from olive_ext.engine.select import stopped_after
from olive_ext.evaluate.context import EvalContext
from olive_ext.evaluate.evaluator import evaluate
from olive_ext.evaluate.racing import Race, wilson_upper
from olive_ext.evaluate.spec import EvaluateSpec
from olive_ext.recipe.schema import DatasetSpec, Recipe
from olive_ext.workflows.auto_opt import AutoOptOptions, auto_opt_recipe
from olive_ext.workflows.run import run_recipe

ROWS = 40
FAST = {"warmup": 0, "repeats": 1, "new_tokens": 4, "prompt_tokens": 8, "max_new_tokens": 4}


@pytest.mark.parametrize("bound", ["exact", "wilson"])
def test_a_stop_is_never_a_candidate_that_meets_the_floor_with_the_exact_bound(bound: str) -> None:
    """Every outcome sequence of 12 rows: the exact bound stops only candidates below the floor over all
    rows; Wilson stops at least as soon as the exact bound does."""
    total = 12
    for floor in (50.0, 75.0, 91.0):
        race = Race(floor=floor, slices=(3, 6, 9), bound=bound)  # type: ignore[arg-type]
        exact = Race(floor=floor, slices=(3, 6, 9))
        for outcome in itertools.product((0, 1), repeat=total):
            final = round(100.0 * sum(outcome) / total, 2)
            for seen in race.slices:
                hits = sum(outcome[:seen])
                if exact.should_stop(hits, seen, total):
                    assert final < floor
                    assert race.should_stop(hits, seen, total)
            # all rows seen: stopped (not timed) exactly when the accuracy broke the floor
            assert race.should_stop(sum(outcome), total, total) == (final < floor)


def test_wilson_upper_bound_brackets_the_observed_rate() -> None:
    for n in (1, 5, 30, 90):
        for hits in range(n + 1):
            upper = wilson_upper(hits, n)
            assert hits / n <= upper <= 1.0
            assert hits == n or upper < 1.0
    assert wilson_upper(10, 30) > wilson_upper(20, 60) > 20 / 60  # more rows, tighter bound


def _recipe(model: Path, data: Path, cache: Path, out: Path, racing: str) -> Recipe:
    spec = DatasetSpec(name="json", data_files=str(data), text_template="Q: {q}\nA: {a}")
    opts = AutoOptOptions(
        model_name_or_path=str(model),
        output_path=str(out),
        data=spec,
        precision="auto",  # fp32, int8 and int4 builds
        max_candidates=4,
        max_accuracy_drop=0.0,  # the PyTorch model answers every row: a build that loses one is out
        cache_dir=str(cache),
        **FAST,  # type: ignore[arg-type]
    )
    recipe = auto_opt_recipe(opts, "cpu", str(out))
    assert recipe.evaluate is not None
    return recipe.model_copy(update={"evaluate": recipe.evaluate.model_copy(update={"racing": racing})})


def test_racing_stops_losers_early_and_keeps_the_choice(tiny_llama: Path, tmp_path: Path) -> None:
    data = greedy_eval_file(tiny_llama, tmp_path / "eval.jsonl", ROWS, 4)
    cache = tmp_path / "cache"
    plain = execute(_recipe(tiny_llama, data, cache, tmp_path / "a", "off"))
    raced = run_recipe(_recipe(tiny_llama, data, cache, tmp_path / "b", "exact"))
    assert plain.reference and plain.reference["metrics"]["exact_match"] == 100.0

    losers = [r for r in plain.results if r.ok and r.metrics["exact_match"] < 100.0]
    assert losers, "some int4 build must lose a row of the tiny model's answers"
    stopped = [r for r in raced.results if stopped_after(r.metrics) is not None]
    assert stopped, "a candidate that cannot meet max_accuracy_drop 0 must be stopped"
    # every candidate that broke the constraint is stopped: on a slice, or on all rows and then not timed
    assert {r.candidate.id for r in stopped} == {r.candidate.id for r in losers}
    for r in stopped:
        assert r.metrics["exact_match.n"] == stopped_after(r.metrics) <= ROWS
        assert r.constraints == {"max_accuracy_drop": False} and not r.chosen
        assert "latency" not in r.metrics, "a stopped candidate is not timed"
        assert any("stopped after" in n for n in r.notes)
        # its parity check runs only where it could still be chosen: not here
        assert [c.type for c in r.records].count("parity_check") == 0 and "parity" not in r.artifact.meta
        assert any(n.startswith("not checked (parity") for n in r.notes), r.notes
    checked = [r for r in raced.results if r.ok and all(r is not s for s in stopped)]
    assert checked and all(r.artifact.meta["parity"]["passed"] for r in checked if r.artifact.kind == "genai")
    assert any(c.type == "parity_check" for c in raced.chosen.records)  # type: ignore[union-attr]
    # the choice is the same, scored on every row
    assert plain.chosen is not None and raced.chosen is not None
    assert raced.chosen.candidate.id == plain.chosen.candidate.id
    assert raced.chosen.metrics["exact_match"] == plain.chosen.metrics["exact_match"]
    assert raced.chosen.metrics["exact_match.n"] == ROWS and stopped_after(raced.chosen.metrics) is None
    for r in raced.results:  # racing changes nothing about candidates it did not stop
        before = next(p for p in plain.results if p.candidate.id == r.candidate.id)
        if all(r is not s for s in stopped):
            assert r.metrics["exact_match"] == before.metrics["exact_match"]
            assert r.constraints == before.constraints

    assert raced.output_dir is not None
    listed = json.loads((raced.output_dir / "candidates.json").read_text())["candidates"]
    assert any("exact_match.stopped_after" in c["metrics"] for c in listed)
    report = (raced.output_dir / "report.md").read_text()
    assert "stopped after" in report and "First answers of the chosen candidate" in report
    assert len(raced.chosen.metrics["exact_match.samples"]) == 3  # type: ignore[arg-type]


def test_a_candidate_below_the_floor_on_every_row_is_not_timed(tiny_llama: Path, tmp_path: Path) -> None:
    """Scored on every row (no slices left to stop on) and below the floor there: the worker is told to stop
    before timing, so the metrics hold the accuracy over all rows and no latency; at or above it, it is timed."""
    rows = 6
    data = greedy_eval_file(tiny_llama, tmp_path / "eval.jsonl", rows, 4)
    spec = EvaluateSpec(metrics=["exact_match", "latency"], warmup=0, repeats=1, new_tokens=4, max_new_tokens=4)
    ectx = EvalContext(spec, dataset=DatasetSpec(name="json", data_files=str(data), text_template=TEMPLATE))
    cache = Cache(tmp_path / "cache")
    model = fingerprint_input(Artifact("hf", str(tiny_llama)))
    below, _ = evaluate(model, ectx, cache, race=Race(floor=100.5, slices=()))
    assert below["exact_match"] == 100.0 and below["exact_match.n"] == rows
    assert below["exact_match.stopped_after"] == rows and "latency" not in below
    met, _ = evaluate(model, ectx, cache, race=Race(floor=100.0, slices=()))
    assert met["exact_match"] == 100.0 and "exact_match.stopped_after" not in met and met["latency"] > 0
