"""Datasets: loading (local files or the hub, split expressions) and formats (template, alpaca, messages, text)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from olive_ext.data.formats import (
    Example,
    answer_problem,
    columns_of,
    detect_format,
    require_answers,
    response_field_of,
    template_fields,
    to_examples,
)
from olive_ext.data.load import load_rows, rows_for_reading
from olive_ext.data.spec import DatasetSpec

__all__ = [
    "Example",
    "answer_problem",
    "detect_format",
    "load_examples",
    "load_rows",
    "require_answers",
    "response_field_of",
    "smoke_prompts",
    "template_fields",
    "to_examples",
]


def load_examples(spec: DatasetSpec, tokenizer: Any = None, pairs: bool = False) -> list[Example]:
    """Load a dataset split and turn every row into an :class:`Example` (``pairs``: as :func:`to_examples`)."""
    return to_examples(load_rows(spec), spec, tokenizer, pairs)


SMOKE_PROMPTS = 3


def smoke_prompts(spec: DatasetSpec, tokenizer: Callable[[], Any] | None = None, chat_only: bool = False) -> list[str]:
    """Up to three prompts of an eval split's first rows: what `verify` generates from to smoke-test a bundle.

    ``tokenizer`` loads the model's tokenizer; it is called only for formats whose prompts its chat template
    writes (alpaca, messages), so a templated dataset needs no transformers import (a cached re-run's 3 s).
    ``chat_only``: none ([]) unless the rows are in such a format."""
    limit = min(spec.max_samples or SMOKE_PROMPTS, SMOKE_PROMPTS)
    rows = rows_for_reading(spec.model_copy(update={"max_samples": limit}))
    chat = detect_format(spec, columns_of(rows)) in ("alpaca", "messages")
    if chat_only and not chat:
        return []
    examples = to_examples(rows, spec, tokenizer() if chat and tokenizer is not None else None)
    return list(dict.fromkeys(e.prompt for e in examples if e.prompt))[:SMOKE_PROMPTS]  # a repeated prompt once
