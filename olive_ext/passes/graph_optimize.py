"""graph_optimize: onnxruntime's transformer optimizer for encoder models (BERT-style fusions, fp16).

Fuses LayerNorm/SkipLayerNorm/Gelu/attention patterns into onnxruntime contrib ops and
optionally converts the weights to fp16 for GPUs. The fusion counts go into the
artifact's meta, so a recipe can see what the optimizer found.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from olive_ext.artifacts import Artifact
from olive_ext.onnx.check import smoke_check
from olive_ext.onnx.folder import carried_meta, copy_companions, model_file, save_model
from olive_ext.passes.base import Pass, PassConfig, register_pass, searchable
from olive_ext.passes.context import RunContext
from olive_ext.quiet import quiet_loggers
from olive_ext.targets.base import Target

logger = logging.getLogger("olive_ext")

ModelType = Literal["auto", "bert", "bart", "gpt2", "t5", "vit", "clip"]
# HF model_type -> the optimizer's model type (those it optimizes like BERT).
_BERT_LIKE = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "mpnet", "camembert", "albert", "deberta"}


class GraphOptimizeConfig(PassConfig):
    model_type: ModelType = Field("auto", description="optimizer model type; auto: from config.json (BERT-like: bert)")
    opt_level: Literal[0, 1, 2, 99] | None = Field(
        None, description="onnxruntime graph optimization level applied too; unset: fusions only (portable)"
    )
    float16: bool = searchable(False, description="convert weights and compute to fp16 (GPUs)")
    use_gpu: bool = Field(False, description="fuse for GPU kernels (set by a gpu target)")
    num_heads: int = Field(0, ge=0, description="attention heads; 0 detects them from the graph")
    hidden_size: int = Field(0, ge=0, description="hidden size; 0 detects it from the graph")

    @model_validator(mode="after")
    def _fp16_needs_gpu(self) -> GraphOptimizeConfig:
        if self.float16 and not self.use_gpu:
            raise ValueError("float16=true needs use_gpu=true (fp16 encoders are slow or unsupported on the CPU EP)")
        return self


@register_pass("graph_optimize")
class GraphOptimize(Pass[GraphOptimizeConfig]):
    """Fuse transformer subgraphs of an encoder ONNX model (onnxruntime.transformers.optimizer)."""

    config_class = GraphOptimizeConfig
    accepts = frozenset({"onnx"})
    produces = "onnx"
    libraries = ("onnxruntime", "onnx")
    olive_types = ("OrtTransformersOptimization",)
    olive_params: ClassVar[dict[str, str]] = {}

    @classmethod
    def target_defaults(cls, target: Target) -> dict[str, object]:
        return {"use_gpu": True} if target.device == "gpu" else {}

    def run(self, artifact: Artifact, ctx: RunContext) -> Artifact:
        from onnxruntime.transformers.optimizer import optimize_model

        cfg = self.config
        source = model_file(artifact)
        model_type = cfg.model_type if cfg.model_type != "auto" else infer_model_type(source.parent)
        out_dir = ctx.output_dir / "model"
        target = copy_companions(artifact, out_dir)
        fusions_failed = None
        with quiet_loggers("onnxruntime.transformers", level=logging.ERROR):
            try:
                optimized = optimize_model(
                    str(source),
                    model_type=model_type,
                    num_heads=cfg.num_heads,
                    hidden_size=cfg.hidden_size,
                    opt_level=cfg.opt_level,
                    use_gpu=cfg.use_gpu,
                    only_onnxruntime=False,
                )
            except (IndexError, KeyError, AttributeError, AssertionError, ValueError) as e:
                if cfg.model_type != "auto" or not (hf := hf_model_type(source.parent)) or hf in _KNOWN:
                    raise
                # an architecture onnxruntime's BERT fusions were not written for (ModernBERT's bias-free LayerNorm:
                # IndexError in the SkipLayerNorm fusion) failed every candidate after it: onnxruntime's own graph
                # optimizations alone, said in the artifact's meta and the log
                fusions_failed = f"onnxruntime's {model_type} fusions failed on {hf} ({type(e).__name__}: {e})"
                logger.info("%s: onnxruntime's own graph optimizations only", fusions_failed)
                optimized = optimize_model(str(source), model_type=model_type, opt_level=cfg.opt_level or 1,
                                           use_gpu=cfg.use_gpu, only_onnxruntime=True)  # fmt: skip
            if cfg.float16:
                optimized.convert_float_to_float16(keep_io_types=True)
        fusions = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
        save_model(optimized.model, target)
        options = cfg.model_dump(mode="json") | {"model_type": model_type}
        smoke = smoke_check("onnx", out_dir, self.name, options, built_for="gpu" if cfg.float16 else "cpu")
        meta = {**carried_meta(artifact), "fusions": fusions, "smoke": smoke}
        if fusions_failed:
            meta["fusions_skipped"] = fusions_failed
        if cfg.float16:
            meta["precision"] = "fp16"
        return Artifact("onnx", str(out_dir), None, meta=meta)


_OWN_TYPES = {"bart", "gpt2", "t5", "vit", "clip"}  # the optimizer's other model types, named as HF names them
_KNOWN = _BERT_LIKE | _OWN_TYPES  # model types the optimizer's fusions were written for


def hf_model_type(folder: Path) -> str:
    """config.json's model_type beside the model, or ""."""
    config = folder / "config.json"
    return str(json.loads(config.read_text()).get("model_type", "")) if config.exists() else ""


def infer_model_type(folder: Path) -> str:
    """The optimizer's model type from config.json beside the model (BERT-like models -> bert)."""
    hf_type = hf_model_type(folder)
    if hf_type in _BERT_LIKE or not hf_type:
        return "bert"
    return hf_type if hf_type in _OWN_TYPES else "bert"
