"""Hugging Face Llama, Mistral or Qwen2 model -> GGUF quantized with llama.cpp's own quantizer.

The output is a folder llama.cpp runs (``model-<QUANT>.gguf``), with the HF tokenizer files
beside it and a ``llama_cpp.json`` marker. The marker is what tells the evaluator to run
the folder through llama-cpp-python: a ``gguf`` artifact without it is an *input* model
(a user's .gguf), which passes dequantize to HF with ``gguf_to_hf`` as before. The artifact
names no ``gguf_file`` on purpose, so the evaluator tokenizes with the same HF tokenizer
as every other candidate (same prompt ids, same scored rows).

The F32 GGUF is written here with the ``gguf`` package (llama.cpp's gguf-py): its
``convert_hf_to_gguf.py`` ships in llama-cpp-python's sdist but not in its wheel, so we do
what it does for ``LlamaForCausalLM``, ``MistralForCausalLM`` (llama.cpp's ``llama`` graph) and
``Qwen2ForCausalLM`` (its ``qwen2`` graph: q/k/v biases, no q/k permutation, NeoX rotary) with a
GPT-2-style byte-level BPE tokenizer (SmolLM2, Llama-3- and Qwen-style vocabularies): the same tensor
names, the same q/k row permutation, the same tokenizer metadata. Anything else is refused with a hint
to use llama.cpp's converter.
``llama_model_quantize`` (llama.cpp's C API through llama-cpp-python) then quantizes it.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator

from olive_ext.artifacts import Artifact
from olive_ext.errors import MissingDependencyError, UserInputError
from olive_ext.evaluate.backends.llama_cpp import MARKER
from olive_ext.models.folder import config_json, tokenizer_folder
from olive_ext.models.gguf_header import architecture
from olive_ext.onnx.runtime import LLAMACPP_INSTALL, llama_cpp_available
from olive_ext.passes.base import Pass, PassConfig, register_pass, searchable
from olive_ext.passes.context import RunContext
from olive_ext.passes.merge_adapter import merge_adapter_into, merged_model
from olive_ext.passes.shared import shared_folder
from olive_ext.quiet import quiet_loggers

# llama.cpp's types that need no importance matrix (its IQ types do), as Unsloth's save_pretrained_gguf offers them
GgufQuant = Literal["Q4_0", "Q4_K_M", "Q5_K_M", "Q8_0", "Q4_K_S", "Q5_0", "Q6_K", "F16", "F32", "BF16", "Q4_1", "Q5_1",
                    "Q5_K_S", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q2_K"]  # fmt: skip
GGUF_QUANTS: tuple[str, ...] = get_args(GgufQuant)
# Unsloth's save_pretrained_gguf names for a quantization type (its methods are lower case: q4_k_m, q8_0, f16)
_UNSLOTH_QUANTS = {"not_quantized": "F16", "fast_quantized": "Q8_0", "quantized": "Q4_K_M"}


def gguf_quant_name(value: Any) -> Any:
    """A quantization type as llama.cpp spells it (``q4_k_m`` -> ``Q4_K_M``; Unsloth's ``quantized`` -> ``Q4_K_M``);
    anything else as given, for the choices check to name."""
    if not isinstance(value, str):
        return value
    spelled = {q.lower(): q for q in GGUF_QUANTS}
    key = value.strip().lower()
    return spelled.get(key) or _UNSLOTH_QUANTS.get(key) or value


# the quant a user writes (Unsloth's lower case, its names), checked against llama.cpp's types: export and the pass
GgufQuantName = Annotated[GgufQuant, BeforeValidator(gguf_quant_name)]
F32_FILE = "model-F32.gguf"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "vocab.json", "merges.txt", "generation_config.json")  # fmt: skip


class GgufExportConfig(PassConfig):
    quant: GgufQuantName = searchable(
        "Q4_K_M", description=f"llama.cpp quantization type: {', '.join(GGUF_QUANTS)} (lower case and Unsloth's names "
        "taken)"
    )


@register_pass("gguf_export")
class GgufExport(Pass[GgufExportConfig]):
    """Write the model (adapter merged) as GGUF and quantize it with llama.cpp (runs through llama-cpp-python)."""

    config_class = GgufExportConfig
    accepts = frozenset({"hf"})
    produces = "gguf"
    devices = frozenset({"cpu"})
    libraries = ("gguf", "llama-cpp-python", "transformers", "peft", "torch")
    version = 2  # 2: a LoRA on a tied lm_head/embed_tokens is merged untied (entries of 1 changed both layers)

    @classmethod
    def check_input(cls, artifact: Artifact) -> str | None:
        config = config_json(artifact.path) if (Path(artifact.path) / "config.json").is_file() else None
        if config is None:
            return "it is not a local Hugging Face folder"
        return export_problem(config)

    def run(self, artifact: Artifact, ctx: RunContext) -> Artifact:
        out = ctx.output_dir / "model"
        export_gguf(artifact, out, self.config.quant, ctx.trust_remote_code, ctx)
        meta = {**artifact.meta, "runtime": "llama.cpp", "quant": self.config.quant}
        return Artifact("gguf", str(out), None, meta=meta)


def export_gguf(
    artifact: Artifact, out: Path, quant: str, trust_remote_code: bool = False, ctx: RunContext | None = None
) -> Path:
    """Write ``out/model-<quant>.gguf`` plus tokenizer files and the llama.cpp marker; return the .gguf path.

    With ``ctx`` (a pass in a run), the merged model and the F32 GGUF are made once per process and
    shared by every quantization of the same input (:mod:`olive_ext.passes.shared`); llama.cpp
    quantizes each type from that one F32 file, as it would from a fresh one.
    """
    if not llama_cpp_available():
        raise MissingDependencyError("llama-cpp-python", "GGUF export", LLAMACPP_INSTALL)
    out.mkdir(parents=True, exist_ok=True)
    dest = out / f"model-{quant}.gguf"
    with tempfile.TemporaryDirectory(prefix="olive-ext-gguf-", dir=out) as tmp:
        if ctx is not None:
            source = merged_model(artifact, ctx) if artifact.adapter_path else Path(artifact.path)

            def write_f32(folder: Path) -> None:
                hf_to_gguf(source, folder / F32_FILE, gguf_model_name(artifact))

            f32 = shared_folder(ctx.cache.tmp, artifact.fingerprint, "gguf:F32", write_f32) / F32_FILE
        else:
            source = Path(artifact.path)
            if artifact.adapter_path:
                source = merge_adapter_into(artifact.path, artifact.adapter_path, Path(tmp) / "merged", "float32",
                                            trust_remote_code)  # fmt: skip
            f32 = Path(tmp) / F32_FILE
            hf_to_gguf(source, f32, gguf_model_name(artifact))
        if quant == "F32":
            shutil.copyfile(f32, dest)
        else:
            quantize_gguf(f32, dest, quant)
        for name in TOKENIZER_FILES:
            if (source / name).exists():
                shutil.copy2(source / name, out / name)
    (out / MARKER).write_text(json.dumps({"gguf_file": dest.name, "quant": quant}, indent=2) + "\n")
    return dest


# ----------------------------------------------------------------------------- HF -> F32 GGUF

# HF architecture -> (llama.cpp's architecture, whether q/k rows are permuted to its interleaved rotary pairs), as
# convert_hf_to_gguf.py maps them (its MistralModel is a LlamaModel; its Qwen2Model keeps HF's rotary halves)
_ARCHS = {"LlamaForCausalLM": ("llama", True), "MistralForCausalLM": ("llama", True),
          "Qwen2ForCausalLM": ("qwen2", False)}  # fmt: skip
SUPPORTED_ARCHS = tuple(_ARCHS)
_LAYER = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_GLOBAL = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight"}  # fmt: skip
_LAYER_RE = re.compile(r"model\.layers\.(\d+)\.(.+)\.(weight|bias)")


def gguf_name(hf_name: str) -> str:
    """The GGUF tensor name of an HF Llama/Mistral/Qwen2 tensor (as convert_hf_to_gguf.py names it)."""
    if hf_name in _GLOBAL:
        return _GLOBAL[hf_name]
    m = _LAYER_RE.fullmatch(hf_name)
    if not m or m.group(2) not in _LAYER:
        raise UserInputError(f"GGUF export: no llama.cpp name for tensor {hf_name}")
    return f"blk.{m.group(1)}.{_LAYER[m.group(2)]}.{m.group(3)}"


def _permute(w: Any, n_head: int) -> Any:
    """convert_hf_to_gguf's LlamaModel.permute: HF's rotary halves -> llama.cpp's interleaved pairs per head."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# a GGUF's general.architecture -> the HF class gguf_to_hf makes of it, for the architectures written here
_GGUF_ARCHS = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}

