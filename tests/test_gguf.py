"""GGUF: the HF -> GGUF converter, llama.cpp candidates in auto-opt, `export`, Ollama Modelfiles and verify.

The converter is checked against transformers' own GGUF reader (an independent implementation
of the tensor names, the q/k permutation and the tokenizer metadata). Everything that runs
llama.cpp needs llama-cpp-python (`make install` installs it; the tests skip without it).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from tiny_models import CHATML

from olive_ext.cli import main
from olive_ext.deploy.modelfile import convert_template
from olive_ext.errors import UserInputError
from olive_ext.passes.gguf_export import hf_to_gguf, pre_tokenizer_name
from olive_ext.recipe.schema import DatasetSpec
from olive_ext.workflows.auto_opt import AutoOptOptions, run_auto_opt

FAST = {"warmup": 0, "repeats": 2, "new_tokens": 8, "prompt_tokens": 16, "max_new_tokens": 4}
SMOLLM2_TEMPLATE = (  # SmolLM2-Instruct's chat template: ChatML with a default system prompt
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _llama_cpp() -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'olive-ext[llamacpp]')")


# ----------------------------------------------------------------------------- converter (no llama.cpp)


def _reads_back_to_the_same_logits(model_dir: Path, folder: Path, name: str) -> None:
    """``hf_to_gguf`` of ``model_dir`` into ``folder/name``, read back by transformers' own GGUF reader (an
    independent implementation of the names, permutation and metadata): the same logits."""
    import torch
    from transformers import AutoModelForCausalLM

    hf_to_gguf(model_dir, folder / name)
    ref = AutoModelForCausalLM.from_pretrained(model_dir)
    back = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    ids = torch.tensor([[1, 5, 17, 40, 99, 3, 250, 7]])
    with torch.no_grad():
        assert torch.allclose(ref(ids).logits, back(ids).logits, atol=1e-5)


def test_gguf_from_hf_matches_the_model_through_transformers_reader(tiny_llama: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    _reads_back_to_the_same_logits(tiny_llama, tmp_path, "tiny.gguf")
    text = "<|im_start|>user\nthe cat is 123 happy?<|im_end|>\n<|im_start|>assistant\n"
    hf_ids = AutoTokenizer.from_pretrained(tiny_llama)(text)["input_ids"]
    assert AutoTokenizer.from_pretrained(tmp_path, gguf_file="tiny.gguf")(text)["input_ids"] == hf_ids


def test_a_bfloat16_checkpoint_exports_as_its_float32_values(tiny_llama: Path, tmp_path: Path) -> None:
    """Most hub checkpoints and Unsloth's merged 16-bit saves are bfloat16: export died with "TypeError: data type
    'bfloat16' not understood" (numpy reads no bfloat16)."""
    import shutil

    import torch
    from gguf import GGUFReader
    from transformers import AutoModelForCausalLM

    bf16 = tmp_path / "bf16"
    shutil.copytree(tiny_llama, bf16, ignore=shutil.ignore_patterns("*.safetensors"))
    AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.bfloat16).save_pretrained(bf16)
    hf_to_gguf(bf16, tmp_path / "tiny.gguf")
    want = AutoModelForCausalLM.from_pretrained(bf16, dtype=torch.float32).model.embed_tokens.weight.detach().numpy()
    got = next(t for t in GGUFReader(tmp_path / "tiny.gguf").tensors if t.name == "token_embd.weight")
    assert (got.data.reshape(want.shape) == want).all()


