"""Experiment tracking: `--report_to wandb` passes through to transformers like tensorboard and mlflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from toy_passes import toy_weights

from olive_ext.cli import main


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLIVE_EXT_THREADS", "1")  # the tiny model's ops are too small to share between threads


def _rows(path: Path) -> Path:
    with open(path, "w") as f:
        for i in range(16):
            tone = "positive" if i % 2 else "negative"
            f.write(json.dumps({"phrase": f"the {'great' if i % 2 else 'sad'} city {i}", "tone": tone}) + "\n")
    return path


def test_report_to_wandb_offline_writes_a_run_with_the_training_loss(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")  # no network: the run is written locally, `wandb sync` uploads it
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    argv = ["finetune", "-m", str(tiny_llama), "--data_files", str(_rows(tmp_path / "d.jsonl")),
            "--text_template", "Phrase: {phrase}\nTone: {tone}", "--max_steps", "2", "--logging_steps", "1",
            "--report_to", "wandb", "-o", str(tmp_path / "out"), "--log_level", "3"]  # fmt: skip
    assert main(argv) == 0
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list(tmp_path.rglob("*"))[:20]
    # the run's history holds the losses transformers logged (a .wandb file of protobuf records)
    assert b"train/loss" in (runs[0] / f"run-{runs[0].name.rsplit('-', 1)[-1]}.wandb").read_bytes()


def test_report_to_wandb_online_without_credentials_fails_before_any_work(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    pytest.importorskip("wandb")
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_MODE", "WANDB_API_KEY")}
    # a fresh process (wandb keeps its settings per process) with no ~/.netrc and no wandb settings
    env |= {"HOME": str(tmp_path), "NETRC": str(tmp_path / "netrc"), "WANDB_CONFIG_DIR": str(tmp_path / "wb")}
    model = tmp_path / "model"  # a model folder to the checks before work; never loaded
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')  # a type transformers knows
    toy_weights(model)
    argv = [sys.executable, "-m", "olive_ext", "finetune", "-m", str(model), "--data_files",
            str(_rows(tmp_path / "d.jsonl")), "--text_template", "Phrase: {phrase}\\nTone: {tone}",
            "--report_to", "wandb", "-o", str(tmp_path / "o")]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    err = proc.stderr
    assert proc.returncode == 2 and "WANDB_MODE=offline" in err and "wandb login" in err, err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_report_to_wandb_missing_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    model = tmp_path / "model"  # a model folder to the checks before work; never loaded
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')  # a type transformers knows
    toy_weights(model)
    code = main(["finetune", "-m", str(model), "--data_files", str(_rows(tmp_path / "d.jsonl")),
                 "--text_template", "Phrase: {phrase}\nTone: {tone}", "--report_to", "wandb",
                 "-o", str(tmp_path / "o")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "pip install wandb" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
