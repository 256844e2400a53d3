"""model_builder: a Hugging Face LLM -> an onnxruntime-genai folder, through the genai model builder.

Calls the builder's Python entry point (``parse_extra_options`` then ``create_model``),
not its command line. Option sets the builder accepts but that give a model which does
not load are refused in the config with the reason; whatever still slips through is
caught by the CPU smoke run every build gets before it counts.
"""

from __future__ import annotations

import difflib
import json
import logging
import shutil
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, TypeAdapter, ValidationError, model_validator

from olive_ext.artifacts import Artifact
from olive_ext.errors import PassError
from olive_ext.models.adapters import not_plain_lora
from olive_ext.models.folder import config_json
from olive_ext.models.hub import hub_model_folder
from olive_ext.models.olive_quant import with_float_embedding
from olive_ext.onnx.check import smoke_check
from olive_ext.onnx.folder import model_file, save_model
from olive_ext.onnx.genai_builder import (
    QuantizedBuildRefusedError,
    build_genai,
    builder_extra_option_keys,
    builder_input_problem,
    copy_tokenizer_files,
    finish_genai_config,
    num_layers,
)
from olive_ext.onnx.lora_inputs import lora_node_names, make_lora_inputs
from olive_ext.passes.base import Pass, PassConfig, register_pass, searchable
from olive_ext.passes.context import RunContext
from olive_ext.passes.int4_weight import Int4WeightConfig, quantize_weights
from olive_ext.passes.merge_adapter import merged_model
from olive_ext.passes.weight_quant import WeightQuantConfig
from olive_ext.targets.base import Target, normalize_provider, provider_short_name

logger = logging.getLogger("olive_ext")

Precision = Literal["fp32", "fp16", "bf16", "int4", "int8"]
BuilderProvider = Literal["cpu", "cuda", "dml", "webgpu"]
QUANTIZED = ("int4", "int8")
# The (precision, provider) pairs the builder writes (onnxruntime-genai 0.18; fp16 for webgpu and cpu measured on
# 2026-12-04 with the tiny Llama: both build; webgpu is a cross-build here, as cuda is).
SUPPORTED = {
    ("fp32", "cpu"), ("fp32", "cuda"), ("fp16", "cpu"), ("fp16", "cuda"), ("fp16", "dml"), ("fp16", "webgpu"),
    ("bf16", "cuda"), ("int8", "cpu"), ("int8", "cuda"), ("int8", "webgpu"),
    ("int4", "cpu"), ("int4", "cuda"), ("int4", "dml"), ("int4", "webgpu"),
}  # fmt: skip
# Pairs on that list whose output does not load or run (found with onnxruntime-genai 0.18). fp16 for cpu did not
# run either until the build's wrong shape annotations were dropped (onnx/genai_builder.py, drop_shape_hints).
KNOWN_BAD = {
    ("fp32", "cuda"): "the builder writes an fp32 CUDA graph whose present.* KV outputs no node produces, "
    "so it does not load; build fp16 (or int4) for cuda",
}
_QUANT_FIELDS = ("block_size", "accuracy_level", "symmetric", "algorithm", "lm_head", "mixed_layers_int8",
                 "linear_attn_int8")
