"""Recipe validation: every problem at once, each with its key path, value, allowed values and hints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import put_in_hub_cache

import olive_ext
from olive_ext.errors import RecipeError, UserInputError
from olive_ext.recipe import check_recipe, parse_recipe
from olive_ext.workflows.run import validate


def _problems(raw: dict) -> dict[str, str]:
    _, problems = check_recipe(raw)
    return {p.path: p.render() for p in problems if p.severity == "error"}


def base(**over: object) -> dict:
    raw = {"input_model": {"path": "some/model"}, "passes": {"t": {"type": "toy_transform"}}}
    raw.update(over)
    return raw


def test_valid_recipe_has_no_problems() -> None:
    assert _problems(base()) == {}


def test_misspelt_top_level_key_suggests_the_right_one() -> None:
    probs = _problems(base(serch={"strategy": "grid"}))
    assert "did you mean 'search'" in probs["serch"]


def test_misspelt_nested_key_is_located() -> None:
    probs = _problems(base(search={"stratgy": "grid"}))
    assert "search.stratgy" in probs
    assert "did you mean 'strategy'" in probs["search.stratgy"]


def test_bad_literal_lists_allowed_values_and_close_match() -> None:
    probs = _problems(base(search={"strategy": "tpee"}))
    text = probs["search.strategy"]
    assert "'grid'" in text and "'tpe'" in text and "did you mean 'tpe'" in text and "'tpee'" in text


def test_unknown_pass_type_suggests_registered_name() -> None:
    probs = _problems(base(passes={"t": {"type": "toy_transfrom"}}))
    assert "did you mean 'toy_transform'" in probs["passes.t.type"]


def test_pass_param_out_of_range_names_param_and_value() -> None:
    probs = _problems(base(passes={"t": {"type": "toy_transform", "factor": 0}}))
    assert "passes.t.factor" in probs and "got 0" in probs["passes.t.factor"]


def test_unknown_pass_param_suggests_close_field() -> None:
    probs = _problems(base(passes={"t": {"type": "toy_transform", "facter": 2}}))
    assert "did you mean 'factor'" in probs["passes.t.facter"]


def test_each_search_choice_is_validated_with_its_index() -> None:
    probs = _problems(base(passes={"t": {"type": "toy_transform", "factor": [1, 2, 999]}}))
    assert "passes.t.factor[2]" in probs and "999" in probs["passes.t.factor[2]"]


def test_list_for_non_searchable_param_is_refused() -> None:
    probs = _problems(base(passes={"t": {"type": "toy_transform", "label": ["a", "b"]}}))
    assert "passes.t.label" in probs


def test_missing_required_section() -> None:
    probs = _problems({"passes": {"t": {"type": "toy_transform"}}})
    assert "input_model" in probs and "missing" in probs["input_model"]


def test_bad_split_expression() -> None:
    probs = _problems(base(data={"d": {"name": "json", "data_files": "x.json", "split": "train[:90%"}}))
    assert "data.d.split" in probs and "train[:90%]" in probs["data.d.split"]


def test_local_builder_needs_data_files() -> None:
    probs = _problems(base(data={"d": {"name": "json"}}))
    assert any("data_files" in v for k, v in probs.items() if k.startswith("data.d"))


def test_provider_that_does_not_fit_device() -> None:
    probs = _problems(base(targets=[{"device": "cpu", "provider": "cuda"}]))
    assert "targets[0]" in probs and "CUDAExecutionProvider" in probs["targets[0]"]


def test_pass_that_does_not_support_target_device() -> None:
    probs = _problems(base(passes={"t": {"type": "toy_transform"}, "g": {"type": "toy_gpu_only"}}))
    assert "passes.g" in probs and "device 'cpu'" in probs["passes.g"]


def test_chain_of_kinds_is_checked_before_any_work() -> None:
    raw = base(input_model={"path": "m.onnx"}, passes={"g": {"type": "toy_gpu_only"}}, targets=[{"device": "gpu"}])
    assert _problems(raw) == {}
    raw = base(input_model={"path": "folder"}, passes={"g": {"type": "toy_gpu_only"}}, targets=[{"device": "gpu"}])
    probs = _problems(raw)
    assert "takes onnx models" in probs["passes.g"] and "hf model" in probs["passes.g"]


def test_evaluate_data_must_name_a_dataset_and_metrics_must_exist() -> None:
    probs = _problems(base(evaluate={"data": "nope", "metrics": ["sise"]}))
    assert "evaluate.data" in probs
    assert "did you mean 'size'" in probs["evaluate.metrics[0]"]


def test_wrong_type_reports_value() -> None:
    probs = _problems(base(search={"seed": "abc"}))
    assert "search.seed" in probs and "'abc'" in probs["search.seed"]


def test_all_problems_reported_at_once() -> None:
    raw = base(serch={}, search={"strategy": "nope"}, output={"pth": "x"})
    with pytest.raises(RecipeError) as info:
        parse_recipe(raw)
    assert {"serch", "search.strategy", "output.pth"} <= {p.path for p in info.value.problems}
    raw = base(passes={"t": {"type": "toy_transform", "factor": -1}, "u": {"type": "nope"}})
    _, problems = check_recipe(raw)
    assert {"passes.t.factor", "passes.u.type"} <= {p.path for p in problems}


def test_list_of_passes_is_named_by_type(tmp_path: Path) -> None:
    recipe = parse_recipe(base(passes=[{"type": "toy_transform"}, {"type": "toy_transform", "label": "y"}]))
    assert list(recipe.passes) == ["toy_transform", "toy_transform_2"]


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    from olive_ext.recipe.load import read_recipe_file

    bad = tmp_path / "r.yaml"
    bad.write_text("input_model:\n  path: x\n passes: [\n")
    with pytest.raises(UserInputError, match="line"):
        read_recipe_file(bad)


# --------------------------------------------------------------------------- accepted before, wrong all the same
# Each runs `olive-ext validate` on the file: exit code 2, the problem named on its key, nothing written.


def _validate_file(tmp_path: Path, raw: dict) -> tuple[int, str]:
    import contextlib
    import io

    import yaml

    from olive_ext.cli import main

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    before = set(tmp_path.rglob("*"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(["validate", str(recipe)])
    assert set(tmp_path.rglob("*")) == before, "validate wrote something"
    return code, "\n".join(line for line in out.getvalue().splitlines() if line.startswith("error"))


DATA = {"tone": {"name": "json", "data_files": "tone.jsonl"}}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"input_model": {"path": "m"}, "pipelines": [{}, []]},
            ["pipelines[0]: an alternative with no passes", "pipelines[1]: an alternative with no passes"],
        ),
        (
            {"input_model": {"path": "m"}, "data": DATA, "passes": {"ft": {"type": "lora", "train_data": "tones"}}},
            ["passes.ft.train_data: names a dataset that `data` lacks; got 'tones'; allowed: tone"],
        ),
        (
            {
                "input_model": {"path": "m.onnx"},
                "data": DATA,
                "passes": {"p": {"type": "parity_check", "data": "eval"}},
            },
            ["passes.p.data: names a dataset that `data` lacks; got 'eval'"],
        ),
        (
            {"input_model": {"path": "m"}, "passes": {"ft": {"type": "lora"}}},
            ["passes.ft: pass 'lora' needs a dataset: train_data is unset and `data` defines none"],
        ),
        (
            {
                "input_model": {"path": "m"},
                "passes": {"b": {"type": "model_builder", "precision": "fp16", "algorithm": "int3", "block_size": -5}},
            },
            ["passes.b.block_size: value not allowed; got -5", "passes.b.algorithm: value not allowed; got 'int3'"],
        ),
        (
            {
                "input_model": {"path": "m"},
                "data": DATA,
                "passes": {"ft": {"type": "lora", "training_args": {"output_dir": "/etc"}}},
            },
            ["passes.ft.training_args: training_args.output_dir is set by olive-ext"],
        ),
        (
            {"input_model": {"path": "m", "task": "tpu"}, "passes": {"b": {"type": "model_builder"}}},
            ["input_model.task: value not allowed; got 'tpu'"],
        ),
        (
            {"input_model": {"path": "m"}, "passes": {"b": {"type": "model_builder"}}, "output": {"path": ""}},
            ["output.path: String should have at least 1 character"],
        ),
    ],
    ids=["empty-pipelines", "lora-data", "parity-data", "lora-no-data", "fp16-int3", "output-dir", "task", "output"],
)
def test_accepted_before_now_refused(tmp_path: Path, raw: dict, expected: list[str]) -> None:
    code, errors = _validate_file(tmp_path, raw)
    assert code == 2
    assert len(errors.splitlines()) == len(expected), errors
    for needle in expected:
        assert needle in errors


def test_quantization_settings_on_a_float_build_are_still_dropped_when_valid() -> None:
    # precision searched over [fp32, int4] with one block_size: the fp32 candidate ignores it, as before (fp16 is
    # no longer the example: on the default CPU target it is refused, onnxruntime's CPU provider fails to run it)
    raw = base(passes={"b": {"type": "model_builder", "precision": ["fp32", "int4"], "block_size": 64}})
    assert _problems(raw) == {}


def test_dataset_name_in_an_olive_file_is_checked() -> None:
    raw = {
        "input_model": {"type": "HfModel", "model_path": "m"},
        "data_configs": [{"name": "d", "load_dataset_config": {"data_files": "x.json"}}],
        "passes": {"ft": {"type": "LoRA", "train_data_config": "e"}},
    }
    probs = _problems(raw)
    # named by the user's key (train_data_config), not the translated train_data
    assert "names a dataset that `data` lacks; got 'e'; allowed: d" in probs["passes.ft.train_data_config"]


def test_union_member_errors_are_one_problem() -> None:
    probs = _problems(base(data={"d": {"name": "json", "data_files": {"a": 1}}}))
    assert probs["data.d.data_files"].startswith("data.d.data_files: Input should be a valid string or a valid list")


def test_a_mapping_key_that_is_a_number_is_not_an_index() -> None:
    probs = _problems(base(data={5: {"name": "json", "data_files": "x"}}))
    assert "data.5" in probs


def test_validate_checks_the_files_a_valid_recipe_names_as_run_does(tiny_llama: Path, tmp_path: Path) -> None:
    """`validate` said "valid" for recipes whose data file, data columns or model folder `run` refused at once."""
    import json

    data = tmp_path / "tone.jsonl"
    data.write_text(json.dumps({"phrase": "hi", "tone": "joyful"}) + "\n")
    (tmp_path / "empty-model").mkdir()

    def recipe(model: Path, data_file: Path, template: str = "P: {phrase}\nT: {tone}") -> dict:
        return {"input_model": {"path": str(model)},
                "data": {"d": {"name": "json", "data_files": str(data_file), "text_template": template}},
                "passes": {"ft": {"type": "lora", "train_data": "d", "max_steps": 1}},
                "output": {"path": str(tmp_path / "out")}}  # fmt: skip

    assert validate(recipe(tiny_llama, data)) == []
    for raw, path, said in [
        (recipe(tiny_llama, tmp_path / "gone.jsonl"), "data.d", "does not exist"),
        (recipe(tiny_llama, data, "P: {phrse}\nT: {tone}"), "data.d", "phrse"),
        (recipe(tmp_path / "empty-model", data), "input_model.path", "holds no model"),
    ]:
        problems = validate(raw)
        assert [(p.path, p.category) for p in problems] == [(path, "user_file")], problems
        assert said in problems[0].message


def test_a_split_that_picks_no_rows_of_a_local_file_is_refused_by_validate(tiny_llama: Path, tmp_path: Path) -> None:
    """A slice past the end of a local file ('train[4096:4224]' of 570 rows) or a split a local file does not have
    ('test') validated, then `run` failed at the step reading the data, after the steps before it had run. Counted
    as the loader counts: blank lines of JSON lines skipped, a CSV cell's quoted newline is one row, a JSON array,
    a parquet table, several files together, percentages."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from olive_ext.data.load import load_rows
    from olive_ext.data.spec import DatasetSpec

    rows = [{"phrase": f"p{i}", "tone": "joyful"} for i in range(5)]
    files = {"rows.jsonl": "\n\n".join(json.dumps(r) for r in rows) + "\n\n",
             "rows.json": json.dumps(rows, indent=1),
             "rows.csv": "phrase,tone\n" + "".join(f'"p{i}\nline two",joyful\n' for i in range(5)) + "\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rows.parquet")

    def recipe(data_files: str | list[str], split: str) -> dict:
        builder = Path(data_files if isinstance(data_files, str) else data_files[0]).suffix.lstrip(".")
        return {"input_model": {"path": str(tiny_llama)},
                "data": {"d": {"name": {"jsonl": "json"}.get(builder, builder), "data_files": data_files,
                               "split": split, "text_template": "P: {phrase}\nT: {tone}"}},
                "passes": {"ft": {"type": "lora", "train_data": "d", "max_steps": 1}},
                "output": {"path": str(tmp_path / "out")}}  # fmt: skip

    for name in [*files, "rows.parquet"]:
        data_files = str(tmp_path / name)
        spec = DatasetSpec(**recipe(data_files, "train")["data"]["d"])
        assert len(load_rows(spec)) == 5, name  # the loader's own count, which the check must agree with
        for split in ["train", "train[4:]", "train[:1]", "train[80%:]", "train[-1:]"]:
            assert validate(recipe(data_files, split)) == [], (name, split)
        for split, said in [("train[5:]", "split 'train' has 5 rows"), ("train[4096:4224]", "has 5 rows"),
                            ("test", "local data files have one split, 'train'")]:  # fmt: skip
            problems = validate(recipe(data_files, split))
            assert [(p.path, p.category) for p in problems] == [("data.d", "user_file")], (name, split, problems)
            assert said in problems[0].message + (problems[0].hint or ""), (name, split, problems)
    both = [str(tmp_path / "rows.jsonl"), str(tmp_path / "rows.json")]
    assert validate(recipe(both, "train[9:]")) == []  # ten rows in two files
    assert validate(recipe(both, "train[10:]"))[0].category == "user_file"


