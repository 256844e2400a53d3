"""`olive-ext quantize`: flags map to passes; end to end on the tiny models; never overwrites."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from olive_ext.cli import main
from olive_ext.errors import UserInputError
from olive_ext.workflows.quantize import quantize_passes


def _args(**kw: object) -> argparse.Namespace:
    base = {"algorithm": None, "precision": "int4", "block_size": None, "accuracy_level": None,
            "use_qdq_encoding": False, "lm_head": None}  # fmt: skip
    return argparse.Namespace(**{**base, **kw})


def test_flags_map_to_passes() -> None:
    llm = quantize_passes("hf", "text-generation", _args(algorithm="kquant", block_size=128), False)
    assert llm == {"build": {"type": "model_builder", "precision": "int4", "algorithm": "k_quant", "block_size": 128}}
    hqq = quantize_passes("gguf", "text-generation", _args(algorithm="hqq"), False)
    assert [p["type"] for p in hqq.values()] == ["model_builder", "int4_weight"]
    assert hqq["build"]["precision"] == "fp32" and hqq["quantize"]["algorithm"] == "hqq"
    onnx_int8 = quantize_passes("onnx", "feature-extraction", _args(precision="int8"), False)
    assert onnx_int8 == {"quantize": {"type": "int8_dynamic"}}
    static = quantize_passes("hf", "text-classification", _args(precision="int8", use_qdq_encoding=True), True)
    assert [p["type"] for p in static.values()] == ["onnx_export", "qdq_static"]
    qdq4 = quantize_passes("onnx", "feature-extraction", _args(use_qdq_encoding=True), False)
    assert qdq4["quantize"]["quant_format"] == "qdq" and qdq4["quantize"]["algorithm"] == "default"
    weight8 = quantize_passes("genai", "text-generation", _args(precision="int8", algorithm="rtn"), False)
    assert weight8["quantize"]["bits"] == 8
    with pytest.raises(UserInputError, match="calibration data"):
        quantize_passes("onnx", "feature-extraction", _args(precision="int8", use_qdq_encoding=True), False)
    # flags a quantizer does not apply were recorded in model_config.json and dropped: refused, or carried out
    for flags, message in (({"algorithm": "hqq", "lm_head": "int8"}, "every MatMul"),
                           ({"algorithm": "hqq", "accuracy_level": 4}, "sets no accuracy level")):  # fmt: skip
        with pytest.raises(UserInputError, match=message):
            quantize_passes("hf", "text-generation", _args(**flags), False)
    with pytest.raises(UserInputError, match="has none"):
        quantize_passes("onnx", "feature-extraction", _args(precision="int8", accuracy_level=4), False)
    head = quantize_passes("genai", "text-generation", _args(precision="int8", lm_head="float"), False)
    assert head["quantize"] == {"type": "int8_dynamic", "lm_head": "float"}


def test_quantize_llm_end_to_end_and_refuse_overwrite(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "q"
    assert main(["quantize", "-m", str(tiny_llama), "--block_size", "16", "-o", str(out), "--log_level", "3"]) == 0
    info = json.loads((out / "model_config.json").read_text())
    assert info["kind"] == "genai" and info["precision"] == "int4" and info["quant"]["block_size"] == 16
    assert (out / "model" / "genai_config.json").exists()
    again = main(["quantize", "-m", str(tiny_llama), "-o", str(out), "--log_level", "3"])
    assert again == 2  # the output exists: nothing is overwritten without --overwrite
    hqq = tmp_path / "hqq"
    assert main(["quantize", "-m", str(tiny_llama), "--algorithm", "hqq", "--block_size", "32", "-o", str(hqq),
                 "--log_level", "3"]) == 0  # fmt: skip
    info2 = json.loads((hqq / "model_config.json").read_text())
    assert info2["kind"] == "genai" and info2["quant"]["algorithm"] == "hqq"
    # quantizing a quantized model again changed nothing and was recorded as the new precision: refused now
    assert main(["quantize", "-m", str(out), "--algorithm", "hqq", "-o", str(tmp_path / "again"),
                 "--log_level", "3"]) == 2  # fmt: skip
    assert not (tmp_path / "again").exists()


def test_int8_with_a_float_lm_head_keeps_the_head_in_float(tiny_llama: Path, tmp_path: Path) -> None:
    """--precision int8 --lm_head float on an ONNX model quantized the head too (the flag was dropped)."""
    from convert_helpers import build

    built = build(tiny_llama, {"build": {"type": "model_builder", "precision": "fp32"},
                               "quantize": {"type": "int8_dynamic", "lm_head": "float"}})  # fmt: skip
    import onnx

    graph = onnx.load(str(Path(built.path) / "model.onnx"), load_external_data=False).graph
    head = [n for n in graph.node if "lm_head" in n.name]
    assert head and all(n.op_type == "MatMul" for n in head), [(n.name, n.op_type) for n in head]
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in graph.node)


def test_qdq_encoding_of_an_llm_writes_dequantize_linear(tiny_llama: Path, tmp_path: Path) -> None:
    """The genai builder ignored use_qdq and wrote MatMulNBits, recorded as QDQ; int8 QDQ quantized nothing."""
    from convert_helpers import graph_ops

    out = tmp_path / "qdq"
    assert main(["quantize", "-m", str(tiny_llama), "--use_qdq_encoding", "-o", str(out), "--log_level", "3"]) == 0
    ops = graph_ops(next((out / "model").glob("*.onnx")))
    assert ops["DequantizeLinear"] > 0 and ops["MatMulNBits"] == 0
    with pytest.raises(UserInputError, match="4-bit weights only"):
        quantize_passes("hf", "text-generation", _args(precision="int8", use_qdq_encoding=True), False)


def test_quantize_help_explains_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["quantize", "--help"])
    text = capsys.readouterr().out
    for flag in ("-m", "--algorithm", "--precision", "--block_size", "--use_qdq_encoding", "-o", "--parity"):
        assert flag in text
    assert "kquant" in text and "hqq" in text


def test_data_flags_a_quantization_does_not_read_are_said_and_dropped(
    tiny_llama: Path, eval_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An Olive user's quantize command often carries data flags; RTN/k-quant builds read none: a warning says so
    and the data is not part of the recipe (nor of its checks or cache keys). Static QDQ still takes it."""
    import logging

    from olive_ext.workflows.quantize import QuantizeOptions, quantize_recipe

    flags = {"data_files": str(eval_file), "text_template": "Q: {q}\nA: {a}"}
    with caplog.at_level(logging.WARNING, logger="olive_ext"):
        recipe = quantize_recipe(QuantizeOptions(model_name_or_path=str(tiny_llama), output_path="o", **flags))
    assert recipe.data == {} and "the data flags are not used: model_builder (int4)" in caplog.text
    # --parity checks on the data's prompts: kept
    opts = QuantizeOptions(model_name_or_path=str(tiny_llama), output_path="o", parity=True, **flags)
    assert list(quantize_recipe(opts).data) == ["calibration"]


