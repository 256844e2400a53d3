"""The public Python API as a notebook user meets it: `import olive_ext`, then finetune, auto_opt, package, verify.

Nothing below reaches into olive-ext's internals: only names exported from ``olive_ext``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import write_qa_rows

import olive_ext

FAST = {"warmup": 0, "repeats": 1, "new_tokens": 4, "prompt_tokens": 8, "max_new_tokens": 4}


@pytest.fixture(scope="module")
def qa_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_qa_rows(tmp_path_factory.mktemp("data") / "qa.jsonl", 24)


def test_notebook_flow_finetune_auto_opt_package_verify(
    tiny_llama: Path, qa_file: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from transformers.utils import logging as transformers_logging

    transformers_logging.enable_progress_bar()  # as in a fresh notebook (a CLI test in this process switched it off)
    cache = tmp_path / "cache"  # paths as pathlib.Path, as the API returns them (the README's example chains them)
    ft = olive_ext.finetune(
        tiny_llama,
        tmp_path / "ft",
        data_files=[qa_file],
        train_split="train[:16]",
        eval_split="train[16:]",
        text_template="Q: {q}\nA: {a}",
        max_steps=3,
        torch_dtype="float32",
        cache_dir=cache,
    )
    assert ft.adapter_path == tmp_path / "ft" / "adapter" and (ft.adapter_path / "adapter_config.json").exists()
    # the libraries' own bars and deprecations stay out of a notebook's output, and their switches come back
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "is_gradient_checkpointing" not in err, err
    assert transformers_logging.is_progress_bar_enabled()
    assert ft.model_path.is_dir() and ft.metrics["steps"] == 3
    assert ft.metrics["eval"]["finetuned"]["examples"] == 8

    # no data given: auto-opt measures on the fine-tune's own eval split (recorded by finetune)
    assert len(repr(ft)) < 1000, repr(ft)  # the run's records left out (9.7k characters)
    best = olive_ext.auto_opt(  # a result is given where a path is taken: it names its output folder
        ft, tmp_path / "onnx", precision="int4", max_candidates=2, cache_dir=cache, **FAST
    )
    assert len(repr(best)) < 1000 and "chosen=" in repr(best), repr(best)
    assert best.model_path == tmp_path / "onnx" / "model" and (best.model_path / "genai_config.json").exists()
    assert "exact_match" in best.metrics
    deployed = json.loads((tmp_path / "onnx" / "model_config.json").read_text())
    assert deployed["smoke_prompts"]  # the fine-tune's rows
    assert deployed["text_template"] == "Q: {q}\nA: {a}"  # the prompt form it learned: chat says so
    report = json.loads((tmp_path / "onnx" / "candidates.json").read_text())
    assert report["accuracy_measured"] is True and report["unchecked_constraints"] == []
    assert report["reference"] and "exact_match" in report["reference"]["metrics"]
    # a source model that answers no row exactly is said to leave accuracy unable to tell candidates apart
    warned = any("answers none of the 8 eval rows exactly" in n for n in report["notes"])
    assert warned == (report["reference"]["metrics"]["exact_match"] == 0), report["notes"]

    bundle = olive_ext.package(best, tmp_path / "bundle", zip=True, name="tiny")
    assert bundle.zip_path == tmp_path / "bundle.zip" and bundle.zip_path.exists()
    assert bundle.manifest["name"] == "tiny" and bundle.manifest["text_template"] == "Q: {q}\nA: {a}"
    verified = olive_ext.verify(bundle.zip_path)
    passed = {c.name for c in verified.checks if c.ok}
    assert {"checksums", "chat template", "load"} <= passed, verified.checks
    # 3 steps on random weights do not teach the tiny model to stop: the end-of-turn check must say so
    stops = [c for c in verified.checks if c.name.startswith("end of turn")]
    assert stops and not verified.ok and all("end-of-turn" in c.detail for c in stops if not c.ok)


def test_auto_opt_without_eval_data_says_accuracy_was_not_checked(
    tiny_llama: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "onnx"
    with caplog.at_level(logging.WARNING, logger="olive_ext"):
        result = olive_ext.auto_opt(
            str(tiny_llama), str(out), precision="int4", max_candidates=1, cache_dir=str(tmp_path / "c"), **FAST
        )
    assert any("accuracy will NOT be measured" in r.getMessage() for r in caplog.records)
    data = json.loads((out / "candidates.json").read_text())
    assert data["accuracy_measured"] is False and data["unchecked_constraints"] == ["max_accuracy_drop"]
    assert all("max_accuracy_drop" not in c["constraints"] for c in data["candidates"])
    assert "NOT checked" in (out / "report.md").read_text()
    assert "NOT checked" in (out / "report.html").read_text()
    info = json.loads((out / "model_config.json").read_text())
    assert info["selection"].startswith("speed and size alone")
    bundle = olive_ext.package(result.output_dir, tmp_path / "bundle")
    assert bundle.manifest["selection"].startswith("speed and size alone")


def test_unknown_option_names_the_key_with_a_did_you_mean(tmp_path: Path) -> None:
    with pytest.raises(olive_ext.RecipeError) as info:
        olive_ext.auto_opt("some/model", str(tmp_path / "o"), max_acuracy_drop=2.0)
    assert "max_acuracy_drop" in str(info.value) and "max_accuracy_drop" in str(info.value)


def test_run_takes_a_path_a_dict_or_a_recipe_and_validate_lists_problems(tiny_llama: Path, tmp_path: Path) -> None:
    from types import MappingProxyType

    raw = {
        "input_model": {"path": tiny_llama},  # a Path, as a Python user writes it ("Input should be a valid string")
        "passes": {"build": {"type": "model_builder", "precision": "fp32"}},
        "output": {"path": tmp_path / "from-dict"},
    }
    assert olive_ext.validate(raw) == [] and olive_ext.validate(MappingProxyType(raw)) == []
    result = olive_ext.run(raw)
    assert result.model_path == tmp_path / "from-dict" / "model" and result.model_path.is_dir()
    recipe_file = tmp_path / "recipe.json"
    recipe_file.write_text(json.dumps(raw, default=str))
    again = olive_ext.run(recipe_file, output_path=tmp_path / "from-file")
    assert again.cache_hits == again.steps_run  # same build, from the cache
    recipe = olive_ext.Recipe.model_validate(json.loads(recipe_file.read_text()))
    assert olive_ext.validate(recipe) == []  # "recipe must be a path or a dict, not Recipe"
    assert olive_ext.run(recipe, output_path=tmp_path / "from-recipe").model_path is not None
    problems = olive_ext.validate({**raw, "passes": {"build": {"type": "model_builder", "precison": "int4"}}})
    assert [p.path for p in problems] == ["passes.build.precison"] and "precision" in (problems[0].hint or "")
    # a wrong type says what is taken, as an OliveExtError (it was a TypeError, which the README's promise excludes)
    with pytest.raises(olive_ext.RecipeError, match="recipe: must be a path, a mapping or a Recipe, not int"):
        olive_ext.run(42)  # type: ignore[arg-type]
    assert [(p.path, p.message) for p in olive_ext.validate(None)] == [  # type: ignore[arg-type]
        ("recipe", "must be a path, a mapping or a Recipe, not NoneType")]
    # the keywords are checked as the recipe's own values: overwrite="false" was taken as true and replaced the output
    before = sorted(p.name for p in (tmp_path / "from-file").iterdir())
    with pytest.raises(olive_ext.UserInputError, match="exists and is not empty; nothing was written"):
        olive_ext.run(recipe_file, output_path=tmp_path / "from-file", overwrite="false")  # type: ignore[arg-type]
    assert sorted(p.name for p in (tmp_path / "from-file").iterdir()) == before
    with pytest.raises(olive_ext.RecipeError, match=r"output\.overwrite"):
        olive_ext.run(recipe_file, output_path=tmp_path / "x", overwrite="maybe")  # type: ignore[arg-type]
    with pytest.raises(olive_ext.RecipeError, match="cache_dir: must be a path"):
        olive_ext.run(recipe_file, output_path=tmp_path / "y", cache_dir=3)  # type: ignore[arg-type]


def test_import_changes_no_global_logging_or_warnings_state() -> None:
    code = (
        "import logging, warnings\n"
        "before = (list(warnings.filters), {n: l.level for n, l in logging.root.manager.loggerDict.items()"
        " if isinstance(l, logging.Logger)}, logging.root.level)\n"
        "import olive_ext\n"
        "olive_ext.finetune, olive_ext.auto_opt, olive_ext.run, olive_ext.package\n"
        "after = (list(warnings.filters), {n: l.level for n, l in logging.root.manager.loggerDict.items()"
        " if isinstance(l, logging.Logger) and n in before[1]}, logging.root.level)\n"
        "assert before == after, (before, after)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_call_leaves_the_callers_logging_and_threads_as_they_were(tiny_llama: Path, tmp_path: Path) -> None:
    """onnxruntime's int4 quantizer, imported during the call, runs logging.basicConfig(level=INFO): the caller's
    root logger then printed every library's INFO lines for the rest of the process; torch's thread count stayed
    at the call's. A fresh process, so that the quantizer is first imported inside the call."""
    code = (
        "import logging, sys, torch, olive_ext\n"
        "torch.set_num_threads(3)\n"
        "before = (list(logging.root.handlers), logging.root.level)\n"
        "olive_ext.quantize(sys.argv[1], sys.argv[2], precision='int4', cache_dir=sys.argv[3])\n"
        "assert 'onnxruntime.quantization.matmul_nbits_quantizer' in sys.modules\n"
        "after = (list(logging.root.handlers), logging.root.level)\n"
        "assert before == after, (before, after)\n"
        "assert torch.get_num_threads() == 3, torch.get_num_threads()\n"
    )
    args = [str(tiny_llama), str(tmp_path / "q"), str(tmp_path / "cache")]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_a_home_relative_path_is_the_home_folder(
    tiny_llama: Path, qa_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From Python no shell expands ``~``: a finetune to "~/ft" trained, wrote $HOME/ft, then failed on the
    literal "~/ft" (FileNotFoundError), and a data file "~/qa.jsonl" was "not found"."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "qa.jsonl").write_text(qa_file.read_text())
    monkeypatch.setenv("HOME", str(home))
    ft = olive_ext.finetune(tiny_llama, "~/ft", data_files="~/qa.jsonl", text_template="Q: {q}\nA: {a}",
                            max_steps=1, cache_dir=str(tmp_path / "cache"))  # fmt: skip
    assert ft.output_dir == home / "ft" and (home / "ft" / "train_metrics.json").is_file()


def test_public_names_are_exported_and_documented() -> None:
    exported = set(olive_ext.__all__) - {"__version__"}
    assert exported == set(olive_ext._EXPORTS)
    for name in exported:
        assert getattr(olive_ext, name).__doc__, name
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError):
            olive_ext.no_such_name  # noqa: B018


