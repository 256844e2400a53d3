"""The family matrix: every decoder architecture onnxruntime-genai's builder dispatches on, as a tiny
random-weight model in transformers 5's config format, goes finetune -> auto-opt -> package -> verify.

The fast core runs with the unit tests; the other families are marked slow (they cost the same few
seconds each, but together they would double `make test-unit`; `make test` runs them). Per-family times are in
benchmarks/RESULTS.md ("Family matrix").
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import pytest
from convert_helpers import build, node_attrs
from gguf_families import GGUF_FAMILIES, gguf_ready, write_family_gguf
from gguf_families import REFUSED as GGUF_REFUSED
from tiny_models import DECODER_FAMILIES, ENCODER_FAMILIES, build_tiny_decoder, build_tiny_encoder, build_tiny_llama

from olive_ext.deploy.verify import verify
from olive_ext.recipe import parse_recipe
from olive_ext.workflows.auto_opt import auto_opt
from olive_ext.workflows.finetune import finetune
from olive_ext.workflows.package import package
from olive_ext.workflows.run import run_recipe

TEMPLATE = "Phrase: {phrase}\nTone: {tone}"
# Whole pipeline in the unit run: the families whose builder paths differ most from the tiny Llama's
# (per-type rope + sliding layers + sandwich norms; biases; unfused Phi3 rope). ~20 s each on an idle core.
CORE = ("gemma3", "qwen2", "phi3")
# Families whose quantized build the builder refuses (the README table says the same): model_builder then builds
# fp32 and quantizes it with int4_weight's quantizer, and says so in the artifact's build_path.
REFUSED_QUANTIZED = ("gpt_oss",)
FALLBACK_PATH = "model_builder fp32 + int4_weight"
FAST_EVAL = {"warmup": 0, "repeats": 1, "new_tokens": 4, "prompt_tokens": 8, "max_new_tokens": 4}


def _families() -> list[Any]:
    return [pytest.param(f, marks=() if f in CORE else pytest.mark.slow, id=f) for f in DECODER_FAMILIES]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLIVE_EXT_THREADS", "1")  # tiny ops: threads only spin-wait for each other


@pytest.fixture(scope="module")
def tone_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(0)
    words = {"positive": ["great", "love", "happy"], "negative": ["terrible", "hate", "sad"]}
    path = tmp_path_factory.mktemp("data") / "tone.jsonl"
    rows = []
    for _ in range(40):
        tone = rng.choice(sorted(words))
        rows.append({"phrase": f"{rng.choice(['the', 'a', 'cat'])} {rng.choice(words[tone])} city", "tone": tone})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.mark.parametrize("family", _families())
def test_family_finetunes_optimizes_packages_and_verifies(family: str, tone_file: Path, tmp_path: Path) -> None:
    model = build_tiny_decoder(tmp_path / family, family)
    config = json.loads((model / "config.json").read_text())
    assert "rope_theta" not in config  # transformers 5 layout: rope settings live in rope_parameters

    ft = _finetune_and_optimize(str(model), tone_file, tmp_path)
    phases = ft.metrics["peak_rss_mb_by_phase"]
    assert list(phases) == ["load", "base_eval", "train", "finetuned_eval", "save"] and all(phases.values())
    paths = {r["artifact"]["meta"]["precision"]: r["artifact"]["meta"]["build_path"] for r in _candidates(tmp_path)}
    fallback = family in REFUSED_QUANTIZED  # the builder refuses int8: fp32 + int4_weight (bits 8), recorded
    assert paths["fp32"] == "model_builder" and paths["int8"].startswith(FALLBACK_PATH) == fallback, paths
    model_config = json.loads((tmp_path / "ao" / "model_config.json").read_text())
    assert model_config["kind"] == "genai"

    bundle = package(tmp_path / "ao", tmp_path / "bundle", name=family)
    checks = {c.name: c for c in verify(bundle.path).checks}
    # random weights never end their turn; everything else must hold
    assert all(c.ok for name, c in checks.items() if not name.startswith("end of turn")), checks
    assert checks["load"].ok and any(n.startswith("end of turn") for n in checks)


def _finetune_and_optimize(model: str, tone_file: Path, tmp_path: Path) -> Any:
    """finetune (3 steps) into tmp_path/ft, then auto-opt into tmp_path/ao with precision auto and 2 candidates:
    fp32 (parity must pass: a wrong graph fails it) and int8, both built and scored. Returns the fine-tune."""
    ft = finetune(
        model, str(tmp_path / "ft"), data_name="json", data_files=str(tone_file),
        train_split="train[:32]", eval_split="train[32:]", text_template=TEMPLATE,
        max_steps=3, learning_rate=3e-3, torch_dtype="float32", gradient_checkpointing=False,
    )  # fmt: skip
    assert ft.metrics["steps"] == 3 and ft.metrics["eval"]["finetuned"]["eval_loss"] > 0
    data = {"data_name": "json", "data_files": str(tone_file), "eval_split": "train[32:]", "text_template": TEMPLATE}
    result = auto_opt(str(ft.output_dir), str(tmp_path / "ao"), max_candidates=2, **data, **FAST_EVAL)
    (run,) = result.runs.values()
    by_precision = {r.artifact.meta["precision"]: r for r in run.results if r.artifact is not None}
    errors = [r.error or "" for r in run.results if not r.ok]
    assert errors == [] and set(by_precision) == {"fp32", "int8"}, errors
    parity = by_precision["fp32"].artifact.meta["parity"]
    assert parity["passed"] and parity["max_abs_delta"] < 1e-3, parity
    assert "exact_match" in by_precision["fp32"].metrics
    return ft


def _candidates(tmp_path: Path) -> list[dict[str, Any]]:
    return [c for c in json.loads((tmp_path / "ao" / "candidates.json").read_text())["candidates"] if c["artifact"]]


@pytest.mark.parametrize("precision", ["fp32", "int4"])
@pytest.mark.parametrize("family", list(DECODER_FAMILIES))
def test_family_builds_with_parity_or_is_refused_with_the_reason(family: str, precision: str, tmp_path: Path) -> None:
    """Every family, in the unit run (about a second a build): fp32 must match PyTorch, int4 must build and load."""
    model = build_tiny_decoder(tmp_path / family, family)
    passes = {
        "build": {"type": "model_builder", "precision": precision},
        "parity": {"type": "parity_check", "fail": precision == "fp32"},
    }
    art = build(model, passes, cache_dir=tmp_path / "cache")
    fallback = precision == "int4" and family in REFUSED_QUANTIZED
    assert art.meta["build_path"].startswith(FALLBACK_PATH) == fallback, art.meta["build_path"]
    parity = art.meta["parity"]
    assert parity["measured"] and art.meta["smoke"]["ran"]
    if precision == "fp32":
        assert parity["passed"] and parity["max_abs_delta"] < 1e-3 and parity["greedy_prefix_match"] == 1.0, parity
    else:
        # random weights give flat next-token distributions (top-2 gap ~0.3 sd of the logits), so int4 noise
        # flips top-1 often; the distributions stay close
        assert parity["kl"] < 0.1, parity


def test_bridge_flattens_per_type_rope_parameters_for_the_builder() -> None:
    from transformers import Gemma3TextConfig, LlamaConfig

    from olive_ext.onnx.genai_builder import bridge_config

    config = Gemma3TextConfig(num_hidden_layers=2, layer_types=["sliding_attention", "full_attention"])
    assert set(config.rope_parameters) == {"sliding_attention", "full_attention"}  # transformers 5's layout
    changed = bridge_config(config)
    assert config.rope_parameters["rope_type"] == "default" and config.rope_theta == 1_000_000.0
    assert config.rope_local_base_freq == 10_000.0 and changed
    flat = LlamaConfig()
    before = dict(flat.rope_parameters)
    bridge_config(flat)
    assert flat.rope_parameters == before  # a layout the builder reads is left alone


def test_rope_scalings_the_builder_would_build_wrong_are_refused_and_phi3_longrope_builds(tmp_path: Path) -> None:
    """onnxruntime-genai 0.18's Llama class reads only Llama 3's scaling and built linear or YaRN scaling as plain
    RoPE without a word (a tiny Llama's fp32 logits off by 0.9 and 0.6, shipped by `quantize`); its YaRN failed
    outside GPT-OSS (ZeroDivisionError); its Phi-3 class read longrope's transformers 4 key (KeyError: 'type').
    The first two are refused as a model-level RoPE problem; longrope is bridged and matches PyTorch."""
    from transformers import GptOssConfig, LlamaConfig, Phi3Config, Qwen2Config

    from olive_ext.onnx.genai_builder import bridge_config

    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128, "rope_theta": 1e4}
    for config, says in (
        (LlamaConfig(rope_parameters={"rope_type": "linear", "factor": 4.0, "rope_theta": 1e4}), "Llama class"),
        (LlamaConfig(rope_parameters=yarn), "Llama class"),
        (Qwen2Config(rope_parameters=yarn), "YaRN fails"),
    ):
        config.architectures = [type(config).__name__.replace("Config", "ForCausalLM")]
        with pytest.raises(NotImplementedError, match=f"RoPE style is not currently supported: .*{says}"):
            bridge_config(config)
    for config in (LlamaConfig(rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e4}),
                   Qwen2Config(rope_parameters={"rope_type": "linear", "factor": 4.0, "rope_theta": 1e4}),
                   GptOssConfig()):  # fmt: skip
        config.architectures = [type(config).__name__.replace("Config", "ForCausalLM")]
        bridge_config(config)  # read by the builder (GPT-OSS: its YaRN)
    longrope = {"rope_type": "longrope", "short_factor": [1.0] * 8, "long_factor": [2.0] * 8, "rope_theta": 1e4,
                "original_max_position_embeddings": 128}
    phi3 = Phi3Config(hidden_size=64, num_attention_heads=4, rope_parameters=longrope)
    phi3.architectures = ["Phi3ForCausalLM"]
    assert "rope_parameters.type=longrope" in bridge_config(phi3) and phi3.rope_parameters["type"] == "longrope"
    model = build_tiny_decoder(tmp_path / "phi3", "phi3")
    config = json.loads((model / "config.json").read_text())
    short = [1.0 + i / 10 for i in range(8)]
    config["rope_parameters"] = {"rope_type": "longrope", "rope_theta": 5e4, "original_max_position_embeddings": 128,
                                 "short_factor": short, "long_factor": [2.0] * 8}  # fmt: skip
    config["original_max_position_embeddings"] = 128  # Phi-3-128k's shape: the builder's long-RoPE class
    (model / "config.json").write_text(json.dumps(config))
    passes = {"build": {"type": "model_builder"}, "parity": {"type": "parity_check"}}
    art = build(model, passes, cache_dir=tmp_path / "c")
    assert art.meta["parity"]["passed"] and art.meta["parity"]["max_abs_delta"] < 1e-4, art.meta["parity"]


def test_an_architecture_the_builder_has_no_class_for_is_refused_before_any_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A GPT-2 (or Qwen2-MoE, Mixtral, Falcon...) went through `auto-opt --dry_run` as "7 candidate pipelines", and
    the real run loaded it for 10-40 s per candidate before the builder's NotImplementedError named a scratch
    folder; `quantize` likewise. Both refuse it before work now, naming the architecture."""
    import torch
    from tiny_models import build_tokenizer
    from transformers import GPT2Config, GPT2LMHeadModel

    from olive_ext.cli import main

    model = tmp_path / "gpt2"
    tok = build_tokenizer(model)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2)).save_pretrained(model)  # type: ignore[arg-type]
    for argv in (["auto-opt", "-m", str(model), "-o", str(tmp_path / "ao"), "--dry_run"],
                 ["quantize", "-m", str(model), "-o", str(tmp_path / "q"), "--precision", "int4"]):  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"{model}: it is a GPT2LMHeadModel (config.json's architectures), which the genai" in err, err
        assert "builds Llama, Mistral" in err and "olive-ext-" not in err
    assert not (tmp_path / "ao").exists() and not (tmp_path / "q").exists()


