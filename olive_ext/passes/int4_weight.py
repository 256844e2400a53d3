"""int4_weight: weight-only block quantization of any ONNX model's MatMuls (MatMulNBits or QDQ).

Uses onnxruntime's MatMulNBitsQuantizer with RTN, HQQ or k-quant rounding. Works on a
plain ``onnx`` folder and on a ``genai`` folder (its decoder is quantized, the genai
config and tokenizer are carried over), so an fp32 builder output can be quantized with
an algorithm the builder lacks (HQQ).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from olive_ext.artifacts import Artifact
from olive_ext.errors import OliveExtError
from olive_ext.onnx.check import smoke_check
from olive_ext.onnx.folder import carried_meta, copy_companions, model_file, save_model
from olive_ext.passes.base import Pass, register_pass, searchable
from olive_ext.passes.context import RunContext
from olive_ext.passes.weight_quant import WeightQuantConfig
from olive_ext.quiet import QUANTIZER_LOGGERS, quiet_loggers

logger = logging.getLogger("olive_ext")


class Int4WeightConfig(WeightQuantConfig):
    algorithm: Literal["default", "rtn", "hqq", "k_quant"] = searchable(
        "default",
        description="default (round to nearest, block min/max scales), rtn (neural-compressor RTN), "
        "hqq (half-quadratic, slower), k_quant (llama.cpp-style)",
    )
    bits: Literal[4, 8] = Field(4, description="weight bits (8 with default/rtn/k_quant only)")
    lm_head: Literal["same", "float"] = searchable(
        "same", description="quantize the LM head like the body, or keep it in float"
    )
    quant_format: Literal["qoperator", "qdq"] = Field(
        "qoperator", description="qoperator writes MatMulNBits; qdq writes DequantizeLinear + MatMul (NPU friendly)"
    )
    nodes_to_exclude: tuple[str, ...] = Field((), description="node names kept in float")

    @model_validator(mode="after")
    def _check(self) -> Int4WeightConfig:
        if self.bits == 8 and self.algorithm == "hqq":
            raise ValueError("bits=8 with algorithm 'hqq': onnxruntime's HQQ quantizer writes 4-bit weights only")
        if self.quant_format == "qdq" and self.algorithm != "default":
            raise ValueError(f"quant_format 'qdq' with algorithm {self.algorithm!r}: only 'default' writes QDQ")
        if self.quant_format == "qdq" and self.bits == 8:  # measured: onnxruntime 1.32 left every MatMul in float
            raise ValueError("bits=8 with quant_format 'qdq': onnxruntime's weight-only quantizer writes QDQ for "
                             "4-bit weights only (8-bit weights: quant_format 'qoperator', MatMulNBits)")  # fmt: skip
        return self


@register_pass("int4_weight")
class Int4Weight(Pass[Int4WeightConfig]):
    """Quantize MatMul weights to 4 (or 8) bits in blocks (RTN, HQQ or k-quant) on an ONNX or genai model."""

    config_class = Int4WeightConfig
    accepts = frozenset({"onnx", "genai"})
    produces = "onnx"
    keeps_kind = True
    libraries = ("onnxruntime", "onnx")
    olive_types = ("OnnxBlockWiseRtnQuantization", "OnnxHqqQuantization", "OnnxKQuantQuantization",
                   "OnnxMatMul4Quantizer")  # fmt: skip
    olive_params: ClassVar[dict[str, str]] = {"is_symmetric": "symmetric"}
    olive_type_params: ClassVar[dict[str, dict[str, Any]]] = {
        # Olive's ONNX quantizers' defaults (RTN, HQQ, MatMul4: block 128; k-quant: 32, as ours), said explicitly
        "OnnxBlockWiseRtnQuantization": {"algorithm": "rtn", "block_size": 128},
        "OnnxHqqQuantization": {"algorithm": "hqq", "block_size": 128},
        "OnnxKQuantQuantization": {"algorithm": "k_quant", "block_size": 32},
        "OnnxMatMul4Quantizer": {"block_size": 128},
    }

    @classmethod
    def check_input(cls, artifact: Artifact) -> str | None:
        """A graph without a MatMul on a constant weight: MatMulNBits has nothing to quantize (it was written
        unchanged and recorded as int4 before)."""
        import onnx

        try:
            graph = onnx.load(str(model_file(artifact)), load_external_data=False).graph
        except Exception:  # unreadable here: the run's own load says why
            return None
        return no_weight_matmuls(graph)

    def run(self, artifact: Artifact, ctx: RunContext) -> Artifact:
        cfg = self.config
        out_dir = ctx.output_dir / "model"
        target = copy_companions(artifact, out_dir)
        quantized = quantize_weights(str(model_file(artifact)), cfg)
        save_model(quantized, target)
        quant = cfg.model_dump(mode="json") | {"method": "int4_weight"}

        adapter = out_dir / artifact.meta["adapter_file"] if artifact.meta.get("adapter_file") else None
        smoke = smoke_check(artifact.kind, out_dir, self.name, cfg.model_dump(mode="json"), adapter)
        meta = {**carried_meta(artifact), "precision": f"int{cfg.bits}", "quant": quant, "smoke": smoke}
        return Artifact(artifact.kind, str(out_dir), None, meta=meta)  # a genai folder stays a genai folder


def odd_blocks_check(graph: Any, nodes: list[str], block_size: int) -> None:
    """Refuse k_quant 4-bit where a weight's input size splits into an odd number of blocks, before any work.

    onnxruntime's k-quant packs each row's 4-bit zero points two to a byte and then reshapes them per output column;
    with an odd number of blocks a row's last zero point shares a byte with the next row's, and the reshape fails
    ("cannot reshape array of size 576": MiniLM's 384-wide layers at block 128, 3 blocks). Olive's own k-quant pads
    each row; this one cannot be told to, so a block size that gives every weight an even count is named instead.
    """
    sizes = {i.name: tuple(i.dims) for i in graph.initializer}
    by_node = {n.name: n.input[1] for n in graph.node if n.name in nodes}
    inputs = sorted({sizes[w][-2] for w in by_node.values() if len(sizes.get(w, ())) >= 2})
    def odd(k: int, block: int) -> bool:
        return -(-k // block) % 2 == 1
    bad = [k for k in inputs if odd(k, block_size)]
    if not bad:
        return
    fits = [b for b in (256, 128, 64, 32, 16) if not any(odd(k, b) for k in inputs)]
    fix = f"use block_size {fits[0]}" if fits else "use algorithm rtn or default, which take any block count"
    raise OliveExtError(
        f"k_quant at block_size {block_size} cannot quantize weights of input size {', '.join(map(str, bad))}: they "
        f"split into an odd number of blocks, and onnxruntime's k-quant packs zero points in pairs within a row",
        hint=f"{fix} (Olive's OnnxKQuantQuantization default is 32)")


def weight_matmuls(graph: Any, exclude: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Names of the graph's MatMul nodes whose weight (second input) is a constant: what MatMulNBits quantizes."""
    weights = {i.name for i in graph.initializer}
    weights |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1:2] and n.input[1] in weights
            and n.name not in exclude]  # fmt: skip


