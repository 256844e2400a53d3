"""merge_adapter: the merged model gives the same logits as base + peft adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_models import make_random_adapter

from olive_ext.errors import UserInputError
from olive_ext.recipe import parse_recipe
from olive_ext.workflows.run import run_recipe as run


@pytest.mark.parametrize(
    "targets",
    [
        "all-linear",
        ["q_proj", "v_proj", "lm_head"],  # the tiny llama ties lm_head to embed_tokens, as SmolLM2 and Llama-3.2 do:
        ["q_proj", "embed_tokens", "lm_head"],  # merging added both deltas to the one shared tensor (top-1 0.2)
    ],
)
def test_merged_logits_equal_peft_logits(tiny_llama: Path, tmp_path: Path, targets: object) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = make_random_adapter(tiny_llama, tmp_path / "adapter", target_modules=targets)
    recipe = parse_recipe(
        {
            "input_model": {"path": str(tiny_llama), "adapter_path": str(adapter)},
            "passes": {"merge": {"type": "merge_adapter"}},
            "output": {"path": str(tmp_path / "out")},
        }
    )
    result = run(recipe)
    merged_path = result.chosen.artifact.path
    tok = AutoTokenizer.from_pretrained(merged_path)
    ids = tok("the capital of france is paris", return_tensors="pt")
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    with torch.no_grad():
        base_logits = base(**ids).logits
        expected = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), adapter)(**ids).logits
        merged = AutoModelForCausalLM.from_pretrained(merged_path)(**ids).logits
    assert (expected - base_logits).abs().max() > 1e-2, (
        "the adapter must change the outputs for this test to mean anything"
    )
    assert (merged - expected).abs().max() < 1e-4
    assert (tmp_path / "out" / "model" / "config.json").exists()


def test_merge_without_adapter_is_refused(tiny_llama: Path, tmp_path: Path) -> None:
    recipe = parse_recipe(
        {
            "input_model": {"path": str(tiny_llama)},
            "passes": {"m": {"type": "merge_adapter"}},
            "output": {"path": str(tmp_path / "o")},
        }
    )
    with pytest.raises(UserInputError, match="no adapter to merge"):
        run(recipe)


def test_a_bare_adapter_folder_as_the_model_means_its_base_with_it(tiny_llama: Path, tmp_path: Path) -> None:
    """What peft's save_pretrained, LLaMA-Factory and Unsloth write for a LoRA run (adapter_config.json naming the base,
    no config.json) given as the model: the same merged model as base + --adapter_path."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from olive_ext.models.folder import resolve_model_arg

    adapter = make_random_adapter(tiny_llama, tmp_path / "lora-out")
    art = resolve_model_arg(str(adapter))
    assert (art.path, art.adapter_path) == (str(tiny_llama.resolve()), str(adapter))
    recipe = parse_recipe({"input_model": {"path": str(adapter)}, "passes": {"merge": {"type": "merge_adapter"}},
                           "output": {"path": str(tmp_path / "out")}})  # fmt: skip
    merged_path = run(recipe).chosen.artifact.path
    ids = torch.tensor([[1, 50, 51, 52, 53]])
    with torch.no_grad():
        expected = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), adapter)(ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_llama)(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(merged_path)(ids).logits
    assert (expected - base).abs().max() > 1e-2  # the adapter was applied, not dropped
    assert (merged - expected).abs().max() < 1e-4


def test_bare_adapter_folders_that_cannot_name_their_base_are_refused(tiny_llama: Path, tmp_path: Path) -> None:
    import json

    from olive_ext.engine.preflight import check_model_folder
    from olive_ext.models.folder import resolve_model_arg

    adapter = make_random_adapter(tiny_llama, tmp_path / "lora-out")
    with pytest.raises(UserInputError, match="names another"):
        resolve_model_arg(str(adapter), adapter_path=str(adapter))
    config_file = adapter / "adapter_config.json"
    config = json.loads(config_file.read_text())
    for base, message in [
        (str(tmp_path / "gone"), "is not a folder on this machine"),
        (None, "names no base model"),
        (str(adapter), "is an adapter folder, not a model"),
    ]:
        config_file.write_text(json.dumps({**config, "base_model_name_or_path": base}))
        for check in (resolve_model_arg, check_model_folder):
            with pytest.raises(UserInputError, match=message) as info:
                check(str(adapter))
            assert f"--adapter_path {adapter}" in (info.value.hint or "")
    # a relative base path is read from where the trainer ran, else beside the adapter
    config_file.write_text(json.dumps({**config, "base_model_name_or_path": "../base"}))
    (tmp_path / "base").symlink_to(tiny_llama, target_is_directory=True)
    assert resolve_model_arg(str(adapter)).path == str(tiny_llama.resolve())


def test_an_adapter_trained_with_added_tokens_merges_onto_its_resized_base(tiny_llama: Path, tmp_path: Path) -> None:
    """LLaMA-Factory's new_special_tokens + resize_vocab: embed_tokens and lm_head saved whole at the new row count,
    the tokenizer with the new tokens beside the adapter. Loading onto the unresized base failed with "size
    mismatch for ...embed_tokens" after the build had started (auto-opt, export, and a continued fine-tune)."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from olive_ext.onnx.peft_model import adapter_vocab_rows

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    tok.add_special_tokens({"additional_special_tokens": ["<tool>", "</tool>", "<think>"]})
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    rows = -(-len(tok) // 64) * 64  # LLaMA-Factory pads to a multiple of 64
    model.resize_token_embeddings(rows, mean_resizing=False)
    torch.manual_seed(0)
    config = LoraConfig(r=4, target_modules=["q_proj"], modules_to_save=["embed_tokens", "lm_head"])
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "modules_to_save" in name or "lora_B" in name:
                p.add_(torch.randn_like(p) * 0.05)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    tok.save_pretrained(adapter)
    assert adapter_vocab_rows(adapter) == rows != AutoModelForCausalLM.from_pretrained(tiny_llama).vocab_size

    recipe = parse_recipe({"input_model": {"path": str(tiny_llama), "adapter_path": str(adapter)},
                           "passes": {"merge": {"type": "merge_adapter"}},
                           "output": {"path": str(tmp_path / "out")}})  # fmt: skip
    merged_path = run(recipe).chosen.artifact.path
    ids = tok("the <tool> capital of france </tool>", return_tensors="pt")
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    base.resize_token_embeddings(rows, mean_resizing=False)
    with torch.no_grad():
        expected = PeftModel.from_pretrained(base, adapter)(**ids).logits
        merged = AutoModelForCausalLM.from_pretrained(merged_path)(**ids).logits
    assert merged.shape[-1] == rows and (merged - expected).abs().max() < 1e-4
    assert len(AutoTokenizer.from_pretrained(merged_path)) == len(tok)  # the new tokens ship with the model
    # chat on the adapter folder (PyTorch) read the base's tokenizer: "<tool>" was split as plain text
    from olive_ext.workflows.chat import ChatOptions, open_chat

    session = open_chat(ChatOptions(model_name_or_path=str(adapter), max_new_tokens=2))
    session.answer("use <tool> here")
    assert tok.convert_tokens_to_ids("<tool>") in session.last_prompt_ids
    # `finetune --adapter_path` on it trained with the base's tokenizer: "<tool>" as plain text, and lost after
    from olive_ext.cli import main

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"q": f"use <tool> {i}", "a": "</tool>"}) + "\n" for i in range(4)))
    out = tmp_path / "ft"
    assert main(["finetune", "-m", str(tiny_llama), "--adapter_path", str(adapter), "--data_files", str(data),
                 "--text_template", "{q} {a}", "--max_steps", "1", "-o", str(out),
                 "--log_level", "3"]) == 0  # fmt: skip
    assert len(AutoTokenizer.from_pretrained(out / "adapter")) == len(tok)


def test_a_llama_factory_export_yaml_merges_as_llamafactory_cli_export_does(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`llamafactory-cli export merge.yaml` with olive-ext in front was "unrecognized arguments", and `run --config`
    refused each of its keys as an Olive key: the merge a LLaMA-Factory user deploys from had no olive-ext command."""
    import json

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    import olive_ext
    from olive_ext.cli import main

    monkeypatch.chdir(tmp_path)
    make_random_adapter(tiny_llama, tmp_path / "saves" / "lora" / "sft")
    merge = {"model_name_or_path": str(tiny_llama), "adapter_name_or_path": "saves/lora/sft", "template": "llama3",
             "finetuning_type": "lora", "export_dir": "output/merged", "export_size": 5, "export_device": "cpu",
             "export_legacy_format": False}  # fmt: skip
    (tmp_path / "merge.yaml").write_text(json.dumps(merge))
    assert main(["export", "merge.yaml"]) == 0
    out = capsys.readouterr()
    assert "template: the chat template is the fine-tune's own" in out.err and "export_size" not in out.err
    assert "olive-ext auto-opt -m output/merged" in out.out
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    expected = PeftModel.from_pretrained(base, tmp_path / "saves" / "lora" / "sft").eval()(ids).logits
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "output" / "merged" / "model").eval()(ids).logits
    assert torch.allclose(merged, expected, atol=1e-5)
    assert json.loads((tmp_path / "output" / "merged" / "model_config.json").read_text())["kind"] == "hf"
    assert [p.message for p in olive_ext.validate(tmp_path / "merge.yaml")] == [
        "this is a LLaMA-Factory export config, not a recipe or an Olive run config"]  # fmt: skip
    refusals = {
        "export_quantization_bit": ({"export_quantization_bit": 4}, "quantizes with GPTQ"),
        "two adapters": ({"adapter_name_or_path": "a,b"}, "names 2 adapters; olive-ext merges one"),
        "no adapter": ({"adapter_name_or_path": None}, "there is nothing to merge"),
    }
    for case, (change, says) in refusals.items():
        (tmp_path / "bad.yaml").write_text(json.dumps({**merge, **change, "export_dir": "output/bad"}))
        assert main(["export", "bad.yaml"]) == 2, case
        assert says in capsys.readouterr().err, case
    assert not (tmp_path / "output" / "bad").exists()


