"""Running the onnxruntime-genai model builder's Python entry point and finishing its output folder."""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import io
import json
import logging
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from olive_ext.artifacts import generates_text
from olive_ext.errors import MissingDependencyError, PassError, UserInputError
from olive_ext.quiet import QUANTIZER_LOGGERS, drop_messages, quiet_loggers

logger = logging.getLogger("olive_ext")

# Every int4 build with shared (tied) embeddings logs onnx_ir's "Input 'lm_head.MatMul.weight_Q4G32' of node
# '/model/embed_tokens/Reshape' ... cannot be found in any scope. The model is invalid but we will still create
# a new input". Harmless: the builder wires the embedding's GatherBlockQuantized to the lm_head's quantized
# weight and scales *before* quantizing, under the names the quantizer will give them; onnxruntime's quantizer
# (RTN and k-quant, through neural_compressor's ONNXModel) first reads the graph with onnx_ir only to sum its
# initializer sizes (check_is_large_model), finds those names not yet defined and says so; the quantizer then
# writes them, and the saved model defines every input (tests/test_progress.py checks it). The message is
# dropped for the build only; --log_level 0 shows it.
_PREMATURE_INPUT = ("cannot be found in any scope", "Caveat: The value is created in the subgraph")


def build_genai(
    model: str,
    out: Path,
    precision: str,
    provider: str,
    options: dict[str, str],
    cache: Path,
    pass_name: str,
    source: str | None = None,
) -> None:
    """Run the genai builder's Python entry point; its console output goes to the debug log.

    ``source`` names the model in errors when ``model`` is a temporary folder (an adapter merged in).
    """
    local = Path(model).is_dir()
    text = io.StringIO()
    try:
        from onnxruntime_genai.models.builder import create_model, parse_extra_options
    except ImportError as e:
        raise MissingDependencyError("onnxruntime-genai", "building genai models") from e
    args = (None if local else model, model if local else "", str(out), precision, provider, str(cache))
    try:
        with (
            quiet_loggers(*QUANTIZER_LOGGERS),
            drop_messages("onnx_ir.serde", *_PREMATURE_INPUT),
            # an int8 build leaves the embedding (Gather) in float, as intended, and the quantizer says so as an ERROR
            drop_messages(QUANTIZER_LOGGERS[0], "Gather only supports 4 bits quantization"),
            contextlib.redirect_stdout(text),
            contextlib.redirect_stderr(text),
        ):
            parsed = parse_extra_options(*args, [f"{k}={v}" for k, v in options.items()])
            bridged = bridge_config(parsed["hf_details"]["hf_config"])
            if "windowed_kv_cache" not in options and _has_sliding_layers(parsed["hf_details"]["hf_config"]):
                # window-sized KV buffers make onnxruntime-genai refuse any max_length below the window
                # ("KV cache capacity (10) must be at least local_window_size"): short prompts, parity, evals
                parsed["windowed_kv_cache"] = False
                bridged.append("windowed_kv_cache=false (sliding-window layers)")
            if bridged:
                logger.debug("config bridged for the genai builder: %s", "; ".join(bridged))
            with _builder_class_fixes(), reused_loads(share_model="adapter_path" not in options):
                create_model(*args, **parsed)
        if precision == "fp16" and provider == "cpu":
            drop_shape_hints(out)
    except (ValueError, NotImplementedError, AssertionError, KeyError) as e:
        raise builder_error(e, model, precision, provider, options, pass_name, source) from e
    except RuntimeError as e:
        refusal = next((r for marker, r in QUANTIZED_REFUSALS.items() if marker in str(e)), None)
        if precision in ("int4", "int8") and refusal is not None:
            raise QuantizedBuildRefusedError(pass_name, source or model, precision, f"{refusal} ({e})") from e
        raise
    finally:
        logger.debug("genai builder output:\n%s", text.getvalue()[-4000:])


