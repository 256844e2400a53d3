"""Every shipped recipe validates; the CPU ones run end to end (integration)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from olive_ext.cli import main
from olive_ext.recipe import load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
ALL = sorted(RECIPES.glob("*.yaml")) + sorted((RECIPES / "olive").glob("*.yaml"))


# shipped verbatim from the guide, with its placeholder data file and a hub model this offline machine lacks:
# validate names both, as `run` would
PLACEHOLDER = {
    "guide-olive-config.yaml": [
        "model 'microsoft/DialoGPT-medium' is not on this machine",
        "data file path/to/your/dataset.json does not exist",
    ]
}


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_recipe_validates(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(path)])
    out = capsys.readouterr().out
    if path.name not in PLACEHOLDER:
        assert code == 0, out
        return
    errors = [line for line in out.splitlines() if line.startswith("error")]
    assert code == 2 and len(errors) == len(PLACEHOLDER[path.name]), out
    assert all(want in error for want, error in zip(PLACEHOLDER[path.name], errors, strict=True)), out


def test_every_recipe_is_described_in_the_readme() -> None:
    readme = (RECIPES / "README.md").read_text()
    for path in [*ALL, *RECIPES.glob("*.sh")]:
        assert path.name in readme, f"{path.name} is not described in recipes/README.md"


def _run(name: str, out: Path, cache: Path, max_samples: int | None = None, **pass_params: dict) -> dict:
    """Run a shipped recipe into ``out`` on the shared cache; ``pass_params`` adds parameters to named passes,
    ``max_samples`` scores fewer eval rows."""
    recipe = load_recipe(RECIPES / name)
    passes = dict(recipe.passes)
    for name, extra in pass_params.items():  # a name the recipe lacks fails here (KeyError), not silently
        passes[name] = type(passes[name])(type=passes[name].type, **{**passes[name].params(), **extra})
    update: dict = {
        "output": recipe.output.model_copy(update={"path": str(out)}),
        "cache_dir": str(cache),
        "passes": passes,
    }
    if max_samples is not None and recipe.evaluate is not None:
        update["evaluate"] = recipe.evaluate.model_copy(update={"max_samples": max_samples})
    recipe = recipe.model_copy(update=update)
    from olive_ext.workflows.run import run_recipe as run

    run(recipe)
    return json.loads((out / "candidates.json").read_text())


@pytest.mark.integration
def test_lora_int4_cpu_recipe(integration_cache: Path, tmp_path: Path) -> None:
    # in fp32 (the recipe leaves the dtype to `auto`: bf16 on a CPU with native bf16) its LoRA step is the same step
    # as the tone_finetuned fixture's `finetune` (same parameters, data and model): whichever comes first trains,
    # the other reuses it from the shared cache (one fine-tune per test run, not two)
    # the first 30 eval rows (the recipe runs end to end; scoring all 90 rows of 4 candidates took 80 s of 190)
    data = _run(
        "smollm2-lora-int4-cpu.yaml",
        tmp_path / "out",
        integration_cache,
        max_samples=30,
        lora={"torch_dtype": "float32"},
    )
    assert len(data["candidates"]) == 4 and data["chosen"]
    assert all(c["error"] is None for c in data["candidates"]), [c["error"] for c in data["candidates"]]
    assert data["reference"]["label"].endswith("adapter applied)")
    assert data["reference"]["metrics"]["exact_match"] >= 50


@pytest.mark.integration
def test_qlora_cpu_recipe(integration_cache: Path, tmp_path: Path) -> None:
    pytest.importorskip("bitsandbytes")
    # the recipe runs end to end (4-bit base, adapter, int8 build, evaluation); what the adapter learns is
    # tests/test_finetune_integration.py's concern: 5 steps, no generation in the fine-tune's own eval, 10 rows
    data = _run(
        "smollm2-qlora-cpu.yaml",
        tmp_path / "out",
        integration_cache,
        max_samples=10,
        qlora={"max_steps": 5, "eval_generate": False},
    )
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