def test_gguf_header_walk_agrees_with_gguf_reader(tiny_llama: Path, tmp_path: Path) -> None:
    """models/gguf_header.check_complete (the preflight of GGUF inputs) accepts a whole file and refuses it cut
    anywhere, as gguf's GGUFReader does; a damaged length is refused without reading past the file's end."""
    from gguf import GGUFReader

    from olive_ext.models.gguf_header import GGUFLayoutError, check_complete, trained_context

    whole = hf_to_gguf(tiny_llama, tmp_path / "tiny.gguf")
    check_complete(whole)
    GGUFReader(whole)
    assert trained_context(whole) == 512
    data = whole.read_bytes()
    tensor_data = len(data) - 64  # inside the last tensor's bytes
    for cut in (3, 4, 8, 16, 24, 40, 200, 5000, len(data) // 3, len(data) // 2, tensor_data, len(data) - 1):
        part = tmp_path / f"cut-{cut}.gguf"
        part.write_bytes(data[:cut])
        with pytest.raises(GGUFLayoutError):
            check_complete(part)
        with pytest.raises(Exception):  # noqa: B017 - gguf raises ValueError, struct.error or IndexError by place
            GGUFReader(part)
    # the first key's length (bytes 24-31) made huge: refused by the bounds check, nothing allocated for it
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(data[:24] + (2**62).to_bytes(8, "little") + data[32:])
    with pytest.raises(GGUFLayoutError, match="past the end"):
        check_complete(damaged)
    not_gguf = tmp_path / "text.gguf"
    not_gguf.write_text("a text file named .gguf")
    with pytest.raises(GGUFLayoutError, match="magic"):
        check_complete(not_gguf)


def test_unknown_tokenizers_and_architectures_are_refused_with_a_hint(tiny_llama: Path, tmp_path: Path) -> None:
    assert pre_tokenizer_name({"pre_tokenizer": {"type": "ByteLevel"}}) == "gpt-2"
    digits = {"type": "Digits", "individual_digits": True}
    smollm = {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [digits, {"type": "ByteLevel"}]}}
    assert pre_tokenizer_name(smollm) == "smollm"
    with pytest.raises(UserInputError, match="pre-tokenizer") as e:
        pre_tokenizer_name({"pre_tokenizer": {"type": "Metaspace"}})
    assert "convert_hf_to_gguf" in (e.value.hint or "")
    # planned GGUF candidates failed one by one after the merge; auto-opt now plans none, saying why
    from olive_ext.artifacts import Artifact
    from olive_ext.passes.gguf_export import source_problem

    metaspace = shutil.copytree(tiny_llama, tmp_path / "metaspace")
    tokenizer_json = json.loads((metaspace / "tokenizer.json").read_text())
    tokenizer_json["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581"}
    (metaspace / "tokenizer.json").write_text(json.dumps(tokenizer_json))
    assert source_problem(Artifact("hf", str(tiny_llama))) is None
    assert "pre-tokenizer ['Metaspace']" in (source_problem(Artifact("hf", str(metaspace))) or "")
    other = tmp_path / "other"
    shutil.copytree(tiny_llama, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "architectures": ["GPTNeoXForCausalLM"]}))
    with pytest.raises(UserInputError, match="LlamaForCausalLM"):
        hf_to_gguf(other, tmp_path / "x.gguf")
    # `olive-ext export` said only "GGUF export supports LlamaForCausalLM, not ..." (its hint was dropped)
    from olive_ext.workflows.export import ExportOptions, run_export

    with pytest.raises(UserInputError, match="not GPTNeoXForCausalLM") as e:
        run_export(ExportOptions(model_name_or_path=str(other), output_path=str(tmp_path / "out"), quant="Q8_0"))
    assert "export --format hf" in (e.value.hint or "") and "convert_hf_to_gguf.py" in (e.value.hint or "")


def test_chat_templates_become_go_templates_checked_by_rendering() -> None:
    chatml = convert_template(CHATML)
    assert chatml.family == "chatml" and chatml.system is None and chatml.stop == ["<|im_end|>"]
    assert "{{ .Role }}" in chatml.template and "{{ .Content }}" in chatml.template
    smol = convert_template(SMOLLM2_TEMPLATE)
    assert smol.family == "chatml"
    assert smol.system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    # a ChatML-looking template that renders differently (no newline after the role) is not passed off as ChatML
    odd = CHATML.replace("+ '\n' + message['content']", "+ message['content']")
    assert odd != CHATML
    assert convert_template(odd).family == "fallback"
    fallback = convert_template("{{ messages[0]['content'] }}")
    assert fallback.family == "fallback" and fallback.template == "{{ .Prompt }}" and fallback.note
    # Llama 3.1+ Instruct (the Olive guide's Llama-3.2-1B): a dated system turn, always written; it fell back to
    # the raw prompt, so `ollama run` got no chat formatting
    dated = convert_template(LLAMA32_TEMPLATE, {"bos_token": "<|begin_of_text|>"})
    assert dated.family == "llama3-dated" and dated.stop == ["<|eot_id|>"], dated.note
    preamble = "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
    assert dated.template.startswith(preamble + "Today Date: 26 Jul 2024\n\n{{ if .System }}{{ .System }}")
    assert "{{ .Content }}<|eot_id|>" in dated.template
    broken = LLAMA32_TEMPLATE.replace("'<|eot_id|>' }}", "'<|eot|>' }}")  # renders otherwise: not passed off
    assert convert_template(broken, {"bos_token": "<|begin_of_text|>"}).family == "fallback"


