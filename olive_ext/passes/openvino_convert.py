"""openvino_convert and openvino_compress: Hugging Face models -> OpenVINO IR, and NNCF weight compression.

``openvino_convert`` loads the HF model in fp32 and converts it with ``openvino.convert_model`` (OpenVINO's PyTorch
frontend), encoders (feature extraction, classification) and causal LMs alike; a causal LM is converted without
its KV cache (see olive_ext/onnx/openvino_ir.py). The IR is checked against PyTorch on an input of another length
than the conversion's example before it counts. ``openvino_compress`` compresses an IR's weights with NNCF
(data-free int8 or int4). Both need the ``openvino`` extra (openvino, nncf).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from olive_ext.artifacts import Artifact
from olive_ext.errors import PassError
from olive_ext.models.hub import hub_model_folder
from olive_ext.passes.base import Pass, PassConfig, register_pass
from olive_ext.passes.context import RunContext

logger = logging.getLogger("olive_ext")

Task = Literal["auto", "text-generation", "text-classification", "feature-extraction"]


class OpenVINOConvertConfig(PassConfig):
    task: Task = Field("auto", description="auto reads the architecture (…ForCausalLM -> text-generation, "
                       "…ForSequenceClassification -> classification, else feature extraction)")  # fmt: skip
    tolerance: float = Field(1e-3, gt=0, description="fail the conversion when IR and PyTorch outputs differ by more")


def _architectures(path: str) -> list[str]:
    config = Path(path) / "config.json"
    return list((json.loads(config.read_text()).get("architectures") or []) if config.exists() else [])


def infer_ov_task(path: str, ctx: RunContext) -> str:
    """The recipe's task when it names one, else the architecture's."""
    archs = _architectures(path)
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return "text-generation"
    if ctx.input_model is not None and ctx.input_model.task in ("text-classification", "feature-extraction"):
        return ctx.input_model.task
    classifier = any(a.endswith("ForSequenceClassification") for a in archs)
    return "text-classification" if classifier else "feature-extraction"


@register_pass("openvino_convert")
class OpenVINOConvert(Pass[OpenVINOConvertConfig]):
    """Convert an HF model (encoder or causal LM, no adapter) to an OpenVINO IR folder (fp32)."""

    config_class = OpenVINOConvertConfig
    accepts = frozenset({"hf"})
    produces = "openvino"
    devices = frozenset({"cpu"})  # OpenVINO's GPU/NPU plugins are not targets olive-ext measures
    libraries = ("openvino", "torch", "transformers")

    @classmethod
    def check_input(cls, artifact: Artifact) -> str | None:
        if artifact.adapter_path:
            return "it has an adapter; add a merge_adapter step before openvino_convert"
        return None

    def run(self, artifact: Artifact, ctx: RunContext) -> Artifact:
        import torch
        from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

        # numpy and openvino at import: loaded when the pass runs, not by `validate`
        from olive_ext.onnx.openvino_ir import OVModel, convert_hf, copy_hf_companions

        cfg = self.config
        artifact = hub_model_folder(artifact)  # a hub id: its folder in the hub cache (config.json, tokenizer files)
        task = cfg.task if cfg.task != "auto" else infer_ov_task(artifact.path, ctx)
        causal = task == "text-generation"
        cls: Any = AutoModelForCausalLM if causal else (
            AutoModelForSequenceClassification if task == "text-classification" else AutoModel)  # fmt: skip
        model = cls.from_pretrained(artifact.path, dtype=torch.float32, trust_remote_code=ctx.trust_remote_code).eval()
        tokenizer = AutoTokenizer.from_pretrained(artifact.path, trust_remote_code=ctx.trust_remote_code)
        wanted = ("input_ids", "attention_mask", "token_type_ids")
        names: list[str] = ["input_ids", "attention_mask"] if causal else [
            n for n in wanted if n in tokenizer.model_input_names]  # fmt: skip
        out = ctx.output_dir / "model"
        convert_hf(model, out, causal, task, names)
        copy_hf_companions(Path(artifact.path), out)
        delta = _delta_against_torch(model, OVModel(str(out), threads=1), names, tokenizer.vocab_size)
        if delta > cfg.tolerance:
            raise PassError(self.name, f"the OpenVINO IR differs from PyTorch by {delta:.3g} (> tolerance "
                            f"{cfg.tolerance})", hint="raise passes.<step>.tolerance or report the model")  # fmt: skip
        meta = {
            "source_model": {"path": artifact.path, "adapter_path": None},
            "task": task, "causal": causal, "precision": "fp32", "build_path": "openvino_convert",
            "export_max_abs_delta": delta, "smoke": {"built_for": "cpu"},
        }  # fmt: skip
        return Artifact("openvino", str(out), None, meta=meta)


def _delta_against_torch(model: Any, ov_model: Any, names: list[str], vocab: int) -> float:
    """Max |output delta| of IR vs PyTorch on a 2 x 11 input (another shape than the conversion's example)."""
    import numpy as np
    import torch

    ids = torch.randint(0, max(2, min(vocab, 1000)), (2, 11), generator=torch.Generator().manual_seed(0))
    feats = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    feeds = {n: feats[n] for n in names}
    with torch.inference_mode():
        result = model(**feeds, **({"use_cache": False} if "ForCausalLM" in type(model).__name__ else {}))
    ref = (result.logits if hasattr(result, "logits") else result.last_hidden_state).numpy()
    got = ov_model.forward({k: v.numpy() for k, v in feeds.items()})
    return float(np.abs(ref - got).max())


class OpenVINOCompressConfig(PassConfig):
    precision: Literal["int8", "int8_sym", "int4", "int4_sym"] = Field(
        "int8", description="NNCF weight compression mode (asymmetric unless _sym)"
    )
    group_size: int = Field(64, description="int4: weights per quantization group (-1: per channel)")
    ratio: float = Field(1.0, gt=0, le=1, description="int4: share of layers in int4 (the rest int8)")


@register_pass("openvino_compress")
class OpenVINOCompress(Pass[OpenVINOCompressConfig]):
    """Compress an OpenVINO IR's weights with NNCF (data-free int8 / int4)."""

    config_class = OpenVINOCompressConfig
    accepts = frozenset({"openvino"})
    produces = "openvino"
    devices = frozenset({"cpu"})
    libraries = ("openvino", "nncf")

    def run(self, artifact: Artifact, ctx: RunContext) -> Artifact:
        from olive_ext.onnx.openvino_ir import compress_weights  # numpy at import: when the pass runs only

        cfg = self.config
        out = ctx.output_dir / "model"
        ir = compress_weights(Path(artifact.path), out, cfg.precision, cfg.group_size, cfg.ratio)
        meta = {**artifact.meta, "precision": ir["precision"], "compression": ir["compression"],
                "build_path": f"{artifact.meta.get('build_path', 'openvino')} + nncf {cfg.precision}"}  # fmt: skip
        return Artifact("openvino", str(out), None, meta=meta)
