"""CLI defaults and hints: quantize and auto-opt without -o write where Olive does; a label column left unnamed."""

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
    assert f"path: {tmp_path / 'quantized-model'}\n" in capsys.readouterr().out  # the folder it runs in


def test_auto_opt_without_o_writes_olives_default_folder(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["auto-opt", "-m", str(tiny_llama), "--precision", "fp32", "--dry_run"]) == 0
    assert f"path: {tmp_path / 'auto-opt-output'}\n" in capsys.readouterr().out


def test_classifier_rows_without_response_field_are_told_to_name_the_label_column(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows {"text", "label"} and no --response_field: the refusal says to give --response_field label."""
    rows = tmp_path / "cls.jsonl"
    rows.write_text('{"text": "good film", "label": 1}\n{"text": "bad film", "label": 0}\n')
    argv = ["auto-opt", "-m", str(tiny_bert), "--precision", "int8", "--data_files", str(rows), "--text_field",
            "text", "--dry_run", "-o", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "--response_field label" in capsys.readouterr().err
