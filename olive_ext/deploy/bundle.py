"""`olive-ext package`: a self-contained folder (or deterministic zip) to copy onto the device.

Layout::

    <bundle>/model/        the genai model folder (model.onnx + data, genai_config.json, tokenizer, chat template)
    <bundle>/adapters/     <name>.onnx_adapter files, when the source has adapters
    <bundle>/run.py        a chat script that needs only onnxruntime-genai
    <bundle>/README.md     for whoever receives the bundle
    <bundle>/manifest.json every file's sha256 and size, target, precision, metrics, versions, recipe hash
    <bundle>/bundle.sig    with a signing key: model-signing's signature over every other file

A GGUF model (an `export --format gguf` output, or an auto-opt output whose chosen model is
a llama.cpp candidate) gets ``model/`` (the .gguf, tokenizer, chat template) and an Ollama
``Modelfile`` instead of ``run.py`` and adapters (see :mod:`olive_ext.deploy.modelfile`);
manifest, digest, signature and ``verify`` are the same.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from olive_ext.artifacts import article, hash_file
from olive_ext.deploy.archive import write_zip, zip_path_of
from olive_ext.deploy.files import plain_name, scan_tree
from olive_ext.deploy.manifest import text_sha256, write_manifest
from olive_ext.deploy.modelfile import TokenizerFiles, gguf_manifest_fields, gguf_readme, write_modelfile
from olive_ext.deploy.signature import check_signing_key, sign_bundle
from olive_ext.engine.output import check_apart, ensure_output_free, staged_output
from olive_ext.errors import UserInputError
from olive_ext.evaluate.backends.llama_cpp import gguf_in
from olive_ext.models.folder import COMPOSITE_HINT, ENCODER_HINT, FILE_DIGESTS, MODEL_CONFIG
from olive_ext.version import __version__, installed_version

_LIBRARIES = ("onnxruntime-genai", "onnxruntime", "onnx", "llama-cpp-python", "gguf", "transformers", "peft", "torch")
_DEFAULT_SMOKE_PROMPTS = ["Hello! Who are you?"]
logger = logging.getLogger("olive_ext")


def chat_template_text(folder: Path, tokenizer_config: dict[str, Any] | None = None) -> str | None:
    """The chat template a model folder carries (chat_template.jinja or tokenizer_config.json).

    ``tokenizer_config``: the folder's tokenizer_config.json already read, so it is not read again.
    """
    jinja = folder / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text()
    config = folder / "tokenizer_config.json"
    if tokenizer_config is not None or config.exists():
        data = tokenizer_config if tokenizer_config is not None else json.loads(config.read_text())
        template = data.get("chat_template") if isinstance(data, dict) else None
        return template if isinstance(template, str) else None
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UserInputError(
            f"{path} is not valid JSON ({e})", hint="package an unmodified olive-ext output folder"
        ) from e


def _source_info(source: Path) -> dict[str, Any]:
    config_path = source / MODEL_CONFIG
    if not config_path.is_file():
        raise UserInputError(
            f"{source} is not an olive-ext output folder ({MODEL_CONFIG} is missing)",
            hint="package the output of `olive-ext auto-opt`, `generate-adapter` or `export` (for a .gguf file: "
            "olive-ext export -m MODEL.gguf --quant Q4_K_M -o OUT, then package OUT)",
        )
    info = _read_json(config_path)
    if isinstance(info, dict) and info.get("kind") == "gguf" and gguf_in(source / "model") is not None:
        return info  # a llama.cpp model written by gguf_export (export --format gguf, or an auto-opt choice)
    genai_config = source / "model" / "genai_config.json"
    if not isinstance(info, dict) or info.get("kind") != "genai" or not genai_config.is_file():
        kind = info.get("kind") if isinstance(info, dict) else None
        raise UserInputError(
            f"{source} holds {article(str(kind))} {kind} model; a bundle needs an onnxruntime-genai model or a GGUF "
            "from `olive-ext export --format gguf`",
            hint=COMPOSITE_HINT if kind == "composite" else ENCODER_HINT if kind == "onnx" else "run `olive-ext "
            "auto-opt` (or generate-adapter, or export --format gguf) on an LLM first and package its output",
        )
    return info


def _check_regular_files(model: Path) -> None:
    """The model folder holds regular files only, as olive-ext writes it: a link was copied as what it points to (a
    link to /dev/zero filled the disk; one to a private file outside put it in the bundle, readable by all), and a
    FIFO was a shutil traceback. verify refuses the same things in a bundle."""
    problems = scan_tree(model).problems
    if problems:
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise UserInputError(
            f"{model} holds what a bundle does not carry: {'; '.join(problems[:3])}{more}; nothing was written",
            hint="a bundle holds regular files only: replace a link by a copy of its file (cp --remove-destination "
            "\"$(readlink -f LINK)\" LINK) or remove it",
        )


def _adapters(source: Path, info: dict[str, Any]) -> dict[str, Path]:
    """The source's adapters by name; names become file names and paths must stay inside the source."""
    adapters = info.get("adapters") or {}
    if not isinstance(adapters, dict):
        raise UserInputError(f"{source / MODEL_CONFIG}: 'adapters' must map names to files")
    out = {}
    root = source.resolve()
    for name, rel in sorted(adapters.items()):
        path = (source / str(rel)).resolve()
        if not plain_name(name):
            raise UserInputError(
                f"{source / MODEL_CONFIG}: adapter name {name!r} is not a plain file name",
                hint="adapter names use letters, digits, '.', '_' and '-' (no '/', no leading dot)",
            )
        if not path.is_relative_to(root) or not path.is_file():
            raise UserInputError(
                f"{source / MODEL_CONFIG}: adapter {name!r} names {rel!r}, which is not a file inside {source}",
                hint="package an unmodified olive-ext output folder",
            )
        if path.suffix != ".onnx_adapter":  # a safetensors/npz adapter was shipped renamed .onnx_adapter
            raise UserInputError(
                f"adapter {name!r} of {source} is {path.name}, not an onnxruntime adapter (.onnx_adapter): it was "
                "written with generate-adapter --adapter_format safetensors or numpy, for your own runtime",
                hint="to package it, run generate-adapter again with --adapter_format onnx_adapter (the default)",
            )
        out[name] = path
    return out


