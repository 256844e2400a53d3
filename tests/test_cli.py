"""The CLI: help, validate's exit codes and messages, run end to end, no heavy imports on the fast path."""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from toy_passes import toy_weights

from olive_ext.cli import main
from olive_ext.errors import UserInputError

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
    recipe.write_text(json.dumps({"input_model": {"path": "pypi:smollm2-135m-instruct"},
                                  "passes": [{"type": "gguf_to_hf"}]}))  # fmt: skip
    proc = _cli("validate", str(recipe))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid" in proc.stdout
    # a model path that is neither here nor a hub id: `run` refuses it before work, and validate says so
    recipe.write_text(json.dumps({"input_model": {"path": "m.gguf"}, "passes": [{"type": "gguf_to_hf"}]}))
    proc = _cli("validate", str(recipe))
    assert proc.returncode == 2 and "input model path 'm.gguf' does not exist" in proc.stdout + proc.stderr


def test_unknown_flag_gets_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", "x.yaml", "--overwirte"]) == 2
    assert "did you mean --overwrite" in capsys.readouterr().err


def test_run_end_to_end_and_refuse_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    toy_weights(model)  # the toy passes never load them; the checks ask for weights
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


def test_overwrite_replaces_only_an_olive_ext_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--overwrite once deleted a home folder given as the output (`quantize(model, "~", overwrite=True)`): a
    folder olive-ext did not write, and the home folder, are refused before any work, their files untouched."""
    from olive_ext.engine.output import staged_output

    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    toy_weights(model)
    theirs = tmp_path / "docs"
    (theirs / "thesis").mkdir(parents=True)
    (theirs / "thesis" / "ch1.tex").write_text("x")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"input_model": {"path": str(model)},
                                      "passes": {"t": {"type": "toy_transform", "factor": [1]}},
                                      "output": {"path": str(theirs)}}))  # fmt: skip
    assert main(["run", "--config", str(recipe), "--overwrite", "--log_level", "3"]) == 2
    err = capsys.readouterr().err
    assert "not replaced although overwrite was asked" in err and "olive-ext did not write (thesis" in err
    assert (theirs / "thesis" / "ch1.tex").read_text() == "x"
    home = tmp_path / "home"
    (home / "candidates.json").parent.mkdir()
    (home / "candidates.json").write_text("{}")  # even one that looks like an output
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(UserInputError, match="your home folder"), staged_output("~", overwrite=True):
        pass
    assert (home / "candidates.json").exists()
    out = tmp_path / "out"  # an olive-ext output is replaced, whole
    with staged_output(out, overwrite=False) as stage:
        (stage / "candidates.json").write_text("{}")
        (stage / "old.txt").write_text("old")
    with staged_output(out, overwrite=True) as stage:
        (stage / "candidates.json").write_text("[]")
    assert sorted(p.name for p in out.iterdir()) == [".olive-ext-output.json", "candidates.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no staging or replaced folder left
    # a file the user put in an output, or a project folder that holds its recipe.yaml, is not lost: both were
    # replaced whole (recipe.yaml counted as a sign of an olive-ext output)
    (out / "mynotes.txt").write_text("mine")
    project = tmp_path / "proj"
    project.mkdir()
    (project / "recipe.yaml").write_text("input_model: {path: m}\n")
    (project / "train_script.py").write_text("print()")
    for folder, named in ((out, "mynotes.txt"), (project, "recipe.yaml, train_script.py")):
        with pytest.raises(UserInputError, match=f"olive-ext did not write.*{named}"), staged_output(folder, True):
            pass
    assert (out / "mynotes.txt").read_text() == "mine" and (project / "train_script.py").exists()
    # the same command twice at once: the second found its output written by the first after all its work, said only
    # "exists and is not empty", and left its staged output behind as a hidden folder
    twice = tmp_path / "twice"
    said = "another run wrote it while this one ran"
    with pytest.raises(UserInputError, match=said) as e, staged_output(twice, overwrite=False) as stage:
        (stage / "candidates.json").write_text("{}")
        twice.mkdir()
        (twice / "candidates.json").write_text("{}")  # the other run's output
    assert "run it again with --overwrite" in (e.value.hint or "")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".twice.")]


OLIVE_COMMANDS = {  # Olive 0.13's commands we do not have -> a word the message must contain
    "capture-onnx-graph": "auto-opt",
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
    "generate-model-package": "olive-ext package",
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


def test_misspelt_olive_command_is_never_suggested_as_ours(capsys: pytest.CaptureFixture[str]) -> None:
    # a did-you-mean names real olive-ext commands only; near an Olive-only name, the message says what to run
    assert main(["model-packag", "-o", "out"]) == 2
    err = capsys.readouterr().err
    assert "did you mean model-package" not in err and "olive-ext package -m" in err


def _toy_recipe(tmp_path: Path) -> Path:
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    toy_weights(model)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"input_model": {"path": str(model)},
                                      "passes": {"t": {"type": "toy_transform", "factor": 1}},
                                      "output": {"path": str(tmp_path / "out")}}))  # fmt: skip
    return recipe


def test_run_takes_olive_run_config_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = _toy_recipe(tmp_path)
    assert main(["run", "--run-config", str(recipe), "--log_level", "3"]) == 0
    assert (tmp_path / "out" / "candidates.json").exists()


def test_run_list_required_packages_lists_missing_ones_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = _toy_recipe(tmp_path)
    assert main(["run", "--config", str(recipe), "--list_required_packages"]) == 0
    assert "nothing to install" in capsys.readouterr().out and not (tmp_path / "out").exists()
    if importlib.util.find_spec("awq") is not None:
        pytest.skip("autoawq is installed")
    raw = yaml.safe_load(recipe.read_text())
    raw["passes"] = {"awq": {"type": "olive", "olive_type": "AutoAWQQuantizer"}}
    recipe.write_text(yaml.safe_dump(raw))
    assert main(["run", "--config", str(recipe), "--list_required_packages"]) == 0
    out = capsys.readouterr().out
    # autoawq with olive-ai installed; olive-ai itself without it
    assert "missing: passes.awq" in out and ("autoawq" in out or "olive-ai" in out)
    assert not (tmp_path / "out").exists()


def _llm_config(folder: Path, arch: str = "LlamaForCausalLM") -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": [arch]}))
    return folder


def test_quantize_trust_remote_code_reaches_the_input_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`quantize --trust_remote_code` was an unknown flag (auto-opt and finetune take it): it is an option of the
    quantize workflow, carried by the recipe's input model to the passes that load it."""
    from olive_ext.workflows.quantize import QuantizeOptions, quantize_recipe

    model = _llm_config(tmp_path / "m")
    opts = QuantizeOptions(model_name_or_path=str(model), output_path=str(tmp_path / "q"), trust_remote_code=True)
    assert quantize_recipe(opts).input_model.trust_remote_code is True
    assert quantize_recipe(opts.model_copy(update={"trust_remote_code": False})).input_model.trust_remote_code is False
    assert main(["quantize", "-m", str(model), "-o", str(tmp_path / "q"), "--trust_remote_code"]) == 2
    err = capsys.readouterr().err
    assert "unknown flag" not in err and "no weights" in err, err  # the flag is taken; the checks before work run


