"""Every shipped recipe validates; the CPU ones run end to end (integration)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from olive_ext.cli import main
from olive_ext.recipe import load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
ALL = sorted(RECIPES.glob("*.yaml")) + sorted((RECIPES / "olive").glob("*.yaml"))


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_recipe_validates(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(path)]) == 0, capsys.readouterr().out


def test_every_recipe_is_described_in_the_readme() -> None:
    readme = (RECIPES / "README.md").read_text()
    for path in [*ALL, *RECIPES.glob("*.sh")]:
        assert path.name in readme, f"{path.name} is not described in recipes/README.md"


def _run(name: str, out: Path, cache: Path) -> dict:
    recipe = load_recipe(RECIPES / name)
    recipe = recipe.model_copy(
        update={"output": recipe.output.model_copy(update={"path": str(out)}), "cache_dir": str(cache)}
    )
    from olive_ext.workflows.run import run_recipe as run

    run(recipe)
    return json.loads((out / "candidates.json").read_text())


@pytest.mark.integration
def test_lora_int4_cpu_recipe(integration_cache: Path, tmp_path: Path) -> None:
    data = _run("smollm2-lora-int4-cpu.yaml", tmp_path / "out", integration_cache)
    assert len(data["candidates"]) == 4 and data["chosen"]
    assert all(c["error"] is None for c in data["candidates"]), [c["error"] for c in data["candidates"]]
    assert data["reference"]["label"].endswith("adapter applied)")
    assert data["reference"]["metrics"]["exact_match"] >= 50


@pytest.mark.integration
def test_qlora_cpu_recipe(integration_cache: Path, tmp_path: Path) -> None:
    pytest.importorskip("bitsandbytes")
    data = _run("smollm2-qlora-cpu.yaml", tmp_path / "out", integration_cache)
    (candidate,) = data["candidates"]
    assert candidate["error"] is None and candidate["metrics"]["exact_match"] >= 0


@pytest.mark.integration
def test_npu_recipe_builds_qdq_for_qnn(integration_cache: Path, tmp_path: Path) -> None:
    data = _run("minilm-npu-qnn.yaml", tmp_path / "out", integration_cache)
    assert len(data["candidates"]) == 2 and all(c["error"] is None for c in data["candidates"])


@pytest.mark.integration
def test_gpu_recipe_cross_builds(integration_cache: Path, tmp_path: Path) -> None:
    data = _run("smollm2-gpu.yaml", tmp_path / "out", integration_cache)
    assert len(data["candidates"]) == 4
    for c in data["candidates"]:
        assert c["error"] is None, c["error"]
        if "CUDAExecutionProvider" not in __import__("onnxruntime").get_available_providers():
            assert any("not measured here" in n for n in c["notes"])
