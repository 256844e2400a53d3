"""generate-adapter on the tiny Llama: two random adapters, parity with peft, switching, misfits refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_models import build_tiny_llama, make_random_adapter

from olive_ext.cli import main
from olive_ext.errors import UserInputError
from olive_ext.workflows.generate_adapter import GenerateAdapterOptions, generate_adapters


@pytest.fixture(scope="module")
def two_adapters(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return (
        make_random_adapter(tiny_llama, root / "tone", seed=1, r=4),
        make_random_adapter(tiny_llama, root / "city", seed=2, r=8),
    )


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ga-cache")


@pytest.fixture(scope="module")
def multi(
    tiny_llama: Path, two_adapters: tuple[Path, Path], shared_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("ga") / "multi"
    generate_adapters(
        GenerateAdapterOptions(
            model_name_or_path=str(tiny_llama),
            adapter_path=[str(a) for a in two_adapters],
            output_path=str(out),
            cache_dir=str(shared_cache),
        )
    )
    return out


def test_each_adapter_matches_peft_and_base_matches_without_adapter(multi: Path) -> None:
    report = {r["name"]: r for r in json.loads((multi / "adapter_report.json").read_text())}
    assert set(report) == {"(no adapter)", "tone", "city"}
    for r in report.values():
        assert r["ok"] and r["max_abs_delta"] < 1e-3 and r["greedy_prefix_match"] == 1.0
    assert report["tone"]["rank"] == 4 and report["city"]["rank"] == 8  # two ranks, one base
    config = json.loads((multi / "model_config.json").read_text())
    assert config["adapters"] == {"tone": "adapters/tone.onnx_adapter", "city": "adapters/city.onnx_adapter"}
    assert not list((multi / "model").glob("*.onnx_adapter"))


def test_switching_adapters_changes_outputs(multi: Path, tiny_llama: Path) -> None:
    from olive_ext.onnx.parity import GenAICandidate

    ids = [5, 17, 42, 99, 7, 3]
    outs = {
        name: GenAICandidate(str(multi / "model"), file).logits(ids)
        for name, file in [
            ("base", None),
            ("tone", str(multi / "adapters/tone.onnx_adapter")),
            ("city", str(multi / "adapters/city.onnx_adapter")),
        ]
    }
    assert np.abs(outs["tone"] - outs["base"]).max() > 1e-2
    assert np.abs(outs["city"] - outs["tone"]).max() > 1e-2


def test_misfit_adapters_are_refused_before_building(
    tiny_llama: Path, two_adapters: tuple[Path, Path], tmp_path: Path
) -> None:
    other = build_tiny_llama(tmp_path / "other", hidden=32)
    misfit = make_random_adapter(other, tmp_path / "misfit", r=4)
    dora = tmp_path / "dora"
    make_random_adapter(tiny_llama, dora, r=4)
    config = json.loads((dora / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    bias = make_random_adapter(tiny_llama, tmp_path / "bias", r=4, lora_bias=True)  # its bias was dropped silently
    pickled = make_random_adapter(tiny_llama, tmp_path / "pickled", r=4)
    (pickled / "adapter_model.safetensors").rename(pickled / "adapter_model.bin")  # as safe_serialization=False
    tokens = make_random_adapter(tiny_llama, tmp_path / "tokens", r=4)  # found only by parity after the build
    config = json.loads((tokens / "adapter_config.json").read_text())
    (tokens / "adapter_config.json").write_text(json.dumps({**config, "trainable_token_indices": [5, 6]}))
    with pytest.raises(UserInputError) as info:
        generate_adapters(
            GenerateAdapterOptions(
                model_name_or_path=str(tiny_llama),
                adapter_path=[str(two_adapters[0]), str(misfit), str(dora), str(bias), str(pickled), str(tokens)],
                output_path=str(tmp_path / "out"),
                cache_dir=str(tmp_path / "c"),
            )
        )
    text = str(info.value)
    assert "adapter 'misfit'" in text and "in_features 64" in text
    assert text.count("adapter 'misfit'") == 4 and "and " in text and "more weights like these" in text  # not 1/tensor
    assert "adapter 'dora'" in text and "use_dora" in text
    assert f"olive-ext auto-opt -m {tiny_llama} --adapter_path {dora}" in text  # not "finetune --merge": retraining
    assert "adapter 'tokens'" in text and "trainable_token_indices" in text
    assert "adapter 'bias'" in text and "lora_bias=true" in text
    assert "adapter 'pickled'" in text and "adapter_model.bin is a pickle" in text
    assert "adapter 'tone'" not in text
    assert not (tmp_path / "out").exists() and not any((tmp_path / "c" / "entries").iterdir())


def test_adapters_on_some_layers_or_named_by_a_regex_ship_and_match_peft(tiny_llama: Path, tmp_path: Path) -> None:
    """peft's layers_to_transform (some layers only) and rank_pattern (ranks 4 and 8 in one adapter) failed in
    onnxruntime ("Shape mismatch attempting to re-use buffer") and took the good adapter beside them down; a regex
    target_modules was split at its dots and refused."""
    good = make_random_adapter(tiny_llama, tmp_path / "good", seed=3, r=4)
    layer1 = make_random_adapter(tiny_llama, tmp_path / "layer1", seed=4, r=4, target_modules=["q_proj", "v_proj"],
                                 layers_to_transform=[1])  # fmt: skip
    regex = make_random_adapter(tiny_llama, tmp_path / "regex", seed=5, r=2, target_modules=r".*\.(q_proj|v_proj)")
    pattern = make_random_adapter(tiny_llama, tmp_path / "pattern", seed=6, r=4, rank_pattern={"q_proj": 8})
    checks = generate_adapters(
        GenerateAdapterOptions(
            model_name_or_path=str(tiny_llama),
            adapter_path=[str(good), str(layer1), str(regex), str(pattern)],
            output_path=str(tmp_path / "out"),
            cache_dir=str(tmp_path / "c"),
        )
    )
    assert [c.name for c in checks if c.ok] == ["(no adapter)", "good", "layer1", "regex", "pattern"], checks
    assert all(c.numbers["max_abs_delta"] < 1e-3 for c in checks)
    assert sorted(p.name for p in (tmp_path / "out" / "adapters").iterdir()) == [
        "good.onnx_adapter", "layer1.onnx_adapter", "pattern.onnx_adapter", "regex.onnx_adapter"]  # fmt: skip


def test_olive_style_cli(tiny_llama: Path, two_adapters: tuple[Path, Path], shared_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "multi"
    code = main(
        [
            "generate-adapter",
            "--base_model_path",
            str(tiny_llama),
            "--adapter_paths",
            ",".join(str(a) for a in two_adapters),
            "--output_path",
            str(out),
            "--cache_dir",
            str(shared_cache),
            "--log_level",
            "3",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in (out / "adapters").iterdir()) == ["city.onnx_adapter", "tone.onnx_adapter"]


def test_int4_base_is_judged_by_top1_and_a_failed_base_is_not_written(
    tiny_llama: Path, two_adapters: tuple[Path, Path], shared_cache: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The tiny model's random weights give near-uniform logits, so int4 rounding flips its top-1
    # token often: the quantized check must catch that (SmolLM2's int4 check is an integration test).
    # A base that fails its check is not written at all: its output was packaged and called measured.
    out = tmp_path / "multi4"
    code = main(["generate-adapter", "-m", str(tiny_llama), "--adapter_path", *map(str, two_adapters), "-o", str(out),
                 "--precision", "int4", "--cache_dir", str(shared_cache), "--log_level", "3"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and not out.exists(), err
    assert "int4 base model failed its check" in err and "is too low for int4" in err, err
    agreement = float(err.split("top-1 agreement ")[1].split()[0])
    assert agreement < 0.9  # the int4 threshold


def test_other_adapter_formats(
    tiny_llama: Path, two_adapters: tuple[Path, Path], shared_cache: Path, tmp_path: Path
) -> None:
    from safetensors.numpy import load_file

    out = tmp_path / "st"
    generate_adapters(
        GenerateAdapterOptions(
            model_name_or_path=str(tiny_llama),
            adapter_path=[str(two_adapters[0])],
            output_path=str(out),
            adapter_format="safetensors",
            cache_dir=str(shared_cache),
        )
    )
    weights = load_file(str(out / "adapters" / "tone.safetensors"))
    assert any(k.endswith("lora_A.MatMul.weight") for k in weights)
    assert not list((out / "adapters").glob("*.onnx_adapter"))
    # chat and serve failed on them in onnxruntime-genai, package shipped them renamed .onnx_adapter
    from olive_ext.deploy.bundle import package
    from olive_ext.models.folder import find_genai_model

    with pytest.raises(UserInputError, match="not onnxruntime adapters"):
        find_genai_model(out)
    with pytest.raises(UserInputError, match="not an onnxruntime adapter"):
        package(out, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_extract_adapters_pass_in_a_recipe(tiny_llama: Path, two_adapters: tuple[Path, Path], tmp_path: Path) -> None:
    from olive_ext.onnx.parity import GenAICandidate, TorchReference, compare_llm
    from olive_ext.recipe import parse_recipe
    from olive_ext.workflows.run import run_recipe as run

    result = run(
        parse_recipe(
            {
                "input_model": {"path": str(tiny_llama), "adapter_path": str(two_adapters[0])},
                "passes": {
                    "build": {"type": "model_builder", "adapter_mode": "embed"},
                    "extract": {"type": "extract_adapters", "adapter_name": "tone"},
                },
                "output": {"path": str(tmp_path / "o")},
            }
        )
    )
    folder = result.chosen.artifact.path
    numbers = compare_llm(
        TorchReference(str(tiny_llama), str(two_adapters[0]), True),
        GenAICandidate(folder, f"{folder}/tone.onnx_adapter"),
        [[5, 9, 12, 40]],
        4,
    )
    assert numbers["max_abs_delta"] < 1e-3 and numbers["greedy_prefix_match"] == 1.0


def test_the_adapters_chat_template_is_shipped_and_different_ones_are_refused(tiny_llama: Path, tmp_path: Path) -> None:
    """The base's chat template was shipped, so an adapter fine-tuned in its own template was chatted and served in
    one it never saw (exit 0; with two adapters even verify could not tell)."""
    custom = make_random_adapter(tiny_llama, tmp_path / "custom", seed=7, r=4)
    template = "{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}### assistant:"
    (custom / "chat_template.jinja").write_text(template)
    other = make_random_adapter(tiny_llama, tmp_path / "other", seed=8, r=4)
    (other / "chat_template.jinja").write_text(template.replace("###", ">>>"))
    opts = {"model_name_or_path": str(tiny_llama), "cache_dir": str(tmp_path / "c")}
    with pytest.raises(UserInputError, match="different chat templates"):
        generate_adapters(GenerateAdapterOptions(**opts, adapter_path=[str(custom), str(other)],
                                                 output_path=str(tmp_path / "two")))  # fmt: skip
    assert not (tmp_path / "two").exists()
    generate_adapters(GenerateAdapterOptions(**opts, adapter_path=[str(custom)], output_path=str(tmp_path / "one")))
    assert (tmp_path / "one" / "model" / "chat_template.jinja").read_text() == template


def test_adapter_names_are_plain_file_names_apart_in_any_case(tmp_path: Path) -> None:
    """'.hidden' was shipped, then refused by package (no leading dot); 'Tone' and 'tone' were both shipped, and
    collide as files when the bundle is unpacked on macOS or Windows."""
    from olive_ext.models.adapters import resolve_adapter, unique_names

    for name in (".hidden", "Tone", "tone"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "adapter_config.json").write_text("{}")
    sources = [resolve_adapter(str(tmp_path / n)) for n in (".hidden", "Tone", "tone")]
    unique_names(sources)
    assert [s.name for s in sources] == ["hidden", "Tone", "tone_2"]
    with pytest.raises(UserInputError, match="given more than once"):  # it was built twice, as tone and tone_2
        unique_names([resolve_adapter(str(tmp_path / "tone")), resolve_adapter(str(tmp_path / "tone") + "/")])
    (tmp_path / "tone,v2").mkdir()  # an existing path with a comma is one adapter, not Olive's comma list
    opts = GenerateAdapterOptions(model_name_or_path="m", output_path="o", adapter_path=[str(tmp_path / "tone,v2")])
    assert opts.adapter_path == [str(tmp_path / "tone,v2")]
    listed = GenerateAdapterOptions(model_name_or_path="m", output_path="o", adapter_path="a,b")
    assert listed.adapter_path == ["a", "b"]


def test_a_bundle_is_not_named_like_one_of_its_adapters(multi: Path, tmp_path: Path) -> None:
    """`package --name tone` of an output with an adapter 'tone' was written, and serve refused to start on it."""
    from olive_ext.deploy.bundle import package

    with pytest.raises(UserInputError, match="is also an adapter's name"):
        package(multi, tmp_path / "b", name="tone")
    assert not (tmp_path / "b").exists()


def test_an_all_linear_adapter_names_the_modules_its_weights_hold(tiny_llama: Path, tmp_path: Path) -> None:
    """A hand-written target_modules "all-linear" was read as a module named "all-linear" and refused."""
    from olive_ext.models.adapters import resolve_adapter

    adapter = make_random_adapter(tiny_llama, tmp_path / "a", r=4, target_modules=["q_proj", "down_proj"])
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "target_modules": "all-linear"}))
    assert resolve_adapter(str(adapter)).target_modules == {"q_proj", "down_proj"}


def test_chat_without_an_adapter_says_the_base_model_answers(multi: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`chat -m <generate-adapter output>` without --adapter chatted with the base model without a word."""
    from olive_ext.workflows.chat import ChatOptions, open_chat

    with caplog.at_level("WARNING", logger="olive_ext"):
        open_chat(ChatOptions(model_name_or_path=str(multi)))
    assert "chatting with the base model" in caplog.text and "city, tone" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="olive_ext"):
        open_chat(ChatOptions(model_name_or_path=str(multi), adapter="tone"))
    assert "chatting with the base model" not in caplog.text


