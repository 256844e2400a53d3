"""`olive-ext validate` on hostile recipes: a named problem and exit code 2, never a traceback, a hang or a write.

The bad inputs issue 20 found each have a test here (exit code, one error line naming the problem, nothing
written), and a property-based test feeds mutated shipped recipes (tests/recipe_mutants.py) to `validate`.
benchmarks/fuzz_recipes.py runs the same mutator over 10,000 mutants.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import put_in_hub_cache
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recipe_mutants import mutate, seed_texts

from olive_ext.cli import main
from olive_ext.workflows.run import validate

GOOD = "input_model: {path: org/model}\npasses:\n  build: {type: model_builder}\n"


@pytest.fixture(autouse=True)
def _good_model_in_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GOOD's hub model is in this machine's hub cache (offline), so that GOOD is valid here."""
    put_in_hub_cache(monkeypatch, tmp_path / "hub-cache", "org/model")
STEPS = "passes: {build: {type: model_builder}}\n"


def _files(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*")}


def validate_cli(folder: Path, path: str | Path) -> tuple[int, list[str]]:
    """Exit code and the error lines of `olive-ext validate path`, run in ``folder``; asserts nothing was written."""
    before = _files(folder)
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(["validate", str(path)])
    finally:
        os.chdir(cwd)
    assert _files(folder) == before, "validate wrote something"
    text = out.getvalue()
    assert "Traceback" not in text
    return code, [line for line in text.splitlines() if line.startswith("error")]


def refused(tmp_path: Path, content: bytes | str, suffix: str = ".yaml") -> str:
    """Validate a file holding ``content``: exit code 2 and exactly one error line, which is returned."""
    recipe = tmp_path / f"recipe{suffix}"
    recipe.write_bytes(content.encode() if isinstance(content, str) else content)
    code, errors = validate_cli(tmp_path, recipe)
    assert code == 2
    assert len(errors) == 1, errors
    return errors[0]


def test_a_good_recipe_is_valid(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(GOOD)
    assert validate_cli(tmp_path, tmp_path / "r.yaml") == (0, [])


# --------------------------------------------------------------------------- files that are no recipe text


def test_non_utf8_file_names_the_byte_and_line(tmp_path: Path) -> None:
    message = refused(tmp_path, GOOD.replace("org/model", "org/mödel").encode("latin-1"))
    assert "not UTF-8 text: byte 0xf6 at line 1" in message


def test_binary_file(tmp_path: Path) -> None:
    assert "binary file" in refused(tmp_path, bytes(range(256)) * 4)


def test_utf16_file(tmp_path: Path) -> None:
    assert "UTF-16" in refused(tmp_path, GOOD.encode("utf-16"))


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert validate_cli(tmp_path, tmp_path / "r.yaml") == (0, [])


@pytest.mark.parametrize(
    ("content", "suffix"),
    [
        ("input_model: {path: m}\npasses: " + "[" * 1000 + "]" * 1000 + "\n", ".yaml"),
        ("input_model: {path: m}\npasses:\n" + "".join(" " * i + "a:\n" for i in range(500)), ".yaml"),
        ('{"input_model": {"path": "m"}, "passes": ' + '{"a": ' * 1000 + "1" + "}" * 1000 + "}", ".json"),
        ('{"data": ' + "[" * 5000 + "]" * 5000 + "}", ".json"),
    ],
    ids=["yaml-flow", "yaml-block", "json-objects", "json-lists"],
)
def test_deep_nesting_is_refused_with_its_line(tmp_path: Path, content: str, suffix: str) -> None:
    message = refused(tmp_path, content, suffix)
    assert "nested deeper than 64 levels" in message and "line" in message


def test_a_path_too_long_for_the_system(tmp_path: Path) -> None:
    code, errors = validate_cli(tmp_path, "a" * 5000 + ".yaml")
    assert code == 2 and len(errors) == 1 and "5,005 bytes" in errors[0]
    code, errors = validate_cli(tmp_path, str(tmp_path / ("b" * 300 + ".yaml")))
    assert code == 2 and len(errors) == 1 and "name of 305 bytes" in errors[0]


@pytest.mark.parametrize("target", ["folder", "/dev/null", "missing.yaml", ""])
def test_paths_that_are_no_recipe_file(tmp_path: Path, target: str) -> None:
    (tmp_path / "folder").mkdir()
    code, errors = validate_cli(tmp_path, target)
    assert code == 2 and len(errors) == 1
    assert any(word in errors[0] for word in ("folder", "regular file", "does not exist", "give a recipe"))


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_an_integer_of_5000_digits(tmp_path: Path, suffix: str) -> None:
    digits = "9" * 5000
    text = (
        f"input_model: {{path: m}}\nsearch: {{seed: {digits}}}\n"
        if suffix == ".yaml"
        else f'{{"input_model": {{"path": "m"}}, "search": {{"seed": {digits}}}}}'
    )
    assert "an integer of 5,000 digits" in refused(tmp_path, text, suffix)


def test_billion_laughs_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    lines += ["input_model: {path: m}", "passes: {t: {type: lora, target_modules: *l8}}"]
    text = "\n".join(lines)
    assert len(text) < 1500
    start = time.perf_counter()
    message = refused(tmp_path, text)
    assert time.perf_counter() - start < 10  # the bound for a hang; it takes milliseconds
    assert "aliases (*name) expand this value to" in message


def test_an_alias_loop_is_refused(tmp_path: Path) -> None:
    assert "refers to a value that contains it" in refused(tmp_path, "input_model: {path: m}\nx: &a [1, *a]\n")


def test_merge_keys_still_work(tmp_path: Path) -> None:
    text = GOOD + "data:\n  a: &a {name: json, data_files: x.json}\n  b: {<<: *a, split: 'train[:10]'}\n"
    (tmp_path / "r.yaml").write_text(text)
    (tmp_path / "x.json").write_text('{"q": "a", "a": "b"}\n')  # validate checks the data files a recipe names
    assert validate_cli(tmp_path, tmp_path / "r.yaml") == (0, [])


@pytest.mark.parametrize(
    ("content", "suffix"),
    [
        ("input_model: {path: a}\ninput_model: {path: b}\n" + STEPS, ".yaml"),
        ("input_model: {path: a}\npasses:\n  q: {type: model_builder, type: lora}\n", ".yaml"),
        ('{"input_model": {"path": "a"}, "input_model": {"path": "b"}}', ".json"),
    ],
    ids=["yaml-top", "yaml-nested", "json"],
)
def test_duplicate_keys_are_an_error(tmp_path: Path, content: str, suffix: str) -> None:
    message = refused(tmp_path, content, suffix)
    assert "appears twice" in message and ("input_model" in message or "'type'" in message)


@pytest.mark.parametrize("content", ["", "# only a comment\n", "[1, 2]\n", "just text\n"])
def test_a_file_that_is_not_a_mapping(tmp_path: Path, content: str) -> None:
    message = refused(tmp_path, content)
    assert "empty" in message or "must be a mapping" in message


@pytest.mark.parametrize("key", ["str", "int", "list", "dict", "float", "bool", "a[0]", "[key]", "list[str]"])
def test_keys_named_like_pydantic_types_are_located(tmp_path: Path, key: str) -> None:
    text = f"input_model: {{path: m}}\ndata:\n  '{key}': {{name: json, data_files: x.json, '{key}': 1}}\n" + STEPS
    message = refused(tmp_path, text)
    assert f"data.{key}.{key}: unknown key" in message


OLIVE = "input_model: {type: ONNXModel, model_path: m.onnx}\npasses: {q: {type: OnnxDynamicQuantization}}\n"


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ("passes: {q: {type: OnnxDynamicQuantization, weight_type: [QInt8]}}", "passes.q.weight_type"),
        ("systems: {s: {accelerators: cpu}}", "systems.s.accelerators: Input should be a valid list"),
        ("data_configs: [{name: d, load_dataset_config: []}]", "data_configs[0].load_dataset_config"),
        ("evaluators: {e: {metrics: [{type: latency, sub_types: [{goal: {value: low}}]}]}}", "goal.value"),
        ("search_strategy: {sampler: tpe, max_samples: [5]}", "search_strategy.max_samples"),
        ("output_dir: {path: out}", "output_dir: Input should be a valid string"),
    ],
    ids=["int8-list", "systems", "data-configs", "goal", "search", "output-dir"],
)
def test_olive_sections_of_the_wrong_type(tmp_path: Path, extra: str, where: str) -> None:
    text = OLIVE.replace("passes: {q: {type: OnnxDynamicQuantization}}\n", "") if extra.startswith("passes") else OLIVE
    (tmp_path / "m.onnx").write_bytes(b"")  # an Olive ONNXModel's file must be there (else it is a problem too)
    assert where in refused(tmp_path, text + extra + "\n")


