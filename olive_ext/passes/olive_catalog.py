"""What olive-ai offers: its passes, read from olive-ai's own registry (``olive/olive_config.json``).

Cheap to import and to query: the registry is a JSON file inside the installed olive-ai, read without
importing olive (which loads torch and transformers). :func:`lookup` matches names case-insensitively, as
Olive does, and says for each pass what it needs that this machine lacks (a vendor SDK, a device, a pip
package). :func:`check_params` is the expensive one: it imports the pass class and validates parameters with
olive-ai's own config generation, so a recipe is checked exactly as Olive would check it.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from olive_ext.errors import Problem
from olive_ext.onnx.runtime import olive_ai_version
from olive_ext.version import installed_version

__all__ = [
    "OLIVE_INSTALL",
    "OliveCatalogEntry",
    "catalog",
    "check_params",
    "lookup",
    "olive_ai_version",
]

OLIVE_INSTALL = "'olive-ext[olive]'"  # what hints tell users to pip install

# Vendor SDKs that pip cannot install here, by olive-ai extra / package name.
_VENDOR_PACKAGES = {
    "qnn": "needs Qualcomm QNN SDK (onnxruntime-qnn) and a Snapdragon NPU",
    "onnxruntime-qnn": "needs Qualcomm QNN SDK (onnxruntime-qnn) and a Snapdragon NPU",
    "qairt": "needs Qualcomm AI Runtime SDK (qairt-dev) and a Snapdragon NPU",
    "qairt-dev": "needs Qualcomm AI Runtime SDK (qairt-dev) and a Snapdragon NPU",
    "amd-quark": "needs AMD Quark (amd-quark) with the Ryzen AI / Vitis AI SDK and an AMD NPU or GPU",
    "nvmo": "needs NVIDIA ModelOpt (nvidia-modelopt) and a CUDA GPU",
    "torch-tensorrt": "needs NVIDIA TensorRT (torch-tensorrt) and a CUDA GPU",
    "aimet-onnx": "needs Qualcomm AIMET (aimet-onnx) for Snapdragon NPUs",
    "sd-lora": "needs a CUDA GPU (Stable Diffusion LoRA training)",
}
# Olive modules whose passes drive a vendor toolchain, whatever their declared providers say.
_VENDOR_MODULES = {
    "olive.passes.qnn": "needs Qualcomm QNN SDK (QNN_SDK_ROOT) and a Snapdragon NPU",
    "olive.passes.onnx.qnn": "needs Qualcomm QNN SDK (onnxruntime-qnn) and a Snapdragon NPU",
    "olive.passes.qairt": "needs Qualcomm AI Runtime SDK (qairt-dev) and a Snapdragon NPU",
    "olive.passes.onnx.qairt": "needs Qualcomm AI Runtime SDK (qairt-dev) and a Snapdragon NPU",
    "olive.passes.onnx.vitis_ai": "needs AMD Ryzen AI / Vitis AI SDK and an AMD NPU",
}
# Execution providers -> the device (and package) they need.
_PROVIDER_DEVICES = {
    "QNNExecutionProvider": "a Snapdragon NPU (Qualcomm QNN SDK, onnxruntime-qnn)",
    "CUDAExecutionProvider": "an NVIDIA GPU (CUDA, onnxruntime-gpu)",
    "TensorrtExecutionProvider": "an NVIDIA GPU (TensorRT)",
    "NvTensorRTRTXExecutionProvider": "an NVIDIA RTX GPU (TensorRT-RTX)",
    "DmlExecutionProvider": "a DirectX 12 GPU on Windows (onnxruntime-directml)",
    "ROCMExecutionProvider": "an AMD GPU (ROCm)",
    "MIGraphXExecutionProvider": "an AMD GPU (MIGraphX)",
    "OpenVINOExecutionProvider": "OpenVINO's onnxruntime EP (onnxruntime-openvino), whose wheel replaces the "
    "onnxruntime wheel olive-ext pins (onnxruntime and onnxruntime-genai would no longer load beside it)",
    "VitisAIExecutionProvider": "an AMD NPU (Vitis AI EP)",
}
# Passes that olive-ai lists but that cannot work with the libraries olive-ext pins, and what to use instead.
_KNOWN_BROKEN = {
    "ModelBuilder": "olive-ai's ModelBuilder calls onnxruntime-genai's builder API of <= 0.14.1 (installed: {genai});"
    " olive-ext's own model_builder pass builds the same model: write `type: model_builder`",
}
# olive-ai's openvino extra lists optimum[openvino], onnxruntime-openvino and numpy<2 for every OpenVINO pass; what
# each pass imports is openvino and nncf (olive-ext's openvino extra), except these:
_OPENVINO_MODULE = "olive.passes.openvino."
_OPENVINO_PACKAGES = ("openvino", "nncf")
_OPENVINO_NEEDS = {
    "OpenVINOOptimumConversion": "needs optimum-intel (optimum[openvino]), which olive-ext does not install: its "
    "optimum 2.x release line is untested with transformers 5; write `type: openvino_convert` instead",
}
# Packages a pass imports that olive-ai's registry does not declare: (import name, how to install it).
_UNDECLARED_IMPORTS = {
    "SliceGPT": ("slicegpt", "pip install git+https://github.com/microsoft/TransformerCompression (not on PyPI)"),
}
# What a pass takes and produces, where the module path does not tell (else onnx -> onnx, pytorch: hf -> hf).
_KINDS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "OnnxConversion": (("hf",), "onnx"),
    "OptimumConversion": (("hf",), "onnx"),
    "ModelBuilder": (("hf",), "genai"),
    "MobiusBuilder": (("hf",), "onnx"),
    "CaptureOnnxGraph": (("hf",), "onnx"),
    "SplitModel": (("onnx", "genai"), "composite"),  # a genai folder: its decoder graph
    "ComposeOnnxModels": (("composite",), "onnx"),
    "StaticLLM": (("composite",), "composite"),  # embeddings, decoder layers, lm_head (CaptureSplitInfo's splits)
    "OpenVINOConversion": (("hf", "onnx"), "openvino"),
    # these give back the kind they are given (ONNX in, ONNX out; IR in, IR out): KEEPS_KIND
    "OpenVINOQuantization": (("onnx", "openvino"), "openvino"),
    "OpenVINOQuantizationWithAccuracy": (("onnx", "openvino"), "openvino"),
    "OpenVINOWeightCompression": (("onnx", "openvino"), "openvino"),
    "OpenVINOOptimumConversion": (("hf",), "openvino"),
    "OpenVINOEncapsulation": (("openvino",), "onnx"),
    "QNNConversion": (("onnx",), "qnn"),
    "QNNModelLibGenerator": (("qnn",), "qnn"),
    "QNNContextBinaryGenerator": (("qnn",), "qnn"),
    "QairtPreparation": (("hf",), "qairt"),
    "QairtGenAIBuilder": (("qairt",), "qairt"),
}


# Olive passes whose output has their input's kind (olive.passes.openvino: quantization.py, compression.py); an HF
# input to OpenVINOWeightCompression goes through optimum-intel, which olive-ext does not install
KEEPS_KIND = frozenset({"OpenVINOQuantization", "OpenVINOQuantizationWithAccuracy", "OpenVINOWeightCompression"})


@dataclass(frozen=True)
class OliveCatalogEntry:
    """One olive-ai pass: where it lives, what it needs, what it takes and produces."""

    name: str  # Olive's canonical spelling, e.g. OnnxPeepholeOptimizer
    module: str  # e.g. olive.passes.onnx.peephole_optimizer.OnnxPeepholeOptimizer
    providers: tuple[str, ...]  # execution providers it supports ("*": any)
    accelerators: tuple[str, ...]  # devices it supports ("*": any)
    packages: tuple[str, ...]  # pip requirements it needs beyond olive-ai
    dataset: str  # dataset_required / dataset_optional / dataset_not_required
    takes: tuple[str, ...]  # model kinds it takes: hf, onnx, openvino, composite, ... (empty: not knowable)
    produces: str | None  # the kind it produces (None: not knowable)
    needs: str | None  # None when it can run on this machine; else why not (vendor package / device)

    @property
    def runs_here(self) -> bool:
        """Whether nothing it needs is missing on this machine."""
        return self.needs is None


def _olive_dir() -> Path | None:
    try:
        spec = importlib.util.find_spec("olive")  # finds the package without running its __init__
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=1)
def _registry() -> dict[str, Any]:
    folder = _olive_dir()
    if folder is None or olive_ai_version() is None:
        return {"passes": {}, "extra_dependencies": {}}
    return json.loads((folder / "olive_config.json").read_text())


@lru_cache(maxsize=1)
def catalog() -> dict[str, OliveCatalogEntry]:
    """Every pass olive-ai registers, by lower-case name (empty without olive-ai)."""
    reg = _registry()
    extras: dict[str, list[str]] = reg.get("extra_dependencies", {})
    return {name.lower(): _entry(name, data, extras) for name, data in reg.get("passes", {}).items()}


def lookup(olive_type: str) -> OliveCatalogEntry | None:
    """The entry for ``olive_type`` (case-insensitive, as Olive matches; a dotted module path's last part too)."""
    name = olive_type.rsplit(".", 1)[-1].lower() if isinstance(olive_type, str) else ""
    return catalog().get(name)


def _entry(name: str, data: dict[str, Any], extras: dict[str, list[str]]) -> OliveCatalogEntry:
    module = data["module_path"]
    providers = tuple(data.get("supported_providers") or ("*",))
    accelerators = tuple(data.get("supported_accelerators") or ("*",))
    wanted = [*data.get("extra_dependencies", []), *data.get("module_dependencies", [])]
    packages = tuple(dict.fromkeys(req for dep in wanted for req in extras.get(dep, [dep])))
    takes, produces = _kinds(name, module)
    needs = _needs(name, module, providers, accelerators, wanted, extras)
    dataset = data.get("dataset", "dataset_not_required")
    return OliveCatalogEntry(name, module, providers, accelerators, packages, dataset, takes, produces, needs)


def _kinds(name: str, module: str) -> tuple[tuple[str, ...], str | None]:
    if name in _KINDS:
        return _KINDS[name]
    if module.startswith("olive.passes.onnx."):
        return ("onnx",), "onnx"
    if module.startswith("olive.passes.pytorch."):
        return ("hf",), "hf"
    if module.startswith("olive.passes.openvino."):
        return ("openvino",), "openvino"
    return (), None


def _needs(
    name: str,
    module: str,
    providers: tuple[str, ...],
    accelerators: tuple[str, ...],
    wanted: list[str],
    extras: dict[str, list[str]],
) -> str | None:
    if name in _KNOWN_BROKEN:
        return _KNOWN_BROKEN[name].format(genai=_version("onnxruntime-genai") or "none")
    for prefix, reason in _VENDOR_MODULES.items():
        if module.startswith(prefix + "."):
            return reason
    for dep in wanted:
        if dep in _VENDOR_PACKAGES:
            return _VENDOR_PACKAGES[dep]
    if "*" not in providers and "CPUExecutionProvider" not in providers:
        devices = " or ".join(dict.fromkeys(_PROVIDER_DEVICES.get(p, p) for p in sorted(providers)))
        return f"needs {devices}"
    if module.startswith(_OPENVINO_MODULE):
        if name in _OPENVINO_NEEDS:
            return _OPENVINO_NEEDS[name]
        missing_ov = [p for p in _OPENVINO_PACKAGES if _version(p) is None]
        if missing_ov:
            return f"needs the pip packages {', '.join(missing_ov)} (pip install 'olive-ext[openvino]')"
        return None
    if "*" not in providers and "CPUExecutionProvider" not in providers:
        devices = " or ".join(dict.fromkeys(_PROVIDER_DEVICES.get(p, p) for p in sorted(providers)))
        return f"needs {devices}"
    if "*" not in accelerators and "cpu" not in accelerators:
        return f"needs a {' or '.join(sorted(accelerators)).upper()} device"
    if name in _UNDECLARED_IMPORTS and importlib.util.find_spec(_UNDECLARED_IMPORTS[name][0]) is None:
        return f"needs the pip package {_UNDECLARED_IMPORTS[name][0]} ({_UNDECLARED_IMPORTS[name][1]})"
    missing: list[str] = []
    extras_short: list[str] = []  # olive-ai extras with a missing package, and loose packages missing
    for dep in wanted:
        lacking = [req for req in extras.get(dep, [dep]) if _version(_requirement_name(req)) is None]
        missing += [req for req in lacking if req not in missing]
        if lacking:
            extras_short.append(f"olive-ai[{dep}]" if dep in extras else dep)
    if missing:
        how = "pip install " + " ".join(f"'{e}'" for e in dict.fromkeys(extras_short))
        return f"needs the pip package{'s' if len(missing) > 1 else ''} {', '.join(missing)} ({how})"
    return None


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]


