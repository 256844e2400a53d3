"""The one place onnxruntime and onnxruntime-genai are imported, with their telemetry turned off.

Since 1.29 onnxruntime (and onnxruntime-genai 0.18) ship 1DS telemetry on Linux and macOS too: at
import a background uploader starts, writes a device id and an event store under
``~/.cache/Microsoft/DeveloperTools/.onnxruntime/`` and, about 9 s later, resolves and posts to
``mobile.events.data.microsoft.com``. ``disable_telemetry_events()`` only stops the "non-essential"
events; the process-info event, the device id and the lookup remain. The full opt-out is the
environment variable ``ORT_DISABLE_TELEMETRY=1``, read once when the native library initializes, so
it must be set before the first import (``runtime_telemetry_off``: the CLI calls it first thing, the
engine before every step, and the evaluation worker inherits it). CI machines are opted out by the
library itself (it looks for ``GITHUB_ACTIONS``, ``TF_BUILD`` and the like), which is why the offline
test removes those variables. Import the runtimes through these functions, never directly.

olive-ai (the ``olive`` extra) sends OpenTelemetry events to a Microsoft collector from a singleton created on
first use; ``OLIVE_DISABLE_TELEMETRY=1`` is its switch, but it is read only after the heartbeat event is queued.
:func:`olive_ai` therefore sets the switch before import (for child processes too) and puts a disabled
singleton in place, so nothing is queued, no device id is written and no exporter thread starts.

OpenVINO (the ``openvino`` extra) reports to Google Analytics through the ``openvino_telemetry`` package: its model
converter (``openvino.convert_model``, ovc) and NNCF create a ``Telemetry`` that, when no consent file exists
(``~/intel/openvino_telemetry``) and no CI variable is set, counts as consented, writes a client id to
``~/intel/openvino_ga_cid`` and posts events. Both import it inside ``try: ... except ImportError`` and fall back
to a stub, so :func:`openvino_telemetry_off` makes that import fail in this process (``sys.modules`` entry None)
before openvino or nncf loads; every step calls it through :func:`runtime_telemetry_off`.
``OLIVE_EXT_OPENVINO_TELEMETRY=1`` leaves OpenVINO's own consent logic in charge.
"""

from __future__ import annotations

import logging
import os
import sys
from types import ModuleType
from typing import Any

from olive_ext.errors import MissingDependencyError

# onnxruntime's and onnxruntime-genai's own opt-out switch (core/platform/posix/telemetry.cc)
TELEMETRY_SWITCH = "ORT_DISABLE_TELEMETRY"
# olive-ai's (olive/telemetry/telemetry.py)
OLIVE_TELEMETRY_SWITCH = "OLIVE_DISABLE_TELEMETRY"
# ours for OpenVINO's (openvino_telemetry has no switch of its own but a consent file): "1" lets it run
OPENVINO_TELEMETRY_SWITCH = "OLIVE_EXT_OPENVINO_TELEMETRY"

logger = logging.getLogger("olive_ext")


def runtime_telemetry_off() -> None:
    """Opt this process (and the processes it starts) out of the runtimes' telemetry.

    A value the user set already wins: ``ORT_DISABLE_TELEMETRY=0`` is how to ask for telemetry.
    """
    os.environ.setdefault(OLIVE_TELEMETRY_SWITCH, "1")
    openvino_telemetry_off()
    if TELEMETRY_SWITCH in os.environ:
        return
    loaded = [m for m in ("onnxruntime", "onnxruntime_genai") if m in sys.modules]
    if loaded:  # too late for a library already loaded: it read the environment when it initialized
        logger.debug("%s was imported before olive-ext set %s=1; its telemetry follows the earlier setting",
                     ", ".join(loaded), TELEMETRY_SWITCH)  # fmt: skip
    os.environ[TELEMETRY_SWITCH] = "1"


