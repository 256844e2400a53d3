"""Smoke runs: every model a pass produces is loaded and run on the CPU EP before it counts.

Some option sets make models that build but do not load (on SmolLM2's tied embeddings,
asymmetric int4 with the builder's default algorithm writes a Gather whose types do not
match); a pass that hands such a model on would fail much later, in evaluation, far from
the options that caused it. ``smoke_check`` fails the pass instead, naming the options.

Models built for another execution provider (a cross-build, e.g. CUDA fp16 on a CPU
machine) are loaded on the CPU EP when its kernels allow; when they do not, the graph's
structure is checked and the result says the model was not run here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from olive_ext.artifacts import Artifact
from olive_ext.errors import PassError
from olive_ext.onnx.folder import composite_components, model_file
from olive_ext.onnx.runtime import genai, onnxruntime

SMOKE_PROMPT = "The capital of France is"
SMOKE_TOKENS = 3


def smoke_check(
    kind: str,
    folder: str | Path,
    pass_name: str,
    options: Mapping[str, Any],
    adapter_file: str | Path | None = None,
    built_for: str = "cpu",
) -> dict[str, Any]:
    """Load and briefly run a ``genai``, ``onnx`` or ``composite`` folder on the CPU EP; raise PassError when it fails.

    ``built_for`` names the EP a plain ONNX model was made for (a genai folder says it in its
    config); for another EP than cpu, failing to run on the CPU EP is recorded, not raised.
    Returns what was checked (``built_for``, ``loaded``, ``ran``, ``note``) for the artifact's meta.
    """
    folder = Path(folder)
    try:
        if kind == "genai":
            return _smoke_genai(folder, Path(adapter_file) if adapter_file else None)
        if kind == "onnx" and _genai_decoder(folder) == "model.onnx":  # an LLM's decoder (ComposeOnnxModels
            return _smoke_genai(folder, None)  # gives the graph it split back): generate, its inputs are a cache's
        if kind == "onnx":
            return _smoke_onnx(model_file(Artifact("onnx", str(folder))), built_for)
        if kind == "composite":  # each component loads; one alone is not run (its inputs are another's outputs)
            names = composite_components(folder)
            for name in names:
                _smoke_onnx(folder / name / "model.onnx", built_for, run=False)
            note = f"{len(names)} components loaded on the CPU EP; not run one by one"
            return {"built_for": built_for, "loaded": True, "ran": False, "note": note}
    except SmokeFailure as e:
        opts = ", ".join(f"{k}={v}" for k, v in sorted(options.items()) if v not in (None, [], {}))
        raise PassError(
            pass_name,
            f"the produced model does not {e.stage} on the CPU execution provider (options: {opts or 'defaults'}): "
            f"{e.detail}",
            hint="this option set is not usable here; try the defaults or another combination "
            "(the pass's option descriptions list known-bad combinations)",
        ) from e
    raise ValueError(f"smoke_check: no smoke run for {kind!r} models")


def _genai_decoder(folder: Path) -> str | None:
    """The decoder graph a genai_config.json beside an ONNX graph names (as a genai folder's is found), or None."""
    try:
        return model_file(Artifact("genai", str(folder))).name
    except (OSError, ValueError, KeyError, TypeError):
        return None


class SmokeFailure(Exception):
    """Raised inside the smoke run; turned into PassError with the options."""

    def __init__(self, stage: str, detail: str) -> None:
        super().__init__(f"{stage}: {detail}")
        self.stage = stage
        self.detail = _first_line(detail)


def _first_line(text: str, limit: int = 400) -> str:
    line = next((s.strip() for s in str(text).splitlines() if s.strip()), str(text))
    return line if len(line) <= limit else line[: limit - 3] + "..."


def genai_built_for(folder: Path) -> str:
    """The execution provider a genai folder was built for ('cpu', 'cuda', 'dml', ...)."""
    config = json.loads((folder / "genai_config.json").read_text())
    options = config.get("model", {}).get("decoder", {}).get("session_options", {}).get("provider_options", [])
    for entry in options:
        for name in entry:
            return str(name).lower()
    return "cpu"


def _smoke_genai(folder: Path, adapter_file: Path | None) -> dict[str, Any]:
    import numpy as np

    og = genai()
    built_for = genai_built_for(folder)
    cross = built_for != "cpu"
    config = og.Config(str(folder))
    if cross:
        config.clear_providers()
    try:
        model = og.Model(config)
    except Exception as e:
        if not cross:
            raise SmokeFailure("load", str(e)) from e
        check_graph_structure(model_file(Artifact("genai", str(folder))))
        return {
            "built_for": built_for,
            "loaded": False,
            "ran": False,
            "note": f"built for {built_for}; the CPU EP cannot load it ({_first_line(str(e), 160)}); "
            "graph structure checked; not measured here",
        }
    try:
        tokenizer = og.Tokenizer(model)
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=64, do_sample=False)
        generator = og.Generator(model, params)
        if adapter_file is not None:
            adapters = og.Adapters(model)
            adapters.load(str(adapter_file), "smoke")
            generator.set_active_adapter(adapters, "smoke")
        generator.append_tokens(tokenizer.encode(SMOKE_PROMPT))
        logits = np.asarray(generator.get_output("logits"))
        if not np.isfinite(logits).all():
            raise SmokeFailure("run", "the logits contain NaN or infinity")
        for _ in range(SMOKE_TOKENS):
            if generator.is_done():
                break
            generator.generate_next_token()
    except SmokeFailure:
        raise
    except Exception as e:
        if not cross:
            raise SmokeFailure("run", str(e)) from e
        return {
            "built_for": built_for,
            "loaded": True,
            "ran": False,
            "note": f"built for {built_for}; loads on the CPU EP but does not run there "
            f"({_first_line(str(e), 160)}); not measured here",
        }
    note = f"built for {built_for}; loaded and ran on the CPU EP; not measured here" if cross else ""
    return {"built_for": built_for, "loaded": True, "ran": True, "note": note}


