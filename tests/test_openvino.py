"""OpenVINO (the ``openvino`` extra): HF -> OpenVINO IR, NNCF weight compression, parity, evaluation.

Real openvino and nncf on tiny models built in code (tests/tiny_models.py); the MiniLM and SmolLM2 runs are
integration tests. Nothing here stubs OpenVINO: conversions run, the IR is compiled on the CPU plugin, and
parity compares it with the PyTorch source.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from convert_helpers import text_data

from olive_ext.recipe import parse_recipe
from olive_ext.workflows.run import run_recipe

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None or importlib.util.find_spec("nncf") is None,
    reason="needs the openvino extra (openvino, nncf)",
)


def _recipe(model: Path, tmp_path: Path, pipelines: list[dict[str, Any]], evaluate: dict[str, Any],
            data: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    return {
        "input_model": {"path": str(model)},
        "data": data,
        "pipelines": pipelines,
        "targets": [{"device": "cpu"}],
        "evaluate": {"warmup": 0, "repeats": 1, **evaluate},
        "cache_dir": str(tmp_path / "cache"),
    }


def test_encoder_converts_to_openvino_passes_parity_and_is_evaluated_beside_onnx(
    tiny_bert: Path, tmp_path: Path
) -> None:
    data = text_data(tmp_path / "data.jsonl")
    data = {"name": "json", "data_files": data["data_files"], "text_template": "{text}{label}"}
    parity = {"type": "parity_check", "data": "eval"}
    recipe = _recipe(tiny_bert, tmp_path, [
        {"convert": {"type": "openvino_convert"}, "parity": parity},
        {"convert": {"type": "openvino_convert"}, "compress": {"type": "openvino_compress", "precision": "int8"},
         "parity": parity},
        {"export": {"type": "onnx_export"}, "parity": parity},
    ], {"data": "eval", "metrics": ["size", "latency", "accuracy"]}, {"eval": data})  # fmt: skip
    result = run_recipe(parse_recipe(recipe), write_output=False)
    assert [r.error for r in result.results if not r.ok] == [] and len(result.results) == 3
    fp32, int8, onnx = (r.artifact for r in result.results)
    assert fp32 is not None and int8 is not None and onnx is not None
    assert fp32.kind == "openvino" and int8.kind == "openvino" and onnx.kind == "onnx"
    assert (Path(fp32.path) / "openvino_model.xml").exists() and (Path(fp32.path) / "openvino_model.bin").exists()
    assert fp32.meta["parity"]["passed"] and fp32.meta["parity"]["max_abs_delta"] < 1e-3
    assert int8.meta["precision"] == "int8" and int8.meta["parity"]["passed"]
    # int8 weights are smaller than the fp32 IR's
    weights = [(Path(a.path) / "openvino_model.bin").stat().st_size for a in (int8, fp32)]
    assert weights[0] < weights[1]
    ov_metrics, onnx_metrics = result.results[0].metrics, result.results[2].metrics
    assert ov_metrics["latency"] > 0 and ov_metrics["size"] > 0
    # the same fp32 weights: OpenVINO and onnxruntime predict the same labels
    assert ov_metrics["accuracy"] == onnx_metrics["accuracy"]
    # the cache keys the step: a second run builds nothing
    again = run_recipe(parse_recipe(recipe), write_output=False)
    assert all(r.ok for r in again.results)
    assert [r.artifact.fingerprint for r in again.results if r.artifact] == [
        r.artifact.fingerprint for r in result.results if r.artifact]  # fmt: skip


def test_causal_lm_converts_to_openvino_and_is_measured_like_the_genai_build(
    tiny_llama: Path, eval_file: Path, tmp_path: Path
) -> None:
    data = {"eval": {"name": "json", "data_files": str(eval_file), "text_template": "Q: {q}\nA: {a}"}}
    parity = {"type": "parity_check", "data": "eval", "samples": 3, "greedy_tokens": 4}
    recipe = _recipe(tiny_llama, tmp_path, [
        {"convert": {"type": "openvino_convert"}, "parity": parity},
        {"convert": {"type": "openvino_convert"}, "compress": {"type": "openvino_compress", "precision": "int4",
                                                               "group_size": 32}},
        {"build": {"type": "model_builder", "precision": "fp32"}, "parity": parity},
    ], {"data": "eval", "metrics": ["exact_match", "throughput", "size"], "new_tokens": 4,
        "prompt_tokens": 8}, data)  # fmt: skip
    result = run_recipe(parse_recipe(recipe), write_output=False)
    assert [r.error for r in result.results if not r.ok] == [] and len(result.results) == 3
    ov, ov4, genai = result.results
    assert ov.artifact is not None and ov.artifact.meta["causal"] and ov.artifact.meta["parity"]["passed"]
    # the chat template (transformers 5 saves it apart) comes along: chat-form eval rows failed without it
    assert (Path(ov.artifact.path) / "chat_template.jinja").is_file()
    assert ov.artifact.meta["parity"]["greedy_prefix_match"] == 1.0
    assert ov4.artifact is not None and ov4.artifact.meta["precision"] == "int4"
    for r in result.results:
        assert r.metrics["throughput"] > 0 and "exact_match" in r.metrics
    # the fp32 IR and the fp32 genai build run the same weights: the same greedy answers
    assert ov.metrics["exact_match"] == genai.metrics["exact_match"]
    assert ov4.metrics["size"] < ov.metrics["size"]


def test_openvino_ir_keeps_fp32_precision_on_the_cpu(tiny_bert: Path, tmp_path: Path) -> None:
    """The CPU plugin defaults to bf16 on AVX512-BF16/AMX CPUs; OVModel asks for f32."""
    from olive_ext.onnx.openvino_ir import OVModel

    recipe = _recipe(tiny_bert, tmp_path, [{"convert": {"type": "openvino_convert"}}], {"metrics": ["size"]}, {})
    result = run_recipe(parse_recipe(recipe), write_output=False)
    artifact = result.results[0].artifact
    assert artifact is not None
    model = OVModel(artifact.path, threads=1)
    assert str(model.compiled.get_property("INFERENCE_PRECISION_HINT")) in {"f32", "<Type: 'float32'>"}
    meta = json.loads((Path(artifact.path) / "openvino.json").read_text())
    assert meta["inputs"][0] == "input_ids" and not meta["causal"]


def test_an_olive_config_with_openvino_passes_is_translated_and_run(tiny_bert: Path, tmp_path: Path) -> None:
    """OnnxConversion (our onnx_export) -> Olive's own OpenVINOConversion -> OpenVINOWeightCompression, on CPU."""
    pytest.importorskip("olive", reason="needs the olive extra")
    from olive_ext.recipe.olive_compat import translate

    config = {
        "input_model": {"type": "HfModel", "model_path": str(tiny_bert)},
        "systems": {"local": {"type": "LocalSystem", "accelerators": [{"device": "cpu"}]}},
        "passes": {
            "conversion": {"type": "OnnxConversion"},
            "ov": {"type": "OpenVINOConversion", "compress_to_fp16": False},
            "compress": {"type": "OpenVINOWeightCompression", "compress_config": {"mode": "INT8_ASYM"}},
        },
        "output_dir": str(tmp_path / "out"),
    }
    recipe, problems = translate(config)
    assert not [p for p in problems if p.severity == "error"], problems
    assert [s["olive_type"] for s in recipe["passes"].values() if s["type"] == "olive"] == [
        "OpenVINOConversion", "OpenVINOWeightCompression"]  # fmt: skip
    recipe = {**recipe, "cache_dir": str(tmp_path / "cache"), "evaluate": {"metrics": ["size"]}}
    result = run_recipe(parse_recipe(recipe), write_output=False)
    assert [r.error for r in result.results if not r.ok] == []
    artifact = result.results[0].artifact
    assert artifact is not None and artifact.kind == "openvino" and artifact.meta["precision"] == "int8"
    assert artifact.meta["olive"]["type"] == "OpenVINOWeightCompression"
    # the IR runs on our backend and matches the PyTorch source closely (int8 weights)
    from olive_ext.onnx.openvino_ir import OVModel
    from olive_ext.onnx.parity import TorchReference, compare_encoder_outputs

    model = OVModel(artifact.path, threads=1)
    reference = TorchReference(str(tiny_bert), None, causal=False, task=str(artifact.meta["task"]))
    numbers = compare_encoder_outputs(reference, model.forward, model.inputs, artifact.path,
                                      ["the cat sat on the mat", "a quick brown fox"], classifier=True)  # fmt: skip
    assert numbers["min_cosine"] > 0.99, numbers