def test_layers_that_cannot_be_run_time_inputs_are_answered_with_what_can(tmp_path: Path) -> None:
    """A Phi-3 fine-tune with the default targets (its fused qkv_proj, gate_up_proj) was refused naming q_proj, k_proj
    ... as "supported", none of which Phi-3 has; a GPT-2 (no builder class at all) was refused for its c_attn. The
    Phi-3 refusal names the layers it has that can be inputs, and the merge; GPT-2 is refused as the builder's."""
    from tiny_models import build_tiny_decoder

    phi3 = build_tiny_decoder(tmp_path / "phi3", "phi3")
    adapter = make_random_adapter(phi3, tmp_path / "a", target_modules=["qkv_proj", "gate_up_proj"])
    opts = GenerateAdapterOptions(model_name_or_path=str(phi3), adapter_path=[str(adapter)],
                                  output_path=str(tmp_path / "out"), cache_dir=str(tmp_path / "c"))  # fmt: skip
    with pytest.raises(UserInputError) as info:
        generate_adapters(opts)
    assert "fine-tune with --target_modules down_proj,o_proj" in str(info.value)
    assert f"olive-ext auto-opt -m {phi3} --adapter_path {adapter}" in str(info.value)
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=512, n_positions=64)).save_pretrained(gpt2)
    with pytest.raises(UserInputError, match="GPT2LMHeadModel") as info:
        generate_adapters(opts.model_copy(update={"model_name_or_path": str(gpt2)}))
    assert "target_modules" not in str(info.value)