def test_signatures_show_every_option_with_its_declared_default() -> None:
    import inspect

    from olive_ext.evaluate.spec import Constraints
    from olive_ext.workflows.finetune import FinetuneRunOptions

    params = inspect.signature(olive_ext.auto_opt).parameters
    assert params["max_accuracy_drop"].default == Constraints.model_fields["max_accuracy_drop"].default
    assert params["precision"].kind is inspect.Parameter.KEYWORD_ONLY
    ft = inspect.signature(olive_ext.finetune).parameters
    assert ft["learning_rate"].default == FinetuneRunOptions.default_of("learning_rate")
    assert "options" not in ft  # the **options catch-all is replaced by the model's fields


def test_auto_opt_on_a_plain_text_finetune_measures_speed_and_says_so(tiny_llama: Path, tmp_path: Path) -> None:
    """A fine-tune on plain text records an eval split with no answers: auto-opt cannot score answers on it,
    so it reports accuracy as not measured instead of failing (asked-for data without answers is refused)."""
    text = tmp_path / "text.jsonl"
    text.write_text("\n".join(json.dumps({"text": f"the number {i} is small"}) for i in range(12)))
    cache = str(tmp_path / "cache")
    ft = olive_ext.finetune(
        str(tiny_llama), str(tmp_path / "ft"), data_files=str(text), text_field="text",
        train_split="train[:8]", eval_split="train[8:]", max_steps=2, torch_dtype="float32", cache_dir=cache,
    )  # fmt: skip
    olive_ext.auto_opt(str(ft.output_dir), str(tmp_path / "onnx"), precision="int4", max_candidates=1, cache_dir=cache,
                       **FAST)  # fmt: skip
    data = json.loads((tmp_path / "onnx" / "candidates.json").read_text())
    assert data["accuracy_measured"] is False and data["unchecked_constraints"] == ["max_accuracy_drop"]
    with pytest.raises(olive_ext.UserInputError, match="prompt and an expected answer"):
        olive_ext.auto_opt(str(ft.output_dir), str(tmp_path / "onnx2"), data_files=str(text), text_field="text",
                           cache_dir=cache, **FAST)  # fmt: skip
    assert not (tmp_path / "onnx2").exists()