LLAMA32_TEMPLATE = """{{- bos_token }}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""  # Llama-3.2-Instruct's template without its tool-calling branches (they render nothing without tools)


# ----------------------------------------------------------------------------- with llama.cpp


def test_llama_cpp_f32_decodes_like_pytorch(tiny_llama: Path, tmp_path: Path) -> None:
    """The GGUF candidate is the same model: llama.cpp's greedy tokens equal PyTorch's on the F32 export."""
    _llama_cpp()
    import torch
    from transformers import AutoModelForCausalLM

    from olive_ext.artifacts import Artifact
    from olive_ext.evaluate.backends import open_backend
    from olive_ext.evaluate.backends.llama_cpp import MAX_CONTEXT, LlamaCppBackend
    from olive_ext.models.gguf_header import _trained_context_by_reader, trained_context
    from olive_ext.passes.gguf_export import export_gguf

    export_gguf(Artifact("hf", str(tiny_llama)), tmp_path / "f32", "F32")
    backend = open_backend("gguf", str(tmp_path / "f32"), None, "CPUExecutionProvider", 2)
    assert isinstance(backend, LlamaCppBackend)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    # the KV cache is the model's trained context (512 here), never more than MAX_CONTEXT; the header's
    # context length is read as gguf's own reader reads it
    assert backend.context_length == min(model.config.max_position_embeddings, MAX_CONTEXT) == 512
    gguf_file = tmp_path / "f32" / "model-F32.gguf"
    assert trained_context(gguf_file) == _trained_context_by_reader(gguf_file) == 512
    prompt = [1, 425, 201, 511, 71, 469, 358]
    with torch.no_grad():
        ref = model.generate(torch.tensor([prompt]), max_new_tokens=12, min_new_tokens=12, do_sample=False)
    out = backend.generate(prompt, 12, 12)
    assert out.tokens == ref[0, len(prompt) :].tolist()
    assert len(out.step_seconds) == 12 and all(s > 0 for s in out.step_seconds)
    # teacher forcing with a shared prefix kept in llama.cpp's KV cache predicts what PyTorch predicts per row
    from olive_ext.evaluate.backends.base import shared_prefix
    from olive_ext.evaluate.backends.torch_lm import TorchLMBackend

    instruction = [1, 425, 201, 511, 71, 469, 358, 17, 40, 99, 3, 250]
    rows = [([*instruction, 30 + i, 60 + 2 * i], [70 + i, 5, 9]) for i in range(6)]
    assert shared_prefix(rows) == len(instruction)
    reference = TorchLMBackend(str(tiny_llama), None, 1).forced_predictions(rows)
    forced = backend.forced_predictions(rows)
    assert [f.tokens for f in forced] == [f.tokens for f in reference]
    for a, b in zip(forced, reference, strict=True):
        assert a.margins == pytest.approx(b.margins, abs=1e-3)
    nll = backend.continuation_nll(prompt, [5, 9])
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([[*prompt, 5, 9]])).logits[0].double(), -1)
    expected = -(logp[len(prompt) - 1, 5] + logp[len(prompt), 9]).item()
    assert nll == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("family", ["qwen2", "mistral"])
def test_qwen2_and_mistral_export_to_gguf_that_llama_cpp_runs_as_pytorch_does(family: str, tmp_path: Path) -> None:
    """GGUF export wrote LlamaForCausalLM only (README "Known gaps"): Qwen2 (llama.cpp's qwen2 graph: q/k/v biases,
    no q/k permutation) and Mistral (its llama graph) export now; transformers' reader reads the file back to the
    same logits, and llama.cpp's greedy tokens and teacher-forced predictions equal PyTorch's. A Mistral whose
    sliding window is shorter than its context is refused (llama.cpp's llama graph attends to the whole context)."""
    _llama_cpp()
    import torch
    from tiny_models import DECODER_FAMILIES, build_tiny_decoder
    from transformers import AutoModelForCausalLM

    from olive_ext.artifacts import Artifact
    from olive_ext.evaluate.backends import open_backend
    from olive_ext.evaluate.backends.torch_lm import TorchLMBackend
    from olive_ext.passes.gguf_export import export_gguf

    # not "mistral": transformers' GGUF reader takes a llama GGUF whose general.name is exactly that for its own
    # Mistral mapping, which gguf-py lacks
    model_dir = build_tiny_decoder(tmp_path / f"tiny-{family}", family)
    if family == "mistral":  # the tiny Mistral's window (64) is shorter than its context (512)
        with pytest.raises(UserInputError, match="sliding window of 64 tokens"):
            hf_to_gguf(model_dir, tmp_path / "windowed.gguf")
        config = json.loads((model_dir / "config.json").read_text())
        (model_dir / "config.json").write_text(json.dumps({**config, "sliding_window": None}))
    assert DECODER_FAMILIES[family][1] in json.loads((model_dir / "config.json").read_text())["architectures"]
    _reads_back_to_the_same_logits(model_dir, tmp_path, "f32.gguf")
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    export_gguf(Artifact("hf", str(model_dir)), tmp_path / "built", "F32")
    backend = open_backend("gguf", str(tmp_path / "built"), None, "CPUExecutionProvider", 1)
    prompt = [1, 425, 201, 511, 71, 469, 358]
    with torch.no_grad():
        ref = model.generate(torch.tensor([prompt]), max_new_tokens=12, min_new_tokens=12, do_sample=False)
    assert backend.generate(prompt, 12, 12).tokens == ref[0, len(prompt) :].tolist()
    rows = [([*prompt, 30 + i, 60 + 2 * i], [70 + i, 5, 9]) for i in range(4)]
    reference = TorchLMBackend(str(model_dir), None, 1).forced_predictions(rows)
    forced = backend.forced_predictions(rows)
    assert [f.tokens for f in forced] == [f.tokens for f in reference]
    for a, b in zip(forced, reference, strict=True):
        assert a.margins == pytest.approx(b.margins, abs=1e-3)


def test_quantizing_keeps_llama_cpp_per_tensor_log_out_of_the_terminal(
    tiny_llama: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """llama.cpp logs a line per tensor while it quantizes (272 for SmolLM2): not in the user's terminal."""
    _llama_cpp()
    from olive_ext.artifacts import Artifact
    from olive_ext.passes.gguf_export import export_gguf, quantize_gguf

    export_gguf(Artifact("hf", str(tiny_llama)), tmp_path / "f32", "F32")
    capfd.readouterr()
    quantize_gguf(tmp_path / "f32" / "model-F32.gguf", tmp_path / "q8.gguf", "Q8_0")
    out, err = capfd.readouterr()
    assert (tmp_path / "q8.gguf").stat().st_size > 0
    assert "token_embd.weight" not in out + err and "converting to" not in out + err
    # a K-quant of rows llama.cpp cannot block by 256 warns once per tensor ("falling back to q5_1", 361 lines on
    # the demo), which llama-cpp-python passes on at its ERROR level: kept out too (the rc tells failure)
    quantize_gguf(tmp_path / "f32" / "model-F32.gguf", tmp_path / "q4km.gguf", "Q4_K_M")
    out, err = capfd.readouterr()
    assert (tmp_path / "q4km.gguf").stat().st_size > 0
    assert "not divisible" not in out + err and "fallback" not in out + err, err[:300]


def test_auto_opt_measures_gguf_candidates_beside_onnx(tiny_llama: Path, eval_file: Path, tmp_path: Path) -> None:
    _llama_cpp()
    spec = DatasetSpec(name="json", data_files=str(eval_file), text_template="Q: {q}\nA: {a}")
    opts = AutoOptOptions(
        model_name_or_path=str(tiny_llama),
        output_path=str(tmp_path / "out"),
        data=spec,
        precision="int8",  # the int8 ONNX build and llama.cpp's Q8_0
        objective="size",
        cache_dir=str(tmp_path / "cache"),
        **FAST,  # type: ignore[arg-type]
    )
    (result,) = run_auto_opt(opts).runs.values()
    data = json.loads((tmp_path / "out" / "candidates.json").read_text())
    kinds = {c["id"]: c for c in data["candidates"]}
    gguf = [r for r in result.results if r.candidate.steps[0].type == "gguf_export"]
    onnx = [r for r in result.results if r.candidate.steps[0].type == "model_builder"]
    assert len(gguf) == 1 and onnx and all(r.ok for r in result.results), [r.error for r in result.results]
    for r in gguf:
        assert r.candidate.id in kinds
        for metric in ("size", "ttft", "latency", "throughput", "memory", "exact_match"):
            assert metric in r.metrics, (metric, r.metrics)
        assert r.metrics["throughput"] > 0
    # Q8_0 of a 64-wide model is smaller than the int8 ONNX folder (no graph, no duplicated tables)
    assert gguf[0].metrics["size"] < onnx[0].metrics["size"]
    assert (tmp_path / "out" / "model" / "llama_cpp.json").exists(), "the chosen (smallest) model is the GGUF"
    assert json.loads((tmp_path / "out" / "model_config.json").read_text())["kind"] == "gguf"
    # `olive-ext serve -m <that output>` runs its chosen GGUF on llama.cpp
    from olive_ext.serve.backend import load_backend
    from olive_ext.serve.llama_cpp_backend import LlamaCppBackend

    backend, name = load_backend(str(tmp_path / "out"))
    assert isinstance(backend, LlamaCppBackend) and name == "out"
    assert backend.gguf == tmp_path / "out" / "model" / "model-Q8_0.gguf"
    assert "<|im_start|>assistant" in backend.chat_prompt([{"role": "user", "content": "hi"}])


def test_export_package_verify_gguf_bundle(tiny_llama: Path, tmp_path: Path) -> None:
    _llama_cpp()
    from olive_ext.workflows.package import verify

    out, bundle = tmp_path / "gguf", tmp_path / "bundle"
    assert main(["export", "-m", str(tiny_llama), "--format", "gguf", "--quant", "Q8_0", "-o", str(out)]) == 0
    assert (out / "model" / "model-Q8_0.gguf").is_file()
    assert main(["package", "-m", str(out), "-o", str(bundle), "--name", "tiny"]) == 0
    modelfile = (bundle / "Modelfile").read_text()
    assert "FROM ./model/model-Q8_0.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert "<|im_start|>{{ .Role }}" in modelfile
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["format"] == "gguf" and manifest["gguf_file"] == "model/model-Q8_0.gguf"
    assert "Modelfile" in {f["path"] for f in manifest["files"]}
    # the random tiny model never ends a turn: the load passes and the end-of-turn contract fails
    report = verify(bundle)
    checks = {c.name: c for c in report.checks}
    assert checks["checksums"].ok and checks["modelfile"].ok and checks["load"].ok
    ends = [c for c in report.checks if c.name.startswith("end of turn (model")]  # the packaged model: not "base"
    assert ends and not any(c.ok for c in ends) and not report.ok
    assert len({c.name for c in ends}) == len(ends), "lines alike: which prompt failed was not said"
    assert verify(bundle, run_model=False).ok
    # Ollama also reads a bare stop value, and a user's edit with the manifest updated to match is theirs to make:
    # json.loads of `PARAMETER stop <|im_end|>` was a traceback in verify, chat and serve
    for value, ok in (("<|im_end|>", True), ("[1]", False)):
        (bundle / "Modelfile").write_text(modelfile.replace('PARAMETER stop "<|im_end|>"', f"PARAMETER stop {value}"))
        manifest = json.loads((bundle / "manifest.json").read_text())
        for entry in manifest["files"]:
            if entry["path"] == "Modelfile":
                entry["sha256"] = hashlib.sha256((bundle / "Modelfile").read_bytes()).hexdigest()
                entry["size"] = (bundle / "Modelfile").stat().st_size
        (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        checks = {c.name: c for c in verify(bundle, run_model=False).checks}
        assert checks["modelfile"].ok is ok, checks["modelfile"].detail
    # a Modelfile pointing elsewhere fails even with its checksum line updated (the digest would catch that too)
    (bundle / "Modelfile").write_text(modelfile.replace("model-Q8_0.gguf", "other.gguf"))
    assert not verify(bundle, run_model=False).ok


def test_a_gguf_of_another_quant_type_exports_at_the_asked_one(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A downloaded .gguf given to export was refused ("export writes GGUF from a Hugging Face model"), and package
    refused it too: it is dequantized and written at --quant, with the same tokens as the source in llama.cpp."""
    _llama_cpp()
    import llama_cpp
    from gguf_families import write_family_gguf

    source = write_family_gguf(tiny_llama, "llama", tmp_path / "tiny-F32.gguf")
    out = tmp_path / "q8"
    assert main(["export", "-m", str(source), "--quant", "Q8_0", "-o", str(out), "--log_level", "3"]) == 0
    written = out / "model" / "model-Q8_0.gguf"
    text = "the quick brown fox"
    tokens = [llama_cpp.Llama(str(p), verbose=False, n_ctx=64).tokenize(text.encode()) for p in (source, written)]
    assert tokens[0] == tokens[1] and len(tokens[0]) > 1
    # a quantized GGUF quantized again adds a second rounding (llama.cpp refuses without --allow-requantize): said
    from olive_ext.models.gguf_header import quantized_file_type

    assert quantized_file_type(source) is None and quantized_file_type(written) == "Q8_0"
    capsys.readouterr()
    assert main(["export", "-m", str(written), "--quant", "Q4_0", "-o", str(tmp_path / "q4")]) == 0
    assert "is quantized already (Q8_0)" in capsys.readouterr().err.replace("\n", " ")


def test_an_exported_gguf_keeps_its_chat_template_when_exported_again(tiny_llama: Path, tmp_path: Path) -> None:
    """transformers read a Llama GGUF whose folder holds a tokenizer_config.json (every export output) with no chat
    template, BOS or EOS: re-exporting or quantizing it gave a model `chat` refused and `verify` failed."""
    from transformers import AutoTokenizer

    first = tmp_path / "f32"
    assert main(["export", "-m", str(tiny_llama), "--quant", "F32", "-o", str(first), "--log_level", "3"]) == 0
    again = tmp_path / "q8"
    source = first / "model" / "model-F32.gguf"
    assert main(["export", "-m", str(source), "--quant", "Q8_0", "-o", str(again), "--log_level", "3"]) == 0
    want, got = AutoTokenizer.from_pretrained(tiny_llama), AutoTokenizer.from_pretrained(again / "model")
    assert got.chat_template == want.chat_template and want.chat_template
    assert (got.bos_token, got.eos_token) == (want.bos_token, want.eos_token)


def test_an_export_output_folder_exports_again_and_keeps_the_fine_tunes_prompt_form(
    tiny_llama: Path, tmp_path: Path
) -> None:
    """`export -m <an export output folder>` died with an OSError traceback ('does not appear to have a file named
    .'); and an export of a fine-tune trained on a text template (not the chat template) did not record it, so
    chat and serve said nothing when prompts were wrapped in the chat template instead."""
    _llama_cpp()
    data = tmp_path / "tone.jsonl"
    data.write_text("".join(json.dumps({"phrase": f"phrase {i}", "tone": "calm"}) + "\n" for i in range(12)))
    ft, exported, again = tmp_path / "ft", tmp_path / "gguf", tmp_path / "again"
    assert main(["finetune", "-m", str(tiny_llama), "-d", "json", "--data_files", str(data), "--train_split",
                 "train[:8]", "--eval_split", "train[8:]", "--text_template", "Phrase: {phrase}\nTone: {tone}",
                 "--max_steps", "1", "-o", str(ft), "--log_level", "3"]) == 0  # fmt: skip
    assert main(["export", "-m", str(ft), "--quant", "Q8_0", "-o", str(exported), "--log_level", "3"]) == 0
    config = json.loads((exported / "model_config.json").read_text())
    assert config["text_template"] == "Phrase: {phrase}\nTone: {tone}"
    from gguf import GGUFReader  # general.name (what Ollama and llama.cpp show) was "merged", a temporary folder's

    name = GGUFReader(exported / "model" / "model-Q8_0.gguf").fields["general.name"].contents()
    assert "merged" not in name and name.endswith("-ft"), name
    assert main(["export", "-m", str(exported), "--quant", "Q4_0", "-o", str(again), "--log_level", "3"]) == 0
    assert (again / "model" / "model-Q4_0.gguf").is_file()
    # --dry_run read an exported GGUF's tokenizer without its chat template ("this model has none"); training did
    chat = tmp_path / "chat.jsonl"
    chat.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                     {"role": "assistant", "content": "a"}]}) + "\n"
                            for i in range(4)))  # fmt: skip
    assert main(["finetune", "-m", str(exported / "model" / "model-Q8_0.gguf"), "--data_files", str(chat),
                 "--use_chat_template", "-o", str(tmp_path / "ft2"), "--dry_run", "--log_level", "3"]) == 0  # fmt: skip
    # an export output (the folder or its .gguf) as quantize's input: "does not appear to have a file named ."
    for given in (exported, exported / "model" / "model-Q8_0.gguf"):
        out = tmp_path / f"q-{given.name}"
        assert main(["quantize", "-m", str(given), "--precision", "int8", "-o", str(out), "--log_level", "3"]) == 0
        assert (out / "model" / "genai_config.json").is_file()


def test_export_refuses_what_it_cannot_write(tiny_llama: Path, tmp_path: Path) -> None:
    from olive_ext.workflows.export import export

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("keep")
    with pytest.raises(UserInputError, match="exists and is not empty"):
        export(str(tiny_llama), str(taken))
    assert (taken / "x").read_text() == "keep"


@pytest.mark.integration
def test_smollm2_finetune_exports_to_a_verified_ollama_bundle(tone_finetuned: Path, tmp_path: Path) -> None:
    """The demo's fine-tune as Q4_K_M: the Modelfile carries SmolLM2's ChatML and default system prompt, and
    verify loads it with llama.cpp, tokenizing with the GGUF's own tokenizer, and sees each smoke answer end."""
    _llama_cpp()
    from olive_ext.workflows.package import verify

    out, bundle = tmp_path / "gguf", tmp_path / "bundle"
    assert main(["export", "-m", str(tone_finetuned), "--quant", "Q4_K_M", "-o", str(out), "--log_level", "2"]) == 0
    assert main(["package", "-m", str(out), "-o", str(bundle), "--name", "tone"]) == 0
    modelfile = (bundle / "Modelfile").read_text()
    assert "FROM ./model/model-Q4_K_M.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    report = verify(bundle)
    assert report.ok, [(c.name, c.detail) for c in report.checks if not c.ok]
    assert sum(c.name.startswith("end of turn") for c in report.checks) == 3  # the fine-tune's eval prompts


def test_cpu_profile_offers_gguf_chains_only_with_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> None:
    from olive_ext.targets import profiles

    cpu = profiles.get_profile("cpu")
    monkeypatch.setattr(profiles, "_has_llama_cpp", lambda: True)
    quants = [c[0].params["quant"] for c in cpu.gguf_chains()]
    assert quants == ["Q4_0", "Q4_K_M", "Q5_K_M", "Q8_0"] and cpu.gguf_skip_note() is None
    assert [c[0].params["quant"] for c in cpu.gguf_chains(precision="int8")] == ["Q8_0"]
    assert cpu.gguf_chains("text-classification") == []
    monkeypatch.setattr(profiles, "_has_llama_cpp", lambda: False)
    assert cpu.gguf_chains() == []
    assert "pip install 'olive-ext[llamacpp]'" in (cpu.gguf_skip_note() or "")


def test_auto_opt_plans_gguf_candidates_only_for_models_gguf_export_writes(tiny_llama: Path, tmp_path: Path) -> None:
    """A Gemma 2 model (HF or GGUF), a Mistral attending to a window shorter than its context, or a Llama with YaRN
    rope scaling: each GGUF candidate failed at its first step. Qwen2 (HF or GGUF) gets its candidates."""
    from gguf_families import write_family_gguf
    from tiny_models import build_tiny_decoder

    from olive_ext.workflows.auto_opt import auto_opt_recipe

    def gguf_steps(model: Path) -> int:
        opts = AutoOptOptions(model_name_or_path=str(model), output_path=str(tmp_path / "out"), precision="int8")
        recipe = auto_opt_recipe(opts, "cpu", str(tmp_path / "out"))
        return sum(step.type == "gguf_export" for p in recipe.pipelines for step in p.values())

    qwen2 = build_tiny_decoder(tmp_path / "qwen2", "qwen2")
    gemma2 = build_tiny_decoder(tmp_path / "gemma2", "gemma2")
    windowed = build_tiny_decoder(tmp_path / "tiny-mistral", "mistral")
    rope = shutil.copytree(tiny_llama, tmp_path / "yarn")
    config = json.loads((rope / "config.json").read_text())
    scaling = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128}
    (rope / "config.json").write_text(json.dumps({**config, "rope_scaling": scaling}))
    llama_gguf = hf_to_gguf(tiny_llama, tmp_path / "llama.gguf")
    assert gguf_steps(tiny_llama) == 1 and gguf_steps(llama_gguf) == 1
    assert gguf_steps(gemma2) == 0 and gguf_steps(windowed) == 0 and gguf_steps(rope) == 0
    assert gguf_steps(write_family_gguf(gemma2, "gemma2", tmp_path / "gemma2.gguf")) == 0
    assert gguf_steps(qwen2) == 1 and gguf_steps(write_family_gguf(qwen2, "qwen2", tmp_path / "qwen2.gguf")) == 1


def test_llama3_rope_scaling_is_exported_as_llama_cpp_reads_it(tiny_llama: Path, tmp_path: Path) -> None:
    """Llama 3.x's rope scaling (the guide's Llama-3.2-1B has it) becomes rope_freqs.weight: llama.cpp's
    log-probabilities equal PyTorch's; without the tensor they differ (the scaling matters for this prompt)."""
    _llama_cpp()
    import torch
    from transformers import AutoModelForCausalLM

    from olive_ext.artifacts import Artifact
    from olive_ext.evaluate.backends import open_backend
    from olive_ext.passes.gguf_export import export_gguf

    scaled = shutil.copytree(tiny_llama, tmp_path / "scaled")
    config = json.loads((scaled / "config.json").read_text())
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64, "rope_theta": 10000.0}  # fmt: skip
    config.pop("rope_parameters", None)
    (scaled / "config.json").write_text(json.dumps({**config, "rope_scaling": scaling}))
    model = AutoModelForCausalLM.from_pretrained(scaled)
    assert model.config.rope_parameters["rope_type"] == "llama3"
    prompt, answer = [1, 425, 201, 511, 71, 469, 358, 17, 40, 99, 3, 250, 30, 60, 70], [5, 9, 44]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([[*prompt, *answer]])).logits[0].double(), -1)
    expected = -sum(logp[len(prompt) - 1 + i, t].item() for i, t in enumerate(answer))

    def nll(folder: Path) -> float:
        backend = open_backend("gguf", str(folder), None, "CPUExecutionProvider", 2)
        return float(backend.continuation_nll(prompt, answer))

    export_gguf(Artifact("hf", str(scaled)), tmp_path / "f32", "F32")
    export_gguf(Artifact("hf", str(tiny_llama)), tmp_path / "plain", "F32")
    scaled_delta, plain_delta = abs(nll(tmp_path / "f32") - expected), abs(nll(tmp_path / "plain") - expected)
    assert scaled_delta < 1e-3 * expected and plain_delta > 20 * scaled_delta, (scaled_delta, plain_delta)


def test_a_qwen2_tokenizer_saved_by_transformers_exports_and_tokenizes_as_transformers(tmp_path: Path) -> None:
    """transformers 5 saves a Qwen2 tokenizer with Qwen2.5's own pre-tokenizer (a split regex, then ByteLevel without
    its regex); GGUF export knew only GPT-2's and SmolLM2's, so every Qwen2 fine-tune (its tokenizer re-saved) and
    every real Qwen2/2.5 tokenizer failed export, and auto-opt's four llama.cpp candidates failed after the merge.
    It is llama.cpp's "qwen2" now (Llama 3's regex: "llama-bpe"), and llama.cpp tokenizes as transformers does."""
    _llama_cpp()
    from llama_cpp import Llama
    from tiny_models import build_tiny_decoder
    from transformers import AutoTokenizer

    model_dir = build_tiny_decoder(tmp_path / "qwen2", "qwen2")
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(model_dir)  # what a fine-tune's merge writes
    tokenizer_json = json.loads((model_dir / "tokenizer.json").read_text())
    assert [p["type"] for p in tokenizer_json["pre_tokenizer"]["pretokenizers"]] == ["Split", "ByteLevel"]
    assert pre_tokenizer_name(tokenizer_json) == "qwen2"
    llama3 = json.loads(json.dumps(tokenizer_json).replace(r"\\p{N}|", r"\\p{N}{1,3}|", 1))
    assert pre_tokenizer_name(llama3) == "llama-bpe"
    gguf = hf_to_gguf(model_dir, tmp_path / "q.gguf")
    llm = Llama(str(gguf), verbose=False, n_ctx=128)
    tok = AutoTokenizer.from_pretrained(model_dir)
    for text in ("the cat is 12345 happy", "it's  sad\n\n  here!", "paris: tokyo's 3.14\r\nnine"):
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == tok.encode(text, add_special_tokens=False)