# what to do with a model olive-ext's GGUF writer does not take (export, the gguf_export pass)
EXPORT_HINT = ("write the merged model with `olive-ext export --format hf`, then convert it with llama.cpp's "
               "convert_hf_to_gguf.py (in llama.cpp's repository); or build ONNX with `olive-ext quantize` or "
               "`olive-ext auto-opt`")


def _rope(config: dict[str, Any]) -> dict[str, Any]:
    return config.get("rope_scaling") or config.get("rope_parameters") or {}


def export_problem(config: dict[str, Any]) -> str | None:
    """Why olive-ext cannot write the model of this config.json as GGUF, or None when it can."""
    arch = (config.get("architectures") or [""])[0]
    if arch not in SUPPORTED_ARCHS:
        return f"GGUF export supports {', '.join(SUPPORTED_ARCHS)}, not {arch or 'a model of unknown architecture'}"
    if _rope_type(config) not in {"default", "llama3"}:
        return f"GGUF export does not write rope scaling {_rope_type(config)!r} (only Llama 3's 'llama3')"
    window = _attention_window(config)
    if window is not None:
        return (f"{arch} attends to a sliding window of {window} tokens, which llama.cpp's "
                f"{_ARCHS[arch][0]} graph does not (it attends to the whole context)")  # fmt: skip
    return None