# Builder options that have a field of their own here (or that break generation).
_OWNED = {
    "block_size": "block_size", "int4_block_size": "block_size", "accuracy_level": "accuracy_level",
    "int4_accuracy_level": "accuracy_level", "is_symmetric": "symmetric", "int4_is_symmetric": "symmetric",
    "algo_config": "algorithm", "int4_algo_config": "algorithm",
    "matmul_mixed_precision": "lm_head / mixed_layers_int8 / linear_attn_int8",
    "nodes_to_exclude": "nodes_to_exclude", "shared_embeddings": "shared_embeddings", "prune_lm_head": "prune_lm_head",
    "use_qdq": "use_qdq", "adapter_path": "the input model's adapter_path",
    "config_only": "(not supported)", "hf_remote": "input_model.trust_remote_code",
    "exclude_lm_head": "(not supported: the model would have no logits to generate with)",
    "exclude_embeds": "(not supported: the model would need inputs_embeds)",
}  # fmt: skip
# Unsupported builder options whose default (false) changes nothing: accepted when a config spells that default out
_OFF_BY_DEFAULT = {"config_only", "exclude_lm_head", "exclude_embeds"}
# builder extra_options an Olive config may give -> the Olive ModelBuilder parameter that sets the same
_LIFTED = {
    "int4_block_size": "int4_block_size", "block_size": "int4_block_size", "int4_accuracy_level": "int4_accuracy_level",
    "accuracy_level": "int4_accuracy_level", "int4_is_symmetric": "int4_is_symmetric",
    "is_symmetric": "int4_is_symmetric", "int4_algo_config": "int4_algo_config", "algo_config": "int4_algo_config",
    "int4_nodes_to_exclude": "int4_nodes_to_exclude", "shared_embeddings": "shared_embeddings",
    "prune_lm_head": "prune_lm_head", "use_qdq": "use_qdq",
}  # fmt: skip
# Olive's compound algo_config names: base method + mixed-precision placement.
_ALGO_ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    "rtn_last": ("rtn", {"lm_head": "int8"}),
    "k_quant_last": ("k_quant", {"lm_head": "int8"}),
    "k_quant_mixed": ("k_quant", {"lm_head": "int8", "mixed_layers_int8": True}),
    "k_quant_linear": ("k_quant", {"lm_head": "int8", "linear_attn_int8": True}),
}
_OLIVE_PASSTHROUGH = {"use_webgpu_fp32", "use_cuda_bf16", "enable_cuda_graph", "use_8bits_moe", "include_hidden_states"}


UNREAD_OPTION = "the model builder reads no such option (it would be ignored without a word)"


def unread_extra_options(extra: dict[str, Any]) -> list[str]:
    """The keys of builder ``extra_options`` the installed model builder never reads (it ignores them without a
    word), those with a field of this pass and Olive's pass-through options aside; [] when its source is unread."""
    known = builder_extra_option_keys()
    if known is None:
        return []
    ours = set(_OWNED) | _OFF_BY_DEFAULT | _OLIVE_PASSTHROUGH | set(_LIFTED)
    return [k for k in extra if k not in known and k not in ours]


def did_you_mean_option(key: str) -> str:
    """"; did you mean X?" for a misspelt builder option (its own names and Olive's int4_* ones), or ""."""
    close = difflib.get_close_matches(key, sorted((builder_extra_option_keys() or set()) | set(_LIFTED)), n=1,
                                      cutoff=0.7)  # fmt: skip
    return f"; did you mean {close[0]}?" if close else ""


def _allowed(config: type[PassConfig], name: str, value: Any) -> bool:
    """Whether ``value`` passes field ``name``'s own type and bounds."""
    field = config.model_fields[name]
    annotation: Any = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    try:
        TypeAdapter(annotation).validate_python(value)
    except ValidationError:
        return False
    return True