def test_transformers5_gemma3_with_per_type_rope_builds_int4_and_passes_parity(tmp_path: Path) -> None:
    # embed_std 0.3: peaked next-token distributions, as a trained model has (see build_tiny_decoder)
    model = build_tiny_decoder(tmp_path / "gemma3", "gemma3", embed_std=0.3)
    rope = json.loads((model / "config.json").read_text())["rope_parameters"]
    assert rope["full_attention"]["rope_theta"] != rope["sliding_attention"]["rope_theta"]
    passes = {"build": {"type": "model_builder", "precision": "int4"}, "parity": {"type": "parity_check"}}
    art = build(model, passes, cache_dir=tmp_path / "cache")
    parity = art.meta["parity"]
    assert parity["passed"] and parity["top1_agreement"] >= 0.9 and parity["greedy_prefix_match"] == 1.0, parity
    assert json.loads((Path(art.path) / "genai_config.json").read_text())["model"]["type"] == "gemma3_text"
    windows = [n["local_window_size"] for n in node_attrs(Path(art.path) / "model.onnx", "GroupQueryAttention")]
    assert windows == [32, -1]  # layer_types: the sliding layer, then the full one


def test_a_rope_scaling_the_builder_builds_wrong_is_refused_before_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Llama with linear RoPE scaling went through `auto-opt --dry_run` and `quantize --dry_run` (exit 0), and the
    real run was refused 15 s into its first build, exit 1; finetune said nothing. Refused before work now, exit 2,
    as an architecture without a builder class is."""
    from olive_ext.cli import main

    model = build_tiny_llama(tmp_path / "llama-linear")
    config = json.loads((model / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0}
    (model / "config.json").write_text(json.dumps(config))
    dry = ["--dry_run"]
    for argv in (["auto-opt", "-m", str(model), "-o", str(tmp_path / "ao"), *dry],
                 ["quantize", "-m", str(model), "-o", str(tmp_path / "q"), "--precision", "int4", *dry]):  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "its RoPE scaling 'linear'" in err and "Llama class reads only rope_type llama3" in err, err
    assert not (tmp_path / "ao").exists() and not (tmp_path / "q").exists()


def test_a_mistral_window_shorter_than_its_context_runs_past_it_as_transformers_does(tmp_path: Path) -> None:
    """Mistral's config gives a window and no layer_types: the build kept window-sized KV buffers, and chat, serve
    and verify failed in GroupQueryAttention one token past the window (64 here). Then the build attended to the
    whole context on every layer (the builder reads the layers' kinds from layer_types alone): logits 110 tokens in
    were off by 0.30, where this test's random ids could not tell a window from none (7.6e-7)."""
    import numpy as np
    import onnxruntime_genai as og
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = build_tiny_decoder(tmp_path / "mistral", "mistral")
    assert json.loads((model / "config.json").read_text())["sliding_window"] == 64
    art = build(model, {"build": {"type": "model_builder"}}, cache_dir=tmp_path / "cache")
    windows = [n["local_window_size"] for n in node_attrs(Path(art.path) / "model.onnx", "GroupQueryAttention")]
    assert windows == [64, 64]  # every layer, as transformers' Mistral applies it
    text = " ".join(["The quick brown fox jumps over the lazy dog while the cat sleeps near the warm fire."] * 8)
    ids = AutoTokenizer.from_pretrained(model)(text)["input_ids"][:110]  # past the window
    gen_params = og.GeneratorParams(og_model := og.Model(art.path))
    gen_params.set_search_options(max_length=140)
    generator = og.Generator(og_model, gen_params)
    generator.append_tokens(ids)
    ours = np.asarray(generator.get_output("logits"))[0, -1]
    with torch.no_grad():
        theirs = AutoModelForCausalLM.from_pretrained(model).eval()(torch.tensor([ids])).logits[0, -1].numpy()
        unwindowed = AutoModelForCausalLM.from_pretrained(model, sliding_window=None).eval()(
            torch.tensor([ids])).logits[0, -1].numpy()
    assert np.abs(unwindowed - theirs).max() > 1e-2  # else these ids could not tell a window from none
    assert np.abs(ours - theirs).max() < 1e-3  # the window applied as transformers applies it
    for _ in range(20):  # and decoding goes on past it
        generator.generate_next_token()


def test_a_model_level_builder_failure_is_reported_once_with_the_field(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from olive_ext.onnx.genai_builder import ModelNotBuildableError

    model = build_tiny_decoder(tmp_path / "qwen2", "qwen2")
    config = json.loads((model / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 50000.0}
    (model / "config.json").write_text(json.dumps(config))
    caplog.set_level("INFO", logger="olive_ext")
    with pytest.raises(ModelNotBuildableError) as info:
        auto_opt(str(model), str(tmp_path / "ao"), max_candidates=3, **FAST_EVAL)
    text = str(info.value)
    assert str(model) in text and "`rope_parameters.rope_type`" in text and '"dynamic"' in text
    assert "block size" not in text and "No option changes that" in text, text
    builds = [r for r in caplog.records if "(model_builder): running" in r.getMessage()]
    assert len(builds) == 1, [r.getMessage() for r in builds]  # not once per candidate
    assert not (tmp_path / "ao").exists()


@pytest.mark.parametrize("family", ["gemma2", "granite"])
def test_chunked_head_loss_matches_the_models_own_loss_with_softcapping_and_scaling(
    family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from olive_ext.train import loss

    path = build_tiny_decoder(tmp_path / family, family)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    config = model.config
    assert getattr(config, "final_logit_softcapping", None) or getattr(config, "logits_scaling", 1) != 1  # not plain
    torch.manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (3, 12))
    labels = ids.clone()
    labels[:, :5] = -100
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    monkeypatch.setattr(loss, "CHUNK_ELEMENTS", 7 * model.config.vocab_size)  # 7 positions a chunk: 3 chunks
    with torch.no_grad():
        fast, n = loss.loss_sum_selected(model, batch)
        full, m = loss.loss_sum_full(model, batch)
    assert int(n) == int(m) == 21 and abs(float(fast) - float(full)) < 1e-4 * float(full)
    assert loss.LossFunction()._check(model, batch)  # so evaluation takes the chunked path


def test_torch_backend_scores_and_generates_from_the_positions_it_reads(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from olive_ext.evaluate.backends.torch_lm import TorchLMBackend

    path = build_tiny_decoder(tmp_path / "gemma3", "gemma3")
    backend = TorchLMBackend(str(path), None, threads=1)
    assert backend.keep_kw == "logits_to_keep"
    prompt, continuation = list(range(5, 40)), list(range(40, 110))  # continuation longer than one NLL chunk
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + continuation])).logits[0].double()
    logprobs = torch.log_softmax(logits[len(prompt) - 1 : -1], dim=-1)
    expected = -float(logprobs[torch.arange(len(continuation)), torch.tensor(continuation)].sum())
    assert abs(backend.continuation_nll(prompt, continuation) - expected) < 1e-6 * abs(expected)
    tokens = backend.generate(prompt, 6).tokens
    with torch.no_grad():
        reference = model.generate(torch.tensor([prompt]), max_new_tokens=6, do_sample=False, eos_token_id=None)
    assert tokens == reference[0, len(prompt) : len(prompt) + len(tokens)].tolist() and tokens


# BERT: test_onnx_passes; XLM-R is RoBERTa's graph; e5-bge: an encoder timed without eval data
ENCODER_CORE = ("roberta", "distilbert", "e5-bge")


def _encoders() -> list[Any]:
    params = []
    for f in ENCODER_FAMILIES:
        params.append(pytest.param(f, marks=() if f in ENCODER_CORE else pytest.mark.slow, id=f))
    return params


@pytest.mark.parametrize("family", _encoders())
def test_encoder_family_exports_quantizes_int8_and_qdq_and_is_evaluated(
    family: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from convert_helpers import text_data

    model = build_tiny_encoder(tmp_path / family, family)
    classifier = family != "e5-bge"
    data = text_data(tmp_path / "data.jsonl")
    if classifier:  # the template's trailing field is the label accuracy compares with
        data = {"name": "json", "data_files": data["data_files"], "text_template": "{text}{label}"}
    export = {"type": "onnx_export"}
    parity = {"type": "parity_check", "fail": False, "data": "eval"}
    recipe = {
        "input_model": {"path": str(model)},
        "data": {"eval": data},
        "pipelines": [
            {"export": export, "quantize": {"type": "int8_dynamic"}, "parity": parity},
            {"export": export, "quantize": {"type": "qdq_static", "preset": "cpu", "data": "eval", "samples": 8},
             "parity": parity},
        ],
        "targets": [{"device": "cpu"}],
        # the evaluator reads labels whenever it has data for an encoder, so the embedder is timed without
        "evaluate": {"data": "eval" if classifier else None,
                     "metrics": ["size", "latency", *(["accuracy"] if classifier else [])],
                     "warmup": 0, "repeats": 1},
        "cache_dir": str(tmp_path / "cache"),
    }  # fmt: skip
    with caplog.at_level(logging.INFO, logger="olive_ext"):
        result = run_recipe(parse_recipe(recipe), write_output=False)
    assert [r.error for r in result.results if not r.ok] == [] and len(result.results) == 2
    # no PyTorch reference for an encoder: it was measured as an LLM and warned "exact-match accuracy needs ..."
    assert "could not measure the source model" not in caplog.text and result.reference is None
    for r in result.results:
        assert r.artifact is not None and r.artifact.meta["smoke"]["ran"]
        numbers = r.artifact.meta["parity"]
        # int8 on random weights: the outputs stay close (cosine of the logits or of the pooled embeddings)
        assert numbers["measured"] and numbers["min_cosine"] > 0.9, numbers
        assert r.metrics["size"] > 0 and r.metrics["latency"] > 0
        if classifier:
            assert 0 <= r.metrics["accuracy"] <= 100


def test_encoder_timing_feeds_every_input_the_graph_declares(tmp_path: Path) -> None:
    """A graph that needs attention_mask, token_type_ids and position_ids runs on a tokenizer's input_ids alone."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    from olive_ext.evaluate.backends.ort_encoder import OrtEncoderBackend

    names = ["input_ids", "attention_mask", "token_type_ids", "position_ids"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in names]
    nodes = [
        helper.make_node("Add", ["input_ids", "attention_mask"], ["a"]),
        helper.make_node("Add", ["a", "token_type_ids"], ["b"]),
        helper.make_node("Mul", ["b", "position_ids"], ["out"]),
    ]
    output = helper.make_tensor_value_info("out", TensorProto.INT64, ["batch", "sequence"])
    graph = helper.make_graph(nodes, "enc", inputs, [output])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "model.onnx")
    backend = OrtEncoderBackend(str(tmp_path), "CPUExecutionProvider", threads=1)
    out, seconds = backend.run({"input_ids": [5, 6, 7]})
    # mask ones, token types zeros, positions 0..n-1
    assert out.tolist() == [[0, 7, 16]] and seconds > 0
    out, _ = backend.run({"input_ids": [5, 6, 7], "token_type_ids": [1, 1, 1]})
    assert np.array_equal(out, [[0, 8, 18]])


# ----------------------------------------------------------------------------- GGUF inputs per family


@pytest.mark.parametrize("family", list(GGUF_FAMILIES))
def test_family_gguf_reads_back_as_the_model_or_is_refused_with_the_reason(family: str, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = build_tiny_decoder(tmp_path / family, family)
    gguf_ready(model, family)
    write_family_gguf(model, family, model / "model.gguf")
    if family in GGUF_REFUSED:
        with pytest.raises(RuntimeError, match=r"size mismatch|ignore_mismatched_sizes"):
            AutoModelForCausalLM.from_pretrained(model, gguf_file="model.gguf")
        return
    reference = AutoModelForCausalLM.from_pretrained(model).eval()
    back = AutoModelForCausalLM.from_pretrained(model, gguf_file="model.gguf").eval()
    ids = torch.tensor([[1, 5, 17, 40, 99, 3, 250, 7, 30, 31, 32, 33]])
    with torch.no_grad():
        assert torch.allclose(reference(ids).logits, back(ids).logits, atol=1e-5)


@pytest.mark.parametrize("family", [f for f in GGUF_FAMILIES if f not in GGUF_REFUSED])
def test_a_family_gguf_converts_with_the_tokens_of_its_vocabulary(family: str, tmp_path: Path) -> None:
    """A Gemma GGUF holding a GPT-2 byte-level vocabulary was saved with transformers' GemmaTokenizer, which
    rebuilt a SentencePiece pipeline on load: "what is the capital of france" became mostly <unk> (id 0) in
    every model made from it, and chat answered "ĊĊĊĊĊĊ"."""
    from transformers import AutoTokenizer

    from olive_ext.passes.gguf_to_hf import PROBE, convert_gguf

    model = build_tiny_decoder(tmp_path / family, family)
    gguf_ready(model, family)
    gguf = write_family_gguf(model, family, tmp_path / f"{family}.gguf")
    convert_gguf(tmp_path, gguf.name, tmp_path / "hf")
    source, converted = AutoTokenizer.from_pretrained(model), AutoTokenizer.from_pretrained(tmp_path / "hf")
    prompt = "<|im_start|>user\nwhat is the capital of france<|im_end|>\n<|im_start|>assistant\n"
    for text in (prompt, PROBE):
        assert converted(text)["input_ids"] == source(text)["input_ids"], text


def _gguf_pipeline_families() -> list[Any]:
    readable = [f for f in GGUF_FAMILIES if f not in GGUF_REFUSED]
    return [pytest.param(f, marks=() if f == "qwen2" else pytest.mark.slow, id=f) for f in readable]


@pytest.mark.parametrize("family", _gguf_pipeline_families())
def test_family_gguf_input_finetunes_and_optimizes(family: str, tone_file: Path, tmp_path: Path) -> None:
    """A tiny model of the family, written as GGUF, is the input of finetune (3 steps) -> auto-opt (2 candidates)."""
    model = build_tiny_decoder(tmp_path / family, family)
    gguf_ready(model, family)
    gguf = write_family_gguf(model, family, tmp_path / f"{family}.gguf")
    _finetune_and_optimize(str(gguf), tone_file, tmp_path)


def test_parity_statistics_in_row_chunks_equal_the_whole_prompt_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Large-vocabulary logits are compared a few rows at a time (memory); the figures must not change."""
    import numpy as np

    from olive_ext.onnx import parity

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(1, 11, 300)).astype(np.float32)
    cand = (ref + rng.normal(scale=0.3, size=ref.shape)).astype(np.float32)
    whole = parity.LogitStats()
    whole.add(ref, cand)
    monkeypatch.setattr(parity, "CHUNK_ELEMENTS", 3 * 300)  # 3 rows a chunk: 4 chunks, the last one short
    chunked = parity.LogitStats()
    chunked.add(ref, cand)
    a, b = whole.to_json(), chunked.to_json()
    assert a["positions"] == b["positions"] == 11 and a["top1_agreement"] == b["top1_agreement"] < 1
    assert all(abs(a[k] - b[k]) < 1e-9 for k in ("max_abs_delta", "kl", "min_cosine")), (a, b)