def drop_shape_hints(out: Path) -> None:
    """Remove the intermediate shape annotations (``value_info``) from the decoder the builder wrote to ``out``.

    For fp16 on the CPU: onnxruntime-genai 0.18's builder annotates the outputs of its repeat_kv Reshapes (the
    past and current keys and values together) as ``[batch_size, sequence_length, ...]``, though they hold
    ``total_sequence_length`` rows. onnxruntime's CPU provider, which lacks fp16 kernels for some of those ops,
    inserts Casts, and its memory planner trusts the dimension names to reuse one buffer for both: the first
    decode step failed with "Shape mismatch attempting to re-use buffer. {1,1,64} != {1,5,64}" (tiny Llama,
    SmolLM2). The annotations are optional hints; without them onnxruntime infers the shapes itself.
    """
    import onnx

    config = json.loads((out / "genai_config.json").read_text())
    path = out / config["model"]["decoder"]["filename"]
    model = onnx.load(str(path), load_external_data=False)  # the weights stay where they are, referenced
    if len(model.graph.value_info):
        del model.graph.value_info[:]
        onnx.save(model, str(path))


# The PyTorch model a build loaded is kept for the next candidate of the run when its weights are at most
# this size (bytes). It stays in the auto-opt process through the candidate's parity check and evaluation
# too: on a 0.5B model (2 GB of fp32 weights) that took the run past 8 GB, so only small models keep it
# (SmolLM2-135M: 0.5 GB), where the load is a large share of a build.
KEEP_MODEL_BYTES = 1 << 30
_models: dict[tuple[Any, ...], tuple[Any, dict[str, int]]] = {}
_tokenizers: dict[tuple[Any, ...], Any] = {}


@contextlib.contextmanager
def reused_loads(share_model: bool = True) -> Iterator[None]:
    """During one build, serve the builder's PyTorch model and tokenizer loads from earlier builds of the run.

    The genai builder loads the tokenizer three times per build and the model once; every candidate
    of a run loads the same ones. A load is reused only for the same folder with unchanged files and
    the same arguments. The builder only reads the model (it packs and converts copies); should any
    weight be changed in place (torch counts each tensor's in-place writes), the model is dropped,
    not reused. ``share_model=False`` (an adapter the builder injects into the model) loads afresh.
    """
    from onnxruntime_genai.models import builder

    # the builder puts its own folder on sys.path and imports its classes as the top-level `builders`
    base = sys.modules.get("builders.base") or importlib.import_module("onnxruntime_genai.models.builders.base")
    real_tokenizer, real_model = base.AutoTokenizer, base.AutoModelForCausalLM

    class Tokenizers:
        @staticmethod
        def from_pretrained(path: Any, *args: Any, **kwargs: Any) -> Any:
            key = _load_key(path, args, kwargs)
            if key is None:
                return real_tokenizer.from_pretrained(path, *args, **kwargs)
            if key not in _tokenizers:
                _tokenizers.clear()  # one model's tokenizer at a time
                _tokenizers[key] = real_tokenizer.from_pretrained(path, *args, **kwargs)
            return _tokenizers[key]

    class Models:
        @staticmethod
        def from_pretrained(path: Any, *args: Any, **kwargs: Any) -> Any:
            key = _load_key(path, args, kwargs) if share_model else None
            if key is not None and key in _models:
                return _models[key][0]
            model = real_model.from_pretrained(path, *args, **kwargs)
            params = dict(model.named_parameters())
            if key is not None and sum(p.numel() * p.element_size() for p in params.values()) <= KEEP_MODEL_BYTES:
                _models.clear()
                _models[key] = (model, {n: p._version for n, p in params.items()})
            return model

    saved = {(builder, "AutoTokenizer"): builder.AutoTokenizer, (base, "AutoTokenizer"): real_tokenizer,
             (base, "AutoModelForCausalLM"): real_model}  # fmt: skip
    builder.AutoTokenizer = base.AutoTokenizer = Tokenizers  # type: ignore[attr-defined]
    base.AutoModelForCausalLM = Models  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for (module, name), value in saved.items():
            setattr(module, name, value)
        for key, (model, versions) in list(_models.items()):
            if any(p._version != versions.get(n) for n, p in model.named_parameters()):
                logger.debug("the genai builder changed the model's weights in place: not reusing it")
                del _models[key]


def release_loads() -> None:
    """Drop the model and tokenizer kept between builds (the end of a run)."""
    _models.clear()
    _tokenizers.clear()


