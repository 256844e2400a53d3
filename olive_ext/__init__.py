"""olive-ext: fine-tune, convert, quantize, measure and package small language models.

The Python API is the product; the ``olive-ext`` command is a thin shell over it. Every
function takes keyword arguments named like the command's flags::

    import olive_ext

    ft = olive_ext.finetune("pypi:smollm2-135m-instruct", "out/ft", data_files="recipes/data/tone.jsonl",
                            train_split="train[:480]", eval_split="train[480:]",
                            text_template="Phrase: {phrase}\\nTone: {tone}", max_steps=40)
    best = olive_ext.auto_opt(ft.output_dir, "out/onnx")       # measured on the fine-tune's eval split
    bundle = olive_ext.package(best.output_dir, "bundles/tone", zip=True)
    assert olive_ext.verify(bundle.zip_path).ok

Importing the package is cheap (the functions load on first use) and changes no global
logging or warnings state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from olive_ext.version import __version__

if TYPE_CHECKING:  # the names __getattr__ loads, for type checkers and IDEs
    from olive_ext.errors import ConstraintsNotMetError, OliveExtError, RecipeError, UserInputError
    from olive_ext.recipe.schema import Recipe
    from olive_ext.workflows.auto_opt import auto_opt
    from olive_ext.workflows.export import export
    from olive_ext.workflows.finetune import finetune
    from olive_ext.workflows.generate_adapter import generate_adapter
    from olive_ext.workflows.optimize import optimize
    from olive_ext.workflows.package import package, verify
    from olive_ext.workflows.quantize import quantize
    from olive_ext.workflows.run import run, validate

# public name -> module that defines it (imported on first use: `olive-ext --help` stays fast)
_EXPORTS = {
    "finetune": "olive_ext.workflows.finetune",
    "auto_opt": "olive_ext.workflows.auto_opt",
    "optimize": "olive_ext.workflows.optimize",
    "quantize": "olive_ext.workflows.quantize",
    "export": "olive_ext.workflows.export",
    "generate_adapter": "olive_ext.workflows.generate_adapter",
    "package": "olive_ext.workflows.package",
    "verify": "olive_ext.workflows.package",
    "run": "olive_ext.workflows.run",
    "validate": "olive_ext.workflows.run",
    "Recipe": "olive_ext.recipe.schema",
    "OliveExtError": "olive_ext.errors",
    "UserInputError": "olive_ext.errors",
    "RecipeError": "olive_ext.errors",
    "ConstraintsNotMetError": "olive_ext.errors",
}

__all__ = [  # a literal list, so that linters see the lazily loaded names (a test checks it equals _EXPORTS)
    "ConstraintsNotMetError",
    "OliveExtError",
    "Recipe",
    "RecipeError",
    "UserInputError",
    "__version__",
    "auto_opt",
    "export",
    "finetune",
    "generate_adapter",
    "optimize",
    "package",
    "quantize",
    "run",
    "validate",
    "verify",
]


def __getattr__(name: str) -> Any:
    """Load a public name on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'olive_ext' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