def test_a_llama_factory_config_is_answered_with_the_finetune_command(tmp_path: Path) -> None:
    """A LLaMA-Factory training YAML given to validate/run: every key was refused as an Olive key not supported,
    then "input_model: required key is missing" under --lenient. Now one problem, with the command that runs it."""
    import json as json_

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset_info.json").write_text(json_.dumps({"mine": {"file_name": "mine.jsonl"},
                                                                       "hub": {"hf_hub_url": "org/data"}}))
    raw = {"model_name_or_path": "models/base", "stage": "sft", "do_train": True, "finetuning_type": "lora",
           "dataset": "mine, hub", "dataset_dir": "data", "template": "llama3", "output_dir": "saves/lora",
           "learning_rate": 1e-4, "lora_rank": 16, "quantization_bit": 4,
           "adapter_name_or_path": "saves/old"}  # fmt: skip
    recipe, problems = check_recipe(raw, base_dir=tmp_path)
    assert recipe is None and len(problems) == 1, problems
    assert "LLaMA-Factory training config" in problems[0].message
    hint = problems[0].hint or ""
    assert "olive-ext finetune -m models/base --adapter_path saves/old -o saves/lora --learning_rate 0.0001" in hint
    assert f"--method qlora -d json --data_files {tmp_path / 'data' / 'mine.jsonl'}" in hint
    assert "that file is not there" in hint and "dataset 'hub' too: -d org/data" in hint  # none dropped silently
    # keys with a flag are translated, keys without one are named (they were left out of the command silently)
    more = {**raw, "lora_target": "q_proj,v_proj", "bf16": True, "use_rslora": True, "warmup_ratio": 0.1,
            "lr_scheduler_type": "cosine", "plot_loss": True}  # fmt: skip
    hint = (check_recipe(more, base_dir=tmp_path)[1][0].hint or "").replace("\n", " ")
    assert "--target_modules q_proj,v_proj" in hint and "--torch_dtype bfloat16" in hint
    assert "--lr_scheduler_type cosine" in hint and "--lora_r 16 --lora_alpha 32" in hint  # LF: alpha = 2 x rank
    assert "not carried over: use_rslora: True, warmup_ratio: 0.1" in hint
    assert "plot_loss" not in hint
    # val_size holds out rows (it was "not carried over ... no such option"); overwrite_output_dir is --overwrite
    for val_size, splits in [(0.1, "--train_split 'train[:90%]' --eval_split 'train[90%:]'"),
                             (50, "--train_split 'train[:-50]' --eval_split 'train[-50:]'")]:  # fmt: skip
        hint = check_recipe({**raw, "val_size": val_size, "overwrite_output_dir": True}, base_dir=tmp_path)[1][0].hint
        assert splits in (hint or "") and "--overwrite" in (hint or "") and "val_size" not in (hint or ""), hint
    # LLaMA-Factory reads dataset_dir from where it runs: its examples/ YAMLs from the repository's root
    import os

    nested = tmp_path / "examples" / "train_lora"
    nested.mkdir(parents=True)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        hint = check_recipe(raw, base_dir=nested)[1][0].hint or ""
    finally:
        os.chdir(cwd)
    assert "-d json --data_files data/mine.jsonl" in hint and "is not in" not in hint, hint