def _load_key(path: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...] | None:
    """What identifies a load from a local folder: the folder, its files' sizes and times, the arguments."""
    folder = Path(str(path))
    if not folder.is_dir():
        return None
    try:
        stamp = tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in folder.iterdir() if f.is_file()))
        return (str(folder.resolve()), stamp, repr(args), repr(sorted(kwargs.items())))
    except OSError:
        return None


# Architectures whose builder class reads transformers 5's per-attention-type rope_parameters itself.
_READS_NESTED_ROPE = ("Gemma4",)


# Builder classes of onnxruntime-genai 0.18 whose make_rope_init reads Llama 3's scaling only: any other rope_type is
# built as plain RoPE, silently (fp32 logits of a tiny Llama off by 0.9 with linear, 0.6 with yarn)
_LLAMA_ROPE_CLASSES = ("LlamaForCausalLM", "NemotronForCausalLM", "SmolLM3ForCausalLM")


def _unread_rope(archs: list[str], rope_type: str | None) -> str | None:
    """Why the builder would build this RoPE scaling wrong or fail on it, or None when it reads it."""
    # dynamic NTK scaling changes nothing within the trained context, which the builder's model keeps to
    if any(a in _LLAMA_ROPE_CLASSES for a in archs) and rope_type not in (None, "default", "llama3", "dynamic"):
        return "the builder's Llama class reads only rope_type llama3 and would build plain RoPE, another model"
    if rope_type == "yarn" and not any(a.startswith("GptOss") for a in archs):
        return "the builder's YaRN fails on this architecture (it reads it for GPT-OSS)"
    return None


# families whose transformers model applies config.sliding_window to every layer when the config has no
# layer_types (their attention reads the window unconditionally; Qwen2/3, Gemma 2/3, Ministral name the layers)
_WINDOW_ON_EVERY_LAYER = frozenset(
    {"MistralForCausalLM", "MixtralForCausalLM", "Phi3ForCausalLM", "Starcoder2ForCausalLM"}
)


def bridge_config(config: Any) -> list[str]:
    """Adapt a loaded transformers config, in place, to the layout onnxruntime-genai 0.18's builder reads.

    transformers 5 writes ``rope_parameters`` (per attention type for models with sliding layers,
    e.g. Gemma3: ``{"full_attention": {...}, "sliding_attention": {...}}``) where the builder reads a
    flat ``{"rope_type": ..., "rope_theta": ...}`` plus ``rope_local_base_freq`` for the sliding
    layers; read as is, it fails with ``KeyError: 'rope_type'``. This is the one place where such
    differences are bridged; returns what it changed, for the log.
    """
    changed: list[str] = []
    archs = getattr(config, "architectures", None) or []
    rope = getattr(config, "rope_parameters", None)
    if isinstance(rope, dict) and rope and not any(a.startswith(_READS_NESTED_ROPE) for a in archs):
        per_type = {k: v for k, v in rope.items() if isinstance(v, dict)}
        if per_type:
            full = per_type.get("full_attention") or next(iter(per_type.values()))
            local = per_type.get("sliding_attention")
            if local is not None and getattr(config, "rope_local_base_freq", None) is None:
                config.rope_local_base_freq = local.get("rope_theta", 10000.0)
                changed.append(
                    f"rope_local_base_freq={config.rope_local_base_freq} (rope_parameters.sliding_attention)"
                )
            config.rope_parameters = {"rope_type": "default", **full}
            changed.append(f"rope_parameters=rope_parameters.full_attention ({config.rope_parameters})")
            if "rope_theta" in full:
                config.rope_theta = full["rope_theta"]
        elif "rope_type" not in rope:
            config.rope_parameters = {"rope_type": "default", **rope}
            changed.append("rope_parameters.rope_type=default")
    rope = getattr(config, "rope_parameters", None)
    if isinstance(rope, dict):
        if rope.get("rope_type") == "longrope" and "type" not in rope:  # the Phi-3 class reads transformers 4's key
            rope["type"] = "longrope"
            changed.append("rope_parameters.type=longrope")
        unread = _unread_rope(archs, rope.get("rope_type"))
        if unread:  # raised as the builder raises an unknown RoPE style: a model-level refusal, said once
            raise NotImplementedError(f"The {rope.get('rope_type')} RoPE style is not currently supported: {unread}")
    window = getattr(config, "sliding_window", None) or 0
    if window > 0 and not getattr(config, "layer_types", None) and set(archs) & _WINDOW_ON_EVERY_LAYER:
        # transformers applies such a family's window to every layer; the builder reads the layers' kinds from
        # layer_types alone (absent: full attention everywhere), and a Mistral's logits past its window were off
        # by 0.29 with parity passing on prompts shorter than it
        config.layer_types = ["sliding_attention"] * int(config.num_hidden_layers)
        changed.append(f"layer_types=sliding_attention x {config.num_hidden_layers} (sliding_window={window})")
    if getattr(config, "rms_norm_eps", None) is None:
        # the builder reads only rms_norm_eps (else 1e-6); LayerNorm families name it otherwise, OLMo fixes it in code
        names = ("layer_norm_eps", "norm_eps", "layer_norm_epsilon")
        eps = next((getattr(config, n) for n in names if getattr(config, n, None) is not None), None)
        if eps is None and "OlmoForCausalLM" in archs:
            eps = 1e-5
        if eps is not None:
            config.rms_norm_eps = eps
            changed.append(f"rms_norm_eps={eps}")
    return changed


