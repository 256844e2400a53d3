"""The one place onnxruntime and onnxruntime-genai are imported, with their telemetry turned off.

olive-ext sends no telemetry, and neither may the runtimes it loads: onnxruntime-genai
has telemetry events (``disable_telemetry_events``), and onnxruntime has them on Windows.
Import the runtimes through these functions, never directly.
"""

from __future__ import annotations

from types import ModuleType

from olive_ext.errors import MissingDependencyError


def genai() -> ModuleType:
    """onnxruntime_genai, telemetry events disabled."""
    try:
        import onnxruntime_genai as og
    except ImportError as e:
        raise MissingDependencyError("onnxruntime-genai", "running LLM ONNX models") from e
    if hasattr(og, "disable_telemetry_events"):
        og.disable_telemetry_events()
    return og


def onnxruntime() -> ModuleType:
    """onnxruntime, telemetry events disabled."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise MissingDependencyError("onnxruntime", "running ONNX models") from e
    if hasattr(ort, "disable_telemetry_events"):
        ort.disable_telemetry_events()
    return ort