def test_unsloths_quantization_names_are_taken_and_quant_with_format_hf_is_refused(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unsloth writes save_pretrained_gguf's methods in lower case (q4_k_m, q8_0, f16): `--quant q4_k_m` was an
    argparse "invalid choice" and the API's "did you mean 'q4_k_m'?" suggested what it had refused; `--format hf
    --quant Q8_0` wrote an unquantized model without a word."""
    from olive_ext.cli import main
    from olive_ext.passes.gguf_export import GgufExportConfig
    from olive_ext.workflows.export import ExportOptions

    assert ExportOptions(model_name_or_path="m", output_path="o", quant="q4_k_m").quant == "Q4_K_M"
    assert ExportOptions(model_name_or_path="m", output_path="o", quant="fast_quantized").quant == "Q8_0"
    assert GgufExportConfig(quant="f16").quant == "F16"
    assert GgufExportConfig().quant == "Q4_K_M"  # a gguf_export step without quant got a pydantic FieldInfo
    out = tmp_path / "merged"
    assert main(["export", "-m", str(tiny_llama), "--format", "hf", "--quant", "q8_0", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--quant Q8_0 is for --format gguf" in err and not out.exists(), err
    adapter = make_random_adapter(tiny_llama, tmp_path / "adapter")  # --quant left at its default: not refused
    assert main(["export", "-m", str(adapter), "--format", "hf", "-o", str(out)]) == 0
    # Unsloth's bf16 (and q4_1, q5_1, q3_k_*, q2_k) were "invalid choice": llama.cpp writes them
    from gguf import GGUFReader

    assert main(["export", "-m", str(adapter), "--quant", "bf16", "-o", str(tmp_path / "bf16")]) == 0
    types = {t.tensor_type.name for t in GGUFReader(tmp_path / "bf16" / "model" / "model-BF16.gguf").tensors}
    assert "BF16" in types, types


def test_a_model_folder_that_also_holds_an_adapter_is_refused_naming_both(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model folder with a peft adapter copied into it: transformers applies the adapter when it loads the folder
    and the builds did not, so auto-opt's fp32 parity failed (max |delta| 1.1, "report it") and finetune failed in
    peft ("Target modules {'base_layer', 'default'} not found"). Refused before work, saying what to do."""
    import shutil

    from olive_ext.cli import main

    mixed = shutil.copytree(tiny_llama, tmp_path / "mixed")
    adapter = make_random_adapter(tiny_llama, tmp_path / "adapter")
    for f in adapter.iterdir():
        shutil.copy(f, mixed / f.name)
    finetune = ["finetune", "-m", str(mixed), "-o", str(tmp_path / "ft"), "-d", "json", "--data_files", "x.jsonl"]
    for argv in (["auto-opt", "-m", str(mixed), "-o", str(tmp_path / "ao"), "--dry_run"], finetune):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "holds both a model (config.json) and a peft adapter" in err and "--adapter_path" in err, err


def test_a_bf16_base_merges_as_in_float32_and_is_saved_in_bf16(tiny_llama: Path, tmp_path: Path) -> None:
    """dtype auto on a bf16 base keeps bf16, and the merged weights are exactly (base + delta in fp32) rounded once
    to bf16 (peft computes the delta in fp32 on the CPU): checked because a merge in 16 bits was suspected of
    rounding the adapter away. On SmolLM2's demo adapter over a bf16 copy of its base, all 162.8M merged weights
    were bit-identical to an fp32 merge cast to bf16."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from olive_ext.passes.merge_adapter import merge_adapter_into

    base = tmp_path / "bf16"
    AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.bfloat16).save_pretrained(base)
    AutoTokenizer.from_pretrained(tiny_llama).save_pretrained(base)
    adapter = make_random_adapter(base, tmp_path / "adapter", r=2, target_modules=["q_proj", "down_proj"])
    merge_adapter_into(str(base), str(adapter), tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype="auto")
    assert merged.dtype == torch.bfloat16
    fp32 = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), adapter)
    expected = fp32.merge_and_unload().to(torch.bfloat16).state_dict()
    got = merged.state_dict()
    changed = [k for k in expected if "q_proj" in k or "down_proj" in k]
    assert changed and all(torch.equal(got[k], expected[k]) for k in expected), [
        k for k in expected if not torch.equal(got[k], expected[k])
    ][:5]


def test_an_adapter_given_another_base_of_the_same_shapes_is_said(
    tiny_llama: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An adapter trained on one model and applied to another of the same shapes (an -Instruct adapter on the base
    model) was taken without a word by auto-opt -a, generate-adapter and finetune --adapter_path: peft loads it, and
    the results are not the fine-tune's. Said once; a copy of the trained-on model, or the same hub id, says nothing."""
    import shutil

    from tiny_models import build_tiny_llama

    from olive_ext.models import folder

    adapter = make_random_adapter(tiny_llama, tmp_path / "adapter")
    other = build_tiny_llama(tmp_path / "other", seed=7)  # same config and shapes, other weights
    copy = shutil.copytree(tiny_llama, tmp_path / "copy")
    with caplog.at_level("WARNING", logger="olive_ext"):
        folder.resolve_model_arg(str(copy), str(adapter))
        assert "trained on" not in caplog.text
        folder.resolve_model_arg(str(other), str(adapter))
    assert f"was trained on {tiny_llama}" in caplog.text and f"give -m {tiny_llama}" in caplog.text
    config = adapter / "adapter_config.json"
    data = json.loads(config.read_text())
    caplog.clear()
    with caplog.at_level("WARNING", logger="olive_ext"):
        config.write_text(json.dumps({**data, "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct"}))
        folder.resolve_model_arg("huggingfacetb/SmolLM2-135M-Instruct", str(adapter))
        assert "trained on" not in caplog.text
        folder.resolve_model_arg("HuggingFaceTB/SmolLM2-135M", str(adapter))
    assert "trained on HuggingFaceTB/SmolLM2-135M-Instruct" in caplog.text


def test_a_fine_tune_outputs_adapter_whose_cached_base_was_pruned_uses_the_model_beside_it(
    tiny_llama: Path, tmp_path: Path
) -> None:
    """A fine-tune of a GGUF trains on its conversion in the cache, and its adapter_config.json names that folder;
    after `cache prune`, `chat -m ft/adapter` failed ("holds no onnxruntime-genai model") though the output keeps
    the model beside the adapter. That model is used; a bare adapter elsewhere is still refused, naming the path."""
    import shutil

    from olive_ext.models import folder

    out = tmp_path / "ft"
    shutil.copytree(tiny_llama, out / "model")
    adapter = make_random_adapter(tiny_llama, out / "adapter")
    config = adapter / "adapter_config.json"
    gone = str(tmp_path / "cache" / "entries" / "a416a736" / "model")
    config.write_text(json.dumps({**json.loads(config.read_text()), "base_model_name_or_path": gone}))
    (out / "model_config.json").write_text(json.dumps({"kind": "hf", "model": "model", "adapter": "adapter"}))
    art = folder.resolve_model_arg(str(adapter))
    assert (art.path, art.adapter_path) == (str((out / "model").resolve()), str(adapter))
    bare = shutil.copytree(adapter, tmp_path / "bare")
    with pytest.raises(UserInputError, match="is not a folder on this machine"):
        folder.resolve_model_arg(str(bare))