def test_a_key_with_a_newline_stays_on_one_line(tmp_path: Path) -> None:
    message = refused(tmp_path, 'input_model: {path: m, "a\\nb": 1}\n' + STEPS)
    assert "input_model.'a\\nb': unknown key" in message


def test_markup_in_a_recipe_is_printed_as_text(tmp_path: Path) -> None:
    message = refused(tmp_path, "input_model: {path: m, '[/red]': 1}\n" + STEPS)
    assert "input_model.[/red]: unknown key" in message


# --------------------------------------------------------------------------- the listing


def test_list_passes_shows_defaults_not_pydantic_internals() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["validate", "--list-passes"]) == 0
    text = out.getvalue()
    assert "PydanticUndefined" not in text
    assert "training_args: other transformers TrainingArguments, passed through [default {}]" in text


@pytest.mark.parametrize("argv", [["validate", "--list-passes"], ["cache", "ls"], ["--version"]])
def test_output_into_a_closed_pipe_ends_quietly(argv: list[str], tmp_path: Path) -> None:
    """The reader is gone before the first write, as `| head -1` leaves the lines after its first: `cache ls` and
    `verify` ended in a BrokenPipeError traceback and exit 1 about half the time (validate alone was handled)."""
    env = {**os.environ, "OLIVE_EXT_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "olive_ext", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr and "Exception ignored" not in stderr


@pytest.mark.parametrize("argv", [["validate", "--list-passes"], ["cache", "ls"]])
def test_a_closed_stdout_is_written_nowhere(argv: list[str], tmp_path: Path) -> None:
    """Started with stdout closed (`>&-`): Python's sys.stdout is None, and the commands ended in an
    AttributeError traceback ('NoneType' object has no attribute 'flush'), exit 1."""
    env = {**os.environ, "OLIVE_EXT_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "olive_ext", *argv], stderr=subprocess.PIPE, env=env, timeout=60,
                          preexec_fn=lambda: os.close(1))  # fmt: skip
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr
    assert "Traceback" not in stderr


# --------------------------------------------------------------------------- the Python API


def test_api_validate_returns_the_read_problem(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps({"a": 1})[:-1] + ', "a": 2}')
    problems = validate(tmp_path / "r.json")
    assert len(problems) == 1 and "appears twice" in problems[0].message


# --------------------------------------------------------------------------- property-based


SEEDS = seed_texts()


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same mutants every run: CI fails on a change, not on a draw
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(rng=st.randoms(use_true_random=False))
def test_mutated_recipes_never_give_a_traceback(rng) -> None:  # type: ignore[no-untyped-def]
    mutant = mutate(rng, SEEDS)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "data").symlink_to(Path(__file__).parents[1] / "recipes" / "data")
        path = mutant.write(folder)
        before = _files(folder)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(["validate", path])  # any exception fails the test, and hypothesis shrinks the mutant
        assert code in (0, 2), out.getvalue()
        assert _files(folder) == before