def test_accuracy_metrics_need_rows_and_objective_accuracy_needs_an_accuracy_metric() -> None:
    """Both were "valid": exact_match without evaluate.data failed every candidate at run time (exit 1), and
    objective 'accuracy' over metrics [size] ranked by size without a word."""
    data = {"eval": {"name": "json", "data_files": "rows.jsonl", "text_template": "Q: {q}\nA: {a}"}}
    probs = _problems(base(evaluate={"metrics": ["size", "exact_match"]}))
    assert "metric 'exact_match' scores eval rows, and none are named" in probs["evaluate.data"]
    probs = _problems(base(data=data, evaluate={"data": "eval", "metrics": ["size"], "objective": "accuracy"}))
    assert "evaluate.metrics measures none of them" in probs["evaluate.objective"]
    fine = base(data=data, evaluate={"data": "eval", "metrics": ["size", "perplexity"], "objective": "accuracy"})
    assert _problems(fine) == {}


def test_relative_paths_are_the_recipes_before_the_working_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data/qa.jsonl in the working folder was read instead of the one beside the recipe (3 rows scored of 6,
    without a word), a model folder beside the recipe was not found, and the recipe.yaml a run wrote named paths
    relative to where it ran."""
    from olive_ext.recipe.load import load_recipe

    recipes, elsewhere = tmp_path / "recipes", tmp_path / "elsewhere"
    for folder in (recipes, elsewhere):
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "qa.jsonl").write_text('{"q": "a", "a": "b"}\n')
    (recipes / "llama").mkdir()
    path = recipes / "r.yaml"
    path.write_text(
        "input_model: {path: llama}\npasses: {t: {type: toy_transform}}\n"
        "data: {eval: {name: json, data_files: data/qa.jsonl, text_template: 'Q: {q} A: {a}'}}\n"
    )
    monkeypatch.chdir(elsewhere)
    recipe = load_recipe(Path("../recipes/r.yaml"))
    assert recipe.input_model.path == str(recipes / "llama")
    assert recipe.data["eval"].data_files == str(recipes / "data" / "qa.jsonl")


def test_an_objective_or_limit_on_a_metric_not_measured_is_refused() -> None:
    """metrics [size] with objective latency and max_latency_ms 5: "valid", exit 0, the limit silently unchecked."""
    probs = _problems(base(evaluate={"metrics": ["size"], "objective": "latency",
                                     "constraints": {"max_latency_ms": 5, "max_accuracy_drop": None}}))  # fmt: skip
    assert "ranks candidates by latency, which evaluate.metrics does not measure" in probs["evaluate.objective"]
    assert "limits latency" in probs["evaluate.constraints.max_latency_ms"]
    fine = {"metrics": ["size", "latency"], "objective": "latency", "constraints": {"max_latency_ms": 5}}
    assert _problems(base(evaluate=fine)) == {}


def test_the_written_recipe_leaves_out_the_checkpoint_a_run_resumed_from() -> None:
    """A resumed fine-tune wrote `resume_from_checkpoint: .../checkpoint-106` into its recipe.yaml; the run removes
    that checkpoint when it finishes, so the recipe did not rerun."""
    from olive_ext.recipe.schema import resolved_recipe

    raw = base(passes={"ft": {"type": "lora", "max_steps": 4, "resume_from_checkpoint": "/ck/checkpoint-3"}},
               data={"d": {"name": "json", "data_files": "x.jsonl", "text_template": "{a} {b}"}})  # fmt: skip
    written = resolved_recipe(parse_recipe(raw))["passes"]["ft"]
    assert "resume_from_checkpoint" not in written and written["max_steps"] == 4


# ---- found by using the Python API and recipes off the path (stop 42) ---------------------------------------------


def test_a_recipe_object_gets_the_checks_across_sections(tiny_llama: Path, tmp_path: Path) -> None:
    """A Recipe built by the caller skipped every check across sections: validate said [] and run dropped a latency
    limit on a run that measured no latency, choosing a model."""

    raw = {"input_model": {"path": str(tiny_llama)}, "passes": {"b": {"type": "model_builder", "precision": "int4"}},
           "evaluate": {"metrics": ["size"], "constraints": {"max_latency_ms": 0.001}}}  # fmt: skip
    recipe = olive_ext.Recipe.model_validate(raw)
    assert [p.path for p in olive_ext.validate(recipe)] == ["evaluate.constraints.max_latency_ms"]
    with pytest.raises(RecipeError, match="max_latency_ms"):
        olive_ext.run(recipe, output_path=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_accuracy_limit_without_an_accuracy_metric_is_refused() -> None:
    probs = _problems(base(data={"eval": {"name": "json", "data_files": "x.jsonl"}},
                           evaluate={"data": "eval", "metrics": ["size", "latency"],
                                     "constraints": {"max_accuracy_drop": 0.5}}))  # fmt: skip
    assert "limits accuracy in points" in probs["evaluate.constraints.max_accuracy_drop"]
    # the default limit is not the user's: no problem, the run says it was not checked
    assert _problems(base(evaluate={"metrics": ["size"]})) == {}


def test_a_repeated_target_is_refused() -> None:
    """Each candidate was built, measured and listed twice, with the same id."""
    probs = _problems(base(targets=[{"device": "cpu"}, {"device": "cpu"}]))
    assert probs["targets[1]"].startswith("targets[1]: repeats targets[0]")


def test_a_list_where_a_parameter_takes_one_value_says_so(tiny_llama: Path) -> None:
    probs = _problems({"input_model": {"path": str(tiny_llama)},
                       "passes": {"b": {"type": "model_builder", "linear_attn_int8": [False, True]}}})  # fmt: skip
    assert "takes one value: a list (values to search over) is allowed only on " in probs["passes.b.linear_attn_int8"]
    assert "precision" in probs["passes.b.linear_attn_int8"]


def test_validate_says_what_the_first_pass_refuses_in_the_input(tiny_llama: Path, tmp_path: Path) -> None:
    """validate said [] where run then refused: onnx_export on an LLM, merge_adapter on a model with no adapter."""

    for passes, says in (({"c": {"type": "onnx_export"}}, "it is an LLM"),
                         ({"m": {"type": "merge_adapter"}}, "no adapter to merge")):  # fmt: skip
        problems = olive_ext.validate({"input_model": {"path": str(tiny_llama)}, "passes": passes})
        assert [p.path for p in problems] == [f"passes.{next(iter(passes))}"], problems
        assert says in problems[0].message


def test_a_timing_prompt_beyond_the_models_context_is_refused_before_work(tiny_llama: Path, tmp_path: Path) -> None:
    """--prompt_tokens 5000 on a 512-position model built every candidate, then failed each at evaluation
    ("input_ids size (5000) ... exceeds max length (512)")."""

    def recipe(prompt_tokens: int, metrics: list[str]) -> dict:
        return {"input_model": {"path": str(tiny_llama)}, "passes": {"b": {"type": "model_builder"}},
                "evaluate": {"metrics": metrics, "prompt_tokens": prompt_tokens, "new_tokens": 32},
                "output": {"path": str(tmp_path / "out")}, "cache_dir": str(tmp_path / "cache")}  # fmt: skip

    problems = olive_ext.validate(recipe(481, ["latency"]))
    assert [p.path for p in problems] == ["evaluate.prompt_tokens"], problems
    assert "context of 512 tokens" in problems[0].message and "at most 480" in (problems[0].hint or "")
    with pytest.raises(UserInputError, match=r"evaluate.prompt_tokens \(481\) plus evaluate.new_tokens \(32\)"):
        olive_ext.run(recipe(481, ["throughput"]))
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()  # nothing built
    assert olive_ext.validate(recipe(480, ["latency"])) == []
    assert olive_ext.validate(recipe(5000, ["size"])) == []  # nothing timed


def test_an_empty_model_path_is_not_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """quantize("", "out") took "" for the current folder ("the output folder is inside the input model's folder")."""

    monkeypatch.chdir(tmp_path)
    for call in (lambda: olive_ext.quantize("", "out"), lambda: olive_ext.package(" ", "out")):
        with pytest.raises(UserInputError, match="the input model path is empty"):
            call()


def test_unchecked_limits_and_objectives_are_named_as_they_are(tiny_bert: Path, tmp_path: Path) -> None:
    """An encoder's min_latency_improvement_pct was dropped without a word (its PyTorch baseline is not measured);
    an unmeasured objective was put down to "a build for another device"."""

    result = olive_ext.run({
        "input_model": {"path": str(tiny_bert)},
        "passes": {"e": {"type": "onnx_export"}},
        "evaluate": {"metrics": ["size", "latency"], "constraints": {"min_latency_improvement_pct": 95}},
    }, output_path=tmp_path / "a")  # fmt: skip
    assert "min_latency_improvement_pct" in result.unchecked_constraints
    assert any(n.startswith("min_latency_improvement_pct was NOT checked") for n in result.notes)
    report = (tmp_path / "a" / "report.md").read_text()  # said in words of latency ("accuracy was not measured")
    assert "decode latency ≥ 95% below the source model's in PyTorch: NOT checked: the source model's latency" in report
    result = olive_ext.run({"input_model": {"path": str(tiny_bert)}, "passes": {"e": {"type": "onnx_export"}},
                            "evaluate": {"metrics": ["size"]}}, output_path=tmp_path / "b")  # fmt: skip
    assert result.chosen is not None
    note = " ".join(result.chosen.notes)
    assert "evaluate.metrics does not measure it" in note and "for its size" in note, note
    # a metric asked for and measured on no candidate (throughput on an encoder: an Olive config's vanished)
    result = olive_ext.run({"input_model": {"path": str(tiny_bert)}, "passes": {"e": {"type": "onnx_export"}},
                            "evaluate": {"metrics": ["latency", "throughput"], "repeats": 1, "warmup": 0}},
                           output_path=tmp_path / "c")  # fmt: skip
    assert "throughput NOT measured" in " ".join(result.notes), result.notes
    assert not any("latency NOT measured" in n for n in result.notes)


def test_limits_the_chosen_candidate_was_not_measured_for_are_listed(
    tiny_llama: Path, eval_file: Path, tmp_path: Path
) -> None:
    """A build for a GPU this machine lacks was chosen with its accuracy limit unchecked: the report said "NOT
    checked", candidates.json listed no unchecked constraint, and the console said nothing."""
    import json


    result = olive_ext.run({
        "input_model": {"path": str(tiny_llama)},
        "data": {"eval": {"name": "json", "data_files": str(eval_file), "text_template": "Q: {q}\nA: {a}"}},
        "passes": {"b": {"type": "model_builder", "precision": "int4"}},
        "targets": [{"device": "gpu"}],
        "evaluate": {"data": "eval", "metrics": ["size", "latency", "exact_match"],
                     "constraints": {"max_accuracy_drop": 1, "max_latency_ms": 50}},
    }, output_path=tmp_path / "out")  # fmt: skip
    assert set(result.unchecked_constraints) == {"max_accuracy_drop", "max_latency_ms"}
    written = json.loads((tmp_path / "out" / "candidates.json").read_text())
    assert set(written["unchecked_constraints"]) == {"max_accuracy_drop", "max_latency_ms"}
    assert any("its target does not run on this machine" in n for n in written["notes"])


