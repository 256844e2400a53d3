"""`olive-ext package`: an edge deployment bundle from an auto-opt or generate-adapter output."""

from __future__ import annotations

import argparse
import shlex

from olive_ext.cli.common import add_log_level, add_output, option

READS_HUB = False  # built models only: no hub probe (olive_ext/cli/common.py)

NAME = "package"
HELP = "bundle a built model (auto-opt / generate-adapter output) for a device, with a checksummed manifest"
DESCRIPTION = """Write a self-contained folder to copy onto the device: the model, tokenizer and chat
template, adapters, manifest.json (every file's sha256 and size, target, precision, measured
metrics, library versions, recipe hash), run.py (needs only onnxruntime-genai) and a README.

Prints the manifest digest (sha256 of manifest.json); give it to whoever checks the bundle
with `olive-ext verify --expect`. With --sign_key the bundle is also signed with OpenSSF
model-signing and a local elliptic-curve key (bundle.sig; needs `pip install 'olive-ext[sign]'`).

  olive-ext package -m out/auto-opt -o bundles/tone-cpu --zip --name tone --version 1.0.0
  olive-ext package -m out/auto-opt -o bundles/tone-cpu --zip --sign_key key.pem
"""
ORDER = 40


def add_arguments(p: argparse.ArgumentParser) -> None:
    from olive_ext.workflows.package import PackageOptions as O

    option(p, O, "model_name_or_path", "-m", "--model_name_or_path")
    add_output(p, O)
    option(p, O, "zip", action="store_true")
    option(p, O, "name")
    option(p, O, "version")
    option(p, O, "sign_key")
    add_log_level(p)


def main(args: argparse.Namespace) -> int:
    from olive_ext.cli.common import options_from_args
    from olive_ext.console import make_console
    from olive_ext.workflows.package import PackageOptions, run_package

    bundle = run_package(options_from_args(PackageOptions, args))
    console = make_console()
    say = lambda text: console.print(text, highlight=False, soft_wrap=True)  # noqa: E731
    say(f"bundle: {bundle.path}" + (f" and {bundle.zip_path}" if bundle.zip_path else ""))
    say(f"manifest digest: sha256:{bundle.digest}")
    if bundle.signature_path:
        say(f"signed: {bundle.signature_path} (model-signing, key {args.sign_key})")
    check = f"olive-ext verify {shlex.quote(str(bundle.zip_path or bundle.path))} --expect sha256:{bundle.digest}"
    say(f"check it with: {check}" + (" --public_key <public key>" if bundle.signature_path else ""))
    return 0