def test_a_file_too_large_for_a_recipe(tmp_path: Path) -> None:
    message = refused(tmp_path, GOOD + "# " + "x" * 300_000 + "\n")
    assert "a recipe is at most 262,144" in message


def test_a_tab_in_yaml_indentation_is_named() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        message = refused(Path(folder), "input_model:\n\tpath: org/model\n")
    assert "a tab: YAML indents with spaces only" in message


def test_flag_and_environment_mistakes_found_by_fuzzing_are_refused_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad --log_level exited 1 (an internal error's code); `cache ls --log_level 3` said "unknown flag; did you
    mean --log_level?"; `OLIVE_EXT_CACHE=" "` made a folder named " "; `validate A --config B` read A and said
    nothing of B; `finetune(progress=1)` was a TypeError inside training."""
    import olive_ext
    from olive_ext.errors import UserInputError

    monkeypatch.setenv("OLIVE_EXT_CACHE", str(tmp_path / "cache"))
    assert main(["cache", "ls", "--log_level", "bogus"]) == 2
    assert "'bogus' is not a level" in capsys.readouterr().err
    assert main(["cache", "ls", "--log_level", "3"]) == 0
    assert main(["cache", "--log_level", "3", "ls"]) == 0
    recipe = tmp_path / "a.yaml"
    recipe.write_text("passes: {}\n")
    assert main(["validate", str(recipe), "--config", str(tmp_path / "b.yaml")]) == 2
    assert "two recipes given" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OLIVE_EXT_CACHE", " ")
    assert main(["cache", "ls"]) == 2
    assert "OLIVE_EXT_CACHE is ' ', a blank folder name" in capsys.readouterr().err
    assert not (tmp_path / " ").exists()
    monkeypatch.setenv("OLIVE_EXT_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"text": "a row"}) + "\n")
    with pytest.raises(UserInputError, match=r"progress=1 is not an olive_ext\.progress\.Progress"):
        olive_ext.finetune(str(tmp_path / "no-model"), tmp_path / "out", progress=1, data_files=str(data))


@pytest.mark.parametrize(("command", "resumes"), [("package", False), ("cache", False), ("export", False),
                                                   ("auto_opt", True), ("finetune", True), ("run", True)])  # fmt: skip
def test_an_interrupt_says_a_rerun_resumes_only_where_one_does(
    command: str, resumes: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """export, package and prune said "finished steps are cached and a rerun resumes from them" after Ctrl-C: they
    run no cached steps. Each command's module says whether it does (RESUMES); its main is interrupted here."""
    import argparse
    import importlib
    import types

    from olive_ext.cli.common import run_command

    real = importlib.import_module(f"olive_ext.cli.{command}")

    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    mod = types.SimpleNamespace(main=interrupted, READS_HUB=False, **{k: v for k, v in vars(real).items()
                                                                       if k == "RESUMES"})  # fmt: skip
    assert run_command(mod, argparse.Namespace(log_level="1")) == 130  # type: ignore[arg-type]
    assert ("a rerun resumes" in capsys.readouterr().err) == resumes
