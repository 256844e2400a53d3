"""finetune on the tiny in-code Llama: each method trains, the loss falls, saved adapters give the same logits,
the loss path is exact, bad input gets a clear error, Ctrl-C checkpoints and resume continues."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import yaml

from olive_ext.cli import main
from olive_ext.errors import MissingDependencyError, UserInputError
from olive_ext.recipe.schema import DatasetSpec

TEMPLATE = "Phrase: {phrase}\nTone: {tone}"
_WORDS = {"positive": ["great", "love", "happy", "fine"], "negative": ["terrible", "hate", "sad", "angry"]}


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # The tiny model's ops are too small to share between threads; on a busy machine two threads
    # spin-wait for each other. Real models use every core (see olive_ext.train.device).
    monkeypatch.setenv("OLIVE_EXT_THREADS", "1")


@pytest.fixture(scope="module")
def tone_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-label task the tiny model learns in a few dozen steps: 80 training rows, then 20 eval rows."""
    import random

    rng = random.Random(0)
    path = tmp_path_factory.mktemp("data") / "tone.jsonl"
    with open(path, "w") as f:
        for _ in range(100):
            tone = rng.choice(sorted(_WORDS))
            subject = rng.choice(["the", "a", "cat", "dog", "product"])
            phrase = f"{subject} {rng.choice(_WORDS[tone])} {rng.choice(['city', 'model', 'data'])}"
            f.write(json.dumps({"phrase": phrase, "tone": tone}) + "\n")
    return path


def _spec(path: Path, split: str, **kw: object) -> DatasetSpec:
    return DatasetSpec(name="json", data_files=str(path), split=split, **{"text_template": TEMPLATE, **kw})