def test_one_device_may_be_given_as_a_string_as_in_olives_python_api() -> None:
    """``olive_ext.auto_opt(..., device="cpu")`` was refused: "device: Input should be a valid list"."""
    from olive_ext.errors import RecipeError
    from olive_ext.options import validate_options
    from olive_ext.workflows.auto_opt import AutoOptOptions

    base = {"model_name_or_path": "m", "output_path": "o"}
    assert validate_options(AutoOptOptions, {**base, "device": "cpu"}).device == ["cpu"]
    assert validate_options(AutoOptOptions, {**base, "device": ["cpu", "gpu"]}).device == ["cpu", "gpu"]
    with pytest.raises(RecipeError, match="allowed: 'cpu', 'gpu' or 'npu'"):
        validate_options(AutoOptOptions, {**base, "device": "tpu"})


def test_api_arguments_a_user_gets_wrong_are_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "built").mkdir()
    with pytest.raises(olive_ext.RecipeError, match="output_path: Input should be a valid string; got None"):
        olive_ext.package(tmp_path / "built", None)  # type: ignore[arg-type]
    assert not (tmp_path / "None").exists()  # it wrote a bundle into ./None
    recipe = {"input_model": {"path": "m"}, "passes": {"m": {"type": "merge_adapter"}}}
    with pytest.raises(olive_ext.RecipeError, match=r"executor\.type: value not allowed; got 'nope'"):
        olive_ext.run(recipe, output_path=tmp_path / "o", executor="nope")
    with pytest.raises(olive_ext.RecipeError, match="run_model: must be True or False; got 'no'"):
        olive_ext.verify(tmp_path / "built", run_model="no")  # type: ignore[arg-type]
    with pytest.raises(olive_ext.RecipeError, match="write it as a number, without quotes: 32"):
        olive_ext.quantize(tmp_path / "built", tmp_path / "q", block_size="32")  # said "did you mean '32'?"