def _version(distribution: str) -> str | None:
    return installed_version(distribution)


def needs_category(needs: str) -> Any:
    """What an Olive pass's ``needs`` names: a pip package to install, a vendor SDK, a device, or (a pass that
    does not work with our libraries) none of those."""
    text = needs.lower()
    if "pip package" in text:
        return "package"
    if not text.startswith("needs"):
        return None
    return (
        "sdk" if any(w in text for w in ("sdk", "aimet", "modelopt", "tensorrt", "onnxruntime-openvino")) else "device"
    )


def check_params(olive_type: str, params: dict[str, Any], path: str, accelerator: Any = None) -> list[Problem]:
    """Validate ``params`` for Olive pass ``olive_type`` with olive-ai's own config validation.

    Each problem names ``path.<key>``. A key Olive would ignore with a warning is refused here (olive-ext never
    drops a key silently). A pass whose ``needs`` is set is reported once, at ``path``, without importing it.
    """
    if olive_ai_version() is None:
        return [Problem(path, "Olive passes need olive-ai, which is not installed",
                        hint=f"pip install {OLIVE_INSTALL}", category="package")]  # fmt: skip
    entry = lookup(olive_type)
    if entry is None:
        names = sorted(e.name for e in catalog().values())
        close = difflib.get_close_matches(str(olive_type), names, n=1, cutoff=0.6)
        if close:  # the suggestion says it all; the whole list only when nothing is close
            hint = f"did you mean '{close[0]}'?"
            return [Problem(path, "olive-ai has no pass of this type", olive_type, True, hint=hint)]
        return [Problem(path, "olive-ai has no pass of this type", olive_type, True, ", ".join(names))]
    if entry.needs:
        return [Problem(path, f"Olive pass {entry.name} cannot run on this machine: {entry.needs}",
                        category=needs_category(entry.needs))]  # fmt: skip
    if not isinstance(params, dict):
        return [Problem(path, "the pass's parameters must be a mapping", params, True)]
    try:
        pass_class = import_pass_class(entry)
    except ImportError as e:
        return [Problem(path, f"olive-ai's {entry.name} does not import here: {e}",
                        hint=f"pip install {OLIVE_INSTALL}")]  # fmt: skip
    _, problems = generate_config(pass_class, entry, params, path, accelerator)
    return problems