def test_an_evaluation_only_recipe_on_a_target_this_machine_lacks_is_refused_before_work(
    tiny_bert: Path, tmp_path: Path
) -> None:
    """Olive's llama2_generate config (no passes, a latency evaluator on CUDA) exited 0 with nothing measured."""

    recipe = {"input_model": {"path": str(tiny_bert)}, "passes": {}, "targets": [{"device": "gpu"}],
              "evaluate": {"metrics": ["latency"]}}  # fmt: skip
    with pytest.raises(UserInputError, match=r"only evaluates the input model \(latency\) on CUDAExecutionProvider"):
        olive_ext.run(recipe, output_path=tmp_path / "gpu")
    assert [p.category for p in olive_ext.validate(recipe) if p.severity == "error"] == ["device"]  # said "valid"
    assert not (tmp_path / "gpu").exists()
    size_only = {**recipe, "evaluate": {"metrics": ["size"]}}  # measured without running the model: it runs
    assert olive_ext.run(size_only, output_path=tmp_path / "size").chosen is not None


def test_validate_names_a_hub_model_this_offline_machine_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`validate` said "valid" to a recipe whose hub model `run` then refused at once (offline, not in the hub
    cache); it says so now, at the model's key, as a ``hub`` problem; a cached copy makes the recipe valid."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    ours = {"input_model": {"path": "acme/tiny-llm"}, "passes": {"b": {"type": "model_builder"}}}
    olive = {"input_model": {"type": "HfModel", "model_path": "acme/tiny-llm"},
             "passes": {"mb": {"type": "ModelBuilder", "precision": "int4"}}}  # fmt: skip
    for raw, where in ((ours, "input_model.path"), (olive, "input_model.model_path")):
        problems = [p for p in validate(raw) if p.severity == "error"]
        assert [(p.path, p.category) for p in problems] == [(where, "hub")], problems
        assert "'acme/tiny-llm' is not on this machine" in problems[0].message
    put_in_hub_cache(monkeypatch, tmp_path / "hub", "acme/tiny-llm")
    assert validate(ours) == [] and [p for p in validate(olive) if p.severity == "error"] == []