def _attention_window(config: dict[str, Any]) -> int | None:
    """The sliding attention window of a config when the model uses one within its context (Mistral v0.1's 4096,
    Qwen2 with ``use_sliding_window``), else None."""
    window = config.get("sliding_window")
    if not isinstance(window, int) or window <= 0:
        return None
    if "use_sliding_window" in config and not config["use_sliding_window"]:
        return None  # Qwen2: the window is written but off unless asked
    return window if window < int(config.get("max_position_embeddings") or 0) else None


def _rope_type(config: dict[str, Any]) -> str:
    rope = _rope(config)
    return str(rope.get("rope_type") or rope.get("type") or "default")


def _rope_freqs(config: dict[str, Any], head_dim: int) -> Any:
    """Llama 3's rope scaling as llama.cpp reads it: ``rope_freqs.weight``, the factor each rotary frequency is
    divided by (1 for short wavelengths, ``factor`` for long ones, smoothed between), as convert_hf_to_gguf.py
    computes it from the HF config's rope_scaling."""
    import numpy as np

    rope = _rope(config)
    factor = float(rope.get("factor", 8.0))
    low, high = float(rope.get("low_freq_factor", 1.0)), float(rope.get("high_freq_factor", 4.0))
    old_context = float(rope.get("original_max_position_embeddings", 8192))
    inv_freq = 1.0 / (config["_rope_theta"] ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    wavelen = 2 * np.pi / inv_freq
    smooth = (old_context / wavelen - low) / (high - low)
    medium = 1.0 / ((1 - smooth) / factor + smooth)
    factors = np.where(wavelen < old_context / high, 1.0, np.where(wavelen > old_context / low, factor, medium))
    return factors.astype(np.float32)


def source_problem(source: Artifact) -> str | None:
    """Why GGUF candidates cannot be made from an input model (auto-opt plans none then), or None when they can
    or it is not known before its first step (a hub model not in the cache)."""
    if source.kind == "gguf" and source.gguf_file:
        arch = architecture(Path(source.path) / source.gguf_file)
        if arch is not None and arch not in _GGUF_ARCHS:
            return f"GGUF export supports the {', '.join(_GGUF_ARCHS)} GGUF architecture, not {arch}"
        return None
    config = config_json(source.path) if source.kind == "hf" else None
    if config is None:
        return None
    return export_problem(config) or _tokenizer_problem(Path(tokenizer_folder(source.path, source.adapter_path)))


def _tokenizer_problem(folder: Path) -> str | None:
    """Why GGUF export would refuse the tokenizer in ``folder`` (the one written into the GGUF: a fine-tune's,
    saved by transformers, else the model's own), or None; a folder without tokenizer.json is left to the export."""
    try:
        tokenizer_json = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        _check_byte_level_bpe(tokenizer_json)
        pre_tokenizer_name(tokenizer_json)
    except (OSError, ValueError, AttributeError):
        return None
    except UserInputError as e:
        return e.message
    return None


def _config(folder: Path) -> dict[str, Any]:
    config = json.loads((folder / "config.json").read_text())
    if problem := export_problem(config):
        raise UserInputError(f"{folder}: {problem}", hint=EXPORT_HINT)
    config["_rope_theta"] = float(config.get("rope_theta") or _rope(config).get("rope_theta") or 10000.0)
    return config


def _weights(folder: Path) -> dict[str, Any]:
    """Every tensor of the folder's safetensors files as numpy; bfloat16 ones (most hub checkpoints, Unsloth's
    merged 16-bit saves) as float32, which numpy can hold ("data type 'bfloat16' not understood" before)."""
    import torch
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise UserInputError(f"GGUF export: {folder} has no .safetensors weights")
    out: dict[str, Any] = {}
    for f in files:
        with safe_open(f, framework="pt") as tensors:
            for name in tensors.keys():  # noqa: SIM118 - safe_open is not a mapping
                t = tensors.get_tensor(name)
                out[name] = (t.float() if t.dtype == torch.bfloat16 else t).numpy()
    return out


def gguf_model_name(artifact: Artifact) -> str:
    """The GGUF's ``general.name`` (what llama.cpp and Ollama show): the model's folder and the adapter's, not the
    temporary folder the adapter was merged in ("merged"); olive-ext's own ``model/`` and ``adapter/`` folders are
    named by the output that holds them."""

    def named(path: str) -> str:
        p = Path(path).resolve()
        return p.parent.name if p.name in ("model", "adapter") and p.parent.name else p.name

    base = named(artifact.path)
    return f"{base}-{named(artifact.adapter_path)}" if artifact.adapter_path else base


def hf_to_gguf(folder: Path, dest: Path, name: str | None = None) -> Path:
    """Write the HF Llama, Mistral or Qwen2 model in ``folder`` as an F32 GGUF at ``dest`` (``general.name``:
    ``name``, else the folder's)."""
    try:
        import gguf
    except ImportError as e:
        raise MissingDependencyError("gguf", "GGUF export") from e
    import numpy as np

    config = _config(folder)
    n_head, n_kv = (
        int(config["num_attention_heads"]),
        int(config.get("num_key_value_heads") or config["num_attention_heads"]),
    )
    hidden = int(config["hidden_size"])
    head_dim = int(config.get("head_dim") or hidden // n_head)
    gguf_arch, permuted = _ARCHS[config["architectures"][0]]
    writer = gguf.GGUFWriter(dest, gguf_arch)
    writer.add_name(name or folder.name)
    writer.add_context_length(int(config.get("max_position_embeddings", 2048)))
    writer.add_embedding_length(hidden)
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(config["_rope_theta"])
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    if head_dim != hidden // n_head:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    if _rope_type(config) == "llama3":
        writer.add_tensor("rope_freqs.weight", _rope_freqs(config, head_dim))
    vocab_size = _add_tokenizer(writer, folder, int(config["vocab_size"]))
    writer.add_vocab_size(vocab_size)
    weights = _weights(folder)
    tied = bool(config.get("tie_word_embeddings")) or "lm_head.weight" not in weights
    for hf_name in sorted(weights, key=_tensor_order):
        if hf_name == "lm_head.weight" and tied:
            continue  # llama.cpp reads the output projection from token_embd when output.weight is absent
        name = gguf_name(hf_name)
        w = weights[hf_name].astype(np.float32)
        if permuted and name.endswith(("attn_q.weight", "attn_q.bias")):
            w = _permute(w, n_head)
        elif permuted and name.endswith(("attn_k.weight", "attn_k.bias")):
            w = _permute(w, n_kv)
        writer.add_tensor(name, np.ascontiguousarray(w))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dest


def _tensor_order(name: str) -> tuple[int, str]:
    m = _LAYER_RE.fullmatch(name)
    return (int(m.group(1)) + 1 if m else (0 if "embed" in name else 1 << 20), name)


# llama.cpp's pre-tokenizers that are one split regex (its llama-vocab.cpp), by that regex as tokenizer.json spells it
_WORDS = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|"
_REST = r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_SPLIT_REGEXES = {
    _WORDS + r"\p{N}" + _REST: "qwen2",  # one digit per token: Qwen2, Qwen2.5 (and their re-saved tokenizers)
    _WORDS + r"\p{N}{1,3}" + _REST: "llama-bpe",  # up to three digits: Llama 3, 3.1, 3.2
}


def pre_tokenizer_name(tokenizer_json: dict[str, Any]) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer (``tokenizer.ggml.pre``)."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    types = [p.get("type") for p in parts]
    if types == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt-2"  # GPT-2's split regex, then bytes to unicode
    if types == ["Digits", "ByteLevel"] and parts[0].get("individual_digits") and parts[1].get("use_regex", True):
        return "smollm"  # one digit per token, then GPT-2's regex (SmolLM2's tokenizer)
    if types == ["Split", "ByteLevel"] and not parts[1].get("use_regex", True) and not parts[0].get("invert"):
        regex = (parts[0].get("pattern") or {}).get("Regex")
        if parts[0].get("behavior") == "Isolated" and regex in _SPLIT_REGEXES:
            return _SPLIT_REGEXES[regex]  # a split regex, then bytes to unicode (Qwen2/2.5, Llama 3)
    raise UserInputError(
        f"GGUF export: olive-ext does not know llama.cpp's name for the pre-tokenizer {types}",
        hint="convert the model with llama.cpp's convert_hf_to_gguf.py, which recognises many more tokenizers",
    )


def _add_tokenizer(writer: Any, folder: Path, n_vocab: int) -> int:
    """Tokens, types, merges, special ids and chat template, as convert_hf_to_gguf writes a GPT-2 BPE vocab."""
    import gguf

    path = folder / "tokenizer.json"
    if not path.exists():
        raise UserInputError(f"GGUF export: {folder} has no tokenizer.json (a fast byte-level BPE tokenizer is needed)")
    tokenizer_json = json.loads(path.read_text(encoding="utf-8"))
    model = _check_byte_level_bpe(tokenizer_json)
    vocab: dict[str, int] = dict(model["vocab"])
    added = {t["content"]: t for t in tokenizer_json.get("added_tokens", [])}
    for text, item in added.items():
        vocab[text] = int(item["id"])
    size = max(n_vocab, max(vocab.values()) + 1)
    by_id = {i: t for t, i in vocab.items()}
    tokens, types = [], []
    for i in range(size):
        text = by_id.get(i)
        if text is None:  # padding rows of an embedding larger than the vocabulary
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif text in added:
            tokens.append(text)
            types.append(gguf.TokenType.CONTROL if added[text].get("special") else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(text)
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer_name(tokenizer_json))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=size)
    if "bos" not in special.add_special_token:
        # say it explicitly: llama.cpp's default for GPT-2 vocabularies varies by pre-tokenizer
        special.add_special_token["bos"] = _post_processor_adds_bos(tokenizer_json.get("post_processor"))
    special.add_to_gguf(writer, quiet=True)
    return size


def _check_byte_level_bpe(tokenizer_json: dict[str, Any]) -> dict[str, Any]:
    """The tokenizer's BPE model, or UserInputError when it is not a byte-level BPE (the kind written here)."""
    model = tokenizer_json.get("model", {})
    if (
        model.get("type") != "BPE"
        or model.get("byte_fallback")
        or (tokenizer_json.get("decoder") or {}).get("type") != "ByteLevel"
    ):
        raise UserInputError(
            "GGUF export handles byte-level BPE tokenizers (GPT-2 style); this one is not",
            hint="convert the model with llama.cpp's convert_hf_to_gguf.py",
        )
    return dict(model)


def _post_processor_adds_bos(processor: Any) -> bool:
    """True when the HF tokenizer's post-processor puts a special token before the text (a BOS)."""
    if not isinstance(processor, dict):
        return False
    if processor.get("type") == "Sequence":
        return any(_post_processor_adds_bos(p) for p in processor.get("processors", []))
    single = processor.get("single") if processor.get("type") == "TemplateProcessing" else None
    return isinstance(single, list) and bool(single) and "SpecialToken" in single[0]


# ----------------------------------------------------------------------------- quantize


def quantize_gguf(src: Path, dest: Path, quant: str) -> None:
    """llama.cpp's quantizer (default rules: K-quants fall back per tensor where rows do not fit)."""
    import ctypes

    try:
        import llama_cpp
    except ImportError as e:
        raise MissingDependencyError("llama-cpp-python", "GGUF quantization", LLAMACPP_INSTALL) from e
    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant}", None)
    if ftype is None:
        raise UserInputError(f"llama-cpp-python {llama_cpp.__version__} has no quantization type {quant}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 0  # llama.cpp picks: all cores
    # llama.cpp logs a line per tensor (272 for SmolLM2), and a K-quant warns once per tensor whose rows it cannot
    # block by 256 (361 lines on the demo), through llama-cpp-python's logger, whose table shifts llama.cpp's levels
    # by one (its warnings arrive as ERROR, its errors as DEBUG): none of it unless olive-ext logs at debug; a
    # failure shows in the return code
    with quiet_loggers("llama-cpp-python", level=logging.CRITICAL):
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dest).encode(), ctypes.byref(params))
    if rc != 0:
        raise UserInputError(f"llama.cpp could not quantize {src.name} to {quant} (llama_model_quantize returned {rc})")
