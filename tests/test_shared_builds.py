"""Candidates of one run share the adapter merge and the builder's model load; the models are the same bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from tiny_models import make_random_adapter

from olive_ext.engine.run import execute
from olive_ext.onnx import genai_builder
from olive_ext.passes import merge_adapter
from olive_ext.recipe import parse_recipe

BUILDS = [{"precision": "fp32"}, {"precision": "int4", "block_size": 32}, {"precision": "int8", "block_size": 32}]


def model_digest(folder: str) -> str:
    """sha256 over every file of a built genai folder (names and bytes)."""
    h = hashlib.sha256()
    for f in sorted(Path(folder).iterdir()):
        if f.is_file():
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def run_builds(model: Path, adapter: Path, builds: list[dict[str, Any]], cache: Path) -> list[str]:
    """One run with a pipeline per build (no evaluation); the built folders' digests, in order."""
    recipe = parse_recipe({
        "input_model": {"path": str(model), "adapter_path": str(adapter)},
        "pipelines": [{"build": {"type": "model_builder", **b}} for b in builds],
        "targets": [{"device": "cpu"}],
        "cache_dir": str(cache),
    })  # fmt: skip
    result = execute(recipe)
    assert all(r.ok for r in result.results), [r.error for r in result.results]
    return [model_digest(r.artifact.path) for r in result.results if r.artifact is not None]


def test_one_merge_and_one_load_serve_every_builder_candidate(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = make_random_adapter(tiny_llama, tmp_path / "adapter")
    merges: list[str] = []
    real_merge = merge_adapter.merge_adapter_into

    def counting_merge(*args: Any, **kwargs: Any) -> Path:
        merges.append(str(args[0]))
        return real_merge(*args, **kwargs)

    monkeypatch.setattr(merge_adapter, "merge_adapter_into", counting_merge)
    shared = run_builds(tiny_llama, adapter, BUILDS, tmp_path / "together")
    assert len(merges) == 1  # three candidates, one merge
    assert not genai_builder._models  # the run let go of the loaded model when it ended
    assert not list((tmp_path / "together" / "tmp").glob("shared.*"))  # and of the merged folder

    # each candidate alone, in a run of its own (its own merge and load): the same bytes
    alone = [run_builds(tiny_llama, adapter, [b], tmp_path / f"alone{i}")[0] for i, b in enumerate(BUILDS)]
    assert shared == alone
    assert len(merges) == 1 + len(BUILDS)


def test_a_model_changed_in_place_is_not_reused(tiny_llama: Path) -> None:
    import torch
    from onnxruntime_genai.models import builder  # noqa: F401  (puts the builder's `builders` package in place)

    genai_builder.release_loads()
    with genai_builder.reused_loads():
        base = genai_builder.sys.modules["builders.base"]
        model = base.AutoModelForCausalLM.from_pretrained(str(tiny_llama))
        assert base.AutoModelForCausalLM.from_pretrained(str(tiny_llama)) is model  # reused while unchanged
    with genai_builder.reused_loads():
        model = base.AutoModelForCausalLM.from_pretrained(str(tiny_llama))
        with torch.no_grad():
            next(model.parameters()).mul_(2)
    assert not genai_builder._models  # a builder that writes into the weights gets a fresh load next time
    with genai_builder.reused_loads():
        assert base.AutoModelForCausalLM.from_pretrained(str(tiny_llama)) is not model
    genai_builder.release_loads()


def test_a_long_lived_worker_removes_its_shared_folders_once_idle(tmp_path: Path) -> None:
    """A Ray worker outlives its run and atexit does not run in it: its F32 GGUF stayed in the cache's tmp/.
    The folders go after an idle spell, not while a next task uses them."""
    import time

    from olive_ext.passes.shared import forget_shared, forget_when_idle, shared_folder

    forget_shared()
    made = shared_folder(tmp_path, "fp", "gguf", lambda d: (d / "model.gguf").write_bytes(b"x"))
    forget_when_idle(0.3)  # a task ended
    forget_when_idle(None)  # the next began before the idle spell ended: its folders stay
    time.sleep(0.6)
    assert made.exists() and shared_folder(tmp_path, "fp", "gguf", lambda d: None) == made
    forget_when_idle(0.3)
    time.sleep(0.6)
    assert not made.exists(), "an idle worker kept its shared folder"
