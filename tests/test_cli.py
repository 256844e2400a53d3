"""The CLI: help, validate's exit codes and messages, run end to end, no heavy imports on the fast path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from olive_ext.cli import main

HEAVY = ("torch", "transformers", "onnxruntime", "onnxruntime_genai", "peft", "datasets", "optuna", "onnx")


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "olive_ext", *args], capture_output=True, text=True, cwd=cwd)


def test_help_lists_commands() -> None:
    proc = _cli("--help")
    assert proc.returncode == 0
    assert "run" in proc.stdout and "validate" in proc.stdout


def test_help_and_validate_import_no_heavy_library(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"input_model": {"path": "a/b"}, "passes": {"g": {"type": "gguf_to_hf"}}}))
    code = (
        "import sys\n"
        "from olive_ext.cli import main\n"
        f"main(['validate', {str(recipe)!r}])\n"
        "main(['validate', '--list-passes'])\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_validate_bad_recipe_exits_2_with_every_problem_and_no_traceback(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "input_model": {"path": "a/b"},
                "passes": {"quant": {"type": "toy_transform", "factor": 0}},
                "serch": {"strategy": "grid"},
            }
        )
    )
    proc = _cli("validate", str(recipe))
    assert proc.returncode == 2
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    assert "serch" in out and "did you mean 'search'" in out
    # toy passes are not registered in the subprocess, so the pass type is unknown there:
    assert "passes.quant.type" in out


def test_validate_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    proc = _cli("validate", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    proc = _cli("validate", str(bad))
    assert proc.returncode == 2 and "line" in proc.stderr and "Traceback" not in proc.stderr


def test_validate_good_recipe_exits_0(tmp_path: Path) -> None:
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"input_model": {"path": "m.gguf"}, "passes": [{"type": "gguf_to_hf"}]}))
    proc = _cli("validate", str(recipe))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid" in proc.stdout


def test_unknown_flag_gets_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", "x.yaml", "--overwirte"]) == 2
    assert "did you mean --overwrite" in capsys.readouterr().err


def test_run_end_to_end_and_refuse_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "weights.bin").write_bytes(b"toy weights")  # the toy passes never load it; the checks ask for weights
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "input_model": {"path": str(model)},
                "passes": {"t": {"type": "toy_transform", "factor": [1, 2]}},
                "evaluate": {"metrics": ["size"], "objective": "size"},
                "output": {"path": str(tmp_path / "out")},
            }
        )
    )
    assert main(["run", "--config", str(recipe), "--log_level", "3"]) == 0
    data = json.loads((tmp_path / "out" / "candidates.json").read_text())
    chosen = [c for c in data["candidates"] if c["chosen"]]
    assert len(chosen) == 1 and chosen[0]["choices"] == {"passes.t.factor": 1}
    report = (tmp_path / "out" / "report.md").read_text()
    assert chosen[0]["id"] in report and "**chosen**" in report
    assert main(["run", "--config", str(recipe)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert main(["run", "--config", str(recipe), "--overwrite", "--setup"]) == 0


OLIVE_COMMANDS = {  # Olive 0.13's commands we do not have -> a word the message must contain
    "capture-onnx-graph": "auto-opt",
    "optimize": "auto-opt",
    "convert-adapters": "generate-adapter",
    "export-adapters": "generate-adapter",
    "extract-adapters": "generate-adapter",
    "benchmark": "measures",
    "tune-session-params": "threads",
    "run-pass": "olive-ext run --config",
    "shared-cache": "olive-ext cache",
    "configure-qualcomm-sdk": "qdq_static",
    "manage-aml-compute": "locally",
    "generate-cost-model": "cost model",
    "diffusion-lora": "finetune",
}


@pytest.mark.parametrize(("command", "instead"), OLIVE_COMMANDS.items())
def test_olive_command_we_lack_says_what_to_run_instead(
    command: str, instead: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "-m", "some/model", "-o", "out"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice" not in err and f"no {command} (an Olive command)" in err and instead in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_command_gets_did_you_mean_and_exit_2() -> None:
    proc = _cli("fintune", "-m", "x")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "did you mean finetune?" in proc.stderr and "invalid choice" not in proc.stderr
    proc = _cli("zzzz")
    assert proc.returncode == 2 and "commands: auto-opt" in proc.stderr


def test_quantize_algorithm_help_offers_rtn_kquant_hqq_and_says_what_unset_means() -> None:
    proc = _cli("quantize", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())  # argparse wraps help text
    assert (
        "--algorithm {rtn,kquant,hqq}" in text and "default" not in text.split("--algorithm {rtn,kquant,hqq}")[1][:40]
    )
    assert "When not given: rtn for LLM builds and int4 ONNX models" in text
