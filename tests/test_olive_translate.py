"""Olive run configs are translated completely or refused loudly: pass types case-insensitive, native passes where
they honour every option and Olive's own pass otherwise, user hooks found or named, vendor targets refused naming the
SDK and device, keys named as the user's file spells them, and --lenient turning dropped keys into warnings."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import put_in_hub_cache

import olive_ext
from olive_ext.errors import RecipeError
from olive_ext.recipe import check_recipe, olive_compat, parse_recipe
from olive_ext.recipe.olive_compat import translate, translate_config

needs_olive = pytest.mark.skipif(not olive_compat.olive_ai_installed(), reason="olive-ai is an extra (make install)")


def _errors(problems: list[Any]) -> dict[str, Any]:
    return {p.path: p for p in problems if p.severity == "error"}


def _config(passes: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"input_model": {"type": "HfModel", "model_path": "org/llm"}, "passes": passes, **more}


def test_pass_types_match_case_insensitively_and_native_passes_stay_the_default() -> None:
    out, problems = translate(
        _config(
            {"opt": {"type": "orttransformersoptimization", "opt_level": 1}, "q": {"type": "ONNXDYNAMICQUANTIZATION"}}
        )
    )
    assert out["passes"]["opt"]["type"] == "graph_optimize"
    assert out["passes"]["q"]["type"] == "int8_dynamic"
    assert not _errors(problems)


def test_options_an_olive_config_leaves_out_take_olives_defaults() -> None:
    """OnnxDynamicQuantization without per_channel was built per channel (ours), where Olive 0.13 builds per
    tensor; OnnxKQuantQuantization without block_size was given 128 (Olive's default is 32, and our k-quant then
    failed on MiniLM: "cannot reshape array of size 576"). A value the config gives stays."""
    passes = {"dq": {"type": "OnnxDynamicQuantization"}, "sq": {"type": "OnnxStaticQuantization"},
              "kq": {"type": "OnnxKQuantQuantization"}, "rtn": {"type": "OnnxBlockWiseRtnQuantization"},
              "dq_pc": {"type": "OnnxDynamicQuantization", "per_channel": True}}  # fmt: skip
    out = translate(_config(passes))[0]["passes"]
    assert (out["dq"]["per_channel"], out["sq"]["per_channel"], out["dq_pc"]["per_channel"]) == (False, False, True)
    assert (out["kq"]["block_size"], out["rtn"]["block_size"]) == (32, 128)


def test_errors_name_the_users_key_not_the_translated_one() -> None:
    raw = _config({"conversion": {"type": "OnnxConversion", "target_opset": 99}})
    _, problems = check_recipe(raw)
    assert "passes.conversion.target_opset" in _errors(problems)
    assert not any(p.path.endswith(".opset") for p in problems)
    nested = _config({"conversion": {"type": "OnnxConversion", "config": {"target_opset": 99}}})
    assert "passes.conversion.config.target_opset" in _errors(check_recipe(nested)[1])


def test_a_number_out_of_range_says_what_the_range_is_for() -> None:
    """Olive's falcon example asks for opset 13: the refusal gives the field's own reason, not the bound alone."""
    error = _errors(check_recipe(_config({"conversion": {"type": "OnnxConversion", "target_opset": 13}}))[1])
    problem = error["passes.conversion.target_opset"]
    assert problem.value == 13 and "greater than or equal to 14" in problem.message
    assert problem.hint and "attention" in problem.hint and "from opset 14" in problem.hint
    native = _errors(check_recipe({"passes": {"export": {"type": "onnx_export", "opset": 30}}})[1])
    assert "14 to 23" in (native["passes.export.opset"].hint or "")


@needs_olive
def test_every_other_olive_type_runs_through_the_olive_step_with_its_canonical_name() -> None:
    out, problems = translate(
        _config(
            {
                "conv": {"type": "OnnxConversion"},
                "peep": {"type": "onnxpeepholeoptimizer"},
                "fp16": {"type": "OnnxFloatToFloat16", "keep_io_types": True},
            }
        )
    )
    assert out["passes"]["peep"] == {"type": "olive", "olive_type": "OnnxPeepholeOptimizer", "config": {}}
    assert out["passes"]["fp16"] == {
        "type": "olive",
        "olive_type": "OnnxFloatToFloat16",
        "config": {"keep_io_types": True},
    }
    assert not _errors(problems)


@needs_olive
def test_an_option_our_pass_lacks_runs_olives_own_pass_and_says_so() -> None:
    raw = _config({"conversion": {"type": "OnnxConversion", "target_opset": 17, "size_threshold": 2048}})
    out, problems = translate(raw)
    assert out["passes"]["conversion"] == {
        "type": "olive",
        "olive_type": "OnnxConversion",
        "config": {"target_opset": 17, "size_threshold": 2048},
    }
    note = next(p for p in problems if p.severity == "note")
    assert note.path == "passes.conversion.type" and "size_threshold" in note.message


def test_without_olive_ai_an_olive_only_pass_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(olive_compat, "olive_ai_installed", lambda: False)
    _, problems = check_recipe(_config({"peep": {"type": "OnnxPeepholeOptimizer"}}))
    errors = _errors(problems)
    assert list(errors) == ["passes.peep.type"]  # and no "the recipe has no passes" after it
    assert "pip install 'olive-ext[olive]'" in errors["passes.peep.type"].render()
    assert "\n" not in errors["passes.peep.type"].render()


def test_an_option_no_pass_here_takes_is_an_error_and_lenient_drops_it_with_a_warning() -> None:
    # Olive's ModelBuilder does not work with our onnxruntime-genai, so ours runs it and cannot fall back
    raw = _config({"mb": {"type": "ModelBuilder", "precision": "int4", "frobnicate": 3}})
    problems = _errors(check_recipe(raw)[1])
    assert problems["passes.mb.frobnicate"].category == "unhonoured"
    assert "--lenient" in problems["passes.mb.frobnicate"].render()
    recipe = parse_recipe(raw, lenient=True)
    assert "frobnicate" not in recipe.passes["mb"].params()
    assert any("passes.mb.frobnicate" in w for w in recipe.translation_warnings)


def test_a_builder_option_the_builder_never_reads_is_unhonoured_not_passed_on_silently() -> None:
    """olive-recipes' Qwen3.5-2B cuda config gives extra_options quant_mode, which onnxruntime-genai's builder never
    reads (it would ignore it without a word): an error naming it (did-you-mean for a misspelling), dropped with a
    warning under --lenient; a recipe's model_builder pass refuses it too."""
    extra = {"quant_mode": "int4", "is_symetric": "true", "filename": "t.onnx"}
    raw = _config({"mb": {"type": "ModelBuilder", "precision": "int4", "extra_options": extra}})
    problems = _errors(check_recipe(raw)[1])
    assert problems["passes.mb.extra_options.quant_mode"].category == "unhonoured"
    assert "did you mean is_symmetric?" in problems["passes.mb.extra_options.is_symetric"].render()
    recipe = parse_recipe(raw, lenient=True)
    assert recipe.passes["mb"].params()["extra_options"] == {"filename": "t.onnx"}
    ours = {
        "input_model": {"path": "m"},
        "passes": {"b": {"type": "model_builder", "extra_options": {"quant_mode": 1}}},
    }
    assert "extra_options.quant_mode: the model builder reads no such option" in " ".join(
        p.render() for p in check_recipe(ours)[1])  # fmt: skip


def test_model_builder_honours_extra_options_filename_and_lifted_int4_options() -> None:
    raw = _config(
        {
            "mb": {
                "type": "ModelBuilder",
                "precision": "int4",
                "extra_options": {"filename": "decoder.onnx", "int4_accuracy_level": 4},
            }
        }
    )
    recipe, problems = check_recipe(raw)
    assert recipe is not None and not _errors(problems), [p.render() for p in problems]
    params = recipe.passes["mb"].params()
    assert params["accuracy_level"] == 4 and params["extra_options"] == {"filename": "decoder.onnx"}
    bad = _config({"mb": {"type": "ModelBuilder", "extra_options": {"filename": "../x.onnx"}}})
    assert "filename" in " ".join(p.render() for p in check_recipe(bad)[1])


@pytest.mark.parametrize(
    ("device", "provider", "category", "needle"),
    [
        ("gpu", "NvTensorRTRTXExecutionProvider", "sdk", "RTX GPU"),
        ("npu", "QNNExecutionProvider", "sdk", "Snapdragon NPU"),
        ("npu", "VitisAIExecutionProvider", "sdk", "Ryzen AI NPU"),
        ("npu", "OpenVINOExecutionProvider", "device", "Intel NPU"),
    ],
)
def test_vendor_targets_are_refused_naming_the_sdk_and_the_device(
    device: str, provider: str, category: str, needle: str
) -> None:
    raw = _config(
        {"mb": {"type": "ModelBuilder"}},
        systems={"s": {"type": "LocalSystem", "accelerators": [{"device": device, "execution_providers": [provider]}]}},
    )
    problems = _errors(check_recipe(raw)[1])
    problem = problems["systems.s.accelerators[0].execution_providers[0]"]
    assert problem.category == category and needle in problem.message
    assert len(problems) == 1  # nothing follows from it


def test_load_kwargs_are_honoured_or_named(tmp_path: Path) -> None:
    raw = _config({"mb": {"type": "ModelBuilder", "precision": "fp32"}})
    raw["input_model"]["load_kwargs"] = {"torch_dtype": "bfloat16", "trust_remote_code": True, "weird": 1}
    out, problems = translate(raw)
    assert out["input_model"]["trust_remote_code"] is True
    paths = {p.path: p for p in problems}
    assert paths["input_model.load_kwargs.weird"].category == "unhonoured"
    assert paths["input_model.load_kwargs.torch_dtype"].severity == "note"  # ModelBuilder builds at `precision`
    off = _config({"mb": {"type": "ModelBuilder"}})
    off["input_model"]["load_kwargs"] = {"trust_remote_code": False}
    assert "trust_remote_code" not in translate(off)[0]["input_model"]