def test_a_model_loaders_hub_model_is_checked_before_the_users_script_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Olive config whose model_loader is handed a hub id (SAM, Parakeet, FLUX in olive-recipes) validated, and
    `run` went into the user's script, which loads it from the hub and fails offline; both name the model now."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    (tmp_path / "user_script.py").write_text("def load(model_path):\n    raise RuntimeError('the loader ran')\n")
    config = tmp_path / "olive.json"
    io_config = {"input_names": ["x"], "output_names": ["y"], "input_shapes": [[1, 4]]}
    model = {"type": "PyTorchModel", "model_path": "acme/sam", "model_loader": "load", "model_script": "user_script.py",
             "io_config": io_config}  # fmt: skip
    passes = {"conv": {"type": "OnnxConversion", "target_opset": 17}}
    config.write_text(json.dumps({"input_model": model, "passes": passes, "output_dir": str(tmp_path / "out")}))
    errors = [p for p in validate(config) if p.severity == "error"]
    assert [(p.path, p.category) for p in errors] == [("input_model.model_path", "hub")], errors
    with pytest.raises(UserInputError, match="'acme/sam' is not on this machine") as raised:
        olive_ext.run(config)
    assert "hf download acme/sam" in (raised.value.hint or "") and not (tmp_path / "out").exists()
    put_in_hub_cache(monkeypatch, tmp_path / "hub", "acme/sam")
    assert [p for p in validate(config) if p.severity == "error"] == []