def no_weight_matmuls(graph: Any) -> str | None:
    """Why int4/int8 weight-only quantization cannot change this graph (no MatMul on a constant weight), or None."""
    if weight_matmuls(graph):
        return None
    gemms = sum(n.op_type == "Gemm" for n in graph.node)
    what = f"{gemms} Gemm node{'s' * (gemms != 1)} (onnxruntime's MatMulNBits quantizer takes MatMul only)" if gemms \
        else "no MatMul or Gemm node"
    return (f"it has no MatMul with a constant weight for weight-only MatMulNBits quantization, only {what}; "
            "use dynamic int8, which quantizes Gemm and MatMul: --precision int8 with no --algorithm (an --algorithm "
            "asks for this weight-only quantization), or export the model with its linear "
            "layers as MatMul (e.g. 3-D inputs: batch, sequence, features)")  # fmt: skip


def quantize_weights(model_path: str, cfg: Int4WeightConfig) -> Any:
    """Run MatMulNBitsQuantizer on the model at ``model_path``; return the quantized ModelProto."""
    import onnx
    from onnxruntime.quantization import matmul_nbits_quantizer as mq
    from onnxruntime.quantization.quant_utils import QuantFormat

    fmt = QuantFormat.QDQ if cfg.quant_format == "qdq" else QuantFormat.QOperator
    model = onnx.load(model_path)
    exclude = list(cfg.nodes_to_exclude)
    if cfg.lm_head == "float":
        exclude += [n.name for n in model.graph.node if n.op_type == "MatMul" and "lm_head" in n.name]
    eligible = weight_matmuls(model.graph, exclude)
    if not eligible:  # an unchanged model was written and recorded as "int4"/"int8" before
        why = no_weight_matmuls(model.graph) or f"every MatMul weight is excluded ({', '.join(exclude)})"
        raise OliveExtError(f"weight-only quantization would change nothing: {why}",
                            hint="keep the LM head or some nodes quantized, or quantize another model")  # fmt: skip
    if cfg.algorithm == "k_quant" and cfg.bits == 4:
        odd_blocks_check(model.graph, eligible, cfg.block_size)
    algo: Any
    if cfg.algorithm == "hqq":
        algo = mq.HQQWeightOnlyQuantConfig(block_size=cfg.block_size, bits=4)
    elif cfg.algorithm == "k_quant":
        algo = mq.KQuantWeightOnlyQuantConfig()
    elif cfg.algorithm == "rtn":
        algo = mq.RTNWeightOnlyQuantConfig()
    else:
        algo = mq.DefaultWeightOnlyQuantConfig(
            block_size=cfg.block_size,
            is_symmetric=cfg.symmetric,
            accuracy_level=cfg.accuracy_level,
            quant_format=fmt,
            bits=cfg.bits,
        )
    with quiet_loggers(*QUANTIZER_LOGGERS):
        quantizer = mq.MatMulNBitsQuantizer(
            model,
            bits=cfg.bits,
            block_size=cfg.block_size,
            is_symmetric=cfg.symmetric,
            accuracy_level=cfg.accuracy_level,
            nodes_to_exclude=exclude,
            quant_format=fmt,
            algo_config=algo,
        )
        quantizer.process()
    out = quantizer.model.model
    written = sum(n.op_type in ("MatMulNBits", "DequantizeLinear") for n in out.graph.node)
    if eligible and not written:  # a silent no-op was recorded as "int4"/"int8" before
        raise OliveExtError(f"onnxruntime's weight-only quantizer quantized none of the {len(eligible)} MatMul weights "
                        f"(bits={cfg.bits}, algorithm {cfg.algorithm!r}, quant_format {cfg.quant_format!r})",
                        hint="try another algorithm or block size; an already quantized model has no float MatMul "
                        "weights left")  # fmt: skip
    return out