@contextlib.contextmanager
def _builder_class_fixes() -> Iterator[None]:
    """Correct builder classes that contradict their transformers model, for the duration of one build.

    onnxruntime-genai 0.18's OLMo class writes RMSNorm (``simple``) where OLMo has a LayerNorm without
    weights (it already sets the weight to ones and the bias to zeros for one): fp32 logits were off
    by 1.2 before this. Its stamp of the source revision runs `git rev-parse HEAD` five folders above its
    own file, which in a virtual environment inside a git checkout (olive-ext's own, a user's project) is that
    checkout's commit: ``model.onnx``'s producer_version, so a build's bytes, changed with every commit of
    the user's project. The wheel's own commit is stamped instead.
    """
    from onnxruntime_genai.models import builder

    original = builder.OLMoModel
    # the builder's own Model class: it imports its modules as "builders.base", apart from the package's
    base: Any = getattr(builder, "Model", None)
    stamp = base.__dict__.get("get_genai_commit") if base is not None else None
    if stamp is not None:
        base.get_genai_commit = classmethod(lambda cls: _wheel_commit())

    class OLMoLayerNorm(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.layernorm_attrs["simple"] = False

    builder.OLMoModel = OLMoLayerNorm
    try:
        with _release_weights_once_serialized():
            yield
    finally:
        builder.OLMoModel = original
        if stamp is not None:
            base.get_genai_commit = stamp


def _wheel_commit() -> str | None:
    """The commit onnxruntime-genai's wheel was built from (its ``__commit__``), or None."""
    import onnxruntime_genai

    return getattr(onnxruntime_genai, "__commit__", None) or None


@contextlib.contextmanager
def _release_weights_once_serialized() -> Iterator[None]:
    """Hand the int4 quantizer a float model read back from disk, the builder's own copy freed, for one build.

    onnxruntime-genai 0.18's quantized builds (``Model.to_nbits``) serialize the whole float graph in
    memory (``onnx_ir.to_proto``) for onnxruntime's MatMulNBits quantizer while the graph still holds every
    weight as a PyTorch tensor (memory-mapped from the safetensors file and resident once read, or merged
    with a LoRA adapter), plus a transposed copy of the weight being serialized: on a
    Gemma-3-270M-shaped model (262k vocabulary, 1.07 GB of fp32 weights) the build peaked at 3.8 GB.
    Here the graph is saved to the builder's cache folder tensor by tensor, its weights are dropped (nothing
    reads that graph afterwards: the quantized model comes back from the proto), and the quantizer gets the
    proto loaded from that file. Same bytes, same quantized model; measured figures in benchmarks/RESULTS.md.
    """
    import gc

    import onnx
    import onnx_ir
    from builders import base  # the builder module puts its folder on sys.path (onnxruntime_genai.models)

    real_to_proto, original_to_nbits = onnx_ir.to_proto, base.Model.to_nbits

    def to_nbits(self: Any) -> Any:
        graph_model = self.model

        def to_proto(obj: Any) -> Any:
            if obj is not graph_model:
                return real_to_proto(obj)
            folder = Path(self.cache_dir)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "float_for_quantizer.onnx"
            data = path.with_name(path.name + ".data")
            onnx_ir.save(graph_model, path, external_data=data.name, size_threshold_bytes=0)
            for value in list(graph_model.graph.initializers.values()):
                value.const_value = None
            graph_model.graph.initializers.clear()
            gc.collect()
            try:
                return onnx.load(str(path), load_external_data=True)
            finally:
                path.unlink(missing_ok=True)
                data.unlink(missing_ok=True)

        onnx_ir.to_proto = to_proto  # type: ignore[assignment]
        try:
            return original_to_nbits(self)
        finally:
            onnx_ir.to_proto = real_to_proto

    base.Model.to_nbits = to_nbits
    try:
        yield
    finally:
        base.Model.to_nbits = original_to_nbits


def _has_sliding_layers(config: Any) -> bool:
    """Whether some layer attends to a window shorter than the context: layer_types names sliding layers (Gemma
    2/3, GPT-OSS), or a config without layer_types gives a window (Mistral v0.1; Qwen2 with use_sliding_window).
    A Mistral built with window-sized KV buffers failed in GroupQueryAttention one token past its window."""
    window = getattr(config, "sliding_window", None) or 0
    if window <= 0 or getattr(config, "use_sliding_window", True) is False:
        return False
    types = getattr(config, "layer_types", None)
    if types:
        return "sliding_attention" in types
    return window < (getattr(config, "max_position_embeddings", None) or window + 1)


# Builder failures of quantized builds that come from the family, not the options: marker in the message -> reason.
QUANTIZED_REFUSALS = {
    "MXFP4": "the builder's quantized GPT-OSS path re-exports the original MXFP4 expert tensors, which a "
    "bf16/fp32 checkpoint does not have",
}


class QuantizedBuildRefusedError(PassError):
    """The builder builds this family in float but refuses its quantized build (``QUANTIZED_REFUSALS``).

    model_builder then builds fp32 and quantizes the decoder's MatMuls with onnxruntime's MatMulNBits
    quantizer (the ``int4_weight`` path), and records that it did."""

    def __init__(self, pass_name: str, model: str, precision: str, reason: str) -> None:
        super().__init__(pass_name, f"the genai model builder refused the {precision} build of {model}: {reason}")
        self.reason = reason


class ModelNotBuildableError(PassError):
    """The builder fails on the model itself (its architecture or a config field), whatever the options.

    Every candidate built from the model would fail the same way, so the engine stops at the first
    (``fails_every_candidate``) instead of reloading the model for each one.
    """

    fails_every_candidate = True

    def __init__(self, pass_name: str, model: str, field: str, detail: str, hint: str) -> None:
        super().__init__(
            pass_name, f"the genai model builder cannot build {model}: config field `{field}`: {detail}", hint
        )
        self.model, self.field = model, field


@functools.cache
def builder_architectures() -> frozenset[str] | None:
    """The architectures onnxruntime-genai's model builder dispatches on (``config.architectures[0] == "..."`` in
    its ``models/builder.py``), read from its source without importing it (that loads torch and transformers);
    None when it cannot be read (not installed, or written otherwise), and nothing is refused then."""
    spec = importlib.util.find_spec("onnxruntime_genai")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if not folders:
        return None
    try:
        text = (Path(folders[0]) / "models" / "builder.py").read_text(encoding="utf-8")
    except OSError:
        return None
    return frozenset(re.findall(r'architectures\[0\] == "(\w+)"', text)) or None


@functools.cache
def builder_extra_option_keys() -> frozenset[str] | None:
    """The extra_options keys onnxruntime-genai's model builder reads (``extra_options.get("key"``,
    ``extra_options["key"]``, ``"key" in extra_options`` anywhere in its ``models`` package), read from its source
    without importing it; None when it cannot be read, and nothing is refused then. A key it never reads is
    ignored by the builder without a word."""
    spec = importlib.util.find_spec("onnxruntime_genai")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if not folders:
        return None
    pattern = re.compile(r'extra_options(?:\.get\(|\[)"(\w+)"|"(\w+)" in extra_options')
    keys: set[str] = set()
    try:
        for source in (Path(folders[0]) / "models").rglob("*.py"):
            for got, tested in pattern.findall(source.read_text(encoding="utf-8")):
                keys.add(got or tested)
    except OSError:
        return None
    return frozenset(keys) or None


def builder_input_problem(config: dict[str, Any], config_file: Path) -> str | None:
    """Why the genai builder cannot build the model of this read ``config`` (``config_file``: where it is), or None:
    an encoder, no ``architectures`` (the builder reads architectures[0]: "TypeError: 'NoneType' object is not
    subscriptable"), or an architecture the builder has no class for (it failed after loading the model)."""
    archs = config.get("architectures") or []
    if not generates_text(archs):
        return f"it is {_a(archs[0])}, not a generative LLM (use onnx_export for encoder models)"
    if not archs:
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES  # only here (start-up)

        named = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(str(config.get("model_type")), "LlamaForCausalLM")
        return (f"its config.json names no architectures, which the genai builder reads: add "
                f'"architectures": ["{named}"] to {config_file}')  # fmt: skip
    known = builder_architectures()
    if known is not None and archs[0] not in known:
        return f"it is {_a(archs[0])} (config.json's architectures), which the genai model builder has no class for"
    rope_type = _rope_type(config)
    if unread := _unread_rope(archs, rope_type):  # refused in the build before, 15 s in and with exit 1
        return f"its RoPE scaling {rope_type!r} (config.json's rope_parameters): {unread}"
    return None


def _a(name: str) -> str:
    """``name`` with its article ("an OPTForCausalLM", "a GPT2LMHeadModel")."""
    return f"{'an' if name[:1].upper() in 'AEIOU' else 'a'} {name}"


def _rope_type(config: dict[str, Any]) -> str | None:
    """The RoPE scaling a read config.json names: transformers 5's rope_parameters (the full-attention layers' where
    it is per attention type) or transformers 4's rope_scaling."""
    rope = config.get("rope_parameters") or config.get("rope_scaling")
    if not isinstance(rope, dict):
        return None
    if isinstance(rope.get("full_attention"), dict):
        rope = rope["full_attention"]
    kind = rope.get("rope_type") or rope.get("type")
    return str(kind) if kind is not None else None


# model types whose olive-ai int4 weights (Rtn, Gptq) the builder writes into a graph onnxruntime cannot load: Phi-3's
# fused qkv_proj / gate_up_proj ("MatMulNBits PrePack: zero_points initializer shape {1024} does not match
# attribute-derived shape [2048]"; measured on random Phi-3 shapes, GQA and MHA, hidden 64 and 256)
_OLIVE_QUANTIZED_UNLOADABLE = {"phi3": "Phi-3's fused qkv_proj and gate_up_proj"}


def olive_quantized_problem(config: dict[str, Any] | None) -> str | None:
    """Why the builder cannot make a loadable model from olive-ai's int4 weights of this model, or None."""
    model_type = (config or {}).get("model_type")
    why = _OLIVE_QUANTIZED_UNLOADABLE.get(str(model_type))
    return None if why is None else (f"the genai builder writes olive-ai's int4 weights of {why} into a graph "
                                     "onnxruntime cannot load")  # fmt: skip


def check_buildable(config: dict[str, Any] | None, model: str, folder: str) -> None:
    """Refuse, before any build, a causal LM (``model`` as the user gave it, its read ``config``.json in ``folder``)
    that the builder cannot build (:func:`builder_input_problem`): each candidate loaded the model for 10-40 s, then
    failed naming a scratch folder (or failed its check, once per candidate), and `--dry_run` said all was well."""
    problem = builder_input_problem(config, Path(folder) / "config.json") if config is not None else None
    if problem is not None:
        raise UserInputError(f"{model}: {problem}; the genai builder builds every candidate of a causal LM",
                             hint=_hint("architectures"))  # fmt: skip


def model_level_field(error: BaseException, config: dict[str, Any]) -> str | None:
    """The config field a builder error comes from when the model, not an option, causes it; else None."""
    text = str(error)
    if isinstance(error, KeyError):
        key = str(error.args[0]) if error.args else "?"
        return f"rope_parameters.{key}" if key.startswith("rope") and "rope_parameters" in config else key
    if isinstance(error, NotImplementedError) and "RoPE style" in text:
        return "rope_parameters.rope_type"
    if isinstance(error, NotImplementedError) and "model is not currently supported" in text:
        return "architectures"
    if "does not recognize this architecture" in text:  # transformers' own, for a model_type it has no class of
        return "model_type"
    return None


def builder_error(
    error: BaseException,
    model: str,
    precision: str,
    provider: str,
    options: dict[str, str],
    pass_name: str,
    source: str | None = None,
) -> PassError:
    """The error to raise for a builder failure, with a hint that matches its cause."""
    config_file = Path(model) / "config.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {}
    field = model_level_field(error, config)
    detail = f"{type(error).__name__}: {error}"
    if field is not None:
        detail = _with_value(detail, field, config)
        return ModelNotBuildableError(pass_name, source or model, field, detail, _hint(field))
    shown = ", ".join(f"{k}={v}" for k, v in options.items() if k not in {"hf_token", "adapter_path"})
    if "custom code" in str(error) and "trust_remote_code" in str(error):
        hint = ("this model needs its own Python code (config.json's auto_map): add --trust_remote_code (in a recipe: "
                "input_model.trust_remote_code: true) if you trust that code; olive-ext runs none unless asked")
    elif "reshape" in str(error) and options.get("algo_config") == "k_quant":
        hint = (
            f"k_quant needs every weight's input size (the hidden and MLP sizes) to be a multiple of twice the "
            f"block_size, and {options.get('block_size')} is too large for this model: try 32 (or 16)"
        )
    else:
        hint = "change the option the message names (a block size larger than the model's hidden size, for one)"
    message = (
        f"the genai model builder refused precision={precision}, execution_provider={provider}, "
        f"options ({shown or 'none'}): {detail}"
    )
    return PassError(pass_name, message, hint=hint)


def _with_value(detail: str, field: str, config: dict[str, Any]) -> str:
    top = field.split(".")[0]
    return f"{detail} (config.json has {top}={json.dumps(config[top])})" if top in config else detail


def _hint(field: str) -> str:
    from importlib.metadata import version

    builder = f"onnxruntime-genai {version('onnxruntime-genai')}'s model builder"
    if field == "architectures":
        return (
            f"{builder} builds Llama, Mistral, Qwen2/3, Phi, Gemma 1-3, Granite, OLMo, Nemotron, SmolLM3, Ernie 4.5, "
            "GPT-OSS, HunYuan, LFM2 and a few more (README, 'Model families'); olive-ext has no other path for "
            "causal LMs (onnx_export takes encoders)"
        )
    if field == "model_type":
        return (
            "this transformers release has no model class for that model_type, so nothing here can load the "
            "weights: a model written for a newer transformers (upgrade it) or for its own code (olive-ext "
            "does not run a model's own code unless asked: --trust_remote_code)"
        )
    if field.startswith("rope_parameters"):
        return (
            f"{builder} reads rope_type default, llama3 (Llama), linear (not for Llama), yarn (GPT-OSS) and "
            "longrope (Phi-3); this model's RoPE scaling is not among them. No option changes that: build with a "
            "newer onnxruntime-genai or a model without this scaling"
        )
    return (
        f"{builder} expects `{field}` in a layout this config.json does not have (olive-ext bridges the "
        "transformers 5 differences it knows in olive_ext/onnx/genai_builder.py:bridge_config). No option "
        "changes that: report the model's config.json"
    )


def finish_genai_config(out: Path, threads: int | None, search: dict[str, Any]) -> None:
    """Write the thread count and search overrides into genai_config.json."""
    if threads is None and not search:
        return
    path = out / "genai_config.json"
    config = json.loads(path.read_text())
    if threads is not None:
        config["model"]["decoder"].setdefault("session_options", {})["intra_op_num_threads"] = threads
    config["search"] = {**config.get("search", {}), **search}
    path.write_text(json.dumps(config, indent=4))


def num_layers(model: str) -> int:
    config = json.loads((Path(model) / "config.json").read_text())
    return int(config.get("num_hidden_layers") or config.get("text_config", {}).get("num_hidden_layers", 0))


def copy_tokenizer_files(adapter: Path, out: Path) -> None:
    """Fine-tuning saves the tokenizer and chat template it used beside the adapter; ship those."""
    if not (adapter / "tokenizer_config.json").exists():
        return
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        if (adapter / name).exists():
            shutil.copy2(adapter / name, out / name)
