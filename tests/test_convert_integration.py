"""Real models (slow, run in CI): SmolLM2-135M fp32/int4 builds with parity, CUDA cross-builds,
MiniLM export + int8 + QDQ on the CPU EP. One session cache, so the GGUF conversion and each build
happen once. Parity numbers are printed (pytest -s) and written to $OLIVE_EXT_PARITY_OUT when set."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from convert_helpers import build, genai_config, graph_ops, text_data

pytestmark = pytest.mark.integration

RESULTS: dict[str, Any] = {}


@pytest.fixture(scope="session")
def shared_cache(integration_cache: Path) -> Path:
    """The integration tests' one cache: SmolLM2's GGUF conversion and its builds are shared with them."""
    return integration_cache


def _record(name: str, numbers: dict[str, Any]) -> None:
    RESULTS[name] = numbers
    print(f"\nparity {name}: {json.dumps(numbers, default=str)}")
    out = os.environ.get("OLIVE_EXT_PARITY_OUT")
    if out:
        Path(out).write_text(json.dumps(RESULTS, indent=1, default=str))


def _parity(**kw: Any) -> dict[str, Any]:
    return {"type": "parity_check", "fail": False, "samples": 8, "greedy_tokens": 16, **kw}


def test_smollm2_fp32_matches_pytorch(smollm2_gguf: Path, shared_cache: Path) -> None:
    art = build(smollm2_gguf, {"build": {"type": "model_builder"}, "parity": _parity()}, cache_dir=shared_cache)
    parity = art.meta["parity"]
    _record("smollm2 fp32", parity)
    assert parity["max_abs_delta"] < 1e-3 and parity["passed"]
    assert parity["top1_agreement"] == 1.0
    assert (Path(art.path) / "chat_template.jinja").exists() or "chat_template" in (
        Path(art.path) / "tokenizer_config.json"
    ).read_text()


@pytest.mark.parametrize(
    ("params", "min_top1"),
    [
        ({"precision": "int8"}, 0.9),
        ({"precision": "int4", "block_size": 32}, 0.3),
        ({"precision": "int4", "block_size": 128, "accuracy_level": 4}, 0.3),
        ({"precision": "int4", "algorithm": "k_quant", "lm_head": "int8", "mixed_layers_int8": True}, 0.3),
    ],
    ids=["int8", "int4-b32", "int4-b128-acc4", "int4-kquant-mixed"],
)
def test_smollm2_quantized_parity_recorded(
    smollm2_gguf: Path, shared_cache: Path, params: dict[str, Any], min_top1: float
) -> None:
    """Numbers are recorded whatever they are; int8 meets the default 0.9 top-1 bar, int4 on this 135M
    model (itself from a Q4_1 GGUF) does not, which is the finding parity_check exists to report."""
    passes = {"build": {"type": "model_builder", **params}, "parity": _parity()}
    art = build(smollm2_gguf, passes, cache_dir=shared_cache)
    parity = art.meta["parity"]
    size_mb = sum(f.stat().st_size for f in Path(art.path).iterdir()) / 1e6
    _record(f"smollm2 {params}", {**parity, "size_mb": round(size_mb, 1)})
    assert parity["measured"] and parity["top1_agreement"] >= min_top1
    assert parity["passed"] == (parity["top1_agreement"] >= 0.9)
    assert size_mb < (300 if params["precision"] == "int8" else 250)  # fp32 is ~540 MB


@pytest.mark.parametrize("precision", ["fp16", "int4"])
def test_smollm2_cuda_cross_build(smollm2_gguf: Path, shared_cache: Path, precision: str) -> None:
    """No GPU here: build for CUDA, check genai_config names it, and say 'not measured here'."""
    art = build(
        smollm2_gguf,
        {"build": {"type": "model_builder", "precision": precision}, "parity": _parity()},
        target={"device": "gpu", "provider": "CUDAExecutionProvider"},
        cache_dir=shared_cache,
    )
    options = genai_config(art.path)["model"]["decoder"]["session_options"]["provider_options"]
    assert any("cuda" in entry for entry in options)
    assert art.meta["provider"] == "CUDAExecutionProvider"
    assert "not measured here" in art.meta["smoke"]["note"]
    assert art.meta["parity"]["measured"] is False and "not measured here" in art.meta["parity"]["note"]
    _record(f"smollm2 cuda {precision}", {"smoke": art.meta["smoke"], "parity": art.meta["parity"]})


def test_minilm_export_int8_and_qdq_on_cpu(minilm: Path, shared_cache: Path, tmp_path: Path) -> None:
    exported = build(minilm, {"export": {"type": "onnx_export"}, "parity": _parity()}, cache_dir=shared_cache)
    assert exported.meta["task"] == "feature-extraction" and exported.meta["parity"]["max_abs_delta"] < 1e-3
    _record("minilm fp32", exported.meta["parity"])
    int8 = build(
        minilm,
        {"export": {"type": "onnx_export"}, "optimize": {"type": "graph_optimize"},
         "quantize": {"type": "int8_dynamic"}, "parity": _parity()},
        cache_dir=shared_cache,
    )  # fmt: skip
    assert int8.meta["smoke"]["ran"] and int8.meta["parity"]["min_cosine"] > 0.98  # mean-pooled embeddings
    _record("minilm int8 dynamic", int8.meta["parity"])
    data = {"cal": text_data(tmp_path / "cal.jsonl", 32)}
    qdq = build(
        minilm,
        {"export": {"type": "onnx_export"}, "quantize": {"type": "qdq_static", "samples": 16}, "parity": _parity()},
        data=data,
        cache_dir=shared_cache,
    )
    assert graph_ops(Path(qdq.path) / "model.onnx")["QuantizeLinear"] > 0 and qdq.meta["smoke"]["ran"]
    assert qdq.meta["parity"]["min_cosine"] > 0.85  # uint8 activations are lossy on MiniLM; recorded
    _record("minilm qdq uint8/int8", qdq.meta["parity"])


def test_minilm_auto_opt_without_data_chooses_only_within_parity(minilm: Path, shared_cache: Path,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    """An embedder takes no eval data, so parity is the only check of its quantized builds: auto-opt chose the int8
    build without per-channel scales (cosine 0.929 with sentence-transformers' embeddings, under the 0.99 limit its
    own parity step recorded) over the per-channel one (0.993), as it was 0.1 MB smaller."""
    import olive_ext

    olive_ext.auto_opt(str(minilm), str(tmp_path / "out"), cache_dir=str(shared_cache), repeats=1, warmup=0)
    candidates = json.loads((tmp_path / "out" / "candidates.json").read_text())["candidates"]
    chosen = [c for c in candidates if c["chosen"]]
    assert len(chosen) == 1 and chosen[0]["artifact"]["meta"]["parity"]["passed"] is True
    for c in candidates:
        parity = (c["artifact"] or {}).get("meta", {}).get("parity", {})
        assert c["error"] or parity.get("passed") is True, (c["label"], parity)  # ok only within parity
    assert any("breaks parity" in (c["error"] or "") for c in candidates)  # the per_channel=false build, today