def test_an_unknown_provider_and_an_empty_output_are_named(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--provider tpu` was "does not run on device 'cpu'" (a device never given); `-o ""` was the current folder."""
    assert main(["quantize", "-m", str(tiny_llama), "--provider", "tpu", "-o", str(tmp_path / "x")]) == 2
    assert "--provider 'tpu' is not an execution provider" in capsys.readouterr().err
    assert main(["quantize", "-m", str(tiny_llama), "-o", ""]) == 2
    assert 'empty text (-o "")' in capsys.readouterr().err


def test_a_k_quant_block_too_large_for_the_model_fails_before_the_build(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The builder found it after loading and converting the model (32 s for SmolLM2): "cannot reshape array"."""
    from olive_ext.passes.model_builder import _k_quant_problem

    code = main(["quantize", "-m", str(tiny_llama), "--algorithm", "kquant", "--block_size", "64",
                 "-o", str(tmp_path / "kq")])  # fmt: skip
    err = capsys.readouterr().err.replace("\n", " ")
    assert code != 0 and "multiple of twice block_size 64: hidden_size 64" in err and "block_size 32" in err, err
    assert "reshape" not in err
    assert _k_quant_problem(tiny_llama, 32) is None  # 64 and 128 are multiples of 64


def test_the_onnx_file_of_a_genai_folder_is_that_folder(tiny_llama: Path, tmp_path: Path) -> None:
    """`-m fp32/model/model.onnx` was read as a plain ONNX model: the int4 build then failed its smoke check
    ("past_key dimension 3 should match the packed KV head dimension") with a hint to try other options."""
    from convert_helpers import build

    fp32 = build(tiny_llama, {"build": {"type": "model_builder", "precision": "fp32"}}, cache_dir=tmp_path / "c")
    out = tmp_path / "q"
    assert main(["quantize", "-m", str(Path(fp32.path) / "model.onnx"), "-o", str(out), "--log_level", "3"]) == 0
    assert json.loads((out / "model_config.json").read_text())["kind"] == "genai"


def test_parity_on_an_onnx_input_is_refused_before_work(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It failed after the quantization: "its meta names no source_model ...; put parity_check after a build"."""
    from convert_helpers import build

    fp32 = build(tiny_llama, {"build": {"type": "model_builder", "precision": "fp32"}}, cache_dir=tmp_path / "c")
    assert main(["quantize", "-m", fp32.path, "--parity", "-o", str(tmp_path / "p")]) == 2
    assert "--parity compares a build with the PyTorch model" in capsys.readouterr().err