def test_a_config_listing_both_runtimes_passes_names_the_pass_and_what_to_keep(tiny_bert: Path, tmp_path: Path) -> None:
    """Olive's stable diffusion configs list OpenVINO and onnxruntime passes together (their scripts delete one
    runtime's before running Olive): the onnxruntime pass after OpenVINOConversion is refused under the type the
    user wrote, saying what to keep."""
    pytest.importorskip("olive", reason="needs the olive extra")
    from olive_ext.recipe import check_recipe

    config = {
        "input_model": {"type": "HfModel", "model_path": str(tiny_bert)},
        "passes": {"convert": {"type": "OnnxConversion"}, "ov_convert": {"type": "OpenVINOConversion"},
                   "optimize": {"type": "OrtTransformersOptimization", "keep_io_types": True}},
        "output_dir": str(tmp_path / "out"),
    }  # fmt: skip
    _, problems = check_recipe(config, base_dir=tmp_path)
    errors = [p for p in problems if p.severity == "error"]
    assert [p.path for p in errors] == ["passes.optimize"], [p.render() for p in problems]
    assert "'OrtTransformersOptimization'" in errors[0].message and "an openvino model" in errors[0].message
    assert "one runtime's passes" in (errors[0].hint or "")


def test_olive_openvino_weight_compression_of_an_onnx_model_gives_onnx(tiny_bert: Path, tmp_path: Path) -> None:
    """OnnxConversion -> OpenVINOWeightCompression (NNCF on the ONNX graph: ONNX in, ONNX out) -> a native ONNX pass."""
    pytest.importorskip("olive", reason="needs the olive extra")
    from olive_ext.recipe.olive_compat import translate

    config = {
        "input_model": {"type": "HfModel", "model_path": str(tiny_bert)},
        "systems": {"local": {"type": "LocalSystem", "accelerators": [{"device": "cpu"}]}},
        "passes": {
            "conversion": {"type": "OnnxConversion"},
            "compress": {"type": "OpenVINOWeightCompression", "compress_config": {"mode": "INT8_ASYM"}},
            "peephole": {"type": "OnnxPeepholeOptimizer"},
        },
    }
    recipe, problems = translate(config)  # the kind chain: onnx -> onnx -> onnx, no follow-on error
    assert not [p for p in problems if p.severity == "error"], problems
    recipe["passes"]["parity"] = {"type": "parity_check"}
    recipe = {**recipe, "cache_dir": str(tmp_path / "cache"), "evaluate": {"metrics": ["size"]}}
    result = run_recipe(parse_recipe(recipe), write_output=False)
    assert [r.error for r in result.results if not r.ok] == []
    artifact = result.results[0].artifact
    assert artifact is not None and artifact.kind == "onnx"
    import onnx

    ops = {n.op_type for n in onnx.load(str(Path(artifact.path) / "model.onnx")).graph.node}
    assert "DequantizeLinear" in ops or "MatMulNBits" in ops, ops  # NNCF's int8 weights are in the graph
    assert artifact.meta["parity"]["measured"] and artifact.meta["parity"]["passed"], artifact.meta["parity"]


