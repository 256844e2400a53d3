"""Background builds (engine/background.py): a single-threaded step (Olive's GPTQ) built by a child process into the
run's cache, paused while something is measured, and reused by the run."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from olive_ext.artifacts import Artifact
from olive_ext.cache import Cache
from olive_ext.engine.background import BackgroundBuilds, background_prefixes, why_not_background
from olive_ext.engine.run import input_artifact
from olive_ext.engine.runner import run_steps
from olive_ext.engine.search import SearchSpace, make_strategy
from olive_ext.evaluate.worker import PAUSE_ENV, timing_alone
from olive_ext.passes import olive_catalog
from olive_ext.passes.context import RunContext
from olive_ext.recipe import parse_recipe

pytestmark = pytest.mark.skipif(
    olive_catalog.olive_ai_version() is None, reason="olive-ai is not installed (pip install 'olive-ext[olive]')"
)

INT4 = {"bits": 4, "group_size": 32}


def _recipe(model: Path, data_file: Path, cache: Path, k_quant: bool = False) -> Any:
    builder = {"type": "model_builder", "precision": "int4", "block_size": 32}
    gptq = {"type": "olive", "olive_type": "Gptq", "data": "calib", "samples": 6, "config": INT4}
    rtn = {"type": "olive", "olive_type": "Rtn", "config": INT4}
    pipelines = [{"build": builder}, {"quantize": gptq, "build": builder}, {"quantize": rtn, "build": builder}]
    if k_quant:
        pipelines.append({"build": {**builder, "algorithm": "k_quant"}})
    return parse_recipe({
        "input_model": {"path": str(model)},
        "data": {"calib": {"name": "json", "data_files": str(data_file), "text_template": "Q: {q}\nA: {a}"}},
        "pipelines": pipelines,
        "cache_dir": str(cache),
    })  # fmt: skip


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_prefixes_end_at_the_last_single_threaded_step(tiny_llama: Path, eval_file: Path, tmp_path: Path) -> None:
    recipe = _recipe(tiny_llama, eval_file, tmp_path / "cache", k_quant=True)
    space = SearchSpace.from_recipe(recipe)
    candidates = list(make_strategy(space, [t.target() for t in recipe.targets], recipe.search))
    jobs = background_prefixes(candidates)
    # GPTQ (calibrated, one thread) and the k_quant build (numpy, one thread): the plain build and Olive's RTN (no
    # data, seconds) stay with the run; the costliest (GPTQ) first, whatever the search order
    assert [[s.type for s in prefix] for _, prefix in jobs] == [["olive"], ["model_builder"]]
    assert jobs[0][1][0].params["olive_type"] == "Gptq" and jobs[0][0] is candidates[1]
    assert jobs[1][1][0].params["algorithm"] == "k_quant" and jobs[1][0] is candidates[3]
    swapped = [candidates[0], candidates[3], candidates[2], candidates[1]]
    assert [c for c, _ in background_prefixes(swapped)] == [candidates[1], candidates[3]]
    # the run measures the candidates the child builds for last, the child's last job first
    order = BackgroundBuilds(None, [c.id for c, _ in jobs]).run_order(candidates)
    assert order == [candidates[0], candidates[2], candidates[3], candidates[1]]


def test_switch_and_spare_core_are_honoured(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = Artifact("hf", str(tiny_llama))
    assert why_not_background(source, 1) is None  # a tiny model, a spare core
    assert "no spare core" in str(why_not_background(source, 0))
    monkeypatch.setenv("OLIVE_EXT_BACKGROUND", "0")
    assert why_not_background(source, 1) == "OLIVE_EXT_BACKGROUND=0"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_child_builds_gptq_paused_on_demand_and_the_run_reuses_it(
    tiny_llama: Path, eval_file: Path, tmp_path: Path
) -> None:
    recipe = _recipe(tiny_llama, eval_file, tmp_path / "cache")
    cache = Cache(recipe.cache_dir)
    source = input_artifact(recipe, cache)
    space = SearchSpace.from_recipe(recipe)
    candidates = list(make_strategy(space, [t.target() for t in recipe.targets], recipe.search))
    jobs = background_prefixes(candidates)
    ctx = RunContext(cache=cache, datasets=dict(recipe.data), input_model=recipe.input_model)
    background = BackgroundBuilds.start(source, jobs, ctx)
    assert background.process is not None
    pid = background.process.pid
    try:
        assert os.environ[PAUSE_ENV] == str(pid)  # what the evaluation workers inherit
        assert os.getpgid(pid) == pid  # it leads its own group, which a worker stops whole
        with background.measuring(), timing_alone():  # as a worker times a model
            time.sleep(0.2)
            assert _state(pid) == "T"  # stopped
        assert _state(pid) != "T"
        assert background.process.wait(300) == 0
    finally:
        background.close()
    assert PAUSE_ENV not in os.environ
    candidate, prefix = jobs[0]
    out, records = run_steps(source, prefix, ctx.for_step(ctx.output_dir, candidate.target), candidate.id)
    assert [r.cache_hit for r in records] == [True]  # the child built it; the run only reuses it
    assert out.kind == "hf" and out.meta["olive"]["type"] == "Gptq"