def _chosen_candidate(source: Path) -> dict[str, Any]:
    path = source / "candidates.json"
    if not path.exists():
        return {}
    data = _read_json(path)
    candidates = data.get("candidates", []) if isinstance(data, dict) else []
    return next((c for c in candidates if isinstance(c, dict) and c.get("chosen")), {})


def _smoke_prompts(info: dict[str, Any], template: str | None) -> list[str]:
    """The eval data's first prompts (rendered as the model was measured on them); without eval data, a greeting
    in the model's chat template (sent bare, a chat model rambled on and verify failed a good bundle)."""
    prompts = info.get("smoke_prompts")
    if isinstance(prompts, list) and prompts:
        return [str(p) for p in prompts][:3]
    return [_in_template(p, template) for p in _DEFAULT_SMOKE_PROMPTS]


def _in_template(text: str, template: str | None) -> str:
    """``text`` as a user turn rendered by the chat template (as transformers renders one, in jinja2's sandbox),
    ready for the answer; the bare text when there is no template or it cannot render."""
    if not template:
        return text
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template).render(messages=[{"role": "user", "content": text}],
                                                add_generation_prompt=True, bos_token="", eos_token="")  # fmt: skip
    except Exception:  # any template failure: the bare text still smoke-tests the model
        return text


def _versions() -> dict[str, str]:
    out = {"olive-ext": __version__}
    return out | {lib: v for lib in _LIBRARIES if (v := installed_version(lib)) is not None}


BUNDLE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"  # what an Ollama model name and a file name both take
BUNDLE_VERSION = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,49}$"