_TEMPLATE_IN_A_PROCESS = """
import sys
from types import SimpleNamespace
from olive_ext.artifacts import Artifact, fingerprint_input
from olive_ext.cache import Cache
from olive_ext.workflows.generate_adapter import template_adapter

cache = Cache(sys.argv[2])
base = fingerprint_input(Artifact("hf", sys.argv[1]), cache.memo)
print(template_adapter(base, [SimpleNamespace(target_modules=["q_proj", "v_proj"])], cache))
"""


def test_two_runs_on_an_empty_cache_make_the_zero_adapter_side_by_side(tiny_llama: Path, tmp_path: Path) -> None:
    """Both wrote one fixed '<key>.tmp' folder and the second's rename failed ("Directory not empty", 2 runs of 2):
    each writes its own now, and the one that finds the adapter already there keeps it."""
    import subprocess
    import sys

    argv = [sys.executable, "-c", _TEMPLATE_IN_A_PROCESS, str(tiny_llama), str(tmp_path / "cache")]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-800:] for _, err in outs]
    folders = {out.strip() for out, _ in outs}
    assert len(folders) == 1 and (Path(folders.pop()) / "adapter_model.safetensors").is_file()
    assert not list((tmp_path / "cache" / "lora-templates").glob("*.tmp"))