class ModelBuilderConfig(WeightQuantConfig):
    precision: Precision = searchable("fp32", description="fp32 | fp16 | bf16 | int4 | int8 (weights; int4/int8 "
                                      "are MatMulNBits weight-only)")  # fmt: skip
    execution_provider: BuilderProvider | None = Field(
        None, description="cpu | cuda | dml | webgpu; default: the target's provider (a cross-build when not installed)"
    )
    algorithm: Literal["default", "rtn", "k_quant"] = searchable(
        "default", description="weight rounding: default (RTN, builder naming), rtn, or k_quant (llama.cpp-style)"
    )
    lm_head: Literal["same", "int8", "float"] = searchable(
        "same", description="LM head precision: same as the body, int8, or float (excluded from quantization)"
    )
    mixed_layers_int8: bool = searchable(
        False, description="int8 for the most quantization-sensitive MatMuls (llama.cpp's mixed strategy)"
    )
    linear_attn_int8: bool = Field(
        False, description="int8 for the MatMuls of linear-attention layers (Qwen3.5-style hybrids; others have none)"
    )
    shared_embeddings: bool | None = Field(
        None,
        description="share the embedding and LM-head weights (tied models); default: the builder's choice, turned "
        "off where sharing gives a model that does not load",
    )
    prune_lm_head: bool = Field(False, description="compute logits for the last token only during prefill")
    use_qdq: bool = Field(False, description="QDQ encoding (DequantizeLinear + MatMul) instead of MatMulNBits")
    adapter_mode: Literal["merge", "embed", "inputs"] = Field(
        "merge",
        description="with an adapter: merge it into the weights, embed it as separate LoRA MatMuls, or make its "
        "weights model inputs (adapter.onnx_adapter beside the model, swappable at run time)",
    )
    nodes_to_exclude: tuple[str, ...] = Field((), description="node names kept in float when quantizing")
    threads: int | None = Field(None, ge=1, description="intra_op_num_threads written into genai_config.json")
    search: dict[str, Any] = Field(default_factory=dict, description="overrides for genai_config.json's search")
    extra_options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="other builder extra_options, passed as given"
    )

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        algo = data.get("algorithm")
        if isinstance(algo, str) and algo in _ALGO_ALIASES:
            data["algorithm"], implied = _ALGO_ALIASES[algo]
            for key, value in implied.items():
                data.setdefault(key, value)
        precision = data.get("precision", "fp32")
        if precision not in QUANTIZED:  # quantization settings mean nothing here: drop, so candidates dedupe
            for key in _QUANT_FIELDS:  # ... but a value no build accepts is kept, for validation to name
                if key in data and _allowed(cls, key, data[key]):
                    data.pop(key)
        elif precision == "int8" and data.get("lm_head") == "int8":
            data["lm_head"] = "same"
        return data

    @model_validator(mode="after")
    def _check_combinations(self) -> ModelBuilderConfig:
        unread = unread_extra_options(self.extra_options)
        for key, value in self.extra_options.items():
            if key in _OFF_BY_DEFAULT and str(value).lower() in {"false", "0"}:
                continue  # the builder's default, spelled out (olive-recipes' Qwen3.5 configs: exclude_embeds false)
            if key in _OWNED:
                owner = _OWNED[key]  # a field of ours, or "(not supported...)"
                said = owner.strip("()") if owner.startswith("(") else f"set {owner} instead"
                raise ValueError(f"extra_options.{key}: {said}")
            if key in unread:
                raise ValueError(f"extra_options.{key}: {UNREAD_OPTION}" + did_you_mean_option(key))
        filename = self.extra_options.get("filename")
        if filename is not None and (not str(filename).endswith(".onnx") or Path(str(filename)).name != filename):
            raise ValueError(f"extra_options.filename: a file name ending in .onnx, no folder (got {filename!r})")
        ep = self.execution_provider
        if ep is not None:
            if (self.precision, ep) not in SUPPORTED:
                valid = ", ".join(sorted(p for p, e in SUPPORTED if e == ep))
                raise ValueError(
                    f"precision {self.precision!r} is not built for execution_provider {ep!r}; valid for {ep}: {valid}"
                )
            if (self.precision, ep) in KNOWN_BAD:
                bad = KNOWN_BAD[(self.precision, ep)]
                raise ValueError(f"precision {self.precision!r} with execution_provider {ep!r}: {bad}")
        if self.use_qdq and self.precision == "int8":
            raise ValueError("use_qdq=true with precision 'int8': the builder writes 8-bit weights only as MatMulNBits")
        if self.use_qdq and (self.lm_head == "int8" or self.mixed_layers_int8 or self.linear_attn_int8):
            raise ValueError(
                "use_qdq=true cannot take int8 overrides (lm_head: int8 / mixed_layers_int8 / linear_attn_int8)"
            )
        reason = unshared_reason(self)
        if reason and self.shared_embeddings:
            raise ValueError(
                f"shared_embeddings=true with {reason}: on tied-embedding models (e.g. SmolLM2) the builder writes a "
                "model that does not load; leave shared_embeddings unset (it is then turned off) or set it to false"
            )
        return self

    @property
    def quantized(self) -> bool:
        return self.precision in QUANTIZED


def unshared_reason(config: ModelBuilderConfig) -> str | None:
    """Why shared embeddings would break this build, or None."""
    if not config.quantized:
        return None
    if config.use_qdq:
        return "use_qdq=true (the shared Gather has no QDQ form)"
    if config.algorithm == "default" and not config.symmetric:
        return "symmetric=false and algorithm 'default'"
    if config.algorithm == "default" and config.lm_head == "int8":
        return "lm_head 'int8' and algorithm 'default'"
    return None


