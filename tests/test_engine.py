"""The engine: caching, resume after SIGKILL, output protection, failing candidates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from toy_passes import toy_weights

from olive_ext.errors import OutputExistsError, PassError, UserInputError
from olive_ext.recipe import parse_recipe
from olive_ext.workflows.run import run_recipe as run


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "input_model"
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "toy"}')
    toy_weights(d, os.urandom(1000))
    return d


def recipe_for(model_dir: Path, out: Path, passes: dict, **extra: object):
    raw = {"input_model": {"path": str(model_dir)}, "passes": passes, "output": {"path": str(out)}}
    raw.update(extra)
    return parse_recipe(raw)


def chain(marker: Path, wait_for: Path | None = None) -> dict:
    return {
        "a": {"type": "toy_transform", "label": "a", "marker": str(marker)},
        "b": {
            "type": "toy_transform",
            "label": "b",
            "marker": str(marker),
            "wait_for": str(wait_for) if wait_for else None,
        },
        "c": {"type": "toy_transform", "label": "c", "marker": str(marker)},
    }


def test_lineage_records_each_steps_own_peak_rss(model_dir: Path, tmp_path: Path) -> None:
    passes = {
        "big": {"type": "toy_transform", "label": "big", "hold_mb": 300},
        "small": {"type": "toy_transform", "label": "small"},
    }
    run(recipe_for(model_dir, tmp_path / "o", passes))
    big, small = json.loads((tmp_path / "o" / "lineage.json").read_text())
    # VmHWM is reset at each step: the small step after the big one does not inherit its peak
    assert big["peak_rss_mb"] > small["peak_rss_mb"] + 250, (big, small)


def test_second_identical_run_reuses_every_step(model_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    first = run(recipe_for(model_dir, tmp_path / "o1", chain(marker)))
    assert first.cache_hits == 0 and marker.read_text().split() == ["a", "b", "c"]
    second = run(recipe_for(model_dir, tmp_path / "o2", chain(marker)))
    assert second.cache_hits == 3
    assert marker.read_text().split() == ["a", "b", "c"]  # no pass ran again
    assert first.chosen and second.chosen
    assert first.chosen.artifact.fingerprint == second.chosen.artifact.fingerprint
    lineage = json.loads((tmp_path / "o2" / "lineage.json").read_text())
    assert [r["cache_hit"] for r in lineage] == [True, True, True]
    assert [r["step"] for r in lineage] == ["a", "b", "c"]


def test_changed_input_content_misses_the_cache(model_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    run(recipe_for(model_dir, tmp_path / "o1", chain(marker)))
    toy_weights(model_dir, b"different")
    result = run(recipe_for(model_dir, tmp_path / "o2", chain(marker)))
    assert result.cache_hits == 0


def test_changed_config_reruns_from_that_step(model_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    run(recipe_for(model_dir, tmp_path / "o1", chain(marker)))
    passes = chain(marker)
    passes["b"]["label"] = "B"
    result = run(recipe_for(model_dir, tmp_path / "o2", passes))
    assert [r.cache_hit for r in result.results[0].records] == [True, False, False]


_KILL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import toy_passes
from olive_ext.workflows.run import run_recipe as run
from olive_ext.recipe import load_recipe
run(load_recipe({recipe!r}))
"""


def test_sigkill_mid_run_then_resume_gives_same_result(model_dir: Path, tmp_path: Path) -> None:
    import yaml

    marker, release = tmp_path / "ran.txt", tmp_path / "release"
    cache = tmp_path / "shared-cache"
    raw = {
        "input_model": {"path": str(model_dir)},
        "passes": chain(marker, wait_for=release),
        "output": {"path": str(tmp_path / "killed")},
        "cache_dir": str(cache),
    }
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(yaml.safe_dump(raw))
    script = _KILL_SCRIPT.format(tests=str(Path(__file__).parent), recipe=str(recipe_file))
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 120
    while time.time() < deadline and not (marker.exists() and marker.read_text().split() == ["a", "b"]):
        time.sleep(0.05)
    assert marker.read_text().split() == ["a", "b"], "step b never started"
    os.kill(proc.pid, signal.SIGKILL)  # killed while step b is in the middle of its work
    proc.wait()
    assert len(list((cache / "entries").iterdir())) == 1, "only step a's entry exists; b left no half entry"
    assert not (tmp_path / "killed").exists()

    release.write_text("go")
    resumed = run(parse_recipe(raw))  # the identical recipe
    assert [r.cache_hit for r in resumed.results[0].records] == [True, False, False]
    assert not list((cache / "tmp").iterdir()), "the killed run's temporary folder was swept"
    clean = run(parse_recipe({**raw, "output": {"path": str(tmp_path / "clean")}, "cache_dir": str(tmp_path / "c2")}))
    assert clean.cache_hits == 0
    assert resumed.chosen.artifact.fingerprint == clean.chosen.artifact.fingerprint


