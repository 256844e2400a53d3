"""`olive-ext package`: an edge deployment bundle from an auto-opt or generate-adapter output."""

from __future__ import annotations

import argparse

from olive_ext.cli.common import add_log_level, add_output

NAME = "package"
HELP = "bundle a built model (auto-opt / generate-adapter output) for a device, with a checksummed manifest"
DESCRIPTION = """Write a self-contained folder to copy onto the device: the model, tokenizer and chat
template, adapters, manifest.json (every file's sha256 and size, target, precision, measured
metrics, library versions, recipe hash), run.py (needs only onnxruntime-genai) and a README.

  olive-ext package -m out/auto-opt -o bundles/tone-cpu --zip --name tone --version 1.0.0
"""
ORDER = 40


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model_name_or_path", required=True, help="auto-opt or generate-adapter output folder")
    add_output(p)
    p.add_argument(
        "--zip", action="store_true", help="also write <output>.zip (deterministic: same inputs, same bytes)"
    )
    p.add_argument("--name", default=None, help="bundle name (default: the source folder's name)")
    p.add_argument("--version", default="0.1.0", help="bundle version written to the manifest")
    add_log_level(p)


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from olive_ext.console import make_console
    from olive_ext.deploy.bundle import package

    out = package(
        Path(args.model_name_or_path), Path(args.output_path), args.name, args.version, args.zip, args.overwrite
    )
    console = make_console()
    console.print(f"bundle: {out}" + (f" and {out.with_suffix('.zip')}" if args.zip else ""))
    console.print(f"check it with: olive-ext verify {out.with_suffix('.zip') if args.zip else out}")
    return 0