@pytest.mark.parametrize(
    ("flag", "value", "instead"),
    [
        ("--algorithm", "gptq", "olive-ext auto-opt"),
        ("--algorithm", "awq", "olive_type: AutoAWQQuantizer"),
        ("--algorithm", "quarot", "olive_type: QuaRot"),
        ("--precision", "fp16", "olive-ext auto-opt -m MODEL --precision fp16"),
        ("--precision", "uint8", "use --precision int8"),
        ("--precision", "nf4", "--method qlora"),
    ],
)
def test_quantize_olive_values_we_lack_say_what_to_write_instead(
    flag: str, value: str, instead: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _llm_config(tmp_path / "m")
    assert main(["quantize", "-m", str(model), "-o", str(tmp_path / "q"), flag, value]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "invalid choice" not in err and f"{flag} {value}: olive-ext quantize has" in err and instead in err
    assert not (tmp_path / "q").exists()


def test_auto_opt_takes_olive_flags_and_dry_run_builds_nothing(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    olive_flags = ["--task", "text-generation-with-past", "--save_config_file", "--disable_telemetry", "--dry_run"]
    argv = ["auto-opt", "-m", str(tiny_llama), "-o", str(out), *olive_flags, "--gguf", "false", "--log_level", "3"]
    assert main(argv) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    recipe = yaml.safe_load(captured.out)
    assert recipe["input_model"]["path"] == str(tiny_llama) and recipe["pipelines"]
    assert "dry run: cpu" in captured.err and not out.exists()


def test_auto_opt_task_must_be_the_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _llm_config(tmp_path / "bert", "BertForSequenceClassification")
    assert main(["auto-opt", "-m", str(model), "-o", str(tmp_path / "o"), "--task", "text-generation"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--task text-generation: olive-ext infers the task from the model" in err and "text-classification" in err


def test_sigterm_ends_a_command_as_ctrl_c_does(tmp_path: Path) -> None:
    """SIGTERM (`kill PID`, a scheduler's preemption) killed the process where it was: no message, and temporary
    folders (the parity check's logit dumps, the evaluator's requests) were never removed."""
    import signal
    import subprocess
    import sys
    import time

    marker = tmp_path / "tmp-folder"
    code = (
        "import sys, tempfile, time, types, shutil\n"
        "from olive_ext.cli.common import run_command\n"
        "def main(args):\n"
        "    with tempfile.TemporaryDirectory(dir=sys.argv[1]) as d:\n"
        "        print(d, flush=True)\n"
        "        for _ in range(600):\n"  # one long sleep() can sleep through a signal that came before it began
        "            time.sleep(0.1)\n"
        "mod = types.SimpleNamespace(main=main, READS_HUB=False)\n"
        "sys.exit(run_command(mod, types.SimpleNamespace(log_level='1')))\n"
    )
    marker.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", code, str(marker)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout is not None
    folder = Path(proc.stdout.readline().strip())
    assert folder.is_dir()
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err, err
    assert not folder.exists()  # cleaned up on the way out


def test_run_takes_another_input_model_as_olives_run_does(tiny_llama: Path, tmp_path: Path) -> None:
    """Olive's `run -m/-a` replace the config's input model; `olive-ext run -m` was "unknown flag", while the
    hub-model refusal's own hint said to give a local folder with -m."""
    import json

    config = tmp_path / "olive.json"
    config.write_text(json.dumps({"input_model": {"type": "HfModel", "model_path": "microsoft/DialoGPT-medium"},
                                  "passes": {"b": {"type": "ModelBuilder", "precision": "fp32"}},
                                  "output_dir": str(tmp_path / "out")}))  # fmt: skip
    assert main(["run", "--config", str(config), "-m", str(tiny_llama), "--log_level", "3"]) == 0
    written = (tmp_path / "out" / "recipe.yaml").read_text()
    assert str(tiny_llama) in written and "DialoGPT" not in written


def test_olive_flags_say_what_to_write_and_their_values_are_not_stray(capsys: pytest.CaptureFixture[str]) -> None:
    """Olive 0.13's hyphenated auto-opt flags were "unknown flag" (one suggested the unrelated --use_ort_genai), a
    refused flag's value was named "unexpected arguments" too, and --max_seq_len suggested --max_samples."""
    assert main(["auto-opt", "-m", "x", "--num-splits", "2", "--use_qdq_encoding", "-o", "o"]) == 2
    err = capsys.readouterr().err
    assert "--num-splits: not supported" in err and "olive-ext quantize --use_qdq_encoding" in err
    assert "unexpected arguments" not in err and "did you mean" not in err, err
    assert main(["quantize", "-m", "x", "--max_seq_len", "5", "-o", "o"]) == 2
    err = capsys.readouterr().err
    assert "--max_seq_len: not needed: calibration rows are used whole" in err and "--max_samples" not in err, err
    assert main(["generate-adapter", "-m", "x", "-a", "y", "--adapter_type", "lora", "-o", "o"]) == 2
    assert "reads each adapter's type" in capsys.readouterr().err


def test_the_llama_factory_guides_commands_say_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`llamafactory-cli train|chat|api FILE.yaml` (the LLaMA-Factory guide's commands) with olive-ext in front said
    "no command 'train'" or "-m is required", and `finetune FILE.yaml` "unexpected arguments": none said what to run."""
    import json

    monkeypatch.chdir(tmp_path)
    train = {"model_name_or_path": "base", "stage": "sft", "do_train": True, "finetuning_type": "lora",
             "lora_rank": 8, "output_dir": "saves/lora/sft"}  # fmt: skip
    infer = {"model_name_or_path": "base", "adapter_name_or_path": "saves/lora/sft", "template": "llama3",
             "infer_backend": "huggingface"}  # fmt: skip
    merge = {"model_name_or_path": "base", "adapter_name_or_path": "saves/lora/sft", "export_dir": "merged"}
    for name, config in (("train.yaml", train), ("infer.yaml", infer), ("merge.yaml", merge)):
        (tmp_path / name).write_text(json.dumps(config))
    cases = {
        ("train", "train.yaml"): "run `olive-ext finetune -m base -o saves/lora/sft --lora_r 8 --lora_alpha 16",
        ("finetune", "train.yaml"): "run `olive-ext finetune -m base",
        ("chat", "infer.yaml"): "run `olive-ext auto-opt -m base --adapter_path saves/lora/sft -o OUT`, then "
        "`olive-ext chat -m OUT`",
        ("api", "infer.yaml"): "`olive-ext serve -m OUT`",
        ("chat", "-m", "infer.yaml", "--prompt", "hi"): "then `olive-ext chat -m OUT`",  # "holds no genai model"
        ("train", "merge.yaml"): "run `olive-ext export merge.yaml`",
    }
    for argv, says in cases.items():
        assert main(list(argv)) == 2, argv
        err = capsys.readouterr().err
        assert says in " ".join(err.split()), (argv, err)
    assert main(["validate", "merge.yaml"]) != 0  # run and validate answer such files themselves
    said = capsys.readouterr()
    assert "LLaMA-Factory export config" in said.out + said.err


def test_every_flag_of_olives_own_commands_is_taken_or_answered() -> None:
    """Olive's own parsers (olive-ai, installed by `make install`), read flag by flag for each command olive-ext has
    too: each flag is one of ours or one the command answers with what to write instead. A flag a new Olive adds
    fails this test, as it would have given a user "unknown flag"."""
    import argparse

    from olive_ext.cli import _command_modules, build_parser
    from olive_ext.onnx.runtime import olive_ai

    olive_ai("reading Olive's command flags")  # its telemetry off before olive.cli imports it
    from olive.cli import launcher

    theirs = argparse.ArgumentParser().add_subparsers()
    for name in dir(launcher):
        command = getattr(launcher, name)
        if name.endswith("Command") and hasattr(command, "register_subcommand"):
            command.register_subcommand(theirs)

    def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices

    ours = subparsers(build_parser())
    modules = {m.NAME: m for m in _command_modules()}
    shared = sorted(set(theirs.choices) & set(ours))
    assert {"auto-opt", "optimize", "finetune", "quantize", "generate-adapter", "run"} <= set(shared), shared
    missing = {}
    for name in shared:
        taken = {f for a in ours[name]._actions for f in a.option_strings}
        answered = getattr(modules[name], "OLIVE_REPLACEMENTS", {})
        left = [f for a in theirs.choices[name]._actions for f in a.option_strings if f not in taken | set(answered)]
        if left:
            missing[name] = left
    assert not missing, missing


def test_a_boolean_flags_wrong_value_is_named_where_the_command_takes_no_positional(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`auto-opt --gguf maybe` said "unexpected arguments: maybe" (the word was kept apart as a positional)."""
    with pytest.raises(SystemExit):
        main(["auto-opt", "-m", "m", "--gguf", "maybe"])
    assert "argument --gguf: expected true or false, got 'maybe'" in capsys.readouterr().err


def test_a_bare_boolean_flag_before_a_positional_argument(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`olive-ext validate --lenient FILE` failed "argument --lenient: expected true or false, got 'FILE'": a bare
    boolean flag took the next word as its value. `--lenient false FILE` keeps its value."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("input_model: {path: HuggingFaceTB/SmolLM2-135M}\npasses: {b: {type: model_builder}}\n")
    for flags in (["--lenient"], ["--lenient", "false"], ["--lenient", "true"]):
        main(["validate", *flags, str(recipe)])
        err = capsys.readouterr().err
        assert "expected true or false" not in err and "unrecognized" not in err, (flags, err)


def test_every_flag_a_replacement_hint_names_is_a_flag_of_that_command() -> None:
    """`olive-ext auto-opt --cost-model x` answered "measures each candidate's memory instead (--max_memory_mb)",
    and --max_memory_mb was then refused as an unknown flag. A flag a hint names exists on the command it is for
    (this one, or the `olive-ext NAME` the hint quotes) and is not itself a refused Olive flag."""
    import re

    from olive_ext.cli import _command_modules, build_parser, subcommands

    parsers = subcommands(build_parser())
    flags = {name: {f for a in p._actions for f in a.option_strings} for name, p in parsers.items()}
    wrong = []
    for module in _command_modules():
        replacements = getattr(module, "OLIVE_REPLACEMENTS", {})
        for olive_flag, hint in replacements.items():
            named = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", hint))
            quoted = set().union(*(flags.get(c, set()) for c in re.findall(r"olive-ext ([a-z][\w-]*)", hint)))
            taken = quoted | (flags[module.NAME] - set(replacements))
            wrong += [(module.NAME, olive_flag, f) for f in sorted(named) if f not in taken]
    assert not wrong, wrong


def test_a_repeated_flag_that_takes_several_values_keeps_them_all() -> None:
    """`auto-opt --device cpu --device gpu` built for the GPU alone (argparse kept the last); the first occurrence
    replaces the default, later ones add to it."""
    from olive_ext.cli import build_parser

    def parsed(command: str, *flags: str) -> argparse.Namespace:
        return build_parser(command).parse_args([command, "-m", "m", "-o", "o", *flags])

    assert parsed("auto-opt", "--device", "cpu", "--device", "gpu").device == ["cpu", "gpu"]
    assert parsed("auto-opt", "--device", "gpu").device == ["gpu"]
    assert parsed("auto-opt").device == parsed("auto-opt").device  # the default, untouched
    assert parsed("auto-opt", "--device", "npu", "cpu", "--device", "gpu").device == ["npu", "cpu", "gpu"]
    assert parsed("generate-adapter", "-a", "x", "--adapter_path", "y", "z").adapter_path == ["x", "y", "z"]
    assert parsed("finetune", "--data_files", "a.jsonl", "--data_files", "b.jsonl").data_files == ["a.jsonl", "b.jsonl"]


def test_ctrl_c_while_the_command_starts_is_one_line_and_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGINT 0.2 s after launch (while the command's modules import) printed a KeyboardInterrupt traceback through
    build_parser and importlib, and the process died on the signal; here the interrupt lands in the parser's build."""
    import olive_ext.cli as cli

    def interrupted(command: str | None = None) -> argparse.ArgumentParser:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["validate", "recipe.yaml"]) == 130
    err = capsys.readouterr().err
    assert "interrupted before the command started" in err and "Traceback" not in err


def test_files_a_library_wrote_private_get_the_outputs_mode(tmp_path: Path) -> None:
    """`export --format hf` wrote model.safetensors 0600 (transformers writes it through a private temporary file)
    beside files 0644: a model copied to a server or shared folder was unreadable there. The umask decides."""
    import os
    import stat

    from olive_ext.engine.output import staged_output

    old = os.umask(0o022)
    try:
        with staged_output(tmp_path / "out", overwrite=False) as stage:
            (stage / "model.safetensors").write_bytes(b"x")
            (stage / "model.safetensors").chmod(0o600)
            (stage / "private.key").write_bytes(b"k")
            (stage / "private.key").chmod(0o400)  # a mode that is not a library's default is left alone
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out" / "model.safetensors").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "out" / "private.key").stat().st_mode) == 0o400


def test_a_name_too_long_for_the_file_system_and_minus_inf_are_said_in_one_line(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A path component over 255 bytes was an OSError traceback from the first look at the path, in almost every
    command; --lora_alpha -inf got argparse's "expected one argument" instead of its own check."""
    from olive_ext.cli import main

    long = "a" * 300
    for argv in (["auto-opt", "-m", str(tiny_llama), "-o", str(tmp_path / long)],
                 ["finetune", "-m", str(tmp_path / long), "-d", "json", "--data_files", "x", "-o", "o"]):  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "a name in a path is longer than the file system takes" in err and "one here has 300" in err, err
    assert main(["finetune", "-m", str(tiny_llama), "--lora_alpha", "-inf", "--dry_run"]) == 2
    assert "lora_alpha: Input should be a finite number" in capsys.readouterr().err


def test_counts_no_machine_can_take_are_refused_before_work(tiny_llama: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """--threads 99999999999 failed in onnxruntime-genai after the builds (int32 range), --repeats 1e11 timed one
    tiny candidate for minutes, a batch of 1e20 examples failed inside islice()."""
    from olive_ext.cli import main

    out = str(tmp_path / "out")
    for argv, said in ((["auto-opt", "-m", str(tiny_llama), "-o", out, "--threads", "99999999999"], "threads"),
                       (["auto-opt", "-m", str(tiny_llama), "-o", out, "--repeats", "99999999999"], "repeats"),
                       (["finetune", "-m", str(tiny_llama), "-d", "json", "--data_files", "x.jsonl", "-o", out,
                         "--per_device_train_batch_size", "9" * 20], "per_device_train_batch_size")):  # fmt: skip
        assert main([*argv, "--dry_run"]) == 2
        assert f"{said}: Input should be less than or equal to" in capsys.readouterr().err


def test_a_ray_address_without_the_ray_executor_is_refused(tiny_llama: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """--ray_address without --executor ray was dropped without a word and the run stayed on this machine."""
    import olive_ext
    from olive_ext.cli import main

    assert main(["auto-opt", "-m", str(tiny_llama), "-o", str(tmp_path / "o"), "--ray_address", "10.0.0.1:6379",
                 "--dry_run"]) == 2  # fmt: skip
    assert "--ray_address 10.0.0.1:6379 is read with --executor ray" in capsys.readouterr().err
    recipe = {"input_model": {"path": str(tiny_llama)}, "passes": {"b": {"type": "model_builder"}},
              "executor": {"type": "local", "address": "10.0.0.1:6379"}}  # fmt: skip
    assert [p.path for p in olive_ext.validate(recipe)] == ["executor"]


def test_demo_output_that_is_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """demo -o FILE was a NotADirectoryError traceback."""
    from olive_ext.cli import main

    (tmp_path / "f").write_text("x")
    assert main(["demo", "-o", str(tmp_path / "f")]) == 2
    assert f"-o {tmp_path / 'f'} is a file, not a folder" in capsys.readouterr().err


def test_the_same_command_twice_at_once_is_refused_before_the_second_works(tiny_llama: Path, tmp_path: Path) -> None:
    """Two runs into one output: the second learnt it only when it had built (or trained) everything ("another run
    wrote it while this one ran"). A run holds a claim on its output while it works; the second is refused before
    its first step, and the claim goes with the run."""
    import olive_ext
    from olive_ext.engine.output import output_claim

    out, cache = tmp_path / "out", tmp_path / "cache"
    with output_claim(out), pytest.raises(UserInputError, match="another olive-ext run is writing"):
        olive_ext.quantize(tiny_llama, out, precision="int8", cache_dir=str(cache))
    assert not list((cache / "entries").glob("*")) if (cache / "entries").exists() else True  # nothing was built
    assert not out.exists() and not list(tmp_path.glob(".out.*"))  # the claim is gone with the first run
    with output_claim(out):  # released: a new claim is granted
        pass