@needs_olive
def test_user_hooks_are_found_as_olive_finds_them_and_go_to_olives_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from olive_ext.passes.base import get_pass

    (tmp_path / "loader.py").write_text("def load(path):\n    return None\n\ndef dummy(model):\n    return {}\n")
    raw = {
        "input_model": {
            "type": "PyTorchModel",
            "model_path": "org/m",
            "model_script": "loader.py",
            "model_loader": "load",
            "dummy_inputs_func": "dummy",
            "load_kwargs": {"torch_dtype": "float16"},
        },
        "passes": {"conversion": {"type": "OnnxConversion", "target_opset": 17}},
    }
    # while the olive step loads models from model_path alone, each key it would skip is named
    olive_step = get_pass("olive")
    assert olive_step is not None
    if not getattr(olive_step, "loads_olive_model", False):
        refused = _errors(translate_config(raw, base_dir=tmp_path).problems)
        assert {"input_model.model_loader", "input_model.dummy_inputs_func", "input_model.load_kwargs.torch_dtype"} <= (
            set(refused)
        )
        assert all(p.category == "unhonoured" for p in refused.values())
    monkeypatch.setattr(olive_step, "loads_olive_model", True, raising=False)
    t = translate_config(raw, base_dir=tmp_path)
    assert not _errors(t.problems), [p.render() for p in t.problems]
    assert t.recipe["passes"]["conversion"]["type"] == "olive"  # Olive's conversion calls the user's loader
    olive_model = t.recipe["input_model"]["olive"]
    assert olive_model["model_script"] == str((tmp_path / "loader.py").resolve())
    assert olive_model["load_kwargs"] == {"torch_dtype": "float16"}

    missing = dict(raw, input_model={**raw["input_model"], "model_script": "nope.py"})
    problem = _errors(translate_config(missing, base_dir=tmp_path).problems)["input_model.model_script"]
    assert problem.category == "user_file"
    undefined = dict(raw, input_model={**raw["input_model"], "model_loader": "load_it"})
    problem = _errors(translate_config(undefined, base_dir=tmp_path).problems)["input_model.model_loader"]
    assert "loader.py defines no function 'load_it'" in problem.message
    # the script is imported, as Olive will import it: what it lacks failed the run after its first steps
    (tmp_path / "needs.py").write_text("import not_a_module_xyz\n\ndef load(path):\n    return None\n\n"
                                       "def dummy(model):\n    return {}\n")  # fmt: skip
    lacking = dict(raw, input_model={**raw["input_model"], "model_script": "needs.py"})
    problem = _errors(translate_config(lacking, base_dir=tmp_path).problems)["input_model.model_script"]
    assert problem.category == "package" and "'not_a_module_xyz'" in problem.message
    # an import inside a function ran when Olive loaded the model (NeMo's loaders: `import nemo` in the loader)
    (tmp_path / "inside.py").write_text("import json\n\ndef _helper():\n    from not_a_module_abc.sub import x\n\n"
                                        "def load(path):\n    return _helper()\n\ndef dummy(model):\n"
                                        "    try:\n        import not_a_module_opt\n    except ImportError:\n"
                                        "        pass\n    return {}\n\ndef other_config_loader(path):\n"
                                        "    import not_a_module_zzz\n")  # fmt: skip
    inside = dict(raw, input_model={**raw["input_model"], "model_script": "inside.py"})
    problem = _errors(translate_config(inside, base_dir=tmp_path).problems)["input_model.model_script"]
    assert problem.category == "package" and "_helper() imports 'not_a_module_abc'" in problem.message
    # a module beside the script imports; a function no hook calls (another config's loader) is not read
    (tmp_path / "not_a_module_abc.py").write_text("x = 1\n")
    assert not _errors(translate_config(inside, base_dir=tmp_path).problems)
    (tmp_path / "raises.py").write_text("raise RuntimeError('no GPU here')\n\ndef load(path):\n    return None\n\n"
                                        "def dummy(model):\n    return {}\n")  # fmt: skip
    raising = dict(raw, input_model={**raw["input_model"], "model_script": "raises.py"})
    problem = _errors(translate_config(raising, base_dir=tmp_path).problems)["input_model.model_script"]
    assert "RuntimeError: no GPU here" in problem.message
    (tmp_path / "moves.py").write_text("import os\nos.chdir('/')\n\ndef load(path):\n    return None\n\n"
                                       "def dummy(model):\n    return {}\n")  # fmt: skip
    here = Path.cwd()
    moving = dict(raw, input_model={**raw["input_model"], "model_script": "moves.py"})
    assert not _errors(translate_config(moving, base_dir=tmp_path).problems)
    assert Path.cwd() == here  # the run hashed the whole file system from '/' after such a validation


def test_a_data_config_user_script_that_is_missing_is_a_named_refusal(tmp_path: Path) -> None:
    raw = _config(
        {},
        data_configs=[
            {
                "name": "d",
                "type": "HuggingfaceContainer",
                "user_script": "gone.py",
                "load_dataset_config": {"data_name": "glue", "subset": "mrpc"},
            }
        ],
    )
    problems = _errors(translate_config(raw, base_dir=tmp_path).problems)
    assert problems["data_configs[0].user_script"].category == "user_file"


