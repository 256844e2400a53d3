"""`olive-ext quantize` on hand-made ONNX inputs: the folder's graph, models it cannot quantize, flags it cannot use."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest
import torch
from tiny_models import make_random_adapter

from olive_ext.cli import main


class _SquareMatMuls(torch.nn.Module):
    """Two MatMuls on one constant 64x64 weight: what MatMulNBits quantizes."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(64, 64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.w) @ self.w


def export_tiny(module: torch.nn.Module, path: Path, example: torch.Tensor) -> Path:
    """Export ``module`` (one input x, one output y) to ``path`` with the TorchScript exporter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(module.eval(), (example,), str(path), input_names=["x"], output_names=["y"], dynamo=False)
    return path


def matmul_model(path: Path) -> Path:
    """A tiny ONNX graph of MatMuls with constant weights at ``path``."""
    return export_tiny(_SquareMatMuls(), path, torch.randn(2, 3, 64))


def _ops(path: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_a_folder_with_one_graph_not_named_model_onnx_is_quantized(tmp_path: Path) -> None:
    matmul_model(tmp_path / "one" / "decoder.onnx")
    out = tmp_path / "q"
    assert main(["quantize", "-m", str(tmp_path / "one"), "-o", str(out), "--log_level", "3"]) == 0
    assert _ops(out / "model" / "decoder.onnx") == ["MatMulNBits", "Relu", "MatMulNBits"]


def test_a_folder_with_several_graphs_is_refused_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = matmul_model(tmp_path / "two" / "a.onnx")
    shutil.copy(first, tmp_path / "two" / "b.onnx")
    assert main(["quantize", "-m", str(tmp_path / "two"), "-o", str(tmp_path / "q"), "--log_level", "3"]) == 2
    err = capsys.readouterr().err
    assert "a.onnx, b.onnx" in err and "-m " in err and not (tmp_path / "q").exists()
    out = tmp_path / "qb"  # the file named: that graph, alone in the output
    assert main(["quantize", "-m", str(tmp_path / "two" / "b.onnx"), "-o", str(out), "--log_level", "3"]) == 0
    assert sorted(p.name for p in (out / "model").glob("*.onnx")) == ["b.onnx"]
    assert _ops(out / "model" / "b.onnx") == ["MatMulNBits", "Relu", "MatMulNBits"]


def test_an_exported_folder_with_its_config_and_a_graph_not_named_model_onnx_is_onnx(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """config.json beside the graph (an exported encoder) and no HF weights: the folder is ONNX, as onnx_graph finds
    it (it was taken for a Hugging Face model and failed in export: "no file named model.safetensors")."""
    folder = tmp_path / "enc"
    matmul_model(folder / "encoder.onnx")
    (folder / "config.json").write_text('{"model_type": "bert"}')
    assert main(["quantize", "-m", str(folder), "-o", str(tmp_path / "d"), "--precision", "int8", "--dry_run"]) == 0
    assert "kind: onnx" in capsys.readouterr().out
    shutil.copy(folder / "encoder.onnx", folder / "other.onnx")  # several graphs: onnx_graph's refusal, naming them
    assert main(["quantize", "-m", str(folder), "-o", str(tmp_path / "q"), "--precision", "int8", "--dry_run"]) == 2
    assert "encoder.onnx, other.onnx" in capsys.readouterr().err


def gemm_model(path: Path) -> Path:
    """Linear -> ReLU -> Linear on 2-D inputs: the exporter writes Gemm nodes, no MatMul."""
    net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64))
    return export_tiny(net, path, torch.randn(2, 64))


def test_weight_only_quantization_of_a_model_without_matmul_weights_is_refused_before_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = gemm_model(tmp_path / "gemm" / "model.onnx")
    for flags in ([], ["--precision", "int8", "--algorithm", "rtn"]):
        out = tmp_path / f"q{len(flags)}"
        assert main(["quantize", "-m", str(model), "-o", str(out), "--log_level", "3", *flags]) == 2
        err = capsys.readouterr().err
        assert "no MatMul with a constant weight" in err and "2 Gemm nodes" in err and "--precision int8" in err
        assert not out.exists()
    for flags in ([], ["--precision", "int8", "--algorithm", "rtn"]):  # --dry_run says so too
        dry = ["quantize", "-m", str(model), "-o", str(tmp_path / "dry"), "--dry_run", *flags]
        assert main(dry) == 2
        err = capsys.readouterr().err
        assert "2 Gemm nodes" in err and "--precision int8 with no --algorithm" in err
    out = tmp_path / "int8"  # what the message offers works: dynamic int8 quantizes the Gemms
    assert main(["quantize", "-m", str(model), "--precision", "int8", "-o", str(out), "--log_level", "3"]) == 0
    assert "MatMulInteger" in _ops(out / "model" / "model.onnx")


def test_dynamic_int8_that_quantizes_nothing_is_not_reported_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = export_tiny(torch.nn.ReLU(), tmp_path / "relu" / "model.onnx", torch.randn(2, 64))
    assert main(["quantize", "-m", str(model), "--precision", "int8", "-o", str(tmp_path / "q"), "--log_level",
                 "3"]) != 0  # fmt: skip
    assert "changed nothing" in capsys.readouterr().err


def test_an_adapter_with_an_onnx_model_is_refused_before_work(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    adapter = make_random_adapter(tiny_llama, tmp_path / "adapter")
    model = matmul_model(tmp_path / "mm" / "model.onnx")
    out = tmp_path / "q"
    assert main(["quantize", "-m", str(model), "-a", str(adapter), "-o", str(out), "--log_level", "3"]) == 2
    err = capsys.readouterr().err
    assert f"-a {adapter}" in err and "generate-adapter" in err and not out.exists()


def test_text_calibration_of_an_onnx_model_without_a_tokenizer_is_refused_before_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = matmul_model(tmp_path / "mm" / "model.onnx")
    rows = tmp_path / "qa.jsonl"
    rows.write_text('{"question": "what is 1 plus 1?"}\n{"question": "what is 2 plus 2?"}\n')
    out = tmp_path / "q"
    assert main(["quantize", "-m", str(model), "--precision", "int8", "--use_qdq_encoding", "-d", "json",
                 "--data_files", str(rows), "--text_field", "question", "-o", str(out), "--log_level", "3"]) == 2
    err = capsys.readouterr().err  # fmt: skip
    assert "no tokenizer is beside the model" in err and "tokenizer.json" in err and not out.exists()


def test_a_quantized_gguf_is_warned_of_naming_its_quant_type(
    smollm2_gguf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["quantize", "-m", str(smollm2_gguf), "-o", str(tmp_path / "q"), "--dry_run"]) == 0
    err = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
    assert "quantized already (Q4_1)" in err and "F16/F32" in err