def default_bundle_name(source: Path) -> str:
    """The source folder's name as a bundle name: characters BUNDLE_NAME refuses become '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", source.resolve().name).strip("-._")
    return name[:100] or "model"


def package(
    source: Path,
    output: Path,
    name: str | None = None,
    version: str = "0.1.0",
    make_zip: bool = False,
    overwrite: bool = False,
    sign_key: Path | None = None,
) -> Path:
    """Write the bundle folder (and ``<output>.zip`` with ``make_zip``); return the bundle path.

    With ``sign_key`` (an elliptic-curve private key, PEM) the bundle is signed with model-signing
    and the signature written into it as ``bundle.sig``. Everything is checked before any work:
    the source, free outputs (the zip included) and the key.
    """
    archive = zip_path_of(output) if make_zip else None
    check_apart(source, output)
    _check_outputs_free(output, archive, overwrite)
    info = _source_info(source)
    _check_regular_files(source / "model")
    adapters = _adapters(source, info)
    if sign_key is not None:
        check_signing_key(sign_key)
    chosen = _chosen_candidate(source)
    name = name or default_bundle_name(source)
    if name in adapters:  # serve answers the base and each adapter by name: it refused to start on this bundle
        raise UserInputError(
            f"the bundle's name {name!r} is also an adapter's name in {source}; nothing was written",
            hint=f"choose another --name (the adapters: {', '.join(sorted(adapters))})",
        )
    with staged_output(output, overwrite) as stage:
        if info.get("kind") == "gguf":
            shutil.copytree(source / "model", stage / "model")
            files = TokenizerFiles.read(stage / "model")  # read once: manifest and Modelfile both use them
            template = chat_template_text(stage / "model", files.config)
            manifest = {
                **_manifest(source, stage, info, chosen, name, version, [], template),
                **gguf_manifest_fields(stage, files),
            }
            converted = write_modelfile(stage, manifest["gguf_file"], template, files,
                                        manifest["eos_token_ids"], manifest["context_length"])  # fmt: skip
            if template and converted.family == "fallback":  # `ollama run` users get unformatted prompts: said now
                logger.warning("Modelfile: %s", converted.note)
            (stage / "README.md").write_text(gguf_readme(manifest, _measured(manifest)))
        else:
            _copy_model(source, stage, adapters)
            template = chat_template_text(stage / "model")
            manifest = _manifest(source, stage, info, chosen, name, version, sorted(adapters), template)
            (stage / "README.md").write_text(_readme(manifest))
        _check_template_as_fine_tuned(source, manifest["chat_template"])
        if template is None:  # said now, not first by verify's failed check or by a chat user's error
            logger.warning("%s has no chat template: chat and serve's /v1/chat/completions will refuse the bundle and "
                           "verify fails its chat template check; copy the base model's chat template into the "
                           "model folder (chat_template.jinja) before packaging", source)  # fmt: skip
        _readable_by_all(stage)
        written = write_manifest(stage, manifest)
        _check_measured_files(source, info, written["files"])
        if sign_key is not None:
            sign_bundle(stage, sign_key)
        if archive is not None:
            _check_outputs_free(None, archive, overwrite)  # again: it may have appeared while we worked
            write_zip(stage, archive, top=output.name)
    old_zip = zip_path_of(output)
    if archive is None and overwrite and old_zip.is_file():  # it holds the bundle replaced, and verifies as one
        logger.warning("%s, beside the bundle, was left as it was (this package wrote no zip) and may hold the bundle "
                       "replaced: remove it, or package again with --zip --overwrite", old_zip)  # fmt: skip
    return output


# files whose change makes another model than the one measured; a changed config or tokenizer file is said
_WEIGHT_SUFFIXES = (".onnx", ".data", ".gguf", ".safetensors", ".onnx_adapter", ".bin")


def _check_measured_files(source: Path, info: dict[str, Any], bundled: list[dict[str, Any]]) -> None:
    """Refuse a bundle whose weights differ from those the source's output recorded (the files auto-opt measured
    and wrote): its manifest would give one model's metrics to another. A changed config file is warned of."""
    recorded = info.get(FILE_DIGESTS)
    if not isinstance(recorded, dict):
        return  # written before olive-ext recorded digests, or by a command that measures nothing
    now = {e["path"]: e["sha256"] for e in bundled}
    changed = sorted(rel for rel, sha in recorded.items() if now.get(rel) != sha)
    # a weight file added beside the measured ones: genai_config.json pointed at it packaged another model under
    # the measured one's metrics, with a warning about the config only
    added = sorted(rel for rel in now if rel.endswith(_WEIGHT_SUFFIXES) and rel not in recorded)
    weights = [rel for rel in changed if rel.endswith(_WEIGHT_SUFFIXES)] + added
    if weights:
        what = ", ".join(f"{rel} ({'added' if rel in added else 'missing' if rel not in now else 'changed'})"
                         for rel in weights[:3])  # fmt: skip
        raise UserInputError(
            f"{source} was changed after it was measured: {what}{' ...' if len(weights) > 3 else ''}; the bundle's "
            "manifest would give the measured metrics to another model, so nothing was written",
            hint=f"run the command that wrote {source} again (its steps are reused from the cache) to measure the "
            "model as it is now, or restore the files",
        )
    if changed:
        logger.warning("%s: %s changed after the model was measured; the bundle holds the files as they are now",
                       source, ", ".join(rel if rel in now else f"{rel} (missing)" for rel in changed))  # fmt: skip


