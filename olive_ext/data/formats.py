"""Turning dataset rows into prompt/response examples: text templates, alpaca, chat messages, plain text.

Every format yields :class:`Example` with the text the model sees before the answer
(``prompt``), the text the loss covers (``response``), and the bare expected answer
(``reference``) that exact-match accuracy compares generations against.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from olive_ext.data.spec import DatasetSpec
from olive_ext.errors import UserInputError

ALPACA_PROMPT = "### Instruction:\n{instruction}\n\n{input_block}### Response:\n"


@dataclass(frozen=True)
class Example:
    """One training/eval example. ``text`` is ``prompt + response``."""

    prompt: str
    response: str
    reference: str | None = None

    @property
    def text(self) -> str:
        """The whole example as one string: prompt followed by response."""
        return self.prompt + self.response


def template_fields(template: str) -> list[str]:
    """Placeholder names in a ``{col}`` template, in order."""
    try:
        return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None and f != ""]
    except ValueError as e:
        raise UserInputError(
            f"text template {template!r} is malformed: {e}", hint="escape literal braces as {{ }}"
        ) from e


def response_field_of(spec: DatasetSpec) -> str | None:
    """The column holding the answer: ``response_field``, else a template's trailing placeholder."""
    if spec.response_field:
        return spec.response_field
    if spec.text_template:
        fields = template_fields(spec.text_template)
        if fields and spec.text_template.rstrip().endswith("{" + fields[-1] + "}"):
            return fields[-1]
    return None


def detect_format(spec: DatasetSpec, columns: Iterable[str]) -> str:
    """The format to use: the spec's, or one inferred from the columns."""
    cols = set(columns)
    if spec.format != "auto":
        return spec.format
    if spec.text_template:
        return "template"
    if spec.messages_field in cols:
        return "messages"
    if {"instruction", "output"} <= cols:
        return "alpaca"
    if spec.text_field or "text" in cols:
        return "text"
    raise UserInputError(
        f"cannot tell how to turn rows into text; the data has columns: {', '.join(sorted(cols))}",
        hint="give --text_template '...{column}...', --text_field COLUMN, or --use_chat_template for a messages column",
    )


def to_examples(rows: Any, spec: DatasetSpec, tokenizer: Any = None) -> list[Example]:
    """Examples for every row (``rows`` is a datasets.Dataset or a list of dicts)."""
    columns = list(rows.column_names) if hasattr(rows, "column_names") else list(rows[0].keys() if rows else [])
    fmt = detect_format(spec, columns)
    if fmt == "template":
        return _from_template(rows, spec, columns)
    if fmt == "alpaca":
        return [_alpaca(row, tokenizer) for row in rows]
    if fmt == "messages":
        _require_column(spec.messages_field, columns, "--use_chat_template / format messages")
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise UserInputError("the messages format needs a tokenizer with a chat template; this model has none")
        return [_messages(row[spec.messages_field], tokenizer) for row in rows]
    field = spec.text_field or "text"
    _require_column(field, columns, "--text_field")
    return [Example("", str(row[field])) for row in rows]


def _require_column(name: str, columns: list[str], flag: str) -> None:
    if name not in columns:
        raise UserInputError(f"{flag} names column {name!r}, which the data lacks; it has: {', '.join(columns)}")


def _from_template(rows: Any, spec: DatasetSpec, columns: list[str]) -> list[Example]:
    template = spec.text_template or ""
    fields = template_fields(template)
    missing = [f for f in fields if f not in columns]
    if missing:
        raise UserInputError(
            f"text template names column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}, "
            f"which the data lacks; it has: {', '.join(columns)}"
        )
    answer = response_field_of(spec)
    cut = template.rstrip().rfind("{" + answer + "}") if answer else -1
    prompt_part = template[:cut] if answer and cut >= 0 else template
    examples = []
    for row in rows:
        values = {f: "" if row[f] is None else str(row[f]) for f in fields}
        if answer and cut >= 0:
            prompt = prompt_part.format(**values)
            examples.append(Example(prompt, values[answer], values[answer]))
        else:
            examples.append(Example("", template.format(**values)))
    return examples


def _alpaca(row: Mapping[str, Any], tokenizer: Any) -> Example:
    instruction, extra, output = str(row["instruction"]), str(row.get("input") or ""), str(row["output"])
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        user = instruction + (f"\n\n{extra}" if extra else "")
        return _chat_pair([{"role": "user", "content": user}], output, tokenizer)
    prompt = ALPACA_PROMPT.format(instruction=instruction, input_block=f"### Input:\n{extra}\n\n" if extra else "")
    return Example(prompt, output, output)


def _messages(messages: list[Mapping[str, Any]], tokenizer: Any) -> Example:
    msgs = [dict(m) for m in messages]
    if msgs and msgs[-1].get("role") == "assistant":
        return _chat_pair(msgs[:-1], str(msgs[-1]["content"]), tokenizer)
    return Example("", tokenizer.apply_chat_template(msgs, tokenize=False))


def _chat_pair(context: list[dict[str, Any]], answer: str, tokenizer: Any) -> Example:
    """Prompt = context rendered with the generation prompt; response = what the template adds for the answer."""
    prompt = tokenizer.apply_chat_template(context, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*context, {"role": "assistant", "content": answer}], tokenize=False)
    response = full[len(prompt) :] if full.startswith(prompt) else answer
    return Example(prompt, response, answer)
