"""Hardware profiles: for cpu, gpu and npu, the execution providers, the precisions that run well
there, and the candidate pass chains auto-opt tries.

``candidate_chains(task, precision, provider)`` gives a curated list of concrete pipelines
(lists of :class:`ChainStep`), each with single values: the best small set to try. auto-opt
writes them into its recipe as alternative pipelines.

Building for a provider that is not installed here is allowed (a cross-build: the model
is written and smoke-loaded on the CPU EP); measuring on it is not, and results say "not
measured here". ``is_available()`` asks onnxruntime which providers this machine has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from olive_ext.errors import UserInputError
from olive_ext.onnx.runtime import LLAMACPP_INSTALL, llama_cpp_available, olive_ai_available, onnxruntime
from olive_ext.targets.base import PROVIDERS, Device, Target, normalize_provider, provider_short_name

Task = Literal["text-generation", "text-classification", "feature-extraction"]
PrecisionChoice = Literal["auto", "fp32", "fp16", "bf16", "int8", "int4"]
_NPU_PRESETS = {"QNNExecutionProvider": "qnn", "OpenVINOExecutionProvider": "openvino",
                "VitisAIExecutionProvider": "vitisai"}  # fmt: skip


class ChainStep(NamedTuple):
    """One step of a candidate chain, as a recipe's pass section writes it: name, pass type, parameters."""

    name: str
    type: str
    params: dict[str, Any]


Step = ChainStep  # the short name the chain tables below use


def _build(**params: Any) -> Step:
    return Step("build", "model_builder", params)


