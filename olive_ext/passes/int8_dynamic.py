"""int8_dynamic: onnxruntime's dynamic quantization (int8 weights, activations quantized at run time).

No calibration data. Works on encoder ``onnx`` folders and on ``genai`` folders (the
decoder's MatMuls become DynamicQuantizeMatMul / MatMulInteger), keeping the kind.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from olive_ext.artifacts import Artifact
from olive_ext.errors import OliveExtError
from olive_ext.onnx.check import smoke_check
from olive_ext.onnx.folder import carried_meta, copy_companions, external_data_files, model_file
from olive_ext.passes.base import Pass, PassConfig, register_pass, searchable
from olive_ext.passes.context import RunContext

_OLIVE_QTYPES = {"QInt8": "int8", "QUInt8": "uint8"}


class Int8DynamicConfig(PassConfig):
    weight_type: Literal["int8", "uint8"] = searchable("int8", description="weight type (int8 suits x86 and ARM CPUs)")
    per_channel: bool = searchable(
        True, description="one scale per output channel (MiniLM: pooled cosine 0.99 vs 0.96 per tensor)"
    )
    reduce_range: bool = Field(False, description="7-bit weights, for x86 CPUs without VNNI (avoids saturation)")
    op_types: tuple[str, ...] = Field((), description="op types to quantize; empty: every type onnxruntime supports")
    nodes_to_exclude: tuple[str, ...] = Field((), description="node names kept in float")
    lm_head: Literal["same", "float"] = Field("same", description="quantize the LM head like the body, or keep it "
                                              "in float (its MatMul, named lm_head)")  # fmt: skip


@register_pass("int8_dynamic")
class Int8Dynamic(Pass[Int8DynamicConfig]):
    """Dynamic int8 quantization (onnxruntime.quantization.quantize_dynamic) of an ONNX or genai model."""

    config_class = Int8DynamicConfig
    accepts = frozenset({"onnx", "genai"})
    produces = "onnx"
    keeps_kind = True
    libraries = ("onnxruntime", "onnx")
    olive_types = ("OnnxDynamicQuantization",)
    olive_params: ClassVar[dict[str, str]] = {"op_types_to_quantize": "op_types"}
    # Olive's default (per tensor), not ours: an Olive config that left it out was built per channel, a model other
    # than the one Olive builds from the same file
    olive_type_params: ClassVar[dict[str, dict[str, Any]]] = {"OnnxDynamicQuantization": {"per_channel": False}}

    @classmethod
    def from_olive(cls, params: dict[str, Any]) -> dict[str, Any]:
        out = super().from_olive(params)
        weight_type = out.get("weight_type")
        if isinstance(weight_type, str) and weight_type in _OLIVE_QTYPES:  # a list or mapping: validation names it
            out["weight_type"] = _OLIVE_QTYPES[out["weight_type"]]
        for dropped in ("quant_mode", "quant_format", "activation_type", "quant_preprocess"):
            if out.get(dropped) in (None, "dynamic", "QOperator", "QUInt8", False):
                out.pop(dropped, None)
        return out

    def run(self, artifact: Artifact, ctx: RunContext) -> Artifact:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        cfg = self.config
        source = model_file(artifact)
        out_dir = ctx.output_dir / "model"
        target = copy_companions(artifact, out_dir)
        quantize_dynamic(
            str(source),
            str(target),
            op_types_to_quantize=list(cfg.op_types) or None,
            per_channel=cfg.per_channel,
            reduce_range=cfg.reduce_range,
            weight_type=QuantType.QInt8 if cfg.weight_type == "int8" else QuantType.QUInt8,
            nodes_to_exclude=[*cfg.nodes_to_exclude, *(_lm_head_nodes(source) if cfg.lm_head == "float" else [])]
            or None,
            use_external_data_format=bool(external_data_files(source)),
        )
        check_changed(target)
        adapter = out_dir / artifact.meta["adapter_file"] if artifact.meta.get("adapter_file") else None
        smoke = smoke_check(artifact.kind, out_dir, self.name, cfg.model_dump(mode="json"), adapter)
        quant = cfg.model_dump(mode="json") | {"method": "int8_dynamic"}
        meta = {**carried_meta(artifact), "precision": "int8", "quant": quant, "smoke": smoke}
        return Artifact(artifact.kind, str(out_dir), None, meta=meta)


def _lm_head_nodes(model: Any) -> list[str]:
    """The names of the LM head's MatMul/Gemm nodes (the graph read without its weights)."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm") and "lm_head" in n.name]


_DYNAMIC_OPS = frozenset({"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul", "ConvInteger",
                          "DequantizeLinear", "QAttention", "DynamicQuantizeLSTM"})  # fmt: skip


def check_changed(model: Any) -> None:
    """Raise when onnxruntime's dynamic quantizer quantized no node (the float model was recorded as int8)."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    if not any(n.op_type in _DYNAMIC_OPS for n in graph.node):
        ops = ", ".join(sorted({n.op_type for n in graph.node})) or "none"
        raise OliveExtError(f"dynamic int8 quantization changed nothing: the graph has no node onnxruntime "
                            f"quantizes dynamically (ops: {ops})",
                            hint="int8 quantizes MatMul, Gemm, Conv, Attention and LSTM nodes; check the op_types "
                            "and nodes_to_exclude options, or keep this model in float")  # fmt: skip
