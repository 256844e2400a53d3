"""`olive-ext package`: a self-contained folder (or deterministic zip) to copy onto the device.

Layout::

    <bundle>/model/        the genai model folder (model.onnx + data, genai_config.json, tokenizer, chat template)
    <bundle>/adapters/     <name>.onnx_adapter files, when the source has adapters
    <bundle>/run.py        a chat script that needs only onnxruntime-genai
    <bundle>/README.md     for whoever receives the bundle
    <bundle>/manifest.json every file's sha256 and size, target, precision, metrics, versions, recipe hash
"""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from olive_ext.deploy.archive import write_zip
from olive_ext.deploy.manifest import text_sha256, write_manifest
from olive_ext.engine.output import staged_output
from olive_ext.errors import UserInputError
from olive_ext.models.folder import MODEL_CONFIG
from olive_ext.version import __version__

_LIBRARIES = ("onnxruntime-genai", "onnxruntime", "onnx", "transformers", "peft", "torch")
_DEFAULT_SMOKE_PROMPTS = ["Hello! Who are you?"]


def chat_template_text(folder: Path) -> str | None:
    """The chat template a model folder carries (chat_template.jinja or tokenizer_config.json)."""
    jinja = folder / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text()
    config = folder / "tokenizer_config.json"
    if config.exists():
        template = json.loads(config.read_text()).get("chat_template")
        return template if isinstance(template, str) else None
    return None


def _source_info(source: Path) -> dict[str, Any]:
    config_path = source / MODEL_CONFIG
    if not config_path.exists():
        raise UserInputError(
            f"{source} is not an olive-ext output folder ({MODEL_CONFIG} is missing)",
            hint="package the output of `olive-ext auto-opt` or `olive-ext generate-adapter`",
        )
    info: dict[str, Any] = json.loads(config_path.read_text())
    if info.get("kind") != "genai" or not (source / "model" / "genai_config.json").exists():
        raise UserInputError(
            f"{source} holds a {info.get('kind')} model; a bundle needs an onnxruntime-genai model",
            hint="run `olive-ext auto-opt` (or generate-adapter) first and package its output",
        )
    return info


def _chosen_candidate(source: Path) -> dict[str, Any]:
    path = source / "candidates.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return next((c for c in data.get("candidates", []) if c.get("chosen")), {})


def _smoke_prompts(source: Path, info: dict[str, Any]) -> list[str]:
    prompts = info.get("smoke_prompts")
    if isinstance(prompts, list) and prompts:
        return [str(p) for p in prompts][:3]
    return list(_DEFAULT_SMOKE_PROMPTS)


def _versions() -> dict[str, str]:
    out = {"olive-ext": __version__}
    for lib in _LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return out


def package(
    source: Path,
    output: Path,
    name: str | None = None,
    version: str = "0.1.0",
    make_zip: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write the bundle folder (and ``<output>.zip`` with ``make_zip``); return the bundle path."""
    info = _source_info(source)
    chosen = _chosen_candidate(source)
    name = name or source.resolve().name
    with staged_output(output, overwrite) as stage:
        shutil.copytree(source / "model", stage / "model")
        adapters = info.get("adapters") or {}
        if adapters:
            (stage / "adapters").mkdir()
            for adapter_name, rel in sorted(adapters.items()):
                shutil.copy2(source / rel, stage / "adapters" / f"{adapter_name}.onnx_adapter")
        run_py = resources.files("olive_ext.deploy").joinpath("templates/run.py").read_text()
        (stage / "run.py").write_text(run_py)
        shipped = chat_template_text(stage / "model")
        finetune = info.get("finetune_chat_template_sha256")
        genai_config = json.loads((stage / "model" / "genai_config.json").read_text())
        recipe = source / "recipe.yaml"
        manifest = {
            "name": name,
            "version": version,
            "target": chosen.get("target")
            or info.get("target")
            or {"device": "cpu", "provider": "CPUExecutionProvider"},
            "precision": info.get("precision"),
            "metrics": chosen.get("metrics") or info.get("metrics") or {},
            "candidate": info.get("candidate"),
            # "speed and size alone: ..." when auto-opt measured no task accuracy (no eval data)
            "selection": info.get("selection", "measured: constraints checked, objective optimized"),
            "libraries": _versions(),
            "recipe_sha256": hashlib.sha256(recipe.read_bytes()).hexdigest() if recipe.exists() else None,
            "chat_template": {
                "file": "model/chat_template.jinja" if (stage / "model" / "chat_template.jinja").exists() else None,
                "sha256": text_sha256(shipped) if shipped is not None else None,
                "finetune_sha256": finetune,
            },
            "eos_token_ids": _as_list(genai_config["model"].get("eos_token_id")),
            "adapters": sorted(adapters),
            "smoke_prompts": _smoke_prompts(source, info),
        }
        (stage / "README.md").write_text(_readme(manifest))
        write_manifest(stage, manifest)
    if make_zip:
        write_zip(output, output.with_suffix(".zip"))
    return output


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, list) else [int(value)]


def _readme(m: dict[str, Any]) -> str:
    metrics = m["metrics"]
    shown = {k: v for k, v in metrics.items() if "." not in k and k not in {"eval_seconds", "load_seconds"}}
    lines = [
        f"# {m['name']} {m['version']}",
        "",
        f"An ONNX model for onnxruntime-genai, built by olive-ext for {m['target']['device']} "
        f"({m['target']['provider']}), precision {m['precision'] or 'see manifest'}.",
        "",
        "## Run it",
        "",
        "```bash",
        "pip install onnxruntime-genai",
        'python run.py --prompt "Hello"',
        *([f'python run.py --adapter {a} --prompt "Hello"' for a in m["adapters"]]),
        "```",
        "",
        "## Check it",
        "",
        "`manifest.json` lists every file with its sha256 and size. With olive-ext installed,",
        "`olive-ext verify <this folder or its zip>` checks the files, loads the model and runs a short generation.",
        "",
        "## Measured when it was built",
        "",
        *(f"- {k}: {v}" for k, v in sorted(shown.items())),
        "",
    ]
    return "\n".join(lines)