@pytest.mark.parametrize("method", ["lora", "qlora", "dora"])
def test_each_method_trains_and_the_saved_adapter_gives_the_same_logits(
    method: str, tiny_llama: Path, tone_file: Path, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel

    from olive_ext.train.model import load_model
    from olive_ext.train.options import FinetuneOptions
    from olive_ext.train.run import finetune

    opts = FinetuneOptions(method=method, max_steps=24, learning_rate=3e-3, logging_steps=1, lora_r=8)
    result = finetune(
        str(tiny_llama), _spec(tone_file, "train[:80]"), None, opts, tmp_path, checkpoint_dir=tmp_path / "ck",
        keep_model=True,
    )  # fmt: skip
    curve = [p["loss"] for p in result.metrics["loss_curve"]]
    assert len(curve) == 24
    assert sum(curve[-4:]) / 4 < 0.6 * sum(curve[:4]) / 4, curve
    assert (result.adapter_dir / "adapter_config.json").exists()
    assert (result.adapter_dir / "adapter_model.safetensors").exists()
    assert (result.adapter_dir / "tokenizer_config.json").exists()
    assert json.loads((result.adapter_dir / "adapter_config.json").read_text())["use_dora"] == (method == "dora")

    trained = result.model.eval()
    dtype = result.metrics["torch_dtype"]  # measured per machine: bf16 where the CPU has native bf16
    reloaded = PeftModel.from_pretrained(load_model(str(tiny_llama), opts, "cpu", dtype), result.adapter_dir).eval()
    ids = torch.tensor([[1, 40, 41, 42, 43, 44, 45]])
    with torch.no_grad():
        want = trained(input_ids=ids).logits
        got = reloaded(input_ids=ids).logits
        with reloaded.disable_adapter():
            base = reloaded(input_ids=ids).logits
    assert (want - base).abs().max() > 1e-2, "training must have changed the model"
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


def test_response_only_loss_matches_the_models_own_loss_and_packing_keeps_examples_apart(tiny_llama: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from olive_ext.data.formats import Example
    from olive_ext.train.features import Collator, PromptEncoder, pack, tokenize
    from olive_ext.train.loss import LossFunction, loss_sum_full, loss_sum_selected

    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    enc = PromptEncoder(tok)
    examples = [Example(f"question {'one two ' * i}answer:", f" {w}", w) for i, w in enumerate(["yes", "no", "cat"])]
    data = tokenize(examples, enc, 64)
    batch = Collator(tok.pad_token_id)(data.rows)
    assert (batch["attention_mask"] == 0).any(), "the batch must hold padding for this test to mean anything"
    with torch.no_grad():
        fast, n = loss_sum_selected(model, batch)
        full, n_full = loss_sum_full(model, batch)
        reference = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          labels=batch["labels"]).loss  # fmt: skip
    assert int(n) == int(n_full) == data.loss_tokens
    assert abs(float(fast) / int(n) - float(reference)) < 1e-5
    assert abs(float(full) / int(n) - float(reference)) < 1e-5
    checker = LossFunction()
    checker(model, batch)
    assert checker.fast is True

    packed = pack(data.rows, 64)
    assert len(packed) == 1
    with torch.no_grad():
        packed_sum, packed_n = loss_sum_selected(model, Collator(tok.pad_token_id)(packed))
        alone = [loss_sum_selected(model, Collator(tok.pad_token_id)([r]))[0] for r in data.rows]
    assert int(packed_n) == data.loss_tokens
    assert abs(float(packed_sum) - float(sum(alone))) < 1e-3  # no attention across packed examples


def test_labels_cover_the_answer_and_end_of_turn_and_truncation_is_reported(tiny_llama: Path) -> None:
    from transformers import AutoTokenizer

    from olive_ext.data.formats import Example
    from olive_ext.train.features import IGNORE, PromptEncoder, tokenize

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    enc = PromptEncoder(tok)
    data = tokenize([Example("Q: what tone? A:", " happy", "happy")], enc, 64)
    row = data.rows[0]
    prompt_len = len(enc.prompt("Q: what tone? A:"))
    assert row["labels"][:prompt_len] == [IGNORE] * prompt_len
    assert row["labels"][prompt_len:] == row["input_ids"][prompt_len:]
    assert row["input_ids"][-1] == tok.eos_token_id  # appended: the model learns to stop
    chat = tokenize(
        [Example("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", "yes<|im_end|>\n", "yes")], enc, 64
    )
    assert chat.rows[0]["input_ids"].count(tok.eos_token_id) == 2  # not appended twice
    with_prompt = tokenize([Example("Q: what tone? A:", " happy", "happy")], enc, 64, train_on_prompt=True)
    assert IGNORE not in with_prompt.rows[0]["labels"]
    with pytest.raises(UserInputError, match=r"every training example is cut to nothing by --max_seq_len 4"):
        tokenize([Example("Q: what tone is this long prompt? A:", " happy", "happy")], enc, 4)


def test_a_cached_fine_tune_records_this_runs_base_model(tiny_llama: Path, tone_file: Path, tmp_path: Path) -> None:
    """The same model given another way (a copy of its folder; `pypi:smollm2-135m-instruct` and the .gguf it unpacks
    to) is a cache hit, and model_config.json named the base as the run that built it had given it."""
    import shutil

    link = shutil.copytree(tiny_llama, tmp_path / "copy")
    common = ["-d", "json", "--data_files", str(tone_file), "--train_split", "train[:8]", "--text_template",
              TEMPLATE.replace("\n", "\\n"), "--max_steps", "1", "--cache_dir", str(tmp_path / "cache")]  # fmt: skip
    for model, out in ((tiny_llama, tmp_path / "a"), (link, tmp_path / "b")):
        assert main(["finetune", "-m", str(model), *common, "-o", str(out)]) == 0
        assert json.loads((out / "model_config.json").read_text())["base_model"] == str(model)


def test_cli_trains_evaluates_and_writes_the_output_folder(tiny_llama: Path, tone_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "ft"
    code = main([
        "finetune", "-m", str(tiny_llama), "-d", "json", "--data_files", str(tone_file),
        "--train_split", "train[:80]", "--eval_split", "train[80:]", "--text_template", TEMPLATE.replace("\n", "\\n"),
        "--max_steps", "30", "--learning_rate", "3e-3", "--warmup_steps", "2", "--lr_scheduler_type", "cosine",
        "--gradient_checkpointing", "false", "-o", str(out),
    ])  # fmt: skip
    assert code == 0
    config = json.loads((out / "model_config.json").read_text())
    assert config["kind"] == "hf" and config["adapter"] == "adapter" and config["model"] == "model"
    assert config["base_model"] == str(tiny_llama) and config["adapter_merged"] is False
    assert config["train_data"]["split"] == "train[:80]"  # auto-opt's GPTQ candidate calibrates on these rows
    assert (out / "model" / "config.json").exists() and (out / "adapter" / "adapter_config.json").exists()
    assert (out / "adapter" / "chat_template.jinja").exists() or "chat_template" in (
        out / "adapter" / "tokenizer_config.json"
    ).read_text()
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert metrics["steps"] == 30 and metrics["train_tokens"] > 0 and metrics["train_tokens_per_second"] > 0
    assert metrics["peak_rss_mb"] > 0 and metrics["response_only_logits"] is True
    base, tuned = metrics["eval"]["base"], metrics["eval"]["finetuned"]
    assert tuned["eval_loss"] < base["eval_loss"]
    assert tuned["exact_match"] > base["exact_match"]
    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    step = recipe["passes"]["finetune"]
    assert step["type"] == "lora" and step["training_args"] == {"lr_scheduler_type": "cosine"}
    assert step["warmup_steps"] == 2  # a TrainingArguments flag we have a field for lands in it

    from olive_ext.models.folder import resolve_model_arg

    art = resolve_model_arg(str(out))
    assert art.adapter_path == str(out / "adapter") and art.path == str(out / "model")
    # The same command again is a cache hit (nothing retrained), written to a new folder.
    assert main(["run", "--config", str(out / "recipe.yaml"), "-o", str(tmp_path / "again")]) == 0


def test_merge_writes_the_merged_model_and_keeps_the_adapter(tiny_llama: Path, tone_file: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from olive_ext.models.folder import resolve_model_arg

    out = tmp_path / "merged"
    args = ["finetune", "-m", str(tiny_llama), "--data_files", str(tone_file), "--text_template", TEMPLATE,
            "--max_steps", "6", "--learning_rate", "3e-3", "--merge", "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    config = json.loads((out / "model_config.json").read_text())
    assert config["adapter_merged"] is True and "adapter" not in config
    ids = torch.tensor([[1, 50, 51, 52]])
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(out / "model")(input_ids=ids).logits
        peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), out / "adapter")
        assert (merged - peft(input_ids=ids).logits).abs().max() < 1e-4
    assert resolve_model_arg(str(out)).adapter_path is None  # never applied twice
    with pytest.raises(UserInputError, match="already holds a model with its adapter merged"):
        resolve_model_arg(str(out), adapter_path=str(out / "adapter"))
    # the guide's form, `-m ft/model --adapter_path ft/adapter`: auto-opt built the adapter in twice and exited 0;
    # generate-adapter shipped the fine-tune as its "(no adapter)" base with the same adapter on top
    for adapter in (out / "adapter", out):
        with pytest.raises(UserInputError, match="already holds a model with its adapter merged"):
            resolve_model_arg(str(out / "model"), adapter_path=str(adapter))
    assert main(["auto-opt", "-m", str(out / "model"), "--adapter_path", str(out / "adapter"), "-o",
                 str(tmp_path / "onnx"), "--precision", "fp32", "--dry_run"]) == 2  # fmt: skip
    assert main(["generate-adapter", "--base_model_path", str(out), "--adapter_paths", str(out), "-o",
                 str(tmp_path / "multi")]) == 2  # fmt: skip
    assert not (tmp_path / "onnx").exists() and not (tmp_path / "multi").exists()
    assert resolve_model_arg(str(out / "model")).adapter_path is None  # the fine-tuned model, alone


def test_an_adapter_trains_on_from_where_it_stopped(tiny_llama: Path, tone_file: Path, tmp_path: Path) -> None:
    """--adapter_path (LLaMA-Factory's adapter_name_or_path) goes on training that adapter: the second run's
    'base' is the first run's fine-tuned model, and the adapter keeps its own rank (it was refused before)."""
    common = ["-d", "json", "--data_files", str(tone_file), "--train_split", "train[:80]", "--eval_split",
              "train[80:]", "--text_template", TEMPLATE, "--learning_rate", "3e-3", "--torch_dtype", "float32"]
    first, second = tmp_path / "first", tmp_path / "second"
    model = str(tiny_llama)
    assert main(["finetune", "-m", model, *common, "--max_steps", "8", "--lora_r", "8", "-o", str(first)]) == 0
    assert main(["finetune", "-m", str(tiny_llama), "--adapter_path", str(first / "adapter"), *common,
                 "--max_steps", "8", "--lora_r", "4", "-o", str(second)]) == 0  # fmt: skip
    before = json.loads((first / "train_metrics.json").read_text())["eval"]
    after = json.loads((second / "train_metrics.json").read_text())["eval"]
    assert after["base"]["eval_loss"] == pytest.approx(before["finetuned"]["eval_loss"], abs=1e-4)
    assert after["finetuned"]["eval_loss"] < after["base"]["eval_loss"]
    assert json.loads((second / "adapter" / "adapter_config.json").read_text())["r"] == 8


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])  # SIGTERM (`kill`, preemption): no checkpoint before
def test_ctrl_c_writes_a_checkpoint_and_resume_finishes_the_run(
    tiny_llama: Path, tone_file: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    from transformers import TrainerCallback

    from olive_ext.train.options import FinetuneOptions
    from olive_ext.train.run import TrainingInterrupted, finetune

    class CtrlCAtStep3(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            if state.global_step == 3:
                os.kill(os.getpid(), sig)  # what a terminal sends on Ctrl-C

    opts = FinetuneOptions(max_steps=8, learning_rate=3e-3)
    spec = _spec(tone_file, "train[:80]")
    handler_before = signal.getsignal(signal.SIGINT)
    term_before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted) as info:
        finetune(str(tiny_llama), spec, None, opts, tmp_path / "a", checkpoint_dir=tmp_path / "ck",
                 callbacks=[CtrlCAtStep3()])  # fmt: skip
    assert info.value.exit_code == (130 if sig == signal.SIGINT else 143)  # SIGTERM: 143, as every other command
    checkpoint = tmp_path / "ck" / "checkpoint-4"  # the step in flight finishes, then the checkpoint is written
    assert checkpoint.is_dir() and str(checkpoint) in str(info.value)
    assert "run the same command again: it resumes from" in (info.value.hint or "")
    assert not (tmp_path / "a" / "adapter").exists()
    assert signal.getsignal(signal.SIGINT) is handler_before  # our handler is gone
    assert signal.getsignal(signal.SIGTERM) is term_before

    # the same command again resumes (it started over from step 0 and replaced the checkpoint)
    resumed = finetune(str(tiny_llama), spec, None, opts, tmp_path / "b", checkpoint_dir=tmp_path / "ck")
    assert resumed.metrics["resumed_from"] == str(checkpoint)
    assert resumed.metrics["steps"] == 8 and resumed.metrics["steps_this_run"] == 4


def test_an_interrupt_after_the_last_step_keeps_the_training(
    tiny_llama: Path, tone_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the trained model was evaluated (or saved) lost every step: the message said a rerun resumes,
    and the rerun trained from step 0."""
    import olive_ext.train.run as train_run
    from olive_ext.train.options import FinetuneOptions
    from olive_ext.train.run import TrainingInterrupted, finetune

    evaluate = train_run.evaluate_phase

    def interrupted_on_the_trained_model(model, data, loss_fn, opts, phase, *args, **kwargs):  # type: ignore[no-untyped-def]
        if phase == "finetuned":
            raise KeyboardInterrupt  # where a Ctrl-C lands: the evaluation takes longest after training
        return evaluate(model, data, loss_fn, opts, phase, *args, **kwargs)

    monkeypatch.setattr(train_run, "evaluate_phase", interrupted_on_the_trained_model)
    opts = FinetuneOptions(max_steps=6, learning_rate=3e-3)
    spec, eval_spec = _spec(tone_file, "train[:80]"), _spec(tone_file, "train[80:96]")
    with pytest.raises(TrainingInterrupted) as info:
        finetune(str(tiny_llama), spec, eval_spec, opts, tmp_path / "a", checkpoint_dir=tmp_path / "ck")
    checkpoint = tmp_path / "ck" / "checkpoint-6"
    assert checkpoint.is_dir() and str(checkpoint) in str(info.value) and "after training finished" in str(info.value)
    from safetensors.torch import load_file

    trained = load_file(checkpoint / "adapter_model.safetensors")  # read before the run removes its checkpoints
    monkeypatch.setattr(train_run, "evaluate_phase", evaluate)
    resumed = finetune(str(tiny_llama), spec, eval_spec, opts.model_copy(update={"resume_from_checkpoint": "true"}),
                       tmp_path / "b", checkpoint_dir=tmp_path / "ck")  # fmt: skip
    assert resumed.metrics["steps"] == 6 and resumed.metrics["steps_this_run"] == 0
    written = load_file(tmp_path / "b" / "adapter" / "adapter_model.safetensors")
    assert trained.keys() == written.keys() and all((trained[k] == written[k]).all() for k in trained)
    assert not (tmp_path / "ck").exists()  # the run is done with its checkpoints once the adapter is written


def _err(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors (a value of the wrong type)
        code = int(e.code or 0)
    return code, capsys.readouterr().err.replace("\n", " ")


def test_bad_input_gets_a_clear_error_and_nothing_is_written(
    tiny_llama: Path, tiny_bert: Path, tone_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o"
    # an encoder is no causal LM: it trained with a new, random language-model head, and succeeded
    code, err = _err(capsys, ["finetune", "-m", str(tiny_bert), "--data_files", str(tone_file), "-o", str(out),
                              "--text_template", TEMPLATE, "--max_steps", "1"])  # fmt: skip
    assert code == 2 and "not a causal language model" in err and "BertFor" in err
    base = ["finetune", "-m", str(tiny_llama), "--data_files", str(tone_file), "-o", str(out)]
    code, err = _err(capsys, [*base, "--text_template", "Q: {question}\nA: {tone}", "--max_steps", "1"])
    assert code == 2 and "'question'" in err and "phrase, tone" in err
    code, err = _err(capsys, [*base, "--text_template", TEMPLATE, "--train_split", "train[100:]"])
    assert code == 2 and "empty" in err
    code, err = _err(capsys, [*base, "--text_template", TEMPLATE, "--max_seq_len", "8"])
    assert code == 2 and "--max_seq_len 8" in err and "raise --max_seq_len" in err
    code, err = _err(capsys, [*base, "--text_template", TEMPLATE, "--warmup_step", "3"])
    assert code == 2 and "did you mean --warmup_steps" in err
    code, err = _err(capsys, [*base, "--text_template", TEMPLATE, "--max_steps", "many"])
    assert code == 2 and "--max_steps" in err
    assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, err = _err(capsys, [*base, "--text_template", TEMPLATE])
    assert code == 2 and "exists" in err and "--overwrite" in err
    assert (out / "keep.txt").read_text() == "mine"


def test_olive_guide_commands_work_or_say_what_to_write(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_llama: Path
) -> None:
    code, err = _err(capsys, [
        "finetune", "--model_name_or_path", "meta-llama/Llama-3.2-1B-Instruct", "--trust_remote_code",
        "--output_path", str(tmp_path / "models/llama/ft"), "--data_name", "xxyyzzz/phrase_classification",
        "--text_template", "<|start_header_id|>user<|end_header_id|>\\n{phrase}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\\n{tone}", "--method", "lora", "--max_steps", "100",
        "--log_level", "1",
    ])  # fmt: skip
    assert code == 2 and "hub cannot be reached" in err and "meta-llama/Llama-3.2-1B-Instruct" in err
    assert "xxyyzzz/phrase_classification" in err and "--data_files" in err and "Traceback" not in err
    code, err = _err(capsys, ["finetune", "--logging_steps", "10", "--eval_steps", "50", "--save_steps", "100",
                              "--logging_dir", "./logs", "--report_to", "tensorboard"])  # fmt: skip
    assert code == 2 and "-m/--model_name_or_path" in err
    code, err = _err(capsys, ["finetune", "--method", "lora", "--task_name", "classification", "-o", "x"])
    assert code == 2 and "--task_name" in err and "--text_template" in err
    # Unsloth's and TRL's names got "not a finetune option" with no pointer
    code, err = _err(capsys, ["finetune", "--load_in_4bit", "true", "--dataset_text_field", "text", "--random_state",
                              "3407", "--use_rslora", "true", "-o", "x"])  # fmt: skip
    err = " ".join(err.split())
    assert code == 2 and "--load_in_4bit: use --method qlora" in err and "--dataset_text_field: use --text_field" in err
    assert "--random_state: use --seed" in err and "sqrt(--lora_r)" in err, err
    data = tmp_path / "f.jsonl"  # --dry_run reads the data and the model's tokenizer: both must exist
    data.write_text('{"a": "question", "b": "answer"}\n')
    code = main(["finetune", "--method", "qlora", "-m", str(tiny_llama), "-d", "json", "--data_files", str(data),
                 "--text_template", "{a} {b}", "--gradient_checkpointing", "true", "--per_device_train_batch_size", "1",
                 "--gradient_accumulation_steps", "16", "--per_device_eval_batch_size", "16", "--dry_run"])  # fmt: skip
    recipe = yaml.safe_load(capsys.readouterr().out)
    step = recipe["passes"]["finetune"]
    assert code == 0 and step["method"] == "qlora" and step["gradient_checkpointing"] is True
    assert step["gradient_accumulation_steps"] == 16 and step["per_device_eval_batch_size"] == 16


def test_qlora_without_bitsandbytes_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from olive_ext.train.model import check_bitsandbytes

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import fails, as when it is not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'bitsandbytes>=0.45'"):
        check_bitsandbytes("cpu")


def test_unsupported_gguf_architecture_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import gguf
    import numpy as np

    path = tmp_path / "rwkv.gguf"
    writer = gguf.GGUFWriter(str(path), "rwkv6")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello"}\n')
    code, err = _err(capsys, ["finetune", "-m", str(path), "--data_files", str(data), "-o", str(tmp_path / "o")])
    assert code == 2 and "rwkv6" in err and "not supported" in err and "Traceback" not in err


def test_recipe_pass_reads_olive_lora_configs_and_data_changes_the_cache_key(tmp_path: Path) -> None:
    from olive_ext.cache import Cache
    from olive_ext.passes.context import RunContext
    from olive_ext.passes.lora import LoraPass
    from olive_ext.recipe.load import check_recipe

    olive = {
        "input_model": {"type": "HfModel", "model_path": "org/model"},
        "data_configs": [{"name": "train_data", "type": "HuggingfaceContainer",
                          "load_dataset_config": {"data_name": "json", "data_files": "t.jsonl", "split": "train"},
                          "pre_process_data_config": {"text_template": "{q} {a}"}}],
        "passes": {"f": {"type": "QLoRA", "r": 8, "alpha": 16, "lora_dropout": 0.1, "train_data_config": "train_data",
                         "device_map": "auto", "training_args": {"max_steps": 5, "learning_rate": 1e-3,
                                                                 "warmup_ratio": 0.1}}},
        "output_dir": "out",
    }  # fmt: skip
    recipe, problems = check_recipe(olive)
    assert recipe is not None, [p.render() for p in problems]
    step = recipe.passes["f"]
    assert step.type == "qlora"
    cfg = LoraPass.config_class(**step.params())
    assert (cfg.lora_r, cfg.lora_alpha, cfg.max_steps, cfg.learning_rate) == (8, 16, 5, 1e-3)
    assert cfg.training_args == {"warmup_ratio": 0.1}

    data = tmp_path / "t.jsonl"
    keys = []
    for text in ('{"q": "a", "a": "b"}\n', '{"q": "a", "a": "c"}\n'):
        data.write_text(text)
        ctx = RunContext(
            cache=Cache(tmp_path / "cache"), datasets={"train": DatasetSpec(name="json", data_files=str(data))}
        )
        keys.append(json.dumps(LoraPass(LoraPass.config_class(train_data="train")).cache_extra(ctx), sort_keys=True))
    assert keys[0] != keys[1]


def test_dtype_auto_is_measured_once_and_explicit_dtypes_are_checked(tmp_path: Path) -> None:
    from olive_ext.train.device import MIN_SPEEDUP, choose_dtype

    dtype, info = choose_dtype("auto", "cpu", tmp_path)
    times = info["matmul_seconds"]
    assert set(times) == {"float32", "bfloat16"} and info["cached"] is False
    if dtype != "float32":
        assert times["float32"] / times[dtype] >= MIN_SPEEDUP
    again, info2 = choose_dtype("auto", "cpu", tmp_path)
    assert again == dtype and info2["cached"] is True
    with pytest.raises(UserInputError, match=r"float16 \(or --fp16 true\) cannot train on cpu"):
        choose_dtype("float16", "cpu", tmp_path)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        # an H200's matmul timings (benchmarks/gpu_training.py, 2026-12-04): fp16 0.7% faster than bf16 -> bf16
        ({"float32": 0.000194, "bfloat16": 0.0001306, "float16": 0.0001315}, "bfloat16"),
        ({"float32": 0.000727, "bfloat16": 0.000132, "float16": 0.0001286}, "bfloat16"),
        ({"float32": 1.0, "bfloat16": 0.9, "float16": 0.85}, "float32"),  # neither 1.3x faster than fp32
        ({"float32": 1.0, "bfloat16": 0.9, "float16": 0.5}, "float16"),  # fp16 alone fast enough (bf16 slow)
        ({"float32": 1.0, "bfloat16": 0.6, "float16": 0.3}, "float16"),  # fp16 1.3x faster than bf16 too
        ({"float32": 1.0, "bfloat16": 0.5}, "bfloat16"),  # a CPU with native bf16
        ({"float32": 1.0, "bfloat16": 90.0}, "float32"),  # AVX2 only: bf16 emulated
    ],
)
def test_dtype_choice_prefers_bf16_over_a_tied_fp16(seconds: dict[str, float], expected: str) -> None:
    from olive_ext.train.device import pick_dtype

    assert pick_dtype(seconds) == expected


def test_dtype_by_training_step_times_each_dtype_and_remembers_the_choice(
    tiny_llama: Path, eval_file: Path, tmp_path: Path
) -> None:
    """The GPU's choice (train/dtype_step.py), run here on the CPU: every dtype the device trains in is timed on
    one forward + backward of the first batch, pick_dtype decides, and the choice is remembered per batch shape."""
    import torch
    from transformers import AutoModelForCausalLM

    from olive_ext.train.device import pick_dtype
    from olive_ext.train.dtype_step import choose_dtype_by_step, time_step
    from olive_ext.train.features import Collator
    from olive_ext.train.model import add_adapter
    from olive_ext.train.options import FinetuneOptions
    from olive_ext.train.run import prepare_data

    opts = FinetuneOptions(per_device_train_batch_size=2)
    spec = DatasetSpec(name="json", data_files=str(eval_file), text_template="Q: {q}\nA: {a}")
    data = prepare_data(str(tiny_llama), spec, None, opts)
    pad = data.tokenizer.pad_token_id
    dtype, info = choose_dtype_by_step(str(tiny_llama), opts, data.rows, pad, "cpu", tmp_path)
    assert set(info["step_seconds"]) == {"float32", "bfloat16"} and not info["cached"]
    assert all(0 < s < 10 for s in info["step_seconds"].values())
    assert dtype == pick_dtype(info["step_seconds"]) and "batch [2, " in info["key"]
    again, info2 = choose_dtype_by_step(str(tiny_llama), opts, data.rows, pad, "cpu", tmp_path)
    assert again == dtype and info2["cached"]
    wider = opts.model_copy(update={"per_device_train_batch_size": 4})  # another batch shape: measured again
    assert not choose_dtype_by_step(str(tiny_llama), wider, data.rows, pad, "cpu", tmp_path)[1]["cached"]
    # the timing leaves no gradients and no change in the model
    model = add_adapter(AutoModelForCausalLM.from_pretrained(tiny_llama), opts)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = Collator(pad)(data.rows[:2])
    batch.pop("real_tokens")
    assert time_step(model, batch, "cpu", "bfloat16") > 0
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_date_strings_in_json_lines_stay_as_written(tmp_path: Path) -> None:
    from olive_ext.data import load_rows

    path = tmp_path / "dates.jsonl"
    path.write_text(
        "".join(json.dumps({"date": f"March {d}, 2021", "iso": f"2021-03-{d:02d}"}) + "\n" for d in range(1, 11))
    )
    rows = load_rows(DatasetSpec(name="json", data_files=str(path), split="train[8:]"))
    assert [r["iso"] for r in rows] == ["2021-03-09", "2021-03-10"]  # not "2021-03-09 00:00:00"
    assert len(load_rows(DatasetSpec(name="json", data_files=str(path), split="train[:50%]"))) == 5
    with pytest.raises(UserInputError, match="empty"):
        load_rows(DatasetSpec(name="json", data_files=str(path), split="train[20:]"))


@pytest.mark.parametrize("fmt", ["messages", "alpaca"])
def test_chat_and_alpaca_rows_train_on_the_answer_with_the_models_chat_template(
    fmt: str, tiny_llama: Path, tmp_path: Path
) -> None:
    path = tmp_path / f"{fmt}.jsonl"
    with open(path, "w") as f:
        for i in range(12):
            tone = "positive" if i % 2 else "negative"
            if fmt == "messages":
                row = {"messages": [{"role": "user", "content": f"tone of review {i}?"},
                                    {"role": "assistant", "content": tone}]}  # fmt: skip
            else:  # the last row without its answer: not scored, and said (exact match "of 3" of 4 eval rows)
                row = {"instruction": "classify the tone", "input": f"review {i}", "output": tone if i < 11 else ""}
            f.write(json.dumps(row) + "\n")
    flags = ["--use_chat_template"] if fmt == "messages" else []
    out = tmp_path / "out"
    argv = ["finetune", "-m", str(tiny_llama), "--data_files", str(path), *flags, "--train_split", "train[:8]",
            "--eval_split", "train[8:]", "--max_steps", "3", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((out / "train_metrics.json").read_text())
    scored = metrics["eval"]["finetuned"]
    assert metrics["steps"] == 3 and scored["examples"] == (4 if fmt == "messages" else 3)
    assert scored.get("left_out") == (None if fmt == "messages" else "1 of 4 eval rows not scored (with an empty "
                                      "answer)")  # fmt: skip
    sample = metrics["eval"]["base"]["samples"][0]
    assert sample["prompt"].endswith("<|im_start|>assistant\n")  # the model's chat template, generation prompt
    assert sample["reference"] in {"positive", "negative"}


def test_report_to_a_missing_tracker_fails_before_any_work(
    tiny_llama: Path,
    tone_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    code, err = _err(capsys, ["finetune", "-m", str(tiny_llama), "--data_files", str(tone_file), "--text_template",
                              TEMPLATE, "--report_to", "mlflow", "-o", str(tmp_path / "o")])  # fmt: skip
    assert code == 1 and "pip install mlflow" in err
    assert not (tmp_path / "o").exists()


def test_dry_run_reads_a_few_rows_and_names_a_misspelt_column(
    tiny_llama: Path, tone_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o"
    base = ["finetune", "-m", str(tiny_llama), "--data_files", str(tone_file), "-o", str(out), "--dry_run"]
    code, err = _err(capsys, [*base, "--text_template", "Phrase: {phrse}\\nTone: {tone}"])
    assert code == 2 and "'phrse'" in err and "it has: phrase, tone" in err
    code, err = _err(capsys, [*base, "--text_template", TEMPLATE, "--eval_split", "train[90:]", "--max_seq_len", "8"])
    assert code == 2 and "--max_seq_len 8" in err  # tokenized with the model's own tokenizer
    code, err = _err(capsys, ["finetune", "-m", "org/not-here", "--data_files", str(tmp_path / "none.jsonl"),
                              "--text_template", TEMPLATE, "--dry_run"])  # fmt: skip
    assert code == 2 and "'org/not-here'" in err and "hub cannot be reached" in err and "none.jsonl" in err
    (tmp_path / "empty").mkdir()  # the real run's model checks (this was a tokenizer's traceback)
    code, err = _err(capsys, ["finetune", "-m", str(tmp_path / "empty"), "--data_files", str(tone_file),
                              "--text_template", TEMPLATE, "--dry_run"])  # fmt: skip
    assert code == 2 and "holds no model" in err and "Traceback" not in err, err
    # Unsloth's `fp16 = not is_bfloat16_supported()`: --dry_run said ok, the run failed 12 s in on --torch_dtype
    code, err = _err(capsys, [*base, "--text_template", TEMPLATE, "--fp16", "true"])
    assert code == 2 and "--torch_dtype float16 (or --fp16 true) cannot train on cpu" in err, err
    assert "leave out --fp16" in err
    code, err = _err(capsys, [*base[:-1], "--text_template", TEMPLATE, "--fp16", "true", "--max_steps", "1"])
    assert code == 2 and "--fp16 true" in err and not out.exists()
    code = main([*base, "--text_template", TEMPLATE, "--train_split", "train[:90]", "--eval_split", "train[90:]"])
    captured = capsys.readouterr()
    assert code == 0 and yaml.safe_load(captured.out)["passes"]["finetune"]["type"] == "lora"
    err = captured.err.replace("\n", " ")
    assert "training data (train[:90]): first 16 rows read as template, 16 tokenized" in err
    assert "eval data (train[90:]): first 10 rows read as template, 10 tokenized" in err
    assert not out.exists()


def test_end_of_turn_template_and_sharegpt_rows_train_and_measure_exact_match(tiny_llama: Path, tmp_path: Path) -> None:
    chatml = tmp_path / "chatml.jsonl"
    sharegpt = tmp_path / "sharegpt.jsonl"
    with open(chatml, "w") as f, open(sharegpt, "w") as g:
        for i in range(12):
            tone = "positive" if i % 2 else "negative"
            f.write(json.dumps({"question": f"tone of review {i}?", "answer": tone}) + "\n")
            turns = [("system", "answer in one word"), ("human", "hello"), ("gpt", "hello"),
                     ("human", f"tone of review {i}?"), ("gpt", tone)]  # fmt: skip
            g.write(json.dumps({"conversations": [{"from": w, "value": v} for w, v in turns]}) + "\n")
    template = "<|im_start|>user\\n{question}<|im_end|>\\n<|im_start|>assistant\\n{answer}<|im_end|>"
    for path, flags in ((chatml, ["--text_template", template]), (sharegpt, [])):
        out = tmp_path / path.stem
        argv = ["finetune", "-m", str(tiny_llama), "--data_files", str(path), *flags, "--train_split", "train[:8]",
                "--eval_split", "train[8:]", "--max_steps", "2", "-o", str(out)]  # fmt: skip
        assert main(argv) == 0
        evals = json.loads((out / "train_metrics.json").read_text())["eval"]
        assert evals["finetuned"]["examples"] == 4  # every eval row has a prompt and an answer
        sample = evals["base"]["samples"][0]
        assert sample["prompt"].endswith("<|im_start|>assistant\n") and sample["reference"] == "negative"


def test_padding_free_batches_keep_the_loss_curve(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One unpadded row per batch (position_ids restarting per example) gives the padded run's per-step losses."""
    import random

    from olive_ext.train import features
    from olive_ext.train.options import FinetuneOptions
    from olive_ext.train.run import finetune

    rng = random.Random(1)
    path = tmp_path / "varied.jsonl"
    with open(path, "w") as f:  # lengths from 1 to 40 words: random batches hold much padding
        for _ in range(40):
            tone = rng.choice(sorted(_WORDS))
            phrase = " ".join(rng.choice(_WORDS[tone] + ["the", "city"]) for _ in range(rng.randint(1, 40)))
            f.write(json.dumps({"phrase": phrase, "tone": tone}) + "\n")
    decisions: list[bool] = []
    flattens = features.Collator.flattens

    def record(self: features.Collator, lengths: list[int]) -> bool:
        decisions.append(flattens(self, lengths))
        return decisions[-1]

    monkeypatch.setattr(features.Collator, "flattens", record)
    curves = {}
    for padding_free in (False, True):
        decisions.clear()
        opts = FinetuneOptions(max_steps=8, learning_rate=3e-3, logging_steps=1, group_by_length=False,
                               torch_dtype="float32", padding_free=padding_free, eval_generate=False)  # fmt: skip
        result = finetune(str(tiny_llama), _spec(path, "train"), None, opts, tmp_path / str(padding_free),
                          checkpoint_dir=tmp_path / f"ck{padding_free}")  # fmt: skip
        curves[padding_free] = [p["loss"] for p in result.metrics["loss_curve"]]
        assert any(decisions) == padding_free
    assert len(curves[True]) == 8
    assert max(abs(a - b) for a, b in zip(curves[True], curves[False], strict=True)) < 1e-4, curves


def test_modules_to_save_are_trained_in_full_beside_the_adapter(tiny_llama: Path) -> None:
    """Olive's LoRA `modules_to_save` (and our option of that name) reach peft: lm_head is trained whole."""
    from transformers import AutoModelForCausalLM

    from olive_ext.train.model import add_adapter
    from olive_ext.train.options import FinetuneOptions

    model = add_adapter(AutoModelForCausalLM.from_pretrained(tiny_llama), FinetuneOptions(modules_to_save=["lm_head"]))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lm_head" in n and "modules_to_save" in n for n in trainable), sorted(trainable)[:10]
    plain = add_adapter(AutoModelForCausalLM.from_pretrained(tiny_llama), FinetuneOptions())
    assert not any("lm_head" in n for n, p in plain.named_parameters() if p.requires_grad)


def test_exact_match_by_teacher_forcing_equals_generation(tiny_llama: Path) -> None:
    """The finetune's exact match settles rows by teacher forcing; its answers are generation's, row by row."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from olive_ext.evaluate.exact_match import exact_match
    from olive_ext.train.evaluation import generate, greedy_answers
    from olive_ext.train.features import PromptEncoder

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    encoder = PromptEncoder(tokenizer, [tokenizer.convert_tokens_to_ids("<|im_end|>")])
    words = ["great", "terrible", "cat", "dog", "city", "model", "data", "happy"]
    prompts = [f"Phrase: the {a} {b}\nTone:" for a in words for b in words[:3]]
    limit = 6
    generated = generate(model, encoder, prompts, limit, 8, 128)
    # half the references are the model's own greedy answers (right), half another row's (mostly wrong)
    refs = [g if i % 2 == 0 else generated[(i + 1) % len(generated)] + " x" for i, g in enumerate(generated)]
    answers, forced = greedy_answers(model, encoder, prompts, refs, limit, 8, 128)
    assert answers == generated
    assert forced > 0  # the check must exercise teacher forcing, not only the decoding fallback
    assert exact_match(answers, refs, [""] * len(refs)) == exact_match(generated, refs, [""] * len(refs))


def test_a_bf16_fine_tune_is_evaluated_as_its_saved_adapter_runs(tiny_llama: Path, tmp_path: Path) -> None:
    """The fine-tuned model was evaluated with its adapter merged into the weights: in bf16 the merge rounds the
    adapter's small deltas away (SmolLM2 on the tone task: 35% exact match reported, 60% for the saved adapter as
    auto-opt and every later step load it), and unmerging left the base weights changed. Evaluated here as the
    saved adapter runs: the same logits as the model with its adapter kept apart, the base weights untouched."""
    import torch
    from peft import PeftModel
    from tiny_models import make_random_adapter
    from transformers import AutoModelForCausalLM

    from olive_ext.train.evaluation import adapter_state

    adapter = make_random_adapter(tiny_llama, tmp_path / "adapter", r=4)
    ids = torch.tensor([[5, 17, 42, 7, 99, 3, 64, 12]])
    for dtype in (torch.bfloat16, torch.float32):
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=dtype), str(adapter))
        model.eval()
        base = {k: v.clone() for k, v in model.get_base_model().state_dict().items() if "lora" not in k}
        with torch.no_grad():
            apart = model(input_ids=ids).logits
            with adapter_state(model, "finetuned"):
                evaluated = model(input_ids=ids).logits
        after = {k: v for k, v in model.get_base_model().state_dict().items() if "lora" not in k}
        if dtype == torch.bfloat16:
            assert torch.equal(evaluated, apart), (evaluated - apart).abs().max()
            assert all(torch.equal(base[k], after[k]) for k in base)
        else:  # fp32: merged for speed, the same model to rounding
            assert torch.allclose(evaluated, apart, atol=1e-4), (evaluated - apart).abs().max()
            assert all(torch.allclose(base[k], after[k], atol=1e-6) for k in base)


def test_eval_rows_that_are_also_training_rows_are_warned_about(
    tiny_llama: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An eval split overlapping the training split passed without a word; its exact match (and auto-opt's reference
    on the same split) then overstates new data."""
    import logging

    from olive_ext.train.options import FinetuneOptions
    from olive_ext.train.run import prepare_data

    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"phrase": f"phrase {i}", "tone": "joyful"}) + "\n" for i in range(20)))
    with caplog.at_level(logging.WARNING, logger="olive_ext"):
        prepare_data(str(tiny_llama), _spec(rows, "train[:16]"), _spec(rows, "train[8:20]"), FinetuneOptions())
        prepare_data(str(tiny_llama), _spec(rows, "train[:16]"), _spec(rows, "train[16:20]"), FinetuneOptions())
    warnings = [r.getMessage() for r in caplog.records if "also training examples" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("8 of 12 eval examples"), warnings


def test_the_written_recipe_reruns_from_another_folder(
    tiny_llama: Path, tone_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fine-tune run with relative paths wrote them as given: its recipe.yaml was valid only from that folder."""
    import shutil

    from olive_ext.workflows.run import validate

    work = tmp_path / "work"
    shutil.copytree(tiny_llama, work / "models" / "base")
    shutil.copy(tone_file, work / "tone.jsonl")
    monkeypatch.chdir(work)
    assert main(["finetune", "-m", "models/base", "--data_files", "tone.jsonl", "--train_split", "train[:8]",
                 "--eval_split", "train[8:12]", "--text_template", TEMPLATE.replace("\n", "\\n"), "--max_steps", "1",
                 "-o", "ft", "--log_level", "3"]) == 0  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert [p.render() for p in validate(work / "ft" / "recipe.yaml") if p.severity == "error"] == []
    # the output too: rerun from inside the output folder, `-o ft` wrote a copy nested in it (ft/ft)
    written = yaml.safe_load((work / "ft" / "recipe.yaml").read_text())
    assert written["output"]["path"] == str(work / "ft")


def test_target_modules_take_peft_s_forms(tiny_llama: Path) -> None:
    """all-linear (peft's and LLaMA-Factory's default), one regular expression and a dotted module path were each
    refused with "--target_modules names X, which this model lacks", its list then naming q_proj."""
    from transformers import AutoModelForCausalLM

    from olive_ext.errors import UserInputError
    from olive_ext.train.model import add_adapter, linear_module_names
    from olive_ext.train.options import FinetuneOptions

    def adapted(*targets: str) -> set[str]:
        model = add_adapter(AutoModelForCausalLM.from_pretrained(tiny_llama), FinetuneOptions(target_modules=targets))
        return {n.removeprefix("base_model.model.").removesuffix(".lora_A.default")
                for n, _ in model.named_modules() if n.endswith("lora_A.default")}  # fmt: skip

    every = adapted()
    assert adapted("all-linear") == every and len(every) > 2
    assert {n.rsplit(".", 1)[-1] for n in every} == set(linear_module_names(AutoModelForCausalLM.from_pretrained(
        tiny_llama)))  # fmt: skip
    assert adapted(".*q_proj") == {n for n in every if n.endswith("q_proj")}
    assert adapted("model.layers.0.self_attn.q_proj") == {"model.layers.0.self_attn.q_proj"}
    for bad, says in (("q_proj$", "matches no module path"), ("nope", "which this model lacks")):
        with pytest.raises(UserInputError, match=says):
            adapted(bad)


def test_training_on_an_adapter_takes_the_finetune_output_and_records_what_ran(
    tiny_llama: Path, eval_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """--adapter_path <finetune output> raised FileNotFoundError (adapter_config.json); --method dora on a LoRA adapter
    trained LoRA and recorded "dora" (and the flags' rank) in train_metrics.json."""
    import json
    import logging

    import olive_ext

    common = {"data_files": str(eval_file), "text_template": "Q: {q}\nA: {a}", "max_steps": 1}
    first = olive_ext.finetune(tiny_llama, tmp_path / "first", lora_r=4, **common)
    with caplog.at_level(logging.WARNING, logger="olive_ext"):
        again = olive_ext.finetune(tiny_llama, tmp_path / "again", adapter_path=first.output_dir, method="dora",
                                   lora_r=8, **common)  # fmt: skip
    assert "the adapter in" in caplog.text and "is LoRA" in caplog.text
    assert json.loads((again.adapter_path / "adapter_config.json").read_text())["r"] == 4
    assert again.metrics["method"] == "lora" and again.metrics["options"]["lora_r"] == 4


def test_resuming_from_another_runs_checkpoint_is_said_and_another_shape_refused(
    tiny_llama: Path, eval_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """--resume_from_checkpoint with a changed --learning_rate (or data) restored the checkpoint's schedule without a
    word while train_metrics.json recorded the new rate; a changed --lora_r ended in peft's 28 size-mismatch lines."""
    import logging

    import olive_ext
    from olive_ext.errors import UserInputError

    cache = tmp_path / "cache"
    common = {"data_files": str(eval_file), "text_template": "Q: {q}\nA: {a}", "max_steps": 2, "save_steps": 1,
              "cache_dir": cache}  # fmt: skip
    olive_ext.finetune(tiny_llama, tmp_path / "first", **common)
    checkpoint = next(cache.glob("checkpoints/*/checkpoint-1"))
    with caplog.at_level(logging.WARNING, logger="olive_ext"):
        olive_ext.finetune(tiny_llama, tmp_path / "lr", learning_rate=0.01, resume_from_checkpoint=str(checkpoint),
                           **common)  # fmt: skip
    assert "a checkpoint of another fine-tune" in caplog.text
    with pytest.raises(UserInputError, match=r"holds an adapter of another shape: --lora_r 4 \(the checkpoint's: 16\)"):
        olive_ext.finetune(tiny_llama, tmp_path / "r", lora_r=4, resume_from_checkpoint=str(checkpoint), **common)


def test_flags_that_would_do_nothing_with_the_others_are_refused(
    tiny_llama: Path, tone_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each ran, exit 0, without a word: QLoRA's quantization flags with --method lora, --logging_dir without the
    tensorboard tracker, --response_template beside --text_template (refused), --eval_steps with no eval split
    (said: the Olive guide's own command gives it so)."""
    base = ["finetune", "-m", str(tiny_llama), "--data_files", str(tone_file), "--text_template", TEMPLATE,
            "-o", str(tmp_path / "o"), "--dry_run"]  # fmt: skip
    for flags, said in [(["--double_quant", "true"], "--double_quant set QLoRA's 4-bit base: with --method lora"),
                        (["--quant_type", "fp4"], "--quant_type set QLoRA's 4-bit base"),
                        (["--logging_dir", "tb"], "give --report_to tensorboard too"),
                        (["--eval_steps", "2"], "--eval_steps 2 does nothing: there is no eval split"),
                        (["--response_template", "A:"], "--response_template splits ready text rows")]:  # fmt: skip
        code, err = _err(capsys, [*base, *flags])
        refused = flags[0] != "--eval_steps"  # the Olive guide gives it with no eval split: said, not refused
        assert code == (2 if refused else 0) and said in " ".join(err.split()) and "got {" not in err, (flags, err)
    assert _err(capsys, [*base, "--logging_dir", "tb", "--report_to", "tensorboard"])[0] == 0
    assert _err(capsys, [*base, "--eval_steps", "2", "--eval_split", "train[90:]"])[0] == 0


def test_a_model_no_command_can_build_is_said_before_training(
    tiny_llama: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """finetune trained a GPT-2 (or OPT, GPT-NeoX) without a word, and auto-opt, quantize and generate-adapter then
    refused the fine-tune: said before training, with the way onward (export --format hf)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from olive_ext.workflows.finetune import _say_if_not_buildable

    gpt2 = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=512, n_positions=64)).save_pretrained(gpt2)
    with caplog.at_level("WARNING", logger="olive_ext"):
        _say_if_not_buildable(str(tiny_llama))
        assert "it fine-tunes, but" not in caplog.text
        _say_if_not_buildable(str(gpt2))
    assert "it fine-tunes, but" in caplog.text and "GPT2LMHeadModel" in caplog.text
    assert "olive-ext export --format hf" in caplog.text


def test_the_eval_curve_weighs_every_token_as_the_final_eval_loss_does(
    tiny_llama: Path, tone_file: Path, tmp_path: Path
) -> None:
    """--eval_steps' curve averaged the Trainer's batch means (a 2-row batch weighed as much as an 8-row one): at
    the last step it read 6.204 where the final eval loss of the same weights read 6.211."""
    out, data = tmp_path / "o", tmp_path / "rows.jsonl"
    rows = tone_file.read_text().splitlines()[:60]
    for i in (58, 59):  # the last eval batch (2 rows of 10 in batches of 8): answers many tokens long
        row = json.loads(rows[i])
        rows[i] = json.dumps({**row, "tone": " ".join([row["tone"]] * 12)})
    data.write_text("\n".join(rows) + "\n")
    args = ["finetune", "-m", str(tiny_llama), "--data_files", str(data), "--text_template", TEMPLATE, "--train_split",
            "train[:50]", "--eval_split", "train[50:60]", "--max_steps", "4", "--eval_steps", "2",
            "--per_device_eval_batch_size", "8", "--torch_dtype", "float32", "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    metrics = json.loads((out / "train_metrics.json").read_text())
    curve = {p["step"]: p["eval_loss"] for p in metrics["eval_curve"]}
    final = metrics["eval"]["finetuned"]["eval_loss"]
    assert set(curve) == {2, 4} and abs(curve[4] - final) < 2e-4, (curve, final)