def openvino_telemetry_off() -> None:
    """Keep ``openvino_telemetry`` from loading in this process, so OpenVINO's converter and NNCF use their stubs.

    Unless the user set ``OLIVE_EXT_OPENVINO_TELEMETRY=1``. Too late when it is loaded already (logged)."""
    if os.environ.get(OPENVINO_TELEMETRY_SWITCH) == "1":
        return
    if sys.modules.get("openvino_telemetry") is not None:
        logger.debug("openvino_telemetry was imported before olive-ext could block it; OpenVINO's consent applies")
        return
    sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # `import` now raises ImportError


def openvino(purpose: str) -> ModuleType:
    """The ``openvino`` package, its telemetry off (``openvino_telemetry_off``)."""
    import importlib

    runtime_telemetry_off()
    try:
        return importlib.import_module("openvino")
    except ImportError as e:
        raise MissingDependencyError("openvino", purpose, OPENVINO_INSTALL) from e


OPENVINO_INSTALL = "'olive-ext[openvino]'"  # what hints tell users to pip install


def openvino_available() -> bool:
    """True when openvino is installed (checked without importing it)."""
    from importlib.util import find_spec

    return find_spec("openvino") is not None


def _load(module: str, package: str, purpose: str) -> ModuleType:
    """Import a runtime with its telemetry off (before import, and its own switch after)."""
    import importlib

    runtime_telemetry_off()
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(package, purpose) from e
    if hasattr(mod, "disable_telemetry_events"):
        mod.disable_telemetry_events()
    return mod


def olive_ai(purpose: str) -> ModuleType:
    """The ``olive`` package (olive-ai) with its telemetry off; its log lines go through logging, not stdout."""
    import importlib

    runtime_telemetry_off()
    try:
        telemetry = importlib.import_module("olive.telemetry.telemetry")
    except ImportError as e:
        raise MissingDependencyError("olive-ai", purpose, "'olive-ext[olive]'") from e
    if os.environ.get(OLIVE_TELEMETRY_SWITCH) == "1":
        _disable_olive_telemetry(telemetry.Telemetry)
    olive_logger = logging.getLogger("olive")
    for handler in list(olive_logger.handlers):  # olive/__init__.py prints every INFO line to stdout
        if isinstance(handler, logging.StreamHandler):
            olive_logger.removeHandler(handler)
    olive_logger.propagate = True
    olive_logger.setLevel(logging.WARNING)
    return importlib.import_module("olive")


def _disable_olive_telemetry(telemetry_class: Any) -> None:
    """Install olive-ai's Telemetry singleton already initialized with no logger: every call is then a no-op."""
    instance = getattr(telemetry_class, "_instance", None)
    if instance is not None:  # created before us (the user's own code): switch off what it can
        instance.disable_telemetry()
        return
    instance = object.__new__(telemetry_class)
    instance._initialized = True
    instance._logger = None
    instance._cache_handler = None
    telemetry_class._instance = instance


LLAMACPP_INSTALL = "olive-ext[llamacpp]"  # what hints tell users to pip install


def llama_cpp_available() -> bool:
    """True when llama-cpp-python is installed (checked without importing it)."""
    from importlib.util import find_spec

    return find_spec("llama_cpp") is not None


def olive_ai_version() -> str | None:
    """The installed olive-ai's version, or None when it is not installed (checked without importing it)."""
    from importlib import metadata
    from importlib.util import find_spec

    try:
        version = metadata.version("olive-ai")
    except metadata.PackageNotFoundError:
        return None
    try:
        found = find_spec("olive") is not None
    except (ImportError, ValueError):
        found = False
    return version if found else None


def olive_ai_available() -> bool:
    """True when olive-ai is installed (checked without importing it)."""
    return olive_ai_version() is not None


def genai() -> ModuleType:
    """onnxruntime_genai, telemetry off."""
    return _load("onnxruntime_genai", "onnxruntime-genai", "running LLM ONNX models")


def onnxruntime() -> ModuleType:
    """onnxruntime, telemetry off."""
    return _load("onnxruntime", "onnxruntime", "running ONNX models")