def test_a_data_configs_local_files_are_found_beside_the_config_or_named_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Olive's datasets reader opens data_files from the folder it runs in: a file beside the config is made
    absolute (a run from elsewhere reads it), a missing one is refused at its key before any work (it validated,
    then failed the run after the steps before the pass that reads it)."""
    (tmp_path / "calib.txt").write_text("some text\nmore text\n")
    monkeypatch.chdir(tmp_path.parent)
    raw = _config(
        {},
        data_configs=[
            {"name": "c", "load_dataset_config": {"data_name": "text", "data_files": "calib.txt"}},
            {"name": "g", "load_dataset_config": {"params": {"data_name": "json", "data_files": ["gone.jsonl"]}}},
            {"name": "s", "load_dataset_config": {"data_files": {"train": "calib.txt", "test": ["nope.csv"]}}},
        ],
    )
    t = translate_config(raw, base_dir=tmp_path)
    problems = _errors(t.problems)
    assert set(problems) == {
        "data_configs[1].load_dataset_config.params.data_files[0]",
        "data_configs[2].load_dataset_config.data_files.test[0]",
    }
    assert all(p.category == "user_file" for p in problems.values())
    assert problems["data_configs[1].load_dataset_config.params.data_files[0]"].value == "gone.jsonl"
    assert t.recipe["data"]["c"]["data_files"] == str((tmp_path / "calib.txt").resolve())


def test_evaluators_map_to_our_metrics_and_name_what_they_cannot_measure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = _config(
        {"mb": {"type": "ModelBuilder"}},
        data_configs=[
            {
                "name": "qa",
                "load_dataset_config": {"data_files": "qa.jsonl"},
                "pre_process_data_config": {"text_template": "Q: {q}\nA: {a}"},
            }
        ],
        metrics=[
            {
                "name": "acc",
                "type": "accuracy",
                "data_config": "qa",
                "sub_types": [
                    {"name": "accuracy_score", "goal": {"type": "max-degradation", "value": 0.02}},
                    {"name": "f1_score"},
                ],
            }
        ],
        evaluators={"e": {"metrics": ["acc", {"name": "lat", "type": "latency", "sub_types": [{"name": "avg"}]}]}},
        search_strategy={"execution_order": "joint", "sampler": "sequential"},  # goals choose among searched ones
    )
    out, problems = translate(raw)
    assert out["evaluate"] == {
        "metrics": ["accuracy", "latency"],
        "constraints": {"max_accuracy_drop": 2.0},
        "data": "qa",
    }
    assert _errors(problems)["metrics[0].sub_types[1].name"].category == "unhonoured"
    lm = _config({"mb": {"type": "ModelBuilder"}}, evaluators={"e": {"type": "LMEvaluator", "tasks": ["mmlu"]}})
    if importlib.util.find_spec("lm_eval") is None:  # Olive's LMEvaluator runs lm-eval: a named package
        assert _errors(translate(lm)[1])["evaluators.e.type"].category == "package"
    else:  # runs through lm-eval; mmlu's hub dataset is not in the (empty) Hugging Face cache: a named refusal
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
        assert _errors(translate(lm)[1])["evaluators.e.tasks"].category == "hub"


def test_a_latency_percent_min_improvement_goal_becomes_a_constraint() -> None:
    raw = _config(
        {"mb": {"type": "ModelBuilder"}},
        evaluators={"e": {"metrics": [{"name": "lat", "type": "latency", "sub_types": [
            {"name": "avg", "goal": {"type": "percent-min-improvement", "value": 20}}]}]}},
        search_strategy={"execution_order": "joint", "sampler": "sequential"},
    )  # fmt: skip
    out, problems = translate(raw)
    assert not _errors(problems), [p.render() for p in problems]
    # no accuracy limit of olive-ext's own: an Olive config's limits are its goals
    assert out["evaluate"]["constraints"] == {"min_latency_improvement_pct": 20.0, "max_accuracy_drop": None}


def test_older_olives_auto_optimizer_switched_off_is_a_note_and_switched_on_an_error_naming_auto_opt() -> None:
    """Olive's llama2_generate example: no passes, an evaluator, `auto_optimizer_config: {disable_auto_optimizer:
    true}` (a key olive-ai 0.13 itself refuses): it asks for nothing, so the evaluator runs on the input model."""
    evaluators = {"e": {"metrics": [{"name": "lat", "type": "latency", "sub_types": [{"name": "avg"}]}]}}
    off = _config({}, evaluators=evaluators, auto_optimizer_config={"disable_auto_optimizer": True})
    recipe, problems = check_recipe(off)
    assert not _errors(problems), [p.render() for p in problems]
    assert recipe is not None and not recipe.passes and "latency" in recipe.evaluate.metrics
    assert any(p.path == "auto_optimizer_config" and p.severity == "note" for p in problems)
    on = _config({"mb": {"type": "ModelBuilder"}}, auto_optimizer_config={"opt_level": 0})
    error = _errors(check_recipe(on)[1])["auto_optimizer_config"]
    assert "auto-opt" in (error.hint or "")


def test_unknown_top_level_keys_are_named_and_lenient_lists_them_in_the_report_notes() -> None:
    raw = _config({"mb": {"type": "ModelBuilder"}}, packaging_config={"type": "Zipfile"}, frobnicate=1)
    errors = _errors(check_recipe(raw)[1])
    assert {"packaging_config", "frobnicate"} <= set(errors)
    recipe = parse_recipe(raw, lenient=True)
    assert sum("frobnicate" in w or "packaging_config" in w for w in recipe.translation_warnings) == 2


def test_engine_keys_are_named_under_engine() -> None:
    raw = _config({"mb": {"type": "ModelBuilder"}}, engine={"search_strategy": {"sampler": "bayes"}})
    assert "engine.search_strategy.sampler" in _errors(check_recipe(raw)[1])


def test_validate_cli_lenient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from olive_ext.cli import main

    put_in_hub_cache(monkeypatch, tmp_path / "hub", "org/llm")
    path = tmp_path / "olive.json"
    path.write_text(json.dumps(_config({"mb": {"type": "ModelBuilder"}}, frobnicate=1)))
    assert main(["validate", str(path)]) == 2
    assert main(["validate", str(path), "--lenient"]) == 0
    with pytest.raises(RecipeError):
        olive_ext.run(path, output_path=tmp_path / "o")


def test_olive_config_with_an_accuracy_evaluator_runs_and_records_the_metric(
    tiny_llama: Path, eval_file: Path, tmp_path: Path
) -> None:
    """End to end: the Olive evaluator's accuracy metric is measured on its data config; --lenient warnings (an
    Olive key not honoured) are listed in candidates.json and the report."""
    raw = {
        "input_model": {"type": "HfModel", "model_path": str(tiny_llama)},
        "data_configs": [
            {
                "name": "qa",
                "type": "HuggingfaceContainer",
                "load_dataset_config": {"data_files": str(eval_file), "split": "train"},
                "pre_process_data_config": {"text_template": "what: {q}\nanswer: {a}"},
            }
        ],
        "passes": {"builder": {"type": "ModelBuilder", "precision": "fp32"}},
        "evaluators": {
            "common": {
                "metrics": [
                    {"name": "acc", "type": "accuracy", "data_config": "qa", "sub_types": [{"name": "accuracy_score"}]}
                ]
            }
        },
        "evaluator": "common",
        "output_dir": str(tmp_path / "out"),
        "clean_cache": True,
        "frobnicate": 1,
    }
    path = tmp_path / "olive.json"
    path.write_text(json.dumps(raw))
    result = olive_ext.run(path, lenient=True)
    data = json.loads((result.output_dir / "candidates.json").read_text())
    assert data["accuracy_measured"] is True
    assert all("accuracy" in c["metrics"] for c in data["candidates"] if not c.get("error"))
    assert any("frobnicate" in n for n in data["notes"])
    assert "frobnicate" in (result.output_dir / "report.html").read_text()


def _olive_step_loads_olive_model() -> bool:
    from olive_ext.passes.base import get_pass

    return bool(getattr(get_pass("olive"), "loads_olive_model", False))


@needs_olive
@pytest.mark.skipif(not _olive_step_loads_olive_model(), reason="the olive step loads models from model_path alone")
def test_the_users_model_loader_runs_as_olive_runs_it(tiny_bert: Path, tmp_path: Path) -> None:
    """End to end: a PyTorchModel with model_script/model_loader/dummy_inputs_func/io_config, converted by Olive's
    OnnxConversion, which calls the user's loader (it leaves a file behind)."""
    (tmp_path / "user.py").write_text(
        "import pathlib\nimport torch\nfrom transformers import AutoModelForSequenceClassification\n\n"
        "def load(path):\n"
        "    (pathlib.Path(__file__).parent / 'loader_called').write_text(path)\n"
        "    return AutoModelForSequenceClassification.from_pretrained(path)\n\n"
        "def dummy(model):\n"
        "    ones = torch.ones(1, 8, dtype=torch.int64)\n"
        "    return {'input_ids': ones, 'attention_mask': ones}\n"
    )
    axes = {"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}}
    raw = {
        "input_model": {
            "type": "PyTorchModel",
            "model_path": str(tiny_bert),
            "model_script": "user.py",
            "model_loader": "load",
            "dummy_inputs_func": "dummy",
            "io_config": {"input_names": ["input_ids", "attention_mask"], "output_names": ["logits"],
                          "dynamic_axes": axes},
        },
        "passes": {"conversion": {"type": "OnnxConversion", "target_opset": 17}},
        "output_dir": str(tmp_path / "out"),
    }  # fmt: skip
    config = tmp_path / "olive.json"
    config.write_text(json.dumps(raw))
    result = olive_ext.run(config)
    assert (tmp_path / "loader_called").read_text() == str(tiny_bert)
    assert (result.model_path / "model.onnx").is_file()


def test_openvino_cpu_targets_are_the_cpu_when_openvino_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    from olive_ext.recipe import olive_sections

    systems = {"s": {"accelerators": [{"device": "cpu", "execution_providers": ["OpenVINOExecutionProvider"]}]}}
    raw = _config({"mb": {"type": "ModelBuilder"}}, systems=systems)
    monkeypatch.setattr(olive_sections, "openvino_installed", lambda: False)
    problem = _errors(translate(raw)[1])["systems.s.accelerators[0].execution_providers[0]"]
    assert problem.category == "sdk" and "olive-ext[openvino]" in problem.render()
    monkeypatch.setattr(olive_sections, "openvino_installed", lambda: True)
    out, problems = translate(raw)
    assert out["targets"] == [{"device": "cpu"}] and not _errors(problems)


@needs_olive
def test_olive_passes_are_validated_for_the_configs_target_accelerator() -> None:
    """Olive generates a pass's config for the system's accelerator: float16 transformer optimisation is refused
    for the CPU (with Olive's own reason) and valid for a CUDA or DirectML target, which the olive step carries."""
    from olive_ext.passes.base import get_pass

    options = {"enable_gelu": True, "enable_packed_qkv": True}  # options olive-ext's graph_optimize does not take
    opt = {"opt": {"type": "OrtTransformersOptimization", "model_type": "bert", "float16": True, "use_gpu": True,
                   "optimization_options": options}}  # fmt: skip
    olive_step = get_pass("olive")
    assert olive_step is not None
    for provider, device in (("CUDAExecutionProvider", "gpu"), ("DmlExecutionProvider", "gpu")):
        systems = {"s": {"type": "LocalSystem", "accelerators": [{"execution_providers": [provider]}]}}
        step = translate(_config(opt, systems=systems))[0]["passes"]["opt"]
        assert step["type"] == "olive" and (step["device"], step["execution_provider"]) == (device, provider)
        assert olive_step.check_params(step, "passes.opt") == []
    cpu_step = {k: v for k, v in step.items() if k not in ("device", "execution_provider")}
    (problem,) = olive_step.check_params(cpu_step, "passes.opt")
    assert "CPUExecutionProvider does not support float16" in problem.message
    assert problem.category == "olive_refuses"  # counted as Olive's own refusal, not as ours


@needs_olive
def test_a_value_olives_own_pass_config_refuses_is_counted_as_olives_refusal() -> None:
    """Olive's directml squeezenet example gives OrtSessionParamsTuning lists where olive-ai 0.13 declares a
    string and an integer: olive-ai's own config class refuses them, and the problems say so, per key."""
    from olive_ext.passes.base import get_pass

    tune = {"tune": {"type": "OrtSessionParamsTuning", "execution_mode_list": ["ORT_SEQUENTIAL"],
                     "providers_list": ["DmlExecutionProvider"]}}  # fmt: skip
    systems = {"s": {"type": "LocalSystem", "accelerators": [{"execution_providers": ["DmlExecutionProvider"]}]}}
    step = translate(_config(tune, systems=systems))[0]["passes"]["tune"]
    olive_step = get_pass("olive")
    assert olive_step is not None
    problems = {p.path: p for p in olive_step.check_params(step, "passes.tune")}
    assert set(problems) == {"passes.tune.config.providers_list", "passes.tune.config.execution_mode_list"}
    for problem in problems.values():
        assert problem.message.startswith("Olive's OrtSessionParamsTuning refuses it: Input should be a valid")
        assert problem.category == "olive_refuses"
    step["config"] = {"providers_list": "DmlExecutionProvider"}  # the type Olive declares: a provider not here
    assert [p.category for p in olive_step.check_params(step, "passes.tune")] == ["device"]  # it measures on it


@needs_olive
def test_no_model_kind_follow_on_error_after_a_refused_olive_pass() -> None:
    raw = _config({"ov": {"type": "OpenVINOOptimumConversion"}, "peep": {"type": "OnnxPeepholeOptimizer"}})
    errors = _errors(check_recipe(raw)[1])
    assert "passes.ov.type" in errors
    assert not any("models, but" in p.message for p in errors.values()), errors


def test_an_export_chain_ending_in_metadata_only_is_one_model_builder_build() -> None:
    """olive-recipes' Llama-3.2 adapter configs: OnnxConversion -> OrtTransformersOptimization -> ExtractAdapters
    -> ModelBuilder(metadata_only) is one model_builder build with the adapter as inputs; each folded pass is
    named in a note; without ExtractAdapters the adapter is merged; DoRA/LoHa extraction is refused."""
    chain = {"c": {"type": "OnnxConversion", "torch_dtype": "float16"},
             "o": {"type": "OrtTransformersOptimization", "model_type": "gpt2", "float16": True},
             "e": {"type": "ExtractAdapters"},
             "m": {"type": "ModelBuilder", "metadata_only": True, "precision": "fp16"}}  # fmt: skip
    recipe, problems = check_recipe(_config(chain))
    assert recipe is not None, [p.render() for p in problems]
    assert list(recipe.passes) == ["m"] and recipe.passes["m"].type == "model_builder"
    assert recipe.passes["m"].params() == {"precision": "fp16", "adapter_mode": "inputs"}
    notes = {p.path for p in problems if p.severity == "note"}
    assert {"passes.c.type", "passes.o.type", "passes.e.type", "passes.m.metadata_only"} <= notes
    merged = {k: v for k, v in chain.items() if k != "e"}
    recipe, _ = check_recipe(_config(merged))
    assert recipe is not None and recipe.passes["m"].params() == {"precision": "fp16"}  # merge: the default
    dora = {**chain, "e": {"type": "ExtractAdapters", "adapter_type": "dora"}}
    errors = _errors(check_recipe(_config(dora))[1])
    assert set(errors) == {"passes.e.adapter_type"} and "remove e" in (errors["passes.e.adapter_type"].hint or "")
    # Olive's older nested format: the notes name the keys where the file has them
    nested = {**chain, "m": {"type": "ModelBuilder", "config": {"metadata_only": True, "precision": "fp16"}}}
    recipe, problems = check_recipe(_config(nested))
    assert recipe is not None and recipe.passes["m"].params() == {"precision": "fp16", "adapter_mode": "inputs"}
    assert "passes.m.config.metadata_only" in {p.path for p in problems if p.severity == "note"}
    # another pass in the chain (Phi-4's GraphSurgeries after a quantized export): still refused, saying why
    other = {"c": {"type": "OnnxConversion"}, "g": {"type": "GraphSurgeries", "surgeries": []},
             "m": {"type": "ModelBuilder", "metadata_only": True, "precision": "fp16"}}  # fmt: skip
    errors = _errors(check_recipe(_config(other))[1])
    assert "passes.m.metadata_only" in errors and "passes.m" not in errors, errors  # no model-kind follow-on
    assert "adapter_mode: inputs" in (errors["passes.m.metadata_only"].hint or "")
    # false is Olive's default: the builder exports the model itself
    passes = {"m": {"type": "ModelBuilder", "metadata_only": False, "precision": "int4"}}
    assert not _errors(check_recipe(_config(passes))[1])


def test_an_olive_lora_export_config_runs_end_to_end(tiny_llama: Path, tmp_path: Path) -> None:
    """The same chain after a LoRA fine-tune, on the tiny Llama: `olive-ext run` trains, builds one genai model
    whose adapter weights are inputs in an .onnx_adapter file, and smoke-runs it."""
    from olive_ext.cli import main

    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps({"q": f"q{i}", "a": f"a{i}"}) for i in range(8)))
    config = {
        "input_model": {"type": "HfModel", "model_path": str(tiny_llama)},
        "data_configs": [{"name": "train", "type": "HuggingfaceContainer",
                          "load_dataset_config": {"data_name": "json", "data_files": str(data), "split": "train"},
                          "pre_process_data_config": {"text_template": "{q} {a}"}}],
        "passes": {"l": {"type": "LoRA", "r": 4, "alpha": 8, "train_data_config": "train",
                         "training_args": {"max_steps": 2, "per_device_train_batch_size": 2}},
                   "c": {"type": "OnnxConversion"}, "o": {"type": "OrtTransformersOptimization", "model_type": "gpt2"},
                   "e": {"type": "ExtractAdapters", "make_inputs": True},
                   "m": {"type": "ModelBuilder", "metadata_only": True, "precision": "fp32"}},
        "output_dir": str(tmp_path / "out"),
    }  # fmt: skip
    path = tmp_path / "lora-export.json"
    path.write_text(json.dumps(config))
    assert main(["run", "--config", str(path), "--cache_dir", str(tmp_path / "cache")]) == 0
    out = json.loads((tmp_path / "out" / "candidates.json").read_text())
    (chosen,) = [c for c in out["candidates"] if c["chosen"]]
    assert [s["type"] for s in chosen["pipeline"]] == ["lora", "model_builder"]
    artifact = chosen["artifact"]
    assert artifact["kind"] == "genai" and artifact["meta"]["adapter_mode"] == "inputs"
    assert artifact["meta"]["smoke"]["ran"], artifact["meta"]["smoke"]
    assert (Path(artifact["path"]) / artifact["meta"]["adapter_file"]).is_file()


def test_model_builder_notes_the_task_it_does_not_read() -> None:
    raw = _config({"mb": {"type": "ModelBuilder", "precision": "fp32"}})
    raw["input_model"]["task"] = "automatic-speech-recognition"
    out, problems = translate(raw)
    assert out["passes"]["mb"]["type"] == "model_builder" and not _errors(problems)
    assert any(p.path == "input_model.task" and "config.json" in p.message for p in problems)


_USER_DATA_SCRIPT = '''
import torch
from olive.data.registry import Registry

class _Rows(torch.utils.data.Dataset):
    """Eight rows of token ids; the label is whether the first token id is even (any labels will do)."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        ids = torch.tensor([2 + i, 5, 6, 7, 8, 9, 10, 3], dtype=torch.int64)
        ones = torch.ones(8, dtype=torch.int64)
        return {"input_ids": ids, "attention_mask": ones, "token_type_ids": ones * 0}, int(i % 2 == 0)

@Registry.register_dataset()
def tiny_rows(**kwargs):
    (__import__("pathlib").Path(__file__).parent / "rows_loaded").touch()
    return _Rows()

@Registry.register_post_process()
def to_class(output):
    logits = output.logits if hasattr(output, "logits") else output
    logits = logits["logits"] if isinstance(logits, dict) else logits
    return logits.argmax(-1)
'''


@needs_olive
def test_accuracy_read_through_the_users_data_script_is_computed_by_olives_evaluator(
    tiny_bert: Path, tmp_path: Path
) -> None:
    """End to end: an accuracy metric whose data config loads rows through the user's script runs in olive-ai's
    evaluator on the converted candidate; the value lands in candidates.json under Olive's key."""
    (tmp_path / "user_data.py").write_text(_USER_DATA_SCRIPT)
    raw = {
        "input_model": {"type": "HfModel", "model_path": str(tiny_bert), "task": "text-classification"},
        "data_configs": [
            {
                "name": "rows",
                "type": "DataContainer",
                "user_script": "user_data.py",
                "load_dataset_config": {"type": "tiny_rows"},
                "post_process_data_config": {"type": "to_class"},
            }
        ],
        "passes": {"conversion": {"type": "OnnxConversion", "target_opset": 17}},
        "evaluators": {
            "common": {
                "metrics": [
                    {"name": "acc", "type": "accuracy", "data_config": "rows",
                     "sub_types": [{"name": "accuracy_score", "metric_config": {"task": "binary"}}]}
                ]
            }
        },
        "evaluator": "common",
        "output_dir": str(tmp_path / "out"),
    }  # fmt: skip
    path = tmp_path / "olive.json"
    path.write_text(json.dumps(raw))
    recipe, problems = check_recipe(raw, base_dir=tmp_path)
    assert not _errors(problems) and recipe is not None
    assert recipe.evaluate is not None and "olive" in recipe.evaluate.metrics
    result = olive_ext.run(path)
    data = json.loads((result.output_dir / "candidates.json").read_text())
    onnx = [c for c in data["candidates"] if not c.get("error") and "acc-accuracy_score" in c["metrics"]]
    assert onnx, data["candidates"]
    assert (tmp_path / "rows_loaded").exists()
    # the same rows through onnxruntime by hand: Olive's figure is the share of argmax == label
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(result.model_path / "model.onnx"), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    right = 0
    for i in range(8):
        ids = np.array([[2 + i, 5, 6, 7, 8, 9, 10, 3]], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        logits = session.run(None, {k: v for k, v in feed.items() if k in names})[0]
        right += int(logits.argmax(-1)[0] == int(i % 2 == 0))
    assert [c["metrics"]["acc-accuracy_score"] for c in onnx] == [pytest.approx(right / 8)]


@needs_olive
def test_goals_on_a_metric_olives_evaluator_computes_are_checked_as_olive_checks_them(
    tiny_bert: Path, tmp_path: Path
) -> None:
    """Olive's BERT PTQ configs limit accuracy with 'max-degradation 0.01' on a metric olive-ai's evaluator computes:
    the goal was dropped (a build at 28% accuracy, against the input model's 100%, was chosen as 'ok') and the run
    said accuracy was not measured ("no eval data"). Relative goals compare with the input model's value."""
    (tmp_path / "user_data.py").write_text(_USER_DATA_SCRIPT)

    def config(goals: list[dict[str, Any]], out: str, search: bool = True) -> Path:
        subs = [{"name": "accuracy_score", "metric_config": {"task": "binary"}, "goal": goals[0]},
                *({"name": "f1_score", "metric_config": {"task": "binary"}, "goal": g} for g in goals[1:])]
        raw = {
            "input_model": {"type": "HfModel", "model_path": str(tiny_bert), "task": "text-classification"},
            "data_configs": [{"name": "rows", "type": "DataContainer", "user_script": "user_data.py",
                              "load_dataset_config": {"type": "tiny_rows"},
                              "post_process_data_config": {"type": "to_class"}}],
            "passes": {"conversion": {"type": "OnnxConversion", "target_opset": 17}},
            "evaluators": {"common": {"metrics": [{"name": "acc", "type": "accuracy", "data_config": "rows",
                                                   "sub_types": subs}]}},
            "evaluator": "common",
            "output_dir": str(tmp_path / out),
            "cache_dir": str(tmp_path / "cache"),
            **({"search_strategy": {"execution_order": "joint", "sampler": "sequential"}} if search else {}),
        }  # fmt: skip
        path = tmp_path / f"{out}.json"
        path.write_text(json.dumps(raw))
        return path

    met = config([{"type": "max-degradation", "value": 0.01}, {"type": "threshold", "value": -1}], "met")
    result = olive_ext.run(met)
    data = json.loads((result.output_dir / "candidates.json").read_text())
    chosen = next(c for c in data["candidates"] if c["chosen"])
    assert chosen["constraints"] == {"acc-accuracy_score max-degradation 0.01": True,  # the same model in ONNX
                                     "acc-f1_score threshold -1": True}  # fmt: skip
    assert "no eval data" not in json.dumps(data) and data["unchecked_constraints"] == []
    # olive-ai measured accuracy: the output said "speed and size alone: task accuracy was not measured"
    assert data["accuracy_measured"] is True
    assert "selection" not in json.loads((result.output_dir / "model_config.json").read_text())
    with pytest.raises(olive_ext.ConstraintsNotMetError):  # above any accuracy: no candidate meets it
        olive_ext.run(config([{"type": "threshold", "value": 1.5}], "unmet"))
    # the input model's values are cached like any evaluation (computed on every run before): a cached value
    # changed by hand decides the goal of the next run
    entries = [e for e in (tmp_path / "cache" / "entries").glob("*/entry.json")
               if json.loads(e.read_text()).get("metrics") == ["olive-reference"]]  # fmt: skip
    assert len(entries) == 1
    entry = json.loads(entries[0].read_text())
    assert entry["result"]["acc-accuracy_score"] == chosen["metrics"]["acc-accuracy_score"]
    entries[0].write_text(json.dumps({**entry, "result": {**entry["result"], "acc-accuracy_score": 5.0}}))
    with pytest.raises(olive_ext.ConstraintsNotMetError):
        olive_ext.run(met, output_path=tmp_path / "again")
    # without a search Olive writes the model whatever its metrics (engine._run_no_search): so does olive-ext, the
    # goal said in a note (it refused the output, exit 3, where Olive wrote it)
    unsearched = olive_ext.run(config([{"type": "threshold", "value": 1.5}], "unsearched", search=False))
    assert (unsearched.output_dir / "model").is_dir()
    assert any("does not search" in n for n in unsearched.notes), unsearched.notes
    goal = _config({"mb": {"type": "ModelBuilder"}}, evaluators={"e": {"metrics": [
        {"name": "m", "type": "custom", "sub_types": [{"name": "s", "goal": {"type": "at-least", "value": 1}}],
         "user_config": {"user_script": "user_data.py", "evaluate_func": "f"}}]}})  # fmt: skip
    assert "evaluators.e.metrics[0].sub_types[0].goal.type" in _errors(translate_config(goal, tmp_path).problems)


@needs_olive
def test_a_metric_whose_user_script_needs_a_missing_package_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "needs.py").write_text("import no_such_package_xyz\n")
    raw = _config(
        {"mb": {"type": "ModelBuilder"}},
        data_configs=[{"name": "d", "type": "DataContainer", "user_script": "needs.py",
                       "load_dataset_config": {"type": "whatever"}}],
        evaluators={"e": {"metrics": [{"name": "m", "type": "custom", "data_config": "d",
                                       "sub_types": [{"name": "s"}],
                                       "user_config": {"user_script": "needs.py", "evaluate_func": "f"}}]}},
    )  # fmt: skip
    problems = translate_config(raw, tmp_path).problems
    named = [p for p in problems if p.category == "package" and "no_such_package_xyz" in p.render()]
    assert named, [p.render() for p in problems]
    custom = {"e": {"metrics": [{"name": "m", "type": "custom"}]}}
    no_func = _config({"mb": {"type": "ModelBuilder"}}, evaluators=custom)
    assert "evaluators.e.metrics[0].user_config" in _errors(translate(no_func)[1])


def test_a_metric_whose_user_script_loads_a_hub_model_offline_is_refused_naming_the_hub_id(tmp_path: Path) -> None:
    """A data script that loads an image processor from the hub at import fails offline: the refusal names the hub
    id (category "hub"), not an invalid metric."""
    (tmp_path / "vit.py").write_text(
        "from transformers import AutoImageProcessor\n"
        "processor = AutoImageProcessor.from_pretrained('nobody-xyz/no-such-vit')\n"
    )
    raw = _config(
        {"mb": {"type": "ModelBuilder"}},
        data_configs=[{"name": "d", "type": "DataContainer", "user_script": "vit.py",
                       "load_dataset_config": {"type": "whatever"}}],
        evaluators={"e": {"metrics": [{"name": "m", "type": "custom", "data_config": "d",
                                       "sub_types": [{"name": "s"}],
                                       "user_config": {"user_script": "vit.py", "evaluate_func": "f"}}]}},
    )  # fmt: skip
    problems = translate_config(raw, tmp_path).problems
    hub = [p for p in problems if p.category == "hub"]
    assert hub and "'nobody-xyz/no-such-vit'" in hub[0].message, [p.render() for p in problems]
    assert "nobody-xyz/no-such-vit" in (hub[0].hint or "")


@needs_olive
def test_an_unknown_pass_type_is_refused_naming_it_and_the_closest_known_types() -> None:
    """Pass types of older Olive releases (QuantizationAwareTraining, TensorParallel) are named with the closest
    pass types olive-ai and olive-ext know, counted as Olive's own refusal (olive-ai has no such pass either);
    those that need hardware name it."""
    errors = _errors(translate(_config({"q": {"type": "OnnxStaticQuantizaton"}}))[1])
    problem = errors["passes.q.type"]
    assert "'OnnxStaticQuantizaton'" in problem.message
    assert problem.hint and "OnnxStaticQuantization" in problem.hint.split(":")[1].split(",")[0]
    gone = _errors(translate(_config({"t": {"type": "TensorParallel"}}))[1])["passes.t.type"]
    assert "'TensorParallel'" in gone.message and gone.category == "olive_refuses"
    trt = _errors(translate(_config({"t": {"type": "TorchTRTConversion"}}))[1])["passes.t.type"]
    assert "TensorRT" in trt.message and "NVIDIA GPU" in trt.message and trt.category == "sdk"
    parallel = _errors(translate(_config({"t": {"type": "PyTorchTensorParallel"}}))[1])["passes.t.type"]
    assert "several CUDA GPUs" in parallel.message and parallel.category == "device"


@needs_olive
@pytest.mark.skipif(not _olive_step_loads_olive_model(), reason="the olive step loads models from model_path alone")
def test_latency_p90_without_a_data_config_is_timed_by_olives_evaluator_on_io_config_inputs(
    tiny_bert: Path, tmp_path: Path
) -> None:
    """End to end: latency p90 with no data config (as Olive's CLIP examples write it) is timed by olive-ai's
    evaluator on inputs it builds from the model's io_config; the Olive-only `generative: false` is a note."""
    raw = {
        "input_model": {
            "type": "HfModel",
            "model_path": str(tiny_bert),
            "task": "text-classification",
            "generative": False,
            "io_config": {"input_names": ["input_ids", "attention_mask"], "output_names": ["logits"],
                          "input_shapes": [[1, 8], [1, 8]], "input_types": ["int64", "int64"]},
        },
        "passes": {"conversion": {"type": "OnnxConversion", "target_opset": 17}},
        "evaluators": {"e": {"metrics": [{"name": "lat", "type": "latency",
                                          "sub_types": [{"name": "avg"}, {"name": "p90"}]}]}},
        "evaluator": "e",
        "output_dir": str(tmp_path / "out"),
    }  # fmt: skip
    recipe, problems = check_recipe(raw, base_dir=tmp_path)
    assert not _errors(problems) and recipe is not None, [p.render() for p in problems]
    assert any(p.path == "input_model.generative" and p.severity == "note" for p in problems)
    assert recipe.evaluate is not None and "olive" in recipe.evaluate.metrics
    path = tmp_path / "olive.json"
    path.write_text(json.dumps(raw))
    result = olive_ext.run(path)
    data = json.loads((result.output_dir / "candidates.json").read_text())
    timed = [c["metrics"] for c in data["candidates"] if not c.get("error") and "lat-p90" in c["metrics"]]
    assert timed, data["candidates"]
    assert all(m["lat-p90"] > 0 and m["lat-p90"] >= m["lat-avg"] * 0.5 for m in timed)


@needs_olive
@pytest.mark.skipif(__import__("importlib").util.find_spec("evaluate") is None, reason="evaluate is not installed")
def test_a_huggingface_metric_the_evaluate_package_fetches_offline_is_a_named_hub_refusal(tmp_path: Path) -> None:
    """Olive's backend huggingface_metrics loads each metric script from the hub through `evaluate`: offline and
    uncached that is a named hub refusal naming evaluate-metric/<name>, not an invalid metric."""
    (tmp_path / "user_data.py").write_text(_USER_DATA_SCRIPT)
    raw = _config(
        {"mb": {"type": "ModelBuilder"}},
        data_configs=[{"name": "rows", "type": "DataContainer", "user_script": "user_data.py",
                       "load_dataset_config": {"type": "tiny_rows"}}],
        evaluators={"e": {"metrics": [{"name": "acc", "type": "accuracy", "backend": "huggingface_metrics",
                                       "data_config": "rows", "sub_types": [{"name": "no-such-metric-xyz"}]}]}},
    )  # fmt: skip
    problems = translate_config(raw, tmp_path).problems
    hub = [p for p in problems if p.category == "hub"]
    assert hub and "evaluate-metric/no-such-metric-xyz" in hub[0].message, [p.render() for p in problems]


@needs_olive
def test_a_pass_whose_user_script_loads_a_hub_model_offline_is_refused_naming_the_hub_id(tmp_path: Path) -> None:
    """Olive's pass imports its data config's user script at validation: a hub load there is a named hub refusal."""
    (tmp_path / "vit.py").write_text(
        "from transformers import AutoImageProcessor\n"
        "processor = AutoImageProcessor.from_pretrained('nobody-xyz/no-such-vit')\n"
    )
    raw = {
        "input_model": {"type": "ONNXModel", "model_path": "model.onnx"},
        "data_configs": [{"name": "d", "type": "DataContainer", "user_script": "vit.py",
                          "load_dataset_config": {"type": "whatever"}}],
        "passes": {"q": {"type": "OnnxQuantization", "data_config": "d", "quant_mode": "static"}},
    }  # fmt: skip
    problems = check_recipe(raw, base_dir=tmp_path)[1]
    hub = [p for p in problems if p.category == "hub"]
    assert hub and "'nobody-xyz/no-such-vit'" in hub[0].message, [p.render() for p in problems]


def test_the_cpu_provider_beside_a_gpu_provider_is_dropped_as_olive_drops_it() -> None:
    """phi2_genai.json: device GPU with [CPUExecutionProvider, CUDAExecutionProvider] builds for CUDA."""
    accelerator = {"device": "GPU", "execution_providers": ["CPUExecutionProvider", "CUDAExecutionProvider"]}
    raw = _config({"mb": {"type": "ModelBuilder", "precision": "int4"}},
                  systems={"s": {"type": "LocalSystem", "accelerators": [accelerator]}})  # fmt: skip
    out, problems = translate(raw)
    assert out["targets"] == [{"device": "gpu", "provider": "CUDAExecutionProvider"}]
    assert not _errors(problems)
    assert any(p.path == "systems.s.accelerators[0].execution_providers[0]" for p in problems)  # a note says so
    alone = _config({"mb": {"type": "ModelBuilder"}}, systems={"s": {"type": "LocalSystem", "accelerators": [
        {"device": "gpu", "execution_providers": ["CPUExecutionProvider"]}]}})  # fmt: skip
    # alone, Olive keeps it (olive-ai 0.13's AcceleratorNormalizer: "will be ignored", then execution_providers falls
    # back to [CPUExecutionProvider]) and builds for it: a CPU target, said in a note (it was refused)
    out, problems = translate(alone)
    assert not _errors(problems) and out["targets"] == [{"device": "cpu", "provider": "CPUExecutionProvider"}]
    assert any("alone on device 'gpu'" in p.message for p in problems)
    assert not _errors(check_recipe(alone)[1])


def test_a_passs_own_evaluator_is_used_on_the_last_pass_as_olive_uses_it() -> None:
    """Olive's RunPassConfig has `evaluator`: the flow's last pass's evaluator replaces the top-level one (Olive's
    Engine.evaluator_for_pass), another pass's is not used; it was refused as "not a parameter of" the pass."""
    evaluators = {"speed": {"metrics": [{"name": "l", "type": "latency", "sub_types": [{"name": "avg"}]}]},
                  "size": {"metrics": [{"name": "s", "type": "size_on_disk"}]}}  # fmt: skip
    last = _config({"c": {"type": "OnnxConversion"}, "o": {"type": "OnnxPeepholeOptimizer", "evaluator": "size"}},
                   evaluators=evaluators, evaluator="speed")  # fmt: skip
    out, problems = translate(last)
    assert not _errors(problems) and out["evaluate"]["metrics"] == ["size"], [p.render() for p in problems]
    before = _config({"c": {"type": "OnnxConversion", "evaluator": "size"}, "o": {"type": "OnnxPeepholeOptimizer"}},
                     evaluators=evaluators, evaluator="speed")  # fmt: skip
    out, problems = translate(before)
    assert not _errors(problems) and out["evaluate"]["metrics"] == ["latency"]
    assert any(p.path == "passes.c.evaluator" and p.severity == "note" for p in problems)
    unknown = _config({"o": {"type": "OnnxPeepholeOptimizer", "evaluator": "nope"}}, evaluators=evaluators)
    assert list(_errors(translate(unknown)[1])) == ["passes.o.evaluator"]  # it chose the first before
    in_place = _config({"o": {"type": "OnnxPeepholeOptimizer"}}, evaluator=evaluators["size"])
    assert list(_errors(translate(in_place)[1])) == ["evaluator"]  # dropped without a word before
    null = _config({"o": {"type": "OnnxPeepholeOptimizer", "evaluator": None}}, evaluators=evaluators,
                   evaluator="size")  # fmt: skip
    assert translate(null)[0]["evaluate"]["metrics"] == ["size"]  # Olive: the pass's `or` the top-level one
    for names in ({"c": "zzz", "top": "speed"}, {"c": None, "top": "zzz"}):  # Olive resolves every name it is given
        raw = _config({"c": {"type": "OnnxConversion", "evaluator": names["c"]},
                       "o": {"type": "OnnxPeepholeOptimizer", "evaluator": "size"}},
                      evaluators=evaluators, evaluator=names["top"])  # fmt: skip
        assert list(_errors(translate(raw)[1])) == ["passes.c.evaluator" if names["c"] else "evaluator"]


def test_passes_after_split_model_run_olives_own_pass_on_each_component() -> None:
    """OnnxDynamicQuantization after SplitModel went to our int8_dynamic, which takes no composite model: "pass
    'int8_dynamic' takes genai/onnx models, but pass 'peep' gives a composite model" (a type the user never wrote)."""
    split = {"s": {"type": "CaptureSplitInfo", "num_splits": 2}, "mb": {"type": "ModelBuilder", "precision": "fp32"},
             "sm": {"type": "SplitModel"}}  # fmt: skip
    after = {"dq": {"type": "OnnxDynamicQuantization"}, "co": {"type": "ComposeOnnxModels"},
             "dq2": {"type": "OnnxDynamicQuantization"}}  # fmt: skip
    out, problems = translate(_config({**split, **after}))
    passes = out["passes"]
    assert passes["dq"]["type"] == "olive" and passes["dq"]["olive_type"] == "OnnxDynamicQuantization"
    assert passes["dq2"]["type"] != "olive"  # one model again after ComposeOnnxModels: our native pass
    assert not _errors(problems), [p.render() for p in problems]


def test_pass_params_are_checked_with_the_targets_defaults_under_them() -> None:
    """A GPU target sets graph_optimize's use_gpu, so float16 is valid there and refused for a CPU target."""
    cuda = {"device": "gpu", "execution_providers": ["CUDAExecutionProvider"]}
    gpu = {"s": {"type": "LocalSystem", "accelerators": [cuda]}}
    encoder = {"type": "ONNXModel", "model_path": "model.onnx"}
    raw = {"input_model": encoder, "passes": {"o": {"type": "OrtTransformersOptimization", "float16": True}}}
    assert "passes.o" not in _errors(check_recipe({**raw, "systems": gpu})[1])
    assert "float16=true needs use_gpu" in _errors(check_recipe(raw)[1])["passes.o"].message


def test_azure_ml_assets_are_named_refusals_without_follow_on_errors() -> None:
    raw = {
        "azureml_client": {"subscription_id": "x", "resource_group": "y", "workspace_name": "z"},
        "input_model": {"type": "HfModel", "model_path": {"type": "azureml_registry_model", "name": "deberta",
                                                          "registry_name": "azureml", "version": "15"}},
        "systems": {"aml": {"type": "AzureML", "accelerators": [{"device": "gpu"}]}},
        "passes": {"c": {"type": "OnnxConversion"}},
    }  # fmt: skip
    problems = check_recipe(raw)[1]
    errors = _errors(problems)
    assert set(errors) == {"input_model.model_path", "systems.aml.type"}, [p.render() for p in problems]
    assert all(e.category == "sdk" and "Azure ML" in e.message for e in errors.values())
    assert [p.severity for p in problems if p.path == "azureml_client"] == ["note"]


@needs_olive
def test_an_olive_pass_user_script_is_found_beside_the_config(tmp_path: Path) -> None:
    """OpenVINO examples name user_script.py on the pass itself; it is found beside the config, or named missing."""
    raw = _config({"q": {"type": "OnnxQuantization", "quant_mode": "static", "user_script": "hooks.py",
                         "calibrate_method": "MinMax"}})  # fmt: skip
    missing = _errors(translate_config(raw, base_dir=tmp_path).problems)
    assert missing["passes.q.user_script"].category == "user_file"
    (tmp_path / "hooks.py").write_text("X = 1\n")
    out = translate_config(raw, base_dir=tmp_path)
    assert "passes.q.user_script" not in _errors(out.problems)
    assert out.recipe["passes"]["q"]["config"]["user_script"] == str((tmp_path / "hooks.py").resolve())


# Olive data configs as olive-recipes writes them, and input models each fills them from (or not)
_FILLED_DATA = [
    {"name": "local", "type": "HuggingfaceContainer",
     "load_dataset_config": {"data_name": "csv", "data_files": "rows.csv", "split": "train"},
     "pre_process_data_config": {"max_length": 8, "input_cols": ["a", "b"]}, "dataloader_config": {"batch_size": 1}},
    {"name": "nested", "type": "HuggingfaceContainer", "load_dataset_config": {"data_name": "csv"},
     "pre_process_data_config": {"params": {"model_name": "mine"}}, "post_process_data_config": {"task": ""}},
    {"name": "dummy", "type": "TransformersDummyDataContainer"},
    {"name": "untyped", "load_dataset_config": {"data_name": "csv"}, "pre_process_data_config": {"max_length": 8}},
]  # fmt: skip
_MODELS = [
    {"type": "HfModel", "model_path": "/models/bert", "task": "text-classification",
     "load_kwargs": {"trust_remote_code": True}},
    {"type": "HfModel", "model_path": "/models/llm"},
    {"type": "ONNXModel", "model_path": "/models/m.onnx",
     "model_attributes": {"hf_task": "text-classification", "_name_or_path": "/models/bert"}},
    {"type": "PyTorchModel", "model_path": "/models/pt"},
]  # fmt: skip


@needs_olive
def test_data_configs_are_filled_from_the_input_model_as_olives_run_config_fills_them() -> None:
    """Olive's RunConfig gives a HuggingfaceContainer the input model's model_name and task (pre- and
    post-processing) and trust_remote_code where the config leaves them out; without them a local-data config failed
    in every Olive consumer (get_tokenizer(None), no argmax). The translation fills the same keys, on the same
    conditions: what Olive's passes and evaluator receive equals what Olive's own RunConfig makes of the config."""
    from olive.common.config_utils import validate_config
    from olive.data.config import DataConfig
    from olive.workflows.run.config import RunConfig

    from olive_ext.recipe.olive_sections import filled_from_model

    for model in _MODELS:
        given = json.loads(json.dumps({"input_model": model, "data_configs": _FILLED_DATA}))  # Olive changes them
        olive = RunConfig.model_validate({**given, "passes": {}})
        for theirs, dc in zip(olive.data_configs, _FILLED_DATA, strict=True):
            ours = validate_config(filled_from_model(dc, model), DataConfig)
            assert ours.model_dump() == theirs.model_dump(), (model, dc["name"])


@needs_olive
def test_an_olive_pass_and_metric_get_the_data_config_filled_from_the_input_model() -> None:
    """bert_cpu with a local csv: OrtSessionParamsTuning's data config and the accuracy metric's carry model_name and
    task (the argmax post-processing) as Olive's RunConfig fills them; our own `data` is not changed by it."""
    data = [{**_FILLED_DATA[0], "name": "mrpc"},
            {"name": "rows", "type": "HuggingfaceContainer",
             "load_dataset_config": {"data_files": "rows.jsonl", "split": "train"},
             "pre_process_data_config": {"text_cols": ["text"]}}]  # fmt: skip
    raw = {
        "input_model": _MODELS[0],
        "data_configs": data,
        "passes": {"tune": {"type": "OrtSessionParamsTuning", "data_config": "mrpc"}},
        "evaluators": {"e": {"metrics": [{"name": "acc", "type": "accuracy", "data_config": "mrpc",
                                          "sub_types": [{"name": "accuracy_score"}]}]}},
    }  # fmt: skip
    out = translate_config(raw).recipe

    def param(dc: dict[str, Any], component: str, key: str) -> Any:  # Olive's own check nests them under params
        section = dc.get(component) or {}
        return (section.get("params") or {}).get(key, section.get(key))

    for dc in (out["passes"]["tune"]["config"]["data_config"], out["evaluate"]["olive_metrics"][0]["data_config"]):
        for component in ("pre_process_data_config", "post_process_data_config"):
            assert param(dc, component, "model_name") == "/models/bert", component
            assert param(dc, component, "task") == "text-classification", component
        assert param(dc, "load_dataset_config", "trust_remote_code") is True
    assert out["data"]["rows"] == {"name": "json", "data_files": "rows.jsonl", "split": "train",
                                   "text_field": "text", "format": "text"}  # fmt: skip


def _hub_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *cached: str) -> None:
    """Empty Hugging Face caches under ``tmp_path``, holding only the hub datasets ``cached``."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    for repo in cached:
        (tmp_path / "hub" / f"datasets--{repo.replace('/', '--')}" / "snapshots" / "abc").mkdir(parents=True)


def test_a_hub_dataset_a_pass_reads_that_is_not_cached_is_a_named_hub_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """google_bert_qdq: OnnxStaticQuantization calibrates on facebook/xnli through its data config. Offline and
    uncached, the run retried the hub for 30 s and failed; validation names it (category "hub") at the data config's
    data_name, as it names the datasets an evaluator reads. Cached, or a local file, it is not named."""
    _hub_caches(tmp_path, monkeypatch)
    xnli = {"name": "xnli", "type": "HuggingfaceContainer",
            "load_dataset_config": {"data_name": "facebook/xnli", "subset": "en", "split": "validation"},
            "pre_process_data_config": {"input_cols": ["premise"], "max_length": 128}}  # fmt: skip
    raw = {
        "input_model": {"type": "HfModel", "model_path": "org/bert", "task": "text-classification"},
        "data_configs": [xnli],
        "passes": {"q": {"type": "OnnxStaticQuantization", "data_config": "xnli", "activation_type": "uint16"}},
    }
    problem = _errors(translate(raw)[1])["data_configs[0].load_dataset_config.data_name"]
    assert problem.category == "hub" and problem.value == "facebook/xnli"
    assert "facebook/xnli (config en)" in problem.message and "passes.q.data_config" in problem.message
    assert problem.hint and "load_dataset('facebook/xnli', 'en')" in problem.hint
    if olive_compat.olive_ai_installed():  # olive-ai's evaluator reading it for a metric: named the same way
        metric = {"e": {"metrics": [{"name": "acc", "type": "accuracy", "data_config": "xnli",
                                     "sub_types": [{"name": "accuracy_score"}]}]}}  # fmt: skip
        alone = {**raw, "passes": {"c": {"type": "OnnxConversion"}}, "evaluators": metric}
        hub = [p for p in translate(alone)[1] if p.category == "hub"]
        assert any("evaluators.e.metrics[0]" in p.message for p in hub), [p.render() for p in hub]
        both = [p for p in translate({**raw, "evaluators": metric})[1] if p.category == "hub"]
        assert len(both) == 1, [p.render() for p in both]  # one dataset, named once for its two readers
    _hub_caches(tmp_path, monkeypatch, "facebook/xnli")
    assert not [p for p in translate(raw)[1] if p.category == "hub"]
    local = {**xnli, "load_dataset_config": {"data_name": "json", "data_files": "rows.jsonl"}}
    _hub_caches(tmp_path / "none", monkeypatch)
    assert not [p for p in translate({**raw, "data_configs": [local]})[1] if p.category == "hub"]


def test_the_hub_dataset_an_olive_pass_reads_by_itself_is_a_named_hub_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Qwen3 cpu_int4: SelectiveMixedPrecision's kld_gradient and Gptq without a data_config load
    Salesforce/wikitext themselves; uncached, each is a hub refusal at the option that makes it read it. An algorithm
    that reads no data, or the user's own data config, is not named."""
    _hub_caches(tmp_path, monkeypatch)
    raw = _config({"s": {"type": "SelectiveMixedPrecision", "algorithm": "kld_gradient"}, "g": {"type": "gptq"}})
    errors = _errors(translate(raw)[1])
    for at in ("passes.s.algorithm", "passes.g.data_config"):
        assert errors[at].category == "hub" and "Salesforce/wikitext" in errors[at].message, at
    quiet = _config({"s": {"type": "SelectiveMixedPrecision", "algorithm": "k_quant_mixed"},
                     "g": {"type": "Gptq", "data_config": "calib"}},
                    data_configs=[{"name": "calib", "type": "HuggingfaceContainer",
                                   "load_dataset_config": {"data_name": "json", "data_files": "c.jsonl"}}])  # fmt: skip
    assert not [p for p in translate(quiet)[1] if p.category == "hub"]
    _hub_caches(tmp_path, monkeypatch, "Salesforce/wikitext")
    assert not [p for p in translate(raw)[1] if p.category == "hub"]


@needs_olive
def test_a_split_olives_reader_cannot_take_from_local_files_is_refused_where_olive_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Olive's datasets reader takes split 'validation' from a data config that names none (local files have only
    'train'), and a slice past the files' end is empty: both validated, then failed at the pass reading the data,
    after the steps before it. Refused at the data config's split key where an Olive pass reads it; the same data
    config read by olive-ext's own reader (split 'train' when none is named) is not refused."""
    (tmp_path / "calib.txt").write_text("one\ntwo\nthree\n")
    monkeypatch.chdir(tmp_path)

    def config(load: dict[str, Any], pass_type: str = "Gptq") -> dict[str, Any]:
        dc = {"name": "calib", "type": "HuggingfaceContainer", "load_dataset_config": load}
        return _config({"g": {"type": pass_type, "data_config": "calib"}}, data_configs=[dc])

    text = {"data_name": "text", "data_files": "calib.txt"}
    for load, said in [(text, "(Olive reads split 'validation' where none is named)"),
                       ({**text, "split": "train[3:]"}, "split 'train' has 3 rows"),
                       ({"params": {**text, "split": "validation"}}, "one split, 'train'")]:  # fmt: skip
        errors = _errors(translate(config(load))[1])
        at = f"data_configs[0].load_dataset_config{'.params' if 'params' in load else ''}.split"
        assert list(errors) == [at], errors
        assert said in errors[at].message + (errors[at].hint or ""), errors[at]
    for split in ("train", "train[2:]", "train[:50%]"):
        assert not _errors(translate(config({**text, "split": split}))[1]), split
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "a"}\n')
    ours = config({"data_name": "json", "data_files": str(rows)}, "OnnxStaticQuantization")  # our qdq_static
    assert not _errors(translate(ours)[1])


@needs_olive
def test_an_accuracy_metric_on_a_local_csv_is_scored_by_olive_with_the_input_models_tokenizer_and_task(
    tiny_bert: Path, tmp_path: Path
) -> None:
    """End to end, olive-recipes' bert_cpu with the GLUE rows in a local csv and no model_name or task in the data
    config: olive-ai's accuracy evaluator gets them from the input model, as Olive's RunConfig gives them (it failed
    on get_tokenizer(None), then on [N, 2] logits against [N] labels with no task's argmax)."""
    rows = tmp_path / "mrpc.csv"
    rows.write_text("sentence1,sentence2,label\n" + "".join(f"a b {i},c d {i},{i % 2}\n" for i in range(8)))
    raw = {
        "input_model": {"type": "HfModel", "model_path": str(tiny_bert), "task": "text-classification"},
        "data_configs": [{"name": "mrpc", "type": "HuggingfaceContainer",
                          "load_dataset_config": {"data_name": "csv", "data_files": str(rows), "split": "train"},
                          "pre_process_data_config": {"max_length": 16, "padding": "max_length",
                                                      "input_cols": ["sentence1", "sentence2"], "max_samples": 8},
                          "dataloader_config": {"batch_size": 1}}],
        "passes": {"conversion": {"type": "OnnxConversion", "target_opset": 17}},
        "evaluators": {"e": {"metrics": [{"name": "acc", "type": "accuracy", "data_config": "mrpc",
                                          "sub_types": [{"name": "accuracy_score"}]}]}},
        "evaluator": "e",
        "output_dir": str(tmp_path / "out"),
    }  # fmt: skip
    path = tmp_path / "olive.json"
    path.write_text(json.dumps(raw))
    result = olive_ext.run(path)
    candidates = json.loads((result.output_dir / "candidates.json").read_text())["candidates"]
    assert candidates and all(not c.get("error") for c in candidates), candidates
    assert all(0 <= c["metrics"]["acc-accuracy_score"] <= 1 for c in candidates)


def test_an_olive_lora_pass_without_its_settings_trains_at_olives_defaults() -> None:
    """Olive's LoRA pass defaults to r 64, alpha 16, dropout 0.05; the translation took olive-ext's (16, 32, 0): the
    same config trained with updates eight times larger."""
    raw = {"input_model": {"type": "HfModel", "model_path": "some/model"},
           "data_configs": [{"name": "train", "type": "HuggingfaceContainer",
                             "load_dataset_config": {"data_name": "json", "data_files": "rows.jsonl"},
                             "pre_process_data_config": {"text_template": "{q} {a}"}}],
           "passes": {"l": {"type": "LoRA", "train_data_config": "train"}}}  # fmt: skip
    recipe, problems = check_recipe(raw)
    assert recipe is not None, problems
    params = recipe.passes["l"].params()
    assert (params["lora_r"], params["lora_alpha"], params["lora_dropout"]) == (64, 16, 0.05)
    raw["passes"]["l"] |= {"r": 8, "alpha": 8}
    params = check_recipe(raw)[0].passes["l"].params()  # type: ignore[union-attr]
    assert (params["lora_r"], params["lora_alpha"]) == (8, 8)
    # Olive's LoRA adapts peft's per-model list when the config names none (q/v for Llama); its QLoRA every 4-bit
    # linear layer whatever the config says (olive-ext's own default): all 7 linears were adapted for LoRA
    assert params["target_modules"] == ["peft-default"]
    raw["passes"]["l"]["type"] = "QLoRA"
    assert check_recipe(raw)[0].passes["l"].params().get("target_modules") is None  # type: ignore[union-attr]


def test_peft_default_targets_adapt_what_olives_lora_pass_adapts(tiny_llama: Path) -> None:
    from transformers import AutoModelForCausalLM

    from olive_ext.train.model import add_adapter
    from olive_ext.train.options import FinetuneOptions

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    opts = FinetuneOptions(target_modules="peft-default")
    adapted = add_adapter(model, opts)
    assert sorted(adapted.peft_config["default"].target_modules) == ["q_proj", "v_proj"]


def test_a_fine_tuning_dtype_this_machine_cannot_train_in_is_refused_by_validate(
    tiny_llama: Path, eval_file: Path, tmp_path: Path
) -> None:
    """Olive's QLoRA recipes train in float16: on a CPU the step refused it when it started, after validate said
    "valid" (olive-recipes' Llama-3.2-1B qlora.json). validate now says what the step says, at the key."""
    from olive_ext.train.device import candidate_dtypes, training_device

    if "float16" in candidate_dtypes(training_device()):
        pytest.skip("this machine trains in float16")
    data = {"name": "d", "type": "HuggingfaceContainer",
            "load_dataset_config": {"data_name": "json", "data_files": str(eval_file), "split": "train"},
            "pre_process_data_config": {"text_template": "{q} {a}"}}  # fmt: skip
    olive = _config({"q": {"type": "QLoRA", "train_data_config": "d", "torch_dtype": "float16"}}, data_configs=[data])
    olive["input_model"]["model_path"] = str(tiny_llama)
    problems = _errors(olive_ext.validate(olive))
    assert list(problems) == ["passes.q.torch_dtype"] and "float16 cannot train on cpu" in problems[
        "passes.q.torch_dtype"].message  # fmt: skip
    dataset = {"name": "json", "data_files": str(eval_file), "text_template": "{q} {a}"}
    ours = {"input_model": {"path": str(tiny_llama)}, "data": {"d": dataset},
            "passes": {"ft": {"type": "lora", "train_data": "d", "torch_dtype": "fp16"}}}  # fmt: skip
    assert list(_errors(olive_ext.validate(ours))) == ["passes.ft.torch_dtype"]
    ours["passes"]["ft"]["torch_dtype"] = "bf16"
    assert not _errors(olive_ext.validate(ours))


def test_a_data_configs_tokenizer_hub_id_this_machine_lacks_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data config's pre_process_data_config.model_name is the tokenizer Olive's data components (and the user's
    pre-process function: Olive's gte example) load: offline and not in the hub cache, the run failed at the pass
    that reads the data. Named at validation, as the input model's hub id is."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    data = {"name": "d", "type": "HuggingfaceContainer",
            "load_dataset_config": {"data_name": "text", "data_files": str(tmp_path / "t.txt"), "split": "train"},
            "pre_process_data_config": {"model_name": "some-org/tokenizer-not-here"}}  # fmt: skip
    (tmp_path / "t.txt").write_text("a line\n")
    problems = _errors(translate_config(_config({}, data_configs=[data]), base_dir=tmp_path).problems)
    problem = problems["data_configs[0].pre_process_data_config.model_name"]
    assert problem.category == "hub" and "some-org/tokenizer-not-here" in problem.message
    data["pre_process_data_config"]["model_name"] = str(tmp_path)  # a local folder is not a hub id
    assert "data_configs[0].pre_process_data_config.model_name" not in _errors(
        translate_config(_config({}, data_configs=[data]), base_dir=tmp_path).problems)  # fmt: skip


def test_a_target_system_written_in_place_is_the_target() -> None:
    """olive-recipes write the target system in place (`engine: {target: {type: LocalSystem, accelerators: [...]}}`,
    which olive-ai resolves as a system): it was ignored, and ten CUDA and WebGPU configs were built for the CPU,
    exiting 0 (one even reused another's build from the cache)."""
    def target(provider: str, device: str = "gpu") -> dict[str, Any]:
        return {"type": "LocalSystem", "accelerators": [{"device": device, "execution_providers": [provider]}]}

    out, problems = translate(_config({"mb": {"type": "ModelBuilder", "precision": "int4"}},
                                      target=target("CUDAExecutionProvider")))  # fmt: skip
    assert out["targets"] == [{"device": "gpu", "provider": "CUDAExecutionProvider"}] and not _errors(problems)
    nested = _config({"mb": {"type": "ModelBuilder", "precision": "int4"}})
    nested["engine"] = {"target": target("QNNExecutionProvider", "npu")}
    problems = _errors(translate(nested)[1])
    assert problems and all(p.startswith("engine.target.accelerators[0]") for p in problems)
    assert {p.category for p in problems.values()} == {"sdk"}


@needs_olive
def test_run_dash_m_changes_the_model_before_the_data_configs_take_its_name(tiny_bert: Path, tmp_path: Path) -> None:
    """`olive-ext run --config C -m OTHER`: the data configs' pre-processing kept the config's model as its
    tokenizer (model_name filled before -m replaced the model), so MiniLM's token ids reached a tiny BERT ("indices
    element out of data bounds"), and with two compatible vocabularies accuracy would be scored on wrong ids. Olive
    changes the model first; so does olive-ext."""
    from olive_ext.workflows.run import as_recipe

    rows = tmp_path / "pairs.jsonl"
    rows.write_text(json.dumps({"sentence1": "a cat", "sentence2": "the dog", "label": 1}) + "\n")
    raw = {
        "input_model": {"type": "HfModel", "model_path": str(tmp_path / "config-model"), "task": "text-classification"},
        "data_configs": [{"name": "d", "type": "HuggingfaceContainer",
                          "load_dataset_config": {"data_name": "json", "data_files": str(rows), "split": "train"},
                          "pre_process_data_config": {"input_cols": ["sentence1", "sentence2"], "max_length": 16}}],
        "evaluators": {"e": {"metrics": [{"name": "acc", "type": "accuracy", "data_config": "d",
                                          "sub_types": [{"name": "accuracy_score"}]}]}},
        "evaluator": "e",
        "passes": {"conversion": {"type": "OnnxConversion", "target_opset": 17}},
    }  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    for given in (raw, path):
        recipe = as_recipe(given, model_path=str(tiny_bert))
        assert recipe.input_model.path == str(tiny_bert)
        params = [m["data_config"]["pre_process_data_config"]["params"] for m in recipe.evaluate.olive_metrics]
        assert [p["model_name"] for p in params] == [str(tiny_bert)]


def test_a_target_naming_no_system_is_refused_and_a_system_type_is_named_where_the_file_writes_it() -> None:
    """`"target": "nosuch"` validated (Olive refuses it: "nosuch not found in {...}"); a Docker system written as
    Olive writes it (type beside its config) was refused at systems.docker.config.type, a key the file lacks."""
    local = {"type": "LocalSystem", "accelerators": [{"device": "cpu"}]}
    systems = {"local_system": local, "docker": {"type": "Docker", "config": {"image_name": "olive"}}}
    errors = _errors(translate(_config({"mb": {"type": "ModelBuilder"}}, systems={"local_system": local},
                                       target="nosuch"))[1])  # fmt: skip
    assert "names no system of this config: 'nosuch'" in errors["target"].render()
    errors = _errors(translate(_config({"mb": {"type": "ModelBuilder"}}, systems=systems))[1])
    assert "systems.docker.type" in errors and "systems.docker.config.type" not in errors, list(errors)


@needs_olive
def test_the_sub_type_of_priority_one_is_what_candidates_are_ranked_by(tmp_path: Path) -> None:
    """Olive ranks a search's candidates by the sub-type of priority 1: olive-ext read no `priority` and ranked by
    latency, so it could keep the fastest candidate where Olive keeps the most accurate."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"sentence1": "a", "sentence2": "b", "label": 1}) + "\n")
    data = [{"name": "d", "type": "HuggingfaceContainer",
             "load_dataset_config": {"data_name": "json", "data_files": str(rows), "split": "train"},
             "pre_process_data_config": {"input_cols": ["sentence1", "sentence2"]}}]  # fmt: skip

    def ranked_by(first: str) -> tuple[str | None, list[str]]:
        acc, lat = (1, 2) if first == "acc" else (2, 1)
        metrics = [{"name": "acc", "type": "accuracy", "data_config": "d",
                    "sub_types": [{"name": "f1_score"}, {"name": "accuracy_score", "priority": acc}]},
                   {"name": "lat", "type": "latency", "sub_types": [{"name": "avg", "priority": lat}]}]  # fmt: skip
        raw = _config({"conv": {"type": "OnnxConversion"}}, data_configs=data, evaluators={"e": {"metrics": metrics}},
                      evaluator="e", search_strategy={"execution_order": "joint", "sampler": "sequential"})  # fmt: skip
        raw["input_model"] = {"type": "HfModel", "model_path": str(tmp_path / "m"), "task": "text-classification"}
        evaluate = translate(raw)[0]["evaluate"]
        return evaluate.get("objective"), [s["name"] for s in evaluate["olive_metrics"][0]["sub_types"]]

    assert ranked_by("acc") == ("olive", ["accuracy_score", "f1_score"])  # olive-ai's first value: that sub-type
    assert ranked_by("lat")[0] == "latency"


def test_an_olive_evaluator_without_an_accuracy_goal_sets_no_accuracy_limit() -> None:
    """A config timing latency only said "max_accuracy_drop was NOT checked" in its notes: olive-ext's default limit,
    which the config never set (Olive has none)."""
    metrics = [{"name": "lat", "type": "latency", "sub_types": [{"name": "avg"}]}]
    out = translate(_config({"mb": {"type": "ModelBuilder"}}, evaluators={"e": {"metrics": metrics}}))[0]
    assert out["evaluate"]["constraints"]["max_accuracy_drop"] is None


def test_olives_searchable_values_keyword_searches_an_option_over_its_values() -> None:
    """`"per_channel": "SEARCHABLE_VALUES"` (Olive 0.13's keyword) was refused as "Input should be a valid boolean",
    with nothing said of the keyword."""
    out, problems = translate(_config({"q": {"type": "OnnxDynamicQuantization", "per_channel": "SEARCHABLE_VALUES",
                                             "weight_type": "SEARCHABLE_VALUES"}}))  # fmt: skip
    assert out["passes"]["q"]["per_channel"] == [False, True]
    assert out["passes"]["q"]["weight_type"] == ["int8", "uint8"] and not _errors(problems)
    problems = translate(_config({"q": {"type": "OnnxDynamicQuantization", "reduce_range": "SEARCHABLE_VALUES"}}))[1]
    assert "olive-ext does not search this option" in _errors(problems)["passes.q.reduce_range"].render()


@needs_olive
def test_with_a_search_on_the_options_olive_would_search_unset_are_said() -> None:
    """With a search_strategy, Olive searches the options a pass leaves unset over their search defaults
    (OnnxDynamicQuantization: precision, per_channel, reduce_range, quant_preprocess); olive-ext built one candidate
    of the defaults without a word. The table olive-ext says it from is olive-ai's own, read here pass by pass."""
    import importlib

    from olive.hardware.accelerator import DEFAULT_CPU_ACCELERATOR

    from olive_ext.passes import olive_catalog
    from olive_ext.passes.base import registered_passes
    from olive_ext.recipe.olive_compat import OLIVE_SEARCH_DEFAULTS

    for olive_type in sorted({o for c in registered_passes().values() for o in c.olive_types}):
        entry = olive_catalog.lookup(olive_type)
        if entry is None:  # a name of older Olive releases (OnnxMatMul4Quantizer)
            continue
        module, _, name = entry.module.rpartition(".")
        config = getattr(importlib.import_module(module), name)._default_config(DEFAULT_CPU_ACCELERATOR)
        searched = tuple(k for k, v in config.items() if v.search_defaults is not None)
        assert OLIVE_SEARCH_DEFAULTS.get(olive_type.lower(), ()) == searched, olive_type
    search = {"execution_order": "joint", "sampler": "sequential"}
    problems = translate(_config({"q": {"type": "OnnxDynamicQuantization", "per_channel": [True, False]}},
                                 search_strategy=search))[1]  # fmt: skip
    note = next(p for p in problems if p.path == "passes.q" and p.severity == "note")
    assert "Olive also tries precision, reduce_range, quant_preprocess over their search defaults" in note.render()
    assert not [p for p in translate(_config({"q": {"type": "OnnxDynamicQuantization"}}))[1] if p.path == "passes.q"]


@needs_olive
def test_a_key_olive_does_not_take_is_not_called_an_olive_key() -> None:
    """A typo (`pases`) or the guide's `training_config:` block was refused as an "Olive key not supported by
    olive-ext"; Olive refuses both itself. The list of Olive's keys is olive-ai's own, read here."""
    from olive.workflows.run.config import RunConfig, RunEngineConfig

    from olive_ext.recipe.olive_compat import OLIVE_RUN_KEYS

    assert set(RunConfig.model_fields) | set(RunEngineConfig.model_fields) == OLIVE_RUN_KEYS
    problems = translate(_config({"q": {"type": "OnnxDynamicQuantization"}}) | {"pases": {}, "training_config": {}})[1]
    said = {p.path: p.render() for p in problems}
    assert "not a key of Olive's run config (Olive refuses it too)" in said["pases"] and "'passes'" in said["pases"]
    assert "passes.NAME.training_args" in said["training_config"]
    assert "Olive key not supported" not in said["training_config"]
