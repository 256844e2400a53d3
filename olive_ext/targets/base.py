"""A target: the device class and the onnxruntime execution provider a model runs on."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

Device = Literal["cpu", "gpu", "npu"]
DEVICES: tuple[str, ...] = get_args(Device)

# Execution providers each device class may use; the first is the default.
PROVIDERS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "gpu": ("CUDAExecutionProvider", "DmlExecutionProvider", "WebGpuExecutionProvider"),
    "npu": ("QNNExecutionProvider", "OpenVINOExecutionProvider", "VitisAIExecutionProvider"),
}

# Short names users type (Olive accepts both forms).
_PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "dml": "DmlExecutionProvider",
    "webgpu": "WebGpuExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "vitisai": "VitisAIExecutionProvider",
}


def normalize_provider(name: str) -> str:
    """'cuda' or 'CUDAExecutionProvider' -> 'CUDAExecutionProvider'; unknown names are returned as given."""
    return _PROVIDER_ALIASES.get(name.lower().removesuffix("executionprovider"), name)


def provider_short_name(provider: str) -> str:
    """'CUDAExecutionProvider' -> 'cuda' (the spelling the genai builder and configs use)."""
    for short, full in _PROVIDER_ALIASES.items():
        if full == provider:
            return short
    return provider.lower().removesuffix("executionprovider")


@dataclass(frozen=True)
class Target:
    """Where a candidate is built for and measured on."""

    device: Device = "cpu"
    provider: str = "CPUExecutionProvider"

    @property
    def name(self) -> str:
        """'device-provider' short name, e.g. 'cpu' or 'gpu-cuda'."""
        return f"{self.device}-{provider_short_name(self.provider)}"

    def is_available(self) -> bool:
        """True when onnxruntime on this machine has the provider (imports onnxruntime)."""
        import onnxruntime

        return self.provider in onnxruntime.get_available_providers()


CPU = Target()


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """This machine's CPU model ('AMD EPYC 9654 96-Core Processor'), for metrics, cache keys and reports."""
    name = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return name or platform.machine()
