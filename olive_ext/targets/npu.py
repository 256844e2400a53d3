"""NPU feasibility: does a model have the static shapes and the operators an NPU EP runs?

NPU execution providers compile a static graph; a node they do not support runs on the
CPU EP instead, with a copy across the boundary each time. ``check_feasibility`` reads
the graph (no weights) and says which inputs are still dynamic and which nodes would
fall back to CPU. The operator lists are those the EPs document for their NPU backends
(QNN HTP, OpenVINO NPU, VitisAI) for the quantized (QDQ) encoder models olive-ext builds;
they are a static approximation: the EP decides at session creation.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_COMMON = {
    "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp", "Log", "Neg", "Abs", "Reciprocal", "Erf", "Tanh", "Sigmoid",
    "Relu", "Gelu", "Softmax", "LogSoftmax", "MatMul", "Gemm", "Conv", "Transpose", "Reshape", "Squeeze",
    "Unsqueeze", "Concat", "Split", "Slice", "Gather", "Cast", "Where", "Equal", "Less", "Greater", "Not", "And",
    "Or", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "LayerNormalization", "QuantizeLinear",
    "DequantizeLinear", "Expand", "Tile", "Flatten", "Clip", "Min", "Max", "Pad", "Resize", "ArgMax", "TopK",
    "AveragePool", "MaxPool", "GlobalAveragePool", "BatchNormalization", "InstanceNormalization", "Identity",
}  # fmt: skip
SUPPORTED_OPS: dict[str, set[str]] = {
    "QNNExecutionProvider": _COMMON | {"HardSigmoid", "HardSwish", "LeakyRelu", "PRelu", "Elu", "Sin", "Cos",
                                       "GatherElements", "GatherND", "ScatterND", "DepthToSpace", "SpaceToDepth",
                                       "LpNormalization", "Einsum", "GreaterOrEqual", "LessOrEqual", "Floor", "Ceil",
                                       "Round", "Sign", "Shape", "ConvTranspose", "GridSample", "Sum", "Mean"},
    "OpenVINOExecutionProvider": _COMMON | {"Shape", "ConstantOfShape", "Range", "Floor", "Ceil", "Round", "Sin",
                                            "Cos", "HardSigmoid", "HardSwish", "LeakyRelu", "PRelu", "Elu",
                                            "GatherElements", "GatherND", "ScatterND", "Einsum", "GreaterOrEqual",
                                            "LessOrEqual", "ConvTranspose", "Sum", "Mean", "SkipLayerNormalization",
                                            "FastGelu", "BiasGelu", "MatMulNBits", "SimplifiedLayerNormalization"},
    "VitisAIExecutionProvider": _COMMON | {"HardSigmoid", "HardSwish", "LeakyRelu", "PRelu", "DepthToSpace",
                                           "SpaceToDepth", "ConvTranspose", "Sum", "Mean"},
}  # fmt: skip


@dataclass
class FeasibilityReport:
    """What an NPU EP would do with a model: dynamic inputs, nodes falling back to CPU."""

    provider: str
    total_nodes: int
    dynamic_inputs: dict[str, list[Any]] = field(default_factory=dict)
    fallback_ops: dict[str, int] = field(default_factory=dict)

    @property
    def fallback_nodes(self) -> int:
        return sum(self.fallback_ops.values())

    @property
    def static(self) -> bool:
        return not self.dynamic_inputs

    @property
    def feasible(self) -> bool:
        """Static shapes and every node on the NPU."""
        return self.static and not self.fallback_ops

    def summary(self) -> str:
        parts = []
        if self.dynamic_inputs:
            dims = "; ".join(f"{k} {v}" for k, v in self.dynamic_inputs.items())
            parts.append(f"dynamic inputs the NPU cannot compile: {dims} (fix them with static_shapes)")
        if self.fallback_ops:
            ops = ", ".join(f"{op} x{n}" for op, n in sorted(self.fallback_ops.items()))
            parts.append(f"{self.fallback_nodes} of {self.total_nodes} nodes would fall back to CPU ({ops})")
        return "; ".join(parts) or f"all {self.total_nodes} nodes supported, static shapes"

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "total_nodes": self.total_nodes,
            "dynamic_inputs": self.dynamic_inputs,
            "fallback_ops": self.fallback_ops,
            "fallback_nodes": self.fallback_nodes,
            "feasible": self.feasible,
            "summary": self.summary(),
        }


def check_feasibility(model_path: str | Path, provider: str) -> FeasibilityReport:
    """Read the graph at ``model_path`` (weights not loaded) against ``provider``'s operator list."""
    import onnx

    if provider not in SUPPORTED_OPS:
        raise ValueError(f"no NPU operator list for {provider}; known: {', '.join(SUPPORTED_OPS)}")
    model = onnx.load(str(model_path), load_external_data=False)
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    dynamic: dict[str, list[Any]] = {}
    for inp in graph.input:
        if inp.name in initializers:
            continue
        shape = inp.type.tensor_type.shape.dim
        dims = [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in shape]
        if any(isinstance(d, str) for d in dims):
            dynamic[inp.name] = dims
    supported = SUPPORTED_OPS[provider]
    fallback = Counter(n.op_type for n in graph.node if n.op_type not in supported and n.op_type != "Constant")
    return FeasibilityReport(provider, len(graph.node), dynamic, dict(fallback))


def fix_shapes(model: Any, batch_size: int, sequence_length: int) -> dict[str, list[int]]:
    """Make every dynamic input dim static in place (dim 0 -> batch, others -> sequence); return the new shapes."""
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_dim_param_fixed

    initializers = {i.name for i in model.graph.initializer}
    params: dict[str, int] = {}
    for inp in model.graph.input:
        if inp.name in initializers:
            continue
        for i, d in enumerate(inp.type.tensor_type.shape.dim):
            if d.dim_param:
                params.setdefault(d.dim_param, batch_size if i == 0 else sequence_length)
            elif not d.HasField("dim_value"):
                d.dim_value = batch_size if i == 0 else sequence_length
    for name, value in params.items():
        make_dim_param_fixed(model.graph, name, value)
    with contextlib.suppress(Exception):  # outputs keep symbolic dims; the EP infers them from the inputs
        fix_output_shapes(model)
    return {
        inp.name: [d.dim_value for d in inp.type.tensor_type.shape.dim]
        for inp in model.graph.input
        if inp.name not in initializers
    }