def test_output_folder_is_never_overwritten_without_flag(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    marker = tmp_path / "ran.txt"
    with pytest.raises(OutputExistsError):
        run(recipe_for(model_dir, out, chain(marker)))
    assert (out / "precious.txt").read_text() == "keep me"
    assert not marker.exists(), "refused before doing any work"
    recipe = recipe_for(model_dir, out, chain(marker), output={"path": str(out), "overwrite": True})
    with pytest.raises(UserInputError, match="olive-ext did not write"):  # overwrite replaces only our outputs
        run(recipe)
    assert (out / "precious.txt").read_text() == "keep me" and not marker.exists()
    ours = tmp_path / "ours"
    run(recipe_for(model_dir, ours, chain(marker)))
    (ours / "notes.txt").write_text("the user's")  # a file added to an output is not lost: refused, named
    with pytest.raises(UserInputError, match=r"olive-ext did not write there \(notes.txt\)"):
        run(recipe_for(model_dir, ours, chain(marker), output={"path": str(ours), "overwrite": True}))
    (ours / "notes.txt").unlink()
    (ours / "report.md").write_text("edited")  # what olive-ext wrote is replaced
    run(recipe_for(model_dir, ours, chain(marker), output={"path": str(ours), "overwrite": True}))
    assert (ours / "report.md").read_text() != "edited"
    assert {"model", "candidates.json", "lineage.json", "recipe.yaml", "report.md", "model_config.json"} <= {
        p.name for p in ours.iterdir()
    }


def test_resolved_recipe_reruns_to_the_same_model(model_dir: Path, tmp_path: Path) -> None:
    from olive_ext.recipe import load_recipe

    marker = tmp_path / "ran.txt"
    first = run(recipe_for(model_dir, tmp_path / "o1", chain(marker)))
    again = load_recipe(tmp_path / "o1" / "recipe.yaml")
    second = run(again.model_copy(update={"output": again.output.model_copy(update={"path": str(tmp_path / "o2")})}))
    assert second.cache_hits == 3
    assert second.chosen.artifact.fingerprint == first.chosen.artifact.fingerprint


def test_failing_candidate_is_recorded_and_search_goes_on(model_dir: Path, tmp_path: Path) -> None:
    passes = {"t": {"type": "toy_transform", "fail": [True, False]}}
    result = run(recipe_for(model_dir, tmp_path / "o", passes))
    assert [r.ok for r in result.results] == [False, True]
    assert "toy failure" in (result.results[0].error or "")
    assert result.chosen is result.results[1]
    data = json.loads((tmp_path / "o" / "candidates.json").read_text())
    assert [c["error"] is not None for c in data["candidates"]] == [True, False]
    assert data["chosen"] == result.results[1].candidate.id


def test_single_candidate_failure_raises_with_pass_name(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PassError, match=r"pass 'boom'.*toy failure"):
        run(recipe_for(model_dir, tmp_path / "o", {"boom": {"type": "toy_transform", "fail": True}}))
    assert not (tmp_path / "o").exists()


def test_a_library_error_that_wraps_another_says_both() -> None:
    """olive-ai's "OlivePassError: quantize_static failed." was all a failed Olive pass said; onnxruntime's
    "ValueError: supplied range of [-inf, inf] is not finite" under it showed only at --log_level 0."""
    from olive_ext.engine.runner import failure_text

    def olive_pass() -> None:
        try:
            raise ValueError("supplied range of [-inf, inf] is not finite")
        except ValueError as e:
            raise RuntimeError("quantize_static failed.") from e

    with pytest.raises(RuntimeError) as info:
        olive_pass()
    assert failure_text(info.value) == ("RuntimeError: quantize_static failed. (caused by ValueError: supplied range "
                                        "of [-inf, inf] is not finite)")  # fmt: skip
    assert failure_text(ValueError("alone")) == "ValueError: alone"