def test_olive_openvino_passes_on_npu_are_refused_naming_the_device(tiny_bert: Path) -> None:
    pytest.importorskip("olive", reason="needs the olive extra")
    from olive_ext.errors import RecipeError

    recipe = {
        "input_model": {"path": str(tiny_bert)},
        "passes": {"export": {"type": "onnx_export"},
                   "ov": {"type": "olive", "olive_type": "OpenVINOConversion", "device": "npu"}},
    }  # fmt: skip
    with pytest.raises(RecipeError) as e:
        parse_recipe(recipe)
    assert "passes.ov.device" in str(e.value) and "NPU" in str(e.value)
    wrapped = {"type": "olive", "olive_type": "OpenVINOEncapsulation"}
    encapsulated = {**recipe, "passes": {**recipe["passes"], "ov": wrapped}}
    with pytest.raises(RecipeError) as e:
        parse_recipe(encapsulated)
    assert "onnxruntime-openvino" in str(e.value)


@pytest.mark.integration
def test_smollm2_openvino_build_is_evaluated_on_the_tone_task(smollm2_gguf: Path, integration_cache: Path) -> None:
    """SmolLM2 (GGUF -> fp32 HF) to OpenVINO int8, parity against PyTorch, exact match on 4 tone rows."""
    from conftest import TASK_DATA

    data = {"tone": {"name": "json", "data_files": str(TASK_DATA / "tone.jsonl"), "split": "train[480:484]",
                     "text_template": "Phrase: {phrase}\nTone: {tone}"}}  # fmt: skip
    recipe = {
        "input_model": {"path": str(smollm2_gguf)},
        "data": data,
        "passes": {"hf": {"type": "gguf_to_hf"}, "convert": {"type": "openvino_convert"},
                   "compress": {"type": "openvino_compress", "precision": "int8"},
                   "parity": {"type": "parity_check", "samples": 2, "greedy_tokens": 4}},
        "targets": [{"device": "cpu"}],
        "evaluate": {"data": "tone", "metrics": ["exact_match", "throughput"], "new_tokens": 4, "prompt_tokens": 16,
                     "warmup": 0, "repeats": 1},
        "cache_dir": str(integration_cache),
    }  # fmt: skip
    result = run_recipe(parse_recipe(recipe), write_output=False)
    assert [r.error for r in result.results if not r.ok] == []
    r = result.results[0]
    assert r.artifact is not None and r.artifact.kind == "openvino" and r.artifact.meta["precision"] == "int8"
    assert r.artifact.meta["parity"]["passed"] and r.artifact.meta["parity"]["top1_agreement"] >= 0.9
    assert r.metrics["exact_match.n"] == 4, r.metrics
    # rows settled by teacher forcing are rows answered right (the rest were decoded)
    assert r.metrics["exact_match.teacher_forced"] <= round(r.metrics["exact_match"] * 4 / 100), r.metrics
    # the same rows scored on the PyTorch source: int8 weights may change at most one answer of four
    assert result.reference is not None, "the PyTorch reference was not measured"
    assert abs(r.metrics["exact_match"] - result.reference["metrics"]["exact_match"]) <= 25.0, result.reference
    assert r.metrics["throughput"] > 0
