"""`olive-ext quantize` and `auto-opt` without -o write where Olive's commands do (quantized-model, auto-opt-output)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_quantize_onnx_inputs import matmul_model

from olive_ext.cli import main


def test_quantize_without_o_writes_olives_default_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = matmul_model(tmp_path / "m" / "model.onnx")
    monkeypatch.chdir(tmp_path)
    assert main(["quantize", "-m", str(model), "--dry_run"]) == 0
    assert "path: quantized-model" in capsys.readouterr().out


def test_auto_opt_without_o_writes_olives_default_folder(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["auto-opt", "-m", str(tiny_llama), "--precision", "fp32", "--dry_run"]) == 0
    assert "path: auto-opt-output" in capsys.readouterr().out