@dataclass(frozen=True)
class TargetProfile:
    """One device class: its providers (preference order) and the precisions each runs well."""

    device: Device
    providers: tuple[str, ...]
    llm_precisions: dict[str, tuple[str, ...]]  # provider short name -> precisions, best first
    encoder_precisions: dict[str, tuple[str, ...]]
    notes: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------------ providers

    def available_providers(self) -> list[str]:
        """This profile's providers that onnxruntime here has (imports onnxruntime)."""

        installed = set(onnxruntime().get_available_providers())
        return [p for p in self.providers if p in installed]

    def is_available(self, provider: str | None = None) -> bool:
        """True when ``provider`` (default: any of this profile's) can run here, so results can be measured."""
        available = self.available_providers()
        return self.provider(provider) in available if provider else bool(available)

    def provider(self, provider: str | None = None) -> str:
        """``provider`` normalized and checked against this device; default: the first installed, else the first."""
        if provider is None:
            available = self.available_providers()
            return available[0] if available else self.providers[0]
        full = normalize_provider(provider)
        if full not in self.providers:
            raise UserInputError(
                f"--provider {provider}: not a {self.device} execution provider",
                hint=f"{self.device} providers: {', '.join(self.providers)}",
            )
        return full

    def target(self, provider: str | None = None) -> Target:
        """The Target for ``provider`` (default: the first installed one)."""
        return Target(self.device, self.provider(provider))

    def precisions(self, task: str = "text-generation", provider: str | None = None) -> tuple[str, ...]:
        """Precisions worth trying for ``task`` on ``provider`` (best first)."""
        table = self.llm_precisions if task == "text-generation" else self.encoder_precisions
        short = provider_short_name(self.provider(provider))
        if short not in table:
            fallback = f"olive-ext builds no {task} models for {self.provider(provider)}"
            raise UserInputError(self.notes.get(short, fallback) if task == "text-generation" else fallback)
        return table[short]

    def _chosen(self, task: str, precision: str, provider: str | None) -> tuple[str, tuple[str, ...]]:
        short = provider_short_name(self.provider(provider))
        allowed = self.precisions(task, provider)
        if precision == "auto":
            return short, allowed
        if precision not in allowed:
            raise UserInputError(
                f"--precision {precision} is not built for {task} on {self.provider(provider)}",
                hint=f"choose one of: auto, {', '.join(allowed)}",
            )
        return short, (precision,)

    # ------------------------------------------------------------------ candidates

    def candidate_chains(
        self,
        task: str = "text-generation",
        precision: str = "auto",
        provider: str | None = None,
        *,
        calibration_data: str | None = None,
    ) -> list[list[Step]]:
        """The curated pipelines to try for ``task`` on this device: each a list of concrete Steps.

        CPU LLMs (8 by default): fp32; int8; int4 RTN block 32 / 128 (accuracy level 4);
        int4 block 32 at accuracy level 1 (fp32 compute); int4 k-quant with the LM head and
        the most sensitive layers in int8 (Olive's k_quant_mixed; the most faithful int4 on SmolLM2);
        int4 block 128 with a float LM head.
        Encoders: export, graph optimization, int8 dynamic; static QDQ (the only choice on
        NPUs) calibrates on the dataset named ``calibration_data`` (CPU skips it without one).
        Raises UserInputError for combinations olive-ext does not build (LLMs on NPUs).
        """
        short, precisions = self._chosen(task, precision, provider)
        if task == "text-generation":
            chains = [c for c in _llm_chains(short) if chain_precision(c) in precisions]
        else:
            every = _encoder_chains(short, self.provider(provider), calibration_data)
            chains = [c for c in every if chain_precision(c) in precisions]
        return chains

    def gguf_chains(
        self, task: str = "text-generation", precision: str = "auto", provider: str | None = None
    ) -> list[list[Step]]:
        """llama.cpp candidates: the model (adapter merged) as GGUF, one chain per quantization type.

        Only for language models on the CPU execution provider, and only with llama-cpp-python
        installed (see :func:`gguf_skip_note`). ``precision`` filters as for ONNX chains
        (Q4_* are int4, Q8_0 int8; Q5_K_M only with ``auto``).
        """
        if task != "text-generation" or provider_short_name(self.provider(provider)) != "cpu" or not _has_llama_cpp():
            return []
        chains = [[Step("gguf", "gguf_export", {"quant": q})] for q in GGUF_CANDIDATES]
        return [c for c in chains if precision == "auto" or chain_precision(c) == precision]

    def olive_chains(
        self,
        task: str = "text-generation",
        precision: str = "auto",
        provider: str | None = None,
        *,
        calibration_data: str | None = None,
    ) -> list[list[Step]]:
        """olive-ai's int4 quantizers (hf -> hf) before model_builder, which writes their int4 weights as they are.

        CPU LLMs only, with olive-ai installed: Olive's Rtn (asymmetric, group 32), and Olive's Gptq calibrated on
        the dataset named ``calibration_data`` when there is one (GPTQ needs data; give it rows the candidates are
        not scored on).
        """
        if task != "text-generation" or precision not in ("auto", "int4") or not olive_ai_available():
            return []
        if provider_short_name(self.provider(provider)) != "cpu":
            return []
        build = _build(precision="int4", block_size=OLIVE_INT4_GROUP, accuracy_level=4)
        int4 = {"bits": 4, "group_size": OLIVE_INT4_GROUP}
        chains = [[Step("quantize", "olive", {"olive_type": "Rtn", "config": int4}), build]]
        if calibration_data:
            gptq = {"olive_type": "Gptq", "data": calibration_data, "samples": GPTQ_SAMPLES, "config": int4}
            chains.insert(0, [Step("quantize", "olive", gptq), build])
        return chains

    def gguf_skip_note(self, task: str = "text-generation", provider: str | None = None) -> str | None:
        """Why GGUF candidates are left out here and how to get them, or None when they are tried (or never apply)."""
        if task != "text-generation" or provider_short_name(self.provider(provider)) != "cpu" or _has_llama_cpp():
            return None
        return (
            "llama.cpp (GGUF) candidates skipped: llama-cpp-python is not installed; "
            f"install it with: pip install '{LLAMACPP_INSTALL}'"
        )


# olive-ai int4 candidates: group size (= the builder's block size) and GPTQ's calibration rows
OLIVE_INT4_GROUP = 32
GPTQ_SAMPLES = 64

# llama.cpp quantization types tried as CPU candidates: the common Ollama/llama.cpp choices.
GGUF_CANDIDATES = ("Q4_0", "Q4_K_M", "Q5_K_M", "Q8_0")


def _has_llama_cpp() -> bool:
    return llama_cpp_available()


def chain_precision(chain: list[Step]) -> str:
    """The precision a chain ends at (the last step that sets one)."""
    precision = "fp32"
    for step in chain:
        if step.type == "model_builder":
            precision = step.params.get("precision", "fp32")
        elif step.type == "int4_weight":
            precision = f"int{step.params.get('bits', 4)}"
        elif step.type in ("int8_dynamic", "qdq_static"):
            precision = "int8"
        elif step.type == "graph_optimize" and step.params.get("float16"):
            precision = "fp16"
        elif step.type == "olive" and isinstance(step.params.get("config", {}).get("bits"), int):
            precision = f"int{step.params['config']['bits']}"
        elif step.type == "gguf_export":
            quant = str(step.params.get("quant", "Q4_K_M"))
            precision = {"Q4": "int4", "Q5": "int5", "Q6": "int6", "Q8": "int8", "F1": "fp16"}.get(quant[:2], "fp32")
    return precision


