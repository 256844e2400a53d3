"""Target profiles: providers, availability, the candidate chains auto-opt uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from olive_ext.engine.steps import Step
from olive_ext.errors import UserInputError
from olive_ext.targets.profiles import get_profile


def _configs(chain: list) -> list[dict]:
    steps = [Step(s.name, s.type, s.params) for s in chain]
    return [{"type": s.type, **s.config(get_profile("cpu").target()).canonical()}
            for s in steps]  # fmt: skip


def test_cpu_llm_candidates_cover_the_search_dimensions() -> None:
    chains = get_profile("cpu").candidate_chains("text-generation")
    assert 6 <= len(chains) <= 8
    builds = [_configs(c)[0] for c in chains]  # every step validates against its pass config
    precisions = {b["precision"] for b in builds}
    assert precisions == {"fp32", "int8", "int4"}
    int4 = [b for b in builds if b["precision"] == "int4"]
    assert {b["block_size"] for b in int4} == {32, 128}
    assert {b["accuracy_level"] for b in int4} == {1, 4}
    assert {b["lm_head"] for b in int4} >= {"same", "int8", "float"}
    assert {b["algorithm"] for b in int4} >= {"default", "k_quant"}
    assert len({str(_configs(c)) for c in chains}) == len(chains), "no two candidates are the same build"


def test_precision_filter_and_parity_steps() -> None:
    cpu = get_profile("cpu")
    int4 = cpu.candidate_chains("text-generation", precision="int4")
    assert int4
    assert all(c[0].params.get("precision") == "int4" for c in int4)
    assert [c[0].params["precision"] for c in cpu.candidate_chains(precision="fp32")] == ["fp32"]
    with pytest.raises(UserInputError, match="fp16"):
        cpu.candidate_chains(precision="fp16")


def test_gpu_profile_cross_builds_cuda_here() -> None:
    gpu = get_profile("gpu")
    assert gpu.provider() == "CUDAExecutionProvider" and not gpu.is_available()
    assert gpu.target().name == "gpu-cuda"
    precisions = [c[0].params["precision"] for c in gpu.candidate_chains("text-generation")]
    assert precisions[0] == "fp16" and "int4" in precisions
    assert gpu.provider("dml") == "DmlExecutionProvider"
    with pytest.raises(UserInputError, match="gpu providers"):
        gpu.provider("qnn")


def test_npu_profile_builds_encoders_only() -> None:
    npu = get_profile("npu")
    with pytest.raises(UserInputError, match="NPUs"):
        npu.candidate_chains("text-generation")
    chains = npu.candidate_chains("text-classification", calibration_data="cal")
    assert all(c[-1].type == "qdq_static" and c[-1].params["data"] == "cal" for c in chains)
    assert {c[-1].params.get("activation_type", "uint8") for c in chains} == {"uint8", "uint16"}
    ov = npu.candidate_chains("text-classification", provider="OpenVINOExecutionProvider")
    assert ov[0][-1].params["preset"] == "openvino"
    assert get_profile("cpu").is_available()


def test_cpu_encoder_chains_need_data_for_static_quantization() -> None:
    cpu = get_profile("cpu")
    assert not any(s.type == "qdq_static" for c in cpu.candidate_chains("text-classification") for s in c)
    with_data = cpu.candidate_chains("text-classification", calibration_data="cal")
    assert any(s.type == "qdq_static" for c in with_data for s in c)


def test_feasibility_reports_dynamic_inputs_and_fallback_ops(tiny_bert: Path) -> None:
    from convert_helpers import build

    from olive_ext.targets.npu import check_feasibility

    art = build(tiny_bert, {"export": {"type": "onnx_export"}})
    report = check_feasibility(Path(art.path) / "model.onnx", "QNNExecutionProvider")
    assert set(report.dynamic_inputs) >= {"input_ids"} and not report.feasible
    assert "dynamic inputs" in report.summary()


def test_olive_run_config_passes_translate_to_ours() -> None:
    from olive_ext.recipe import check_recipe

    raw = {
        "input_model": {"type": "HfModel", "model_path": "org/model"},
        "systems": {"local": {"type": "LocalSystem", "accelerators": [{"device": "cpu"}]}},
        "passes": {
            "mb": {"type": "ModelBuilder", "precision": "int4", "int4_block_size": 128, "int4_is_symmetric": False},
            "hqq": {"type": "OnnxHqqQuantization", "block_size": 64},
            "dyn": {"type": "OnnxDynamicQuantization", "weight_type": "QUInt8", "op_types_to_quantize": ["MatMul"]},
        },
    }
    recipe, problems = check_recipe(raw)
    assert recipe is not None, [p.render() for p in problems]
    passes = {name: (spec.type, spec.params()) for name, spec in recipe.passes.items()}
    assert passes["mb"] == ("model_builder", {"precision": "int4", "block_size": 128, "symmetric": False})
    assert passes["hqq"] == ("int4_weight", {"algorithm": "hqq", "block_size": 64})
    assert passes["dyn"] == ("int8_dynamic", {"per_channel": False, "weight_type": "uint8", "op_types": ["MatMul"]})