def _check_template_as_fine_tuned(source: Path, record: dict[str, Any]) -> None:
    """Refuse a model folder whose chat template is not the one it was fine-tuned (and measured) with: the bundle
    was written, and its own verify then failed ("differs from the one used in fine-tuning")."""
    if record.get("finetune_sha256") and record.get("sha256") and record["sha256"] != record["finetune_sha256"]:
        raise UserInputError(
            f"the chat template in {source / 'model'} is not the one the model was fine-tuned and measured with: "
            "it would answer other prompts than those measured, and the bundle would fail verify; nothing was "
            "written",
            hint="restore the template (the fine-tune output's adapter/ holds it), or fine-tune with the new one",
        )


def _readable_by_all(stage: Path) -> None:
    """Files 0644 and folders 0755, as a zip of the bundle has them: onnxruntime's quantizer writes its
    model.onnx.data 0600, and a bundle folder copied to a device or a web server was unreadable there."""
    for path in stage.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


def _check_outputs_free(output: Path | None, archive: Path | None, overwrite: bool) -> None:
    if output is not None:
        ensure_output_free(output, overwrite)
    if archive is None or not (archive.is_symlink() or archive.exists()):
        return
    if not overwrite:
        raise UserInputError(
            f"{archive} already exists; nothing was written",
            hint="pass --overwrite to replace it, or choose another --output_path",
        )
    if archive.is_dir() and not archive.is_symlink():
        raise UserInputError(
            f"{archive} is a folder, and --zip writes a file there; nothing was written",
            hint="move the folder away or choose another --output_path",
        )


def _copy_model(source: Path, stage: Path, adapters: dict[str, Path]) -> None:
    shutil.copytree(source / "model", stage / "model")
    if adapters:
        (stage / "adapters").mkdir()
        for adapter_name, path in adapters.items():
            shutil.copy2(path, stage / "adapters" / f"{adapter_name}.onnx_adapter")
    run_py = resources.files("olive_ext.deploy").joinpath("templates/run.py").read_text()
    (stage / "run.py").write_text(run_py)


def _manifest(
    source: Path,
    stage: Path,
    info: dict[str, Any],
    chosen: dict[str, Any],
    name: str,
    version: str,
    adapters: list[str],
    shipped: str | None,
) -> dict[str, Any]:
    config_file = stage / "model" / "genai_config.json"
    genai_config = _read_json(config_file) if config_file.is_file() else {}
    recipe = source / "recipe.yaml"
    return {
        "name": name,
        "version": version,
        "target": chosen.get("target") or info.get("target") or {"device": "cpu", "provider": "CPUExecutionProvider"},
        "precision": info.get("precision"),
        "metrics": chosen.get("metrics") or info.get("metrics") or {},
        "candidate": info.get("candidate"),
        # "speed and size alone: ..." when auto-opt measured no task accuracy (no eval data)
        "selection": info.get("selection", "measured: constraints checked, objective optimized"),
        "libraries": _versions(),
        "recipe_sha256": hash_file(recipe) if recipe.exists() else None,
        "chat_template": {
            "file": "model/chat_template.jinja" if (stage / "model" / "chat_template.jinja").exists() else None,
            "sha256": text_sha256(shipped) if shipped is not None else None,
            "finetune_sha256": info.get("finetune_chat_template_sha256"),
        },
        "eos_token_ids": _as_list(genai_config.get("model", {}).get("eos_token_id")),
        "adapters": adapters,
        "smoke_prompts": _smoke_prompts(info, shipped),
        # the prompt form the model was fine-tuned and measured on, where it is a text template, not chat turns
        **({"text_template": info["text_template"]} if isinstance(info.get("text_template"), str) else {}),
    }


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, list) else [int(value)]


def _measured(m: dict[str, Any]) -> list[str]:
    shown = {k: v for k, v in m["metrics"].items() if "." not in k and k not in {"eval_seconds", "load_seconds"}}
    return [f"- {k}: {v}" for k, v in sorted(shown.items())]


def _readme(m: dict[str, Any]) -> str:
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
        "`manifest.json` lists every file with its sha256 and size; the bundle's digest is the sha256 of",
        "`manifest.json` itself. With olive-ext installed, `olive-ext verify <this folder or its zip> --expect",
        "<digest>` checks the digest the sender gave you and every file, loads the model and runs a short",
        "generation. When `bundle.sig` is present, add `--public_key <the sender's public key>` to check the",
        "signature (needs `pip install 'olive-ext[sign]'`; no network).",
        "",
        "## Measured when it was built",
        "",
        *_measured(m),
        "",
    ]
    return "\n".join(lines)