def builder_options(config: ModelBuilderConfig) -> dict[str, str]:
    """The builder's extra_options (KEY -> VALUE text) for this config, adapter and paths aside."""
    opts: dict[str, str] = {"hf_token": "false"}
    exclude = list(config.nodes_to_exclude)
    if config.quantized:
        opts["block_size"] = str(config.block_size)
        opts["is_symmetric"] = str(config.symmetric).lower()
        if config.algorithm != "default":
            opts["algo_config"] = config.algorithm
        if config.accuracy_level is not None:
            opts["accuracy_level"] = str(config.accuracy_level)
        mixed = (
            (["last_matmul:int8"] if config.lm_head == "int8" else [])
            + (["mixed_layers:int8"] if config.mixed_layers_int8 else [])
            + (["linear_attn:int8"] if config.linear_attn_int8 else [])
        )
        if mixed:
            opts["matmul_mixed_precision"] = ",".join(mixed)
        if config.lm_head == "float":
            exclude.append("/lm_head/MatMul")
    if config.shared_embeddings is not None:
        opts["shared_embeddings"] = str(config.shared_embeddings).lower()
    elif unshared_reason(config):
        opts["shared_embeddings"] = "false"
    if exclude:
        opts["nodes_to_exclude"] = ",".join(exclude)
    if config.prune_lm_head:
        opts["prune_lm_head"] = "true"
    if config.use_qdq:
        opts["use_qdq"] = "true"
    opts.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in config.extra_options.items()})
    return opts


def _mark_for_olive(out: Path, attributes: dict[str, Any]) -> None:
    """Write an earlier Olive pass's split assignments (CaptureSplitInfo) and layer annotations
    (CaptureLayerAnnotations) into the built graph, as Olive's ModelBuilder does: its SplitModel and layer-aware
    passes read them from the graph. The builder names nodes by the HF module names they hold."""
    splits, annotations = attributes.get("split_assignments"), attributes.get("layer_annotations")
    if not splits and not annotations:
        return
    import onnx

    graph = model_file(Artifact("genai", str(out)))
    proto = onnx.load(str(graph), load_external_data=False)
    if splits:
        kept = [p for p in proto.metadata_props if p.key != "split_assignments"]
        del proto.metadata_props[:]
        proto.metadata_props.extend(kept)
        proto.metadata_props.add(key="split_assignments", value=";".join(f"{k}={v}" for k, v in splits.items()))
    if annotations:
        from olive.passes.onnx.layer_annotation import annotate_proto_model  # olive-ai made them: it is installed

        annotate_proto_model(proto, annotations)
    onnx.save(proto, str(graph))


