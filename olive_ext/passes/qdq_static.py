"""qdq_static: static quantization in QDQ format, calibrated on the recipe's data, with NPU presets.

Presets set what each runtime wants: ``cpu`` (uint8 activations, per-channel int8 weights,
MatMul/Gemm only), ``qnn``
(Qualcomm HTP through onnxruntime's QNN config: uint8 or uint16 activations), ``openvino``
(uint8 activations, symmetric per-channel int8 weights) and ``vitisai`` (symmetric int8 /
uint8, the AMD NPU's layout). NPU presets fix dynamic input shapes first (NPUs compile
static graphs) and record which nodes the EP would leave to the CPU.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from olive_ext.artifacts import Artifact
from olive_ext.data import load_examples
from olive_ext.errors import UserInputError
from olive_ext.onnx.check import smoke_check
from olive_ext.onnx.folder import carried_meta, copy_companions, model_file, save_model
from olive_ext.onnx.runtime import onnxruntime
from olive_ext.passes.base import Pass, PassConfig, dataset_ref, register_pass, searchable
from olive_ext.passes.context import RunContext
from olive_ext.targets.base import Target
from olive_ext.targets.npu import check_feasibility, fix_shapes

logger = logging.getLogger("olive_ext")

Preset = Literal["cpu", "qnn", "openvino", "vitisai"]
QType = Literal["uint8", "int8", "uint16", "int16"]
PRESET_PROVIDERS = {"qnn": "QNNExecutionProvider", "openvino": "OpenVINOExecutionProvider",
                    "vitisai": "VitisAIExecutionProvider", "cpu": "CPUExecutionProvider"}  # fmt: skip
# preset -> (activation type, weight type, per channel, activation symmetric, weight symmetric)
_PRESETS: dict[str, tuple[str, str, bool, bool, bool]] = {
    "cpu": ("uint8", "int8", True, False, True),
    "qnn": ("uint8", "uint8", False, False, False),
    "openvino": ("uint8", "int8", True, False, True),
    "vitisai": ("uint8", "int8", False, True, True),
}


class QdqStaticConfig(PassConfig):
    preset: Preset = Field("cpu", description="cpu | qnn | openvino | vitisai; default: from the target's provider")
    activation_type: QType | None = searchable(None, description="activation type; unset: the preset's "
                                               "(qnn accepts uint16 for accuracy)")  # fmt: skip
    weight_type: QType | None = Field(None, description="weight type; unset: the preset's")
    per_channel: bool | None = searchable(None, description="per-channel weight scales; unset: the preset's")
    calibration: Literal["minmax", "entropy", "percentile"] = Field("minmax", description="calibration method")
    data: str | None = dataset_ref("dataset (in `data`) to calibrate on; unset: the only one defined", needed=True)
    samples: int = Field(32, ge=1, le=4096, description="calibration examples")
    static_shapes: bool | None = Field(None, description="fix dynamic dims first; unset: on for NPU presets")
    batch_size: int = Field(1, ge=1, description="batch size when shapes are fixed")
    sequence_length: int = Field(128, ge=1, description="sequence length when shapes are fixed (inputs are padded)")
    op_types: tuple[str, ...] | None = Field(
        None,
        description="op types to quantize; unset: MatMul/Gemm for cpu (8-bit activations of every op cost MiniLM "
        "0.92 -> 0.81 pooled cosine), every op for NPU presets (an unquantized op falls back to CPU)",
    )
    nodes_to_exclude: tuple[str, ...] = Field((), description="node names kept in float")

    @model_validator(mode="after")
    def _check(self) -> QdqStaticConfig:
        act = self.activation_type or _PRESETS[self.preset][0]
        if act in ("uint16", "int16") and self.preset not in ("qnn", "cpu"):
            raise ValueError(f"activation_type {act!r} with preset {self.preset!r}: 16-bit activations are QNN's")
        if self.preset == "qnn" and act in ("int8", "int16"):
            raise ValueError(f"activation_type {act!r} with preset 'qnn': QNN HTP takes unsigned activations")
        return self

    @property
    def quantized_ops(self) -> list[str] | None:
        if self.op_types is not None:
            return list(self.op_types) or None
        return ["MatMul", "Gemm"] if self.preset == "cpu" else None

    @property
    def fixed_shapes(self) -> bool:
        return self.static_shapes if self.static_shapes is not None else self.preset != "cpu"


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt")


@register_pass("qdq_static")
class QdqStatic(Pass[QdqStaticConfig]):
    """Static QDQ quantization calibrated on recipe data, with QNN / OpenVINO / VitisAI presets."""

    config_class = QdqStaticConfig
    accepts = frozenset({"onnx"})
    produces = "onnx"
    libraries = ("onnxruntime", "onnx", "transformers")
    olive_types = ("OnnxStaticQuantization",)
    olive_params: ClassVar[dict[str, str]] = {"data_config": "data", "calibrate_method": "calibration",
                                              "max_samples": "samples"}  # fmt: skip
    # Olive's default (per tensor), not the preset's: the same file builds the model Olive builds
    olive_type_params: ClassVar[dict[str, dict[str, Any]]] = {"OnnxStaticQuantization": {"per_channel": False}}

    @classmethod
    def check_input(cls, artifact: Artifact) -> str | None:
        """Calibration rows are text, tokenized with the tokenizer beside the graph: without one, transformers
        failed mid-run on a backend it could not build."""
        folder = model_file(artifact).parent
        if any((folder / name).exists() for name in TOKENIZER_FILES):
            return None
        return (f"its calibration data is text, and no tokenizer is beside the model in {folder} (none of "
                f"{', '.join(TOKENIZER_FILES)}); put the tokenizer files of the model it was exported from next to "
                "it (AutoTokenizer.from_pretrained(SOURCE).save_pretrained(FOLDER)), or, if its inputs are not text, "
                "quantize it with --precision int8 without --use_qdq_encoding (dynamic, no calibration)")  # fmt: skip

    @classmethod
    def from_olive(cls, params: dict[str, Any]) -> dict[str, Any]:
        out = super().from_olive(params)
        for key in ("activation_type", "weight_type"):
            if isinstance(out.get(key), str) and out[key].startswith("Q"):
                out[key] = out[key][1:].lower()  # QUInt8 -> uint8
        if isinstance(out.get("calibration"), str):
            out["calibration"] = out["calibration"].lower()
        for ignored in ("quant_format", "quant_mode", "quant_preprocess"):
            out.pop(ignored, None)
        return out

    @classmethod
    def target_defaults(cls, target: Target) -> dict[str, Any]:
        preset = {v: k for k, v in PRESET_PROVIDERS.items()}.get(target.provider)
        return {"preset": preset} if preset else {}

    def run(self, artifact: Artifact, ctx: RunContext) -> Artifact:
        import onnx

        cfg = self.config
        spec = ctx.dataset(cfg.data, f"pass '{self.name}' (qdq_static calibration)")
        out_dir = ctx.output_dir / "model"
        target = copy_companions(artifact, out_dir)
        staged = ctx.output_dir / "_float" / "model.onnx"
        model = onnx.load(str(model_file(artifact)))
        shapes = fix_shapes(model, cfg.batch_size, cfg.sequence_length) if cfg.fixed_shapes else None
        save_model(model, staged)
        provider = PRESET_PROVIDERS[cfg.preset]
        before = check_feasibility(staged, provider) if cfg.preset != "cpu" else None
        if before is not None:
            logger.info("%s feasibility before quantization: %s", provider, before.summary())
        reader = CalibrationReader(model_file(artifact).parent, staged, spec, cfg)
        quantize_qdq(staged, target, reader, cfg)
        shutil.rmtree(staged.parent, ignore_errors=True)
        after = check_feasibility(target, provider) if cfg.preset != "cpu" else None
        if after is not None and after.fallback_ops:
            logger.warning("%s: %s", provider, after.summary())
        smoke = smoke_check("onnx", out_dir, self.name, cfg.model_dump(mode="json"))
        act, weight, per_channel, _, _ = self.resolved()
        quant = {"preset": cfg.preset, "activation_type": act, "weight_type": weight, "per_channel": per_channel,
                 "op_types": cfg.quantized_ops, "calibration": cfg.calibration, "samples": reader.count,
                 "method": "qdq_static"}  # fmt: skip
        meta = {**carried_meta(artifact), "precision": "int8" if "8" in act else "int16", "quant": quant}
        meta.update(provider=provider, static_shapes=shapes, smoke=smoke)
        if after is not None:
            meta["npu_feasibility"] = after.to_json()
        return Artifact("onnx", str(out_dir), None, meta=meta)

    def resolved(self) -> tuple[str, str, bool, bool, bool]:
        cfg = self.config
        act, weight, per_channel, act_sym, weight_sym = _PRESETS[cfg.preset]
        return (
            cfg.activation_type or act,
            cfg.weight_type or weight,
            per_channel if cfg.per_channel is None else cfg.per_channel,
            act_sym,
            weight_sym,
        )


class CalibrationReader:
    """Feeds tokenized dataset examples to onnxruntime's calibrator (onnxruntime's CalibrationDataReader protocol)."""

    def __init__(self, folder: Path, model_path: Path, spec: Any, cfg: QdqStaticConfig) -> None:
        import numpy as np
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        # what the encoder reads (a classifier's text without its label, a sentence pair as a pair)
        texts = [e.encoder_input for e in load_examples(spec, tokenizer, pairs=True)][: cfg.samples]
        if not texts:
            raise UserInputError(f"qdq_static: dataset {cfg.data or '(default)'} gave no calibration examples")
        session = onnxruntime().InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        padding: Any = "max_length" if cfg.fixed_shapes else True
        self.feeds = []
        for start in range(0, len(texts), cfg.batch_size):
            batch = texts[start : start + cfg.batch_size]
            if cfg.fixed_shapes and len(batch) < cfg.batch_size:
                break
            enc = tokenizer(
                batch, padding=padding, truncation=True, max_length=cfg.sequence_length, return_tensors="np"
            )
            self.feeds.append({n: enc[n].astype(np.int64) for n in names if n in enc})
        self.count = len(self.feeds) * cfg.batch_size
        self._iter = iter(self.feeds)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = iter(self.feeds)


def quantize_qdq(source: Path, target: Path, reader: CalibrationReader, cfg: QdqStaticConfig) -> None:
    """quantize_static in QDQ format (through QNN's own config for the qnn preset)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize, quantize_static

    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8, "uint16": QuantType.QUInt16, "int16": QuantType.QInt16}
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[cfg.calibration]  # fmt: skip
    act, weight, per_channel, act_sym, weight_sym = QdqStatic(cfg).resolved()
    if cfg.preset == "qnn":
        from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

        qnn_config = get_qnn_qdq_config(
            str(source), reader, calibrate_method=method, activation_type=types[act], weight_type=types[weight],
            per_channel=per_channel, nodes_to_exclude=list(cfg.nodes_to_exclude) or None,
            op_types_to_quantize=cfg.quantized_ops,
        )  # fmt: skip
        quantize(str(source), str(target), qnn_config)
        return
    quantize_static(
        str(source), str(target), reader, quant_format=QuantFormat.QDQ, activation_type=types[act],
        weight_type=types[weight], per_channel=per_channel, calibrate_method=method,
        nodes_to_exclude=list(cfg.nodes_to_exclude) or None, op_types_to_quantize=cfg.quantized_ops,
        extra_options={"ActivationSymmetric": act_sym, "WeightSymmetric": weight_sym},
    )  # fmt: skip
