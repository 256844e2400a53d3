"""The layout holds: the import contract (layers) is kept, and the command line's flags come from the options models."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from olive_ext.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "olive_ext"


def test_import_contract_is_kept() -> None:
    """import-linter's layers contract (pyproject.toml): no lower layer imports a higher one, no cycles between them."""
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


@pytest.mark.parametrize(
    ("command", "model"),
    [
        ("auto-opt", "olive_ext.workflows.auto_opt:AutoOptOptions"),
        ("finetune", "olive_ext.workflows.finetune:FinetuneRunOptions"),
        ("quantize", "olive_ext.workflows.quantize:QuantizeOptions"),
        ("generate-adapter", "olive_ext.workflows.generate_adapter:GenerateAdapterOptions"),
        ("package", "olive_ext.workflows.package:PackageOptions"),
        ("export", "olive_ext.workflows.export:ExportOptions"),
        ("chat", "olive_ext.workflows.chat:ChatOptions"),
        ("run", "olive_ext.workflows.run:RunOptions"),
        ("serve", "olive_ext.serve.options:ServeOptions"),
    ],
)
def test_flags_take_their_defaults_and_help_from_the_options_model(command: str, model: str) -> None:
    import importlib

    module, name = model.split(":")
    options = getattr(importlib.import_module(module), name)
    flags = {a.dest: a for a in _subparser(command)._actions if a.option_strings}
    checked = 0
    for field, info in options.model_fields.items():
        action = flags.get(field)
        if action is None or action.required or info.is_required():  # required: no default (a YAML may give it)
            continue
        checked += 1
        assert action.default == options.default_of(field), (command, field)
        assert (info.description or "")[:40] in (action.help or "").replace("%%", "%"), (command, field)
    assert checked >= 3, f"{command}: only {checked} flags map to its options model"


def test_in_function_imports_of_our_modules_say_why_or_serve_startup() -> None:
    """Imports of olive_ext modules inside functions are for start-up time (cli/, the lazy package root)
    or carry a one-line reason on the line before; elsewhere they hide layer edges."""
    unexplained = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith("olive_ext/cli/") or rel == "olive_ext/__init__.py" or "/templates/" in rel:
            continue
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("olive_ext"):
                    before = lines[inner.lineno - 2].strip() if inner.lineno > 1 else ""
                    same = lines[inner.lineno - 1]
                    if not (before.startswith("#") or "#" in same):
                        unexplained.append(f"{rel}:{inner.lineno} {inner.module}")
    assert not unexplained, "in-function imports without a reason:\n" + "\n".join(sorted(set(unexplained)))