def test_an_llm_export_of_a_cached_hub_model_is_refused_at_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An LLM given to an ONNX export was refused at validation only from a local folder: a hub id in the hub cache
    validated and failed at run time (README "Known gaps"); its cached config.json names the architecture."""
    hub = put_in_hub_cache(monkeypatch, tmp_path / "hub", "acme/llm")
    config = next((hub / "models--acme--llm" / "snapshots").iterdir()) / "config.json"
    config.write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    olive = {"input_model": {"type": "HfModel", "model_path": "acme/llm"},
             "passes": {"conv": {"type": "OnnxConversion", "target_opset": 17}}}  # fmt: skip
    errors = [p for p in validate(olive) if p.severity == "error"]
    assert [p.path for p in errors] == ["passes.conv"], errors
    assert "the input model is an LLM (LlamaForCausalLM)" in errors[0].message


def test_the_recipe_a_run_without_eval_data_writes_validates(tiny_llama: Path, tmp_path: Path) -> None:
    """No eval data: accuracy is not measured, so the written recipe leaves out the default max_accuracy_drop that
    its loader refuses spelt out ("limits accuracy in points, which evaluate.metrics does not measure")."""
    from olive_ext.cli import main  # as _validate_file: the CLI entry point, imported where the CLI is exercised

    out = tmp_path / "out"
    fast = ["--max_candidates", "2", "--warmup", "0", "--repeats", "1", "--new_tokens", "8", "--prompt_tokens", "16"]
    assert main(["auto-opt", "-m", str(tiny_llama), "-o", str(out), "--precision", "fp32", *fast]) == 0
    _, problems = check_recipe(yaml.safe_load((out / "recipe.yaml").read_text()))
    assert [p.render() for p in problems if p.severity == "error"] == []
    assert main(["validate", str(out / "recipe.yaml")]) == 0