def import_pass_class(entry: OliveCatalogEntry) -> Any:
    """olive-ai's pass class for ``entry`` (imports olive: torch, transformers; telemetry off first)."""
    from olive_ext.onnx.runtime import olive_ai  # deferred: imports olive-ai, torch and transformers

    olive_ai(f"Olive pass {entry.name}")
    package_config = importlib.import_module("olive.package_config").OlivePackageConfig
    return package_config.load_default_config().import_pass_module(entry.name.lower())


def cpu_accelerator() -> Any:
    """Olive's AcceleratorSpec for the CPU execution provider."""
    return importlib.import_module("olive.hardware").DEFAULT_CPU_ACCELERATOR


def accelerator_spec(device: str | None, execution_provider: str | None) -> Any:
    """Olive's AcceleratorSpec for a device and execution provider (the CPU's when neither is given)."""
    if not device and not execution_provider:
        return cpu_accelerator()
    hardware = importlib.import_module("olive.hardware.accelerator")
    return hardware.AcceleratorSpec(
        accelerator_type=str(device or "cpu").lower(), execution_provider=execution_provider or "CPUExecutionProvider"
    )


def generate_config(
    pass_class: Any, entry: OliveCatalogEntry, params: dict[str, Any], path: str, accelerator: Any = None
) -> tuple[Any, list[Problem]]:
    """olive-ai's validated config object for ``params`` (search disabled), or None and the problems found."""
    from pydantic import ValidationError

    accelerator = accelerator or cpu_accelerator()
    defaults = pass_class.default_config(accelerator)
    known = list(defaults)
    problems = []
    for key in params:
        if key not in defaults:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            problems.append(
                Problem(
                    f"{path}.{key}",
                    f"not a parameter of Olive's {entry.name}",
                    params[key],
                    True,
                    ", ".join(known),
                    f"did you mean '{close[0]}'?" if close else None,
                )
            )
    if problems:
        return None, problems
    with _olive_messages() as said:
        try:
            config = pass_class.generate_config(accelerator, dict(params), disable_search=True)
        except ValidationError as e:
            return None, _validation_problems(e, path, entry.name)
        except (ValueError, TypeError, AssertionError) as e:
            refused = f"Olive's {entry.name} refuses these parameters: {e}"
            return None, [Problem(path, refused, category="olive_refuses")]
        if not pass_class.validate_config(config, accelerator):
            why = "; ".join(said) or "its validate_config() returned False"
            return None, [Problem(path, f"Olive's {entry.name} refuses this combination of parameters: {why}",
                                  category="olive_refuses")]  # fmt: skip
    return config, []