def _llm_chains(short: str) -> list[list[Step]]:
    if short == "cpu":
        return [
            [_build(precision="fp32")],
            [_build(precision="int8", block_size=32, accuracy_level=4)],
            [_build(precision="int4", block_size=32, accuracy_level=4)],
            [_build(precision="int4", block_size=128, accuracy_level=4)],
            [_build(precision="int4", block_size=32, accuracy_level=1)],
            [_build(precision="int4", block_size=32, accuracy_level=4, algorithm="k_quant", lm_head="int8",
                    mixed_layers_int8=True)],
            [_build(precision="int4", block_size=128, accuracy_level=4, lm_head="float")],
            # No HQQ chain by default: onnxruntime's HQQ quantizer writes float zero points and no
            # accuracy_level, which MatMulNBits runs on a slow path on CPU (SmolLM2: 4.4 tok/s against
            # 97 for k-quant int4, exact match no better). `int4_weight algorithm: hqq` stays available.
        ]  # fmt: skip
    if short == "cuda":
        return [
            [_build(precision="fp16")],
            [_build(precision="int4", block_size=32)],
            [_build(precision="int4", block_size=128)],
            [_build(precision="int4", block_size=32, algorithm="k_quant", lm_head="int8")],
        ]
    if short == "dml":
        return [[_build(precision="fp16")], [_build(precision="int4", block_size=32)],
                [_build(precision="int4", block_size=128)]]  # fmt: skip
    if short == "webgpu":
        return [[_build(precision="int4", block_size=32)], [_build(precision="int4", block_size=128)],
                [_build(precision="int8", block_size=32)]]  # fmt: skip
    return []


def _encoder_chains(short: str, provider: str, data: str | None) -> list[list[Step]]:
    export = Step("export", "onnx_export", {})
    optimize = Step("optimize", "graph_optimize", {})
    calibration = {"data": data} if data else {}
    if short == "cpu":
        chains = [
            [export],
            [export, optimize],
            [export, optimize, Step("quantize", "int8_dynamic", {})],
            [export, optimize, Step("quantize", "int8_dynamic", {"per_channel": False})],
        ]
        if data:
            chains.append([export, Step("quantize", "qdq_static", {"preset": "cpu", **calibration})])
        return chains
    if short in ("cuda", "dml", "webgpu"):
        return [[export, optimize], [export, Step("optimize", "graph_optimize", {"float16": True})]]
    preset = _NPU_PRESETS.get(provider)
    if preset is None:
        return []
    chains = [[export, Step("quantize", "qdq_static", {"preset": preset, **calibration})]]
    if preset == "qnn":
        uint16 = {"preset": "qnn", "activation_type": "uint16", **calibration}
        chains.append([export, Step("quantize", "qdq_static", uint16)])
    return chains


_NPU_LLM = (
    "LLMs on NPUs need static-shape decoder pipelines and vendor context binaries, which olive-ext does not "
    "build yet; build for cpu or gpu, or quantize an encoder model for the NPU"
)

PROFILES: dict[str, TargetProfile] = {
    "cpu": TargetProfile(
        "cpu",
        PROVIDERS["cpu"],
        llm_precisions={"cpu": ("int4", "int8", "fp32")},
        encoder_precisions={"cpu": ("int8", "fp32")},
    ),
    "gpu": TargetProfile(
        "gpu",
        PROVIDERS["gpu"],
        llm_precisions={"cuda": ("int4", "fp16"), "dml": ("int4", "fp16"), "webgpu": ("int4", "int8")},
        encoder_precisions={"cuda": ("fp16", "fp32"), "dml": ("fp16", "fp32"), "webgpu": ("fp32",)},
    ),
    "npu": TargetProfile(
        "npu",
        PROVIDERS["npu"],
        llm_precisions={},
        encoder_precisions={"qnn": ("int8",), "openvino": ("int8",), "vitisai": ("int8",)},
        notes={"qnn": _NPU_LLM, "openvino": _NPU_LLM, "vitisai": _NPU_LLM},
    ),
}


def get_profile(device: str) -> TargetProfile:
    """The profile of ``device`` ('cpu', 'gpu' or 'npu')."""
    if device not in PROFILES:
        raise UserInputError(f"--device {device}: unknown device", hint="choose cpu, gpu or npu")
    return PROFILES[device]