def test_olives_auto_opt_keywords_are_taken_as_the_command_takes_them(tiny_bert: Path, tmp_path: Path) -> None:
    """`olive-ext auto-opt` takes Olive's --task and --use_ort_genai; the function refused them ("unknown key")."""
    with pytest.raises(olive_ext.UserInputError, match="--task text-generation: olive-ext infers the task"):
        olive_ext.auto_opt(tiny_bert, tmp_path / "o", task="text-generation", use_ort_genai=True)
    assert not (tmp_path / "o").exists()


def test_the_api_hides_bitsandbytes_kernel_notice_as_the_cli_does(tiny_llama: Path, tmp_path: Path) -> None:
    """olive_ext.finetune printed bitsandbytes' "Failed to load CPU gemm_4bit_forward from kernels-community ...
    pip install kernels" (on AVX512-BF16 CPUs, at its import), which the CLI hides: olive-ext trains with
    bitsandbytes' own kernels, so the advice misleads."""
    import subprocess
    import sys

    data = tmp_path / "qa.jsonl"
    data.write_text('{"q": "a", "a": "b"}\n' * 4)
    code = (f"import olive_ext; olive_ext.finetune({str(tiny_llama)!r}, {str(tmp_path / 'ft')!r}, "
            f"data_files={str(data)!r}, text_template='Q: {{q}}\\nA: {{a}}', max_steps=1)")  # fmt: skip
    env = {**os.environ, "OLIVE_EXT_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "kernels-community" not in done.stderr and "pip install kernels" not in done.stderr


def test_a_dry_run_keyword_says_what_the_api_has_instead() -> None:
    """`olive_ext.finetune(..., dry_run=True)` (the CLI's flag) said only "dry_run: unknown key"."""
    import olive_ext

    with pytest.raises(olive_ext.RecipeError) as e:
        olive_ext.finetune("m", "out", data_files="rows.jsonl", dry_run=True)
    assert "dry_run: unknown key (the Python API has no dry run: olive_ext.validate(RECIPE)" in str(e.value)