def _validation_problems(error: Any, path: str, olive_type: str) -> list[Problem]:
    """One problem per field (pydantic lists every member of Olive's Union[type, SearchParameter, ...]).

    These are olive-ai's own pass config refusing a value (Olive stops at it too), so they are said to be
    Olive's: a value of the wrong type for the pass, as Olive's parameter table declares it."""
    seen: dict[str, Problem] = {}
    for err in error.errors():
        loc = [str(p) for p in err.get("loc", ())]
        key = loc[0] if loc else ""
        where = f"{path}.{key}" if key else path
        if where not in seen:
            message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
            message = f"Olive's {olive_type} refuses it: {message}"
            given = "input" in err and bool(key)
            seen[where] = Problem(where, message, err.get("input"), given, category="olive_refuses")
    return list(seen.values())


class _olive_messages:
    """Collects what olive-ai's loggers say (at INFO and above) while validating: the reason a config is refused."""

    def __enter__(self) -> list[str]:
        self.messages: list[str] = []
        self.handler = _ListHandler(self.messages)
        self.logger = logging.getLogger("olive")
        self.level, self.propagate = self.logger.level, self.logger.propagate
        self.disabled = logging.root.manager.disable  # a host's logging.disable() would hide the reason
        logging.disable(logging.NOTSET)
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False  # collected, not printed
        return self.messages

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)
        self.logger.propagate = self.propagate
        logging.disable(self.disabled)


class _ListHandler(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.INFO)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())