@register_pass("model_builder")
class ModelBuilder(Pass[ModelBuilderConfig]):
    """Build an onnxruntime-genai model folder (genai_config.json, model.onnx, tokenizer) from an HF LLM."""

    config_class = ModelBuilderConfig
    accepts = frozenset({"hf"})
    produces = "genai"
    devices = frozenset({"cpu", "gpu"})
    libraries = ("onnxruntime-genai", "onnxruntime", "onnx", "transformers", "torch", "peft")
    version = 5  # 2: a LoRA on a tied lm_head/embed_tokens is merged untied; 3: a Mistral window gets full KV buffers;
    # 4: an earlier Olive pass's model attributes (split assignments) are carried; 5: adapters merge in float32
    olive_types = ("ModelBuilder",)
    olive_params: ClassVar[dict[str, str]] = {
        "int4_block_size": "block_size", "int4_accuracy_level": "accuracy_level", "int4_is_symmetric": "symmetric",
        "int4_algo_config": "algorithm", "int4_nodes_to_exclude": "nodes_to_exclude",
    }  # fmt: skip

    @classmethod
    def from_olive(cls, params: dict[str, Any]) -> dict[str, Any]:
        extra = params.get("extra_options")
        if isinstance(extra, dict):  # Olive hands extra_options to the builder: ours has fields for some of them
            lifted = {k: v for k, v in extra.items() if k in _LIFTED and _LIFTED[k] not in params}
            rest = {k: v for k, v in extra.items() if k not in lifted}
            params = {**{_LIFTED[k]: v for k, v in lifted.items()}, **params, "extra_options": rest}
            if not rest:
                params.pop("extra_options")
        op_types = params.get("int4_op_types_to_quantize")
        if isinstance(op_types, list) and all(isinstance(t, str) for t in op_types):  # the builder's own spelling
            params = {k: v for k, v in params.items() if k != "int4_op_types_to_quantize"}
            extra = params.get("extra_options", {})
            if isinstance(extra, dict):
                params["extra_options"] = {"op_types_to_quantize": "/".join(op_types), **extra}
        out = super().from_olive({k: v for k, v in params.items() if k not in _OLIVE_PASSTHROUGH})
        passthrough = {k: v for k, v in params.items() if k in _OLIVE_PASSTHROUGH}
        if passthrough and isinstance(out.get("extra_options", {}), dict):  # else validation names extra_options
            out["extra_options"] = {**passthrough, **out.get("extra_options", {})}
        return out

    @classmethod
    def single_threaded(cls, params: dict[str, Any]) -> bool:
        """k_quant rounds every weight in numpy on one thread (onnxruntime's quant_tensor_k_quant_cpu): 31 s of the
        demo's auto-opt, the longest build after Olive's GPTQ."""
        algorithm = params.get("algorithm")
        return isinstance(algorithm, str) and _ALGO_ALIASES.get(algorithm, (algorithm,))[0] == "k_quant"

    @classmethod
    def single_threaded_cost(cls, params: dict[str, Any]) -> float:
        """k_quant: 31 s for SmolLM2's 135M parameters (AMD EPYC, one thread)."""
        return 23.0

    @classmethod
    def target_defaults(cls, target: Target) -> dict[str, Any]:
        short = provider_short_name(target.provider)
        return {"execution_provider": short} if short in ("cpu", "cuda", "dml", "webgpu") else {}

    @classmethod
    def check_input(cls, artifact: Artifact) -> str | None:
        data = config_json(artifact.path)  # a local folder's or a cached hub model's
        return builder_input_problem(data, Path(artifact.path) / "config.json") if data is not None else None

    def run(self, artifact: Artifact, ctx: RunContext) -> Artifact:
        cfg = self.config
        provider = cfg.execution_provider or "cpu"
        out, work = ctx.output_dir / "model", ctx.output_dir / "_work"
        options = builder_options(cfg)
        # a hub id: its Hugging Face cache folder (with the recipe's revision)
        base, adapter = hub_model_folder(artifact).path, artifact.adapter_path
        if options.get("algo_config") == "k_quant" and (problem := _k_quant_problem(Path(base), cfg.block_size)):
            # the builder found it after loading and converting the model (32 s for SmolLM2-135M): said first
            raise PassError(self.name, problem, hint=f"try block_size {_k_quant_fit(Path(base))}")
        if ctx.trust_remote_code:
            options["hf_remote"] = "true"
        if adapter and cfg.adapter_mode != "merge":
            config = Path(adapter) / "adapter_config.json"
            not_lora = not_plain_lora(json.loads(config.read_text())) if config.is_file() else None
            if not_lora:  # the builder would read its lora_A/lora_B alone and build a different model, silently
                raise PassError(
                    self.name,
                    f"adapter_mode {cfg.adapter_mode!r}, adapter {adapter}: {not_lora}; the builder makes "
                    "only plain LoRA weights separate MatMuls",
                    hint="write adapter_mode: merge (the adapter merged into the weights)",
                )
        if adapter and cfg.adapter_mode == "merge":
            base = str(merged_model(artifact, ctx))  # one merge (float32) serves every candidate of the run
        base = str(with_float_embedding(Path(base), work))  # Olive's Rtn with embeds: the builder reads floats
        shown = {k: v for k, v in options.items() if k not in {"hf_token", "hf_remote"}}
        if adapter and cfg.adapter_mode != "merge":
            options["adapter_path"] = adapter
            if cfg.adapter_mode == "inputs" and cfg.quantized:  # LoRA MatMuls stay float to be inputs
                lora = lora_node_names(adapter, num_layers(base))
                options["nodes_to_exclude"] = ",".join(filter(None, [options.get("nodes_to_exclude", ""), *lora]))
        build_path = "model_builder"
        try:
            build_genai(base, out, cfg.precision, provider, options, work / "cache", self.name, artifact.path)
        except QuantizedBuildRefusedError as refused:
            if adapter and cfg.adapter_mode == "inputs":
                raise
            build_path = quantize_float_build(cfg, base, out, provider, options, work, self.name, artifact.path)
            logger.warning("%s: %s; built %s instead", self.name, refused.reason, build_path.split(":")[0])
        finish_genai_config(out, cfg.threads, cfg.search)
        _mark_for_olive(out, artifact.meta.get("olive_attributes") or {})
        adapter_file = None
        if adapter and cfg.adapter_mode != "merge":
            copy_tokenizer_files(Path(adapter), out)
            if cfg.adapter_mode == "inputs":
                adapter_file = out / "adapter.onnx_adapter"
                make_lora_inputs(out / str(cfg.extra_options.get("filename", "model.onnx")), adapter_file)
        shutil.rmtree(work, ignore_errors=True)
        smoke_options = {"precision": cfg.precision, "execution_provider": provider, **shown}

        smoke = smoke_check("genai", out, self.name, smoke_options, adapter_file)
        meta: dict[str, Any] = {
            # an HF step before (e.g. Olive's Gptq) names the model it came from: that stays the reference
            "source_model": artifact.meta.get("source_model") or {"path": artifact.path, "adapter_path": adapter},
            "precision": cfg.precision,
            "provider": normalize_provider(provider),
            "builder_options": shown,
            "build_path": build_path,
            "threads": cfg.threads,
            "smoke": smoke,
        }
        if cfg.quantized:
            meta["quant"] = {f: getattr(cfg, f) for f in _QUANT_FIELDS} | {"method": "model_builder"}
        if artifact.meta.get("olive_attributes"):  # an Olive analysis pass's (split assignments by module name: the
            meta["olive_attributes"] = artifact.meta["olive_attributes"]  # graph keeps them), as Olive carries them
        if adapter:
            meta["adapter_mode"] = cfg.adapter_mode
        if adapter_file is not None:
            meta["adapter_file"], meta["adapter_name"] = adapter_file.name, "default"
        return Artifact("genai", str(out), None, meta=meta)