def check_graph_structure(model_path: Path) -> None:
    """Every graph output is produced by a node or is an input or initializer (no weights loaded)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    graph = model.graph
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    for node in graph.node:
        available.update(node.output)
    missing = [o.name for o in graph.output if o.name not in available]
    if missing:
        raise SmokeFailure("load", f"graph outputs {', '.join(missing[:4])} are produced by no node")


def _smoke_onnx(model_path: Path, built_for: str, run: bool = True) -> dict[str, Any]:
    import numpy as np

    if not model_path.exists():
        raise SmokeFailure("load", f"{model_path.name} is missing")
    ort = onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    cross = built_for != "cpu"
    try:
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as e:
        if not cross:
            raise SmokeFailure("load", str(e)) from e
        check_graph_structure(model_path)
        note = f"built for {built_for}; the CPU EP cannot load it ({_first_line(str(e), 160)}); not measured here"
        return {"built_for": built_for, "loaded": False, "ran": False, "note": note}
    if not run:
        return {"built_for": built_for, "loaded": True, "ran": False, "note": ""}
    feeds = {i.name: dummy_input(i.name, i.type, i.shape) for i in session.get_inputs()}
    try:
        outputs = session.run(None, feeds)
    except Exception as e:
        if not cross:
            raise SmokeFailure("run", str(e)) from e
        note = f"built for {built_for}; does not run on the CPU EP ({_first_line(str(e), 160)}); not measured here"
        return {"built_for": built_for, "loaded": True, "ran": False, "note": note}
    for out in outputs:
        arr = np.asarray(out)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise SmokeFailure("run", "an output contains NaN or infinity")
    note = f"built for {built_for}; ran on the CPU EP; not measured here" if cross else ""
    return {"built_for": built_for, "loaded": True, "ran": True, "note": note}


_NUMPY_TYPES = {
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(bool)": "bool",
}


def dummy_input(name: str, type_str: str, shape: list[Any], seq: int = 8) -> Any:
    """A small valid input: token ids, an all-ones attention mask, zero token types, random floats."""
    import numpy as np

    dims = [d if isinstance(d, int) and d > 0 else (1 if i == 0 else seq) for i, d in enumerate(shape)]
    dtype = _NUMPY_TYPES.get(type_str, "float32")
    lowered = name.lower()
    if "mask" in lowered:
        return np.ones(dims, dtype=dtype)
    if "type" in lowered:
        return np.zeros(dims, dtype=dtype)
    if "position" in lowered:
        return np.broadcast_to(np.arange(dims[-1]), dims).astype(dtype)
    if dtype.startswith("int") or dtype == "uint8":
        return (np.arange(int(np.prod(dims))) % 97 + 3).reshape(dims).astype(dtype)
    if dtype == "bool":
        return np.ones(dims, dtype=bool)
    return np.random.default_rng(0).standard_normal(dims).astype(dtype)
