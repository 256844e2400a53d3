"""Models that arrive quantized or as pickles: bitsandbytes bases (Unsloth's -bnb-4bit) are dequantized once and
built like any model; other quantization methods and pickle-only weights are refused before work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tiny_models import make_random_adapter

from olive_ext.cli import main

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


@pytest.fixture(scope="module")
def bnb_llama(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama saved after ``load_in_4bit`` (nf4), as Unsloth publishes its -bnb-4bit bases."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    out = tmp_path_factory.mktemp("bnb") / "llama-bnb-4bit"
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    AutoModelForCausalLM.from_pretrained(tiny_llama, quantization_config=config, device_map="cpu").save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (tiny_llama / name).exists():
            shutil.copy(tiny_llama / name, out / name)
    assert json.loads((out / "config.json").read_text())["quantization_config"]["quant_method"] == "bitsandbytes"
    return out


def _logits(model: object, ids: object) -> object:
    import torch

    with torch.no_grad():
        return model(ids).logits  # type: ignore[operator]


def test_a_bitsandbytes_model_dequantizes_to_the_same_function(bnb_llama: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from olive_ext.passes.dequantize_hf import dequantize_folder

    dequantize_folder(bnb_llama, tmp_path / "plain")
    assert "quantization_config" not in json.loads((tmp_path / "plain" / "config.json").read_text())
    import bitsandbytes as bnb

    packed_model = AutoModelForCausalLM.from_pretrained(bnb_llama, device_map="cpu")
    plain_model = AutoModelForCausalLM.from_pretrained(tmp_path / "plain")
    plain_weights = dict(plain_model.named_parameters())
    quantized = [(n, m) for n, m in packed_model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantized
    for name, module in quantized:  # every 4-bit weight: exactly what bitsandbytes' own dequantization gives
        expected = bnb.functional.dequantize_4bit(module.weight.data, module.weight.quant_state).float()
        assert torch.equal(plain_weights[f"{name}.weight"].float(), expected), name
    ids = torch.tensor([[1, 5, 9, 20, 33, 7]])
    packed, plain = _logits(packed_model, ids), _logits(plain_model, ids)
    # the forward pass as a whole: bitsandbytes' CPU 4-bit kernel is exact to 1e-5 on AMD EPYC, but on Intel Xeon
    # (AMX) it computes in bf16 (one layer's outputs 0.4% off the float product of its own dequantized weights)
    scale = float(packed.abs().max())  # type: ignore[attr-defined]
    assert float((packed - plain).abs().max()) < 0.02 * scale  # type: ignore[operator]


def test_an_unsloth_style_adapter_on_a_bnb_base_builds(bnb_llama: Path, tmp_path: Path) -> None:
    """A LoRA adapter folder whose base is a bitsandbytes 4-bit model (what an Unsloth run saves), given as -m:
    dequantized, merged and built (it failed with transformers' empty NotImplementedError at the merge)."""
    adapter = make_random_adapter(bnb_llama, tmp_path / "adapter")
    out = tmp_path / "q"
    code = main(["quantize", "-m", str(adapter), "--precision", "int4", "-o", str(out), "--log_level", "3",
                 "--cache_dir", str(tmp_path / "cache")])  # fmt: skip
    assert code == 0
    steps = [record["type"] for record in json.loads((out / "lineage.json").read_text())]
    assert steps[:2] == ["dequantize_hf", "model_builder"], steps
    meta = json.loads((out / "model_config.json").read_text())
    assert meta["adapter_mode"] == "merge", meta
    assert (out / "model" / "genai_config.json").exists()


def test_other_quantized_models_and_pickle_weights_are_refused_before_work(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gptq = shutil.copytree(tiny_llama, tmp_path / "gptq")
    config = json.loads((gptq / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    (gptq / "config.json").write_text(json.dumps(config))
    pickled = shutil.copytree(tiny_llama, tmp_path / "pickled")
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")  # the name is what is refused
    for model, words in ((gptq, "quantized with gptq"), (pickled, "only as pickle files (pytorch_model.bin)")):
        for command in ("quantize", "finetune", "auto-opt"):
            capsys.readouterr()
            data = [] if command == "quantize" else ["-d", "json", "--data_files", str(tmp_path / "none.jsonl")]
            code = main([command, "-m", str(model), "-o", str(tmp_path / "out"), *data])
            err = capsys.readouterr().err
            assert code == 2 and str(model) in err and words in err, (command, err)
            assert not (tmp_path / "out").exists()
    adapter = make_random_adapter(tiny_llama, tmp_path / "adapter")
    (adapter / "adapter_model.safetensors").rename(adapter / "adapter_model.bin")
    for argv in (["-m", str(tiny_llama), "--adapter_path", str(adapter)], ["-m", str(adapter)]):
        capsys.readouterr()
        assert main(["quantize", *argv, "-o", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert "adapter weights only as pickle files (adapter_model.bin)" in err, err


def test_a_pickle_beside_safetensors_is_neither_loaded_nor_passed_on(tiny_llama: Path, tmp_path: Path) -> None:
    """A pytorch_model.bin whose unpickling would write a file: the safetensors are read, the pickle is not
    copied into the fine-tune's model/ folder (it was, to be loaded by whoever came next)."""
    import pickle

    model = shutil.copytree(tiny_llama, tmp_path / "both")
    canary = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (Path.touch, (canary,))  # type: ignore[return-value]

    (model / "pytorch_model.bin").write_bytes(pickle.dumps({"w": Payload()}))
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"q": f"q{i}", "a": f"a{i}"}) + "\n" for i in range(8)))
    code = main(["finetune", "-m", str(model), "-d", "json", "--data_files", str(data), "--text_template",
                 "{q} {a}", "--max_steps", "1", "-o", str(tmp_path / "ft"), "--log_level", "3",
                 "--cache_dir", str(tmp_path / "cache")])  # fmt: skip
    assert code == 0
    assert (tmp_path / "ft" / "model" / "model.safetensors").exists()
    assert not (tmp_path / "ft" / "model" / "pytorch_model.bin").exists()
    assert not canary.exists()


def test_export_and_generate_adapter_take_a_bnb_base(bnb_llama: Path, tmp_path: Path) -> None:
    """`export` skipped the engine's dequantize step (llama.cpp: "no llama.cpp name for tensor ...absmax", and a
    traceback with an adapter); generate-adapter dequantized twice and failed ("You need to first quantize your
    model in order to dequantize it")."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'olive-ext[llamacpp]')")
    adapter = make_random_adapter(bnb_llama, tmp_path / "adapter")
    cache = ["--cache_dir", str(tmp_path / "cache"), "--log_level", "3"]
    assert main(["export", "-m", str(bnb_llama), "--adapter_path", str(adapter), "-o", str(tmp_path / "gguf"),
                 "--quant", "F32", "--log_level", "3"]) == 0  # fmt: skip
    assert list((tmp_path / "gguf" / "model").glob("*.gguf"))
    assert main(["generate-adapter", "-m", str(bnb_llama), "-a", str(adapter), "-o", str(tmp_path / "ga"), *cache]) == 0
    assert list((tmp_path / "ga").rglob("*.onnx_adapter"))