def quantize_float_build(
    cfg: ModelBuilderConfig,
    base: str,
    out: Path,
    provider: str,
    options: dict[str, str],
    work: Path,
    pass_name: str,
    source: str,
) -> str:
    """The fallback for a family whose quantized build the builder refuses: fp32, then int4_weight's quantizer.

    Same block size, symmetry and compute type as the builder would use; the LM head stays float when the
    config says so. Returns the path taken, for the artifact's ``build_path``."""
    shutil.rmtree(out, ignore_errors=True)
    build_genai(base, out, "fp32", provider, options, work / "cache", pass_name, source)
    bits = 8 if cfg.precision == "int8" else 4
    quant = Int4WeightConfig(
        bits=bits, block_size=cfg.block_size, symmetric=cfg.symmetric,
        accuracy_level=cfg.accuracy_level if cfg.accuracy_level is not None else (4 if provider == "cpu" else 0),
        lm_head="float" if cfg.lm_head == "float" else "same",
    )  # fmt: skip
    decoder = out / json.loads((out / "genai_config.json").read_text())["model"]["decoder"]["filename"]
    quantized = quantize_weights(str(decoder), quant)
    for old in (decoder, decoder.with_name(decoder.name + ".data")):
        old.unlink(missing_ok=True)
    save_model(quantized, decoder)
    return f"model_builder fp32 + int4_weight (int{bits}, block {cfg.block_size}): the builder refused {cfg.precision}"


def _k_quant_sizes(base: Path) -> dict[str, int]:
    """The input sizes of the model's weight matrices (config.json): what k_quant splits into blocks."""
    config = config_json(base) or {}
    config = config.get("text_config", config)
    hidden, heads = config.get("hidden_size"), config.get("num_attention_heads")
    head_dim = config.get("head_dim") or (hidden // heads if isinstance(hidden, int) and heads else None)
    sizes = {"hidden_size": hidden, "intermediate_size": config.get("intermediate_size"),
             "num_attention_heads x head_dim": heads * head_dim if heads and head_dim else None}  # fmt: skip
    return {k: v for k, v in sizes.items() if isinstance(v, int) and v > 0}


def _k_quant_problem(base: Path, block_size: int) -> str | None:
    """Why k_quant cannot quantize this model in blocks of ``block_size`` (each input size a multiple of twice
    it), or None."""
    bad = {k: v for k, v in _k_quant_sizes(base).items() if v % (2 * block_size)}
    if not bad:
        return None
    named = ", ".join(f"{k} {v}" for k, v in bad.items())
    return f"k_quant needs every weight's input size to be a multiple of twice block_size {block_size}: {named}"


def _k_quant_fit(base: Path) -> int:
    """The largest of 128, 64, 32, 16 that k_quant takes for this model (16 when none: the builder then says)."""
    return next((b for b in (128, 64, 32) if _k_quant_problem(base, b) is None), 16)
