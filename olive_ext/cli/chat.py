"""`olive-ext chat`: try a built model from the terminal, streaming tokens."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from olive_ext.cli.common import add_log_level

NAME = "chat"
HELP = "chat with a built onnxruntime-genai model (auto-opt, generate-adapter output or a bundle)"
DESCRIPTION = """Stream answers from a built model with its own chat template; generation stops at the
model's end-of-turn token.

  olive-ext chat -m out/onnx
  olive-ext chat -m out/multi --adapter tone --prompt "I love this!"
"""
ORDER = 60


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-m",
        "--model_name_or_path",
        required=True,
        help="a genai model folder, or an olive-ext output/bundle folder holding one in model/",
    )
    p.add_argument("--adapter", default=None, help="name of an adapter to activate")
    p.add_argument("--prompt", default=None, help="one prompt; without it, read prompts from the terminal")
    p.add_argument("--system", default=None, help="system message")
    p.add_argument("--max_new_tokens", type=int, default=256)
    add_log_level(p)


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from olive_ext.errors import UserInputError
    from olive_ext.models.folder import MODEL_CONFIG
    from olive_ext.onnx.runtime import genai

    root = Path(args.model_name_or_path)
    folder = root / "model" if (root / "model" / "genai_config.json").exists() else root
    if not (folder / "genai_config.json").exists():
        raise UserInputError(f"{root} holds no onnxruntime-genai model (genai_config.json not found)")
    adapters = _adapter_files(root, MODEL_CONFIG)
    if args.adapter and args.adapter not in adapters:
        known = ", ".join(sorted(adapters)) or "none"
        raise UserInputError(f"adapter {args.adapter!r} not found in {root}; adapters there: {known}")
    genai()  # import through olive-ext first: telemetry off
    template = _bundle_script()
    chat = template.Chat(str(folder), {args.adapter: adapters[args.adapter]} if args.adapter else None)
    if args.prompt is not None:
        chat.answer(args.prompt, args.adapter, args.system, args.max_new_tokens)
    else:
        template.repl(chat, args.adapter, args.system, args.max_new_tokens)
    return 0


def _bundle_script() -> Any:
    """The bundle's run.py, loaded as a module: the chat command and bundles share one implementation."""
    import importlib.util
    from importlib import resources

    path = resources.files("olive_ext.deploy").joinpath("templates/run.py")
    spec = importlib.util.spec_from_file_location("olive_ext_bundle_run", str(path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _adapter_files(root: Path, model_config: str) -> dict[str, Path]:
    """name -> .onnx_adapter path, from model_config.json's `adapters` or an adapters/ folder."""
    import json

    found: dict[str, Path] = {p.stem: p for p in (root / "adapters").glob("*.onnx_adapter")}
    config = root / model_config
    if config.exists():
        for name, rel in (json.loads(config.read_text()).get("adapters") or {}).items():
            found[name] = root / rel
    return found
