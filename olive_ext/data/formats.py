"""Turning dataset rows into prompt/response examples: text templates, alpaca, chat messages, plain text.

Every format yields :class:`Example` with the text the model sees before the answer
(``prompt``), the text the loss covers (``response``), and the bare expected answer
(``reference``) that exact-match accuracy compares generations against.

Chat rows may be OpenAI-style ``messages`` (``role``/``content``) or ShareGPT ``conversations``
(``from``/``value``, roles human/gpt/system/observation/function_call, read as LLaMA-Factory
reads them). A multi-turn row trains on every assistant turn; its last turn is the answer.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import re
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from olive_ext.data.load import first_row_columns, local_files, rows_for_reading
from olive_ext.data.spec import DatasetSpec
from olive_ext.errors import UserInputError

logger = logging.getLogger("olive_ext")

_ALPACA = {"instruction", "output"}  # the columns that make a row alpaca
ALPACA_PROMPT = "### Instruction:\n{instruction}\n\n{input_block}### Response:\n"
SHAREGPT_FIELD = "conversations"  # LLaMA-Factory's default column for ShareGPT rows
# ShareGPT role tags (LLaMA-Factory's defaults) -> chat-template roles
SHAREGPT_ROLES = {
    "human": "user",
    "gpt": "assistant",
    "system": "system",
    "observation": "tool",
    "function_call": "assistant",
}
# role names of role/content rows written by other tools -> the chat-template roles (lower-cased first)
_ROLE_ALIASES = {**SHAREGPT_ROLES, "model": "assistant", "bot": "assistant", "ai": "assistant"}
# role names ShareGPT files also use in "from" (Unsloth's and many hub datasets' user/assistant)
_FROM_ALIASES = {"user": "human", "assistant": "gpt", "tool": "observation"}
_SHAREGPT_ASKS = ("human", "observation")  # even turns (after an optional leading system message)
_SHAREGPT_ANSWERS = ("gpt", "function_call")  # odd turns
# LLaMA-Factory's dataset_info.json tags -> the values olive-ext reads as they are (the role names above)
READ_TAGS = {
    "role_tag": {"from", "role"},
    "content_tag": {"value", "content"},
    "user_tag": {"human", "user"},
    "assistant_tag": {"gpt", "assistant", "model", "bot", "ai"},
    "system_tag": {"system"},
    "observation_tag": {"observation", "tool"},
    "function_tag": {"function_call"},
}


@dataclass(frozen=True)
class Example:
    """One training/eval example. ``text`` is ``prompt + response``.

    ``answer_end`` is literal text a template puts after the answer column (an end-of-turn
    such as ``<|im_end|>``): it ends ``response``, so the model learns to stop there, and
    generations are cut at it before exact match. ``prompt_turns`` splits a multi-turn chat's
    ``prompt`` into context, answer, context, ..., context pieces: the loss covers the earlier
    answers too. Empty means the prompt is all context.
    """

    prompt: str
    response: str
    reference: str | None = None
    answer_end: str = ""
    prompt_turns: tuple[str, ...] = ()
    pair: str | None = None  # an encoder's second text (input_cols' second column): the tokenizer encodes a pair

    @property
    def text(self) -> str:
        """The whole example as one string: prompt followed by response."""
        return self.prompt + self.response

    @property
    def encoder_input(self) -> str | tuple[str, str]:
        """What an encoder reads: the prompt (the whole text when there is none, not the label), or the pair."""
        return (self.prompt, self.pair) if self.pair is not None else (self.prompt or self.text)


def encode_encoder_input(tokenizer: Any, text: str | tuple[str, str], **kwargs: Any) -> Any:
    """``text`` (one text, or a pair encoded with the tokenizer's separator and segment ids) through ``tokenizer``."""
    return tokenizer(*text, **kwargs) if isinstance(text, tuple) else tokenizer(text, **kwargs)


def leading_bos(tokenizer: Any) -> int | None:
    """The BOS id the tokenizer puts before a text (None when it adds none, or has no BOS)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bos if bos is not None and probe[:1] == [bos] else None


def encode_prompt(tokenizer: Any, text: str, bos: int | bool | None = True) -> list[int]:
    """Token ids of a prompt, as fine-tuning, evaluation and the parity check all see it: the tokenizer's BOS
    when it adds one (once: chat-templated text may already hold it), never the EOS some tokenizers append
    (``add_eos_token``), which would end the sequence before the answer.

    ``bos``: the tokenizer's :func:`leading_bos` when already known (True: look it up).
    """
    ids: list[int] = list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []
    first = leading_bos(tokenizer) if bos is True else bos
    if first is not None and first is not False and ids[:1] != [first]:
        ids = [first, *ids]
    return ids


def template_fields(template: str) -> list[str]:
    """Placeholder names in a ``{col}`` template, in order."""
    return [f for _, f, _, _ in _parse_template(template) if f is not None and f != ""]


def _parse_template(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    try:
        return list(string.Formatter().parse(template))
    except ValueError as e:
        raise UserInputError(
            f"text template {template!r} is malformed: {e}", hint="escape literal braces as {{ }}"
        ) from e


def response_field_of(spec: DatasetSpec) -> str | None:
    """The column holding the answer: ``response_field``, else a template's last placeholder.

    Literal text after the last placeholder (an end-of-turn marker) ends the answer.
    """
    if spec.response_field:
        return spec.response_field
    if spec.text_template:
        fields = template_fields(spec.text_template)
        if fields:
            return fields[-1]
    return None


def messages_column(spec: DatasetSpec, columns: Iterable[str]) -> str | None:
    """The column holding chat rows: ``messages_field``, else ShareGPT's ``conversations``."""
    cols = set(columns)
    if spec.messages_field in cols:
        return spec.messages_field
    if spec.messages_field == DatasetSpec.model_fields["messages_field"].default and SHAREGPT_FIELD in cols:
        return SHAREGPT_FIELD
    return None


def detect_format(spec: DatasetSpec, columns: Iterable[str]) -> str:
    """The format to use: the spec's, or one inferred from the columns."""
    cols = set(columns)
    default_field = spec.messages_field == DatasetSpec.model_fields["messages_field"].default
    if spec.format == "messages" and default_field and not messages_column(spec, cols) and cols >= _ALPACA:
        return "alpaca"  # --use_chat_template on alpaca rows: they are rendered with the chat template anyway
    if spec.format != "auto":
        return spec.format
    if spec.text_template:
        return "template"
    if messages_column(spec, cols):
        return "messages"
    if cols >= _ALPACA:
        return "alpaca"
    if spec.text_field or "text" in cols:
        return "text"
    if cols >= _PROMPT_COMPLETION:  # TRL's prompt-completion rows: refused ("cannot tell") with nothing else said
        return "template"
    raise UserInputError(
        f"cannot tell how to turn rows into text; the data has columns: {', '.join(sorted(cols))}",
        hint="give --text_template '...{column}...', --text_field COLUMN, or --messages_field COLUMN for chat "
        "messages (role/content or ShareGPT from/value)",
    )


_PROMPT_COMPLETION = {"prompt", "completion"}


def with_template(spec: DatasetSpec) -> DatasetSpec:
    """``spec`` read as a template: its own, or TRL's prompt-completion form (the completion is the answer)."""
    return spec if spec.text_template else spec.model_copy(update={"text_template": "{prompt}{completion}"})


def columns_of(rows: Any) -> list[str]:
    """Column names of a datasets.Dataset or a list of dicts."""
    return list(rows.column_names) if hasattr(rows, "column_names") else list(rows[0].keys() if rows else [])


def to_examples(rows: Any, spec: DatasetSpec, tokenizer: Any = None, pairs: bool = False) -> list[Example]:
    """Examples for every row (``rows`` is a datasets.Dataset or a list of dicts). ``pairs``: the caller feeds an
    encoder, which reads a text pair (input_cols with two columns); elsewhere (an LLM's text) a pair is refused:
    its second text would be dropped."""
    if spec.input_cols and len(spec.input_cols) == 2 and not pairs:
        first, second = spec.input_cols
        raise UserInputError(
            f"input_cols {first!r} and {second!r} are a text pair, which a sentence-pair classifier's tokenizer "
            "encodes; a language model reads one text",
            hint=f"join them with a text template, e.g. --text_template '{{{first}}}\\n{{{second}}}\\n"
            f"{{{spec.response_field or 'label'}}}'",
        )
    with _nested_rows_said(rows):
        return _examples(rows, spec, tokenizer)


@contextlib.contextmanager
def _nested_rows_said(rows: Any) -> Iterator[None]:
    """A UserInputError about ``rows`` gets :func:`_nested_rows`'s hint where that finds rows under a key."""
    try:
        yield
    except UserInputError as e:
        nested = _nested_rows(rows)
        if nested is None:
            raise
        raise UserInputError(e.message, hint=nested) from None


def _nested_rows(rows: Any) -> str | None:
    """A hint for one JSON document holding its rows as a list under a key ({"version": 1, "data": [...]}): read
    as one row whose columns are the document's keys, it lacked every column the user named."""
    if len(rows) != 1:
        return None
    row = rows[0]
    lists = [k for k, v in row.items() if isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v)]
    if len(lists) != 1:
        return None
    key, count = lists[0], len(row[lists[0]])
    rows_said = f"{count} row{'s' if count != 1 else ''}, with columns {', '.join(map(repr, row[key][0]))}"
    return (f"the file is one JSON object whose rows are the list under {key!r} ({rows_said}): write that list as "
            "JSON lines, one object per line, and pass that file")  # fmt: skip


def _examples(rows: Any, spec: DatasetSpec, tokenizer: Any) -> list[Example]:
    columns = columns_of(rows)
    if spec.input_cols:
        return _from_input_cols(rows, spec, columns)
    fmt = detect_format(spec, columns)
    if fmt == "template":
        return _from_template(rows, with_template(spec), columns)
    if fmt == "alpaca":
        _require_columns(["instruction", "output"], columns, "the alpaca format")
        if spec.format == "messages":  # --use_chat_template asked for: never the plain prompt in its place
            _require_chat_template(tokenizer, "--use_chat_template")
        return [_alpaca(row, tokenizer, i) for i, row in enumerate(rows)]
    if fmt == "messages":
        return _from_messages(rows, spec, columns, tokenizer)
    field = spec.text_field or "text"
    _require_column(field, columns, "--text_field")
    if spec.response_field:  # the text is the prompt, the response column its answer (a classifier's label)
        return _from_template(rows, _text_and_response(spec, field), columns)
    if spec.response_template:
        return _split_at_response(rows, field, spec.response_template, tokenizer)
    _warn_unused_answers(field, tuple(c for c in columns if c.lower() in _ANSWER_COLUMNS and c != field))
    return [Example("", str(row[field])) for row in rows]


# columns that usually hold a row's answer or label: left out when the rows train as whole text
_ANSWER_COLUMNS = {"label", "labels", "answer", "answers", "output", "response", "completion", "target", "chosen"}


@functools.lru_cache(maxsize=16)
def _warn_unused_answers(field: str, unused: tuple[str, ...]) -> None:
    """Said once per run: rows with a text column and an answer-like column trained on the text alone (a CSV of
    text,label fine-tuned on "great movie<|im_end|>", the label never seen), exit 0."""
    if unused:
        logger.warning("the rows train as whole text from column %r; column %s is not used: to train it as the answer, "
                       "give --response_field %s (or a --text_template naming both)", field,
                       " and ".join(map(repr, unused)), unused[0])  # fmt: skip


def _split_at_response(rows: Any, field: str, marker: str, tokenizer: Any) -> list[Example]:
    """Ready text rows split after each ``marker`` (TRL's response_template): the loss covers every answer.

    Unsloth's flow renders chat rows into a ``text`` column and then masks with ``train_on_responses_only``, which
    trains every assistant turn; here the text after the last marker is the answer scored, and each earlier turn's
    answer is trained too (only the last was). An answer ends at the first special token after its marker (an end
    of turn such as ``<|im_end|>``), which the model learns to say; exact match compares the text before it. An
    earlier turn with no special token after it cannot be told from the context that follows: it stays context."""
    specials = [t for t in getattr(tokenizer, "all_special_tokens", None) or [] if t]
    examples: list[Example] = []
    missing: list[int] = []
    for i, row in enumerate(rows):
        text = str(row[field])
        starts = [m.end() for m in re.finditer(re.escape(marker), text)]
        if not starts:
            missing.append(i)
            continue
        prompt, rest = text[: starts[-1]], text[starts[-1] :]
        ends = [rest.find(t) for t in specials if t in rest]
        cut = min(ends) if ends else len(rest)
        answer = rest[:cut]
        end = rest[cut:].rstrip() if ends else ""
        examples.append(Example(prompt, answer + end, answer, end, prompt_turns=_turns(text, starts, specials)))
    if missing:
        message = (f"{len(missing)} of {len(rows)} rows of {field!r} hold no --response_template {marker!r} "
                   f"(first: row {missing[0]}): there is no answer to learn")  # fmt: skip
        if not examples:
            raise UserInputError(message, hint="give the text that starts each answer exactly as the rows hold it, "
                                 "e.g. '<|im_start|>assistant\\n' for ChatML")  # fmt: skip
        logger.warning("%s; those rows are skipped", message)
    return examples


def _turns(text: str, starts: list[int], specials: list[str]) -> tuple[str, ...]:
    """The prompt (``text`` up to the last answer, which starts at ``starts[-1]``) as context, answer, context, ...
    pieces, each earlier answer running from its start through the first special token after it; () for one."""
    pieces, done = [], 0
    for start, following in itertools.pairwise(starts):
        segment = text[start:following]
        found = [(segment.find(t), t) for t in specials if t in segment]
        if not found:  # where this answer ends is not written: it stays context
            continue
        at, token = min(found)
        pieces += [text[done:start], text[start : start + at + len(token)]]
        done = start + at + len(token)
    return (*pieces, text[done : starts[-1]]) if pieces else ()


def _text_and_response(spec: DatasetSpec, field: str) -> DatasetSpec:
    """--text_field with --response_field, read as the text template '{text_field}' with --response_field (the
    response column was dropped: a classifier's labels were missing after every candidate was built)."""
    return spec.model_copy(update={"text_template": "{" + field.replace("{", "{{").replace("}", "}}") + "}"})


def _require_column(name: str, columns: list[str], flag: str) -> None:
    if name not in columns:
        raise _lacking(f"{flag} names column {name!r}", columns)


def _require_columns(names: list[str], columns: list[str], what: str) -> None:
    missing = [n for n in names if n not in columns]
    if missing:
        raise _lacking(f"{what} needs column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}", columns)


_SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "bars"}


def _lacking(asked: str, columns: list[str], hint: str | None = None) -> UserInputError:
    """The error for columns the data lacks, listing the ones it has; a CSV read as one column whose name holds
    ``;``, a tab or ``|`` was written with another separator, and the hint says so."""
    if len(columns) == 1:
        found = [name for sep, name in _SEPARATORS.items() if sep in columns[0]]
        if found:
            hint = (f"the file reads as one column named {columns[0]!r}: its values are separated by {found[0]}, and "
                    "CSV files are read comma-separated; save it with commas (or as JSON lines)")  # fmt: skip
            if found[0] == "tabs":
                hint += "; a file named .tsv is read tab-separated"
    spaced = [c for c in columns if c != c.strip()]
    if spaced:  # `question, answer` as a CSV header: the column is ' answer'
        hint = (f"column {spaced[0]!r} has spaces around its name (a CSV header written 'a, b'): remove them from the "
                "file, or name it with them") + (f"; {hint}" if hint else "")  # fmt: skip
    named = ", ".join(repr(c) if c != c.strip() else c for c in columns)
    return UserInputError(f"{asked}, which the data lacks; it has: {named}", hint=hint)


# ----------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class _SplitTemplate:
    """A template cut at its answer: ``prompt`` + ``{answer}`` + ``tail`` (format strings)."""

    prompt: str
    answer: str  # a format string holding the one answer placeholder ("" when the answer is outside)
    tail: str


def _split_template(template: str, answer: str | None) -> _SplitTemplate | None:
    """Cut at the last placeholder naming ``answer``; None when the template has no such placeholder."""
    parts = _parse_template(template)
    at = max((i for i, p in enumerate(parts) if p[1] == answer), default=None) if answer else None
    if at is None:
        return None

    def rebuild(items: list[tuple[str, str | None, str | None, str | None]]) -> str:
        out = ""
        for literal, name, spec, conversion in items:
            out += literal.replace("{", "{{").replace("}", "}}")
            if name is not None:
                out += "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        return out

    literal, name, spec, conversion = parts[at]
    return _SplitTemplate(
        prompt=rebuild([*parts[:at], (literal, None, None, None)]),
        answer=rebuild([("", name, spec, conversion)]),
        tail=rebuild(parts[at + 1 :]),
    )


def _template_columns(spec: DatasetSpec, columns: list[str]) -> list[str]:
    """The columns a template (and its answer field) reads; an error naming those the data lacks."""
    fields = template_fields(spec.text_template or "")
    answer = response_field_of(spec)
    wanted = [*fields, *([answer] if answer and answer not in fields else [])]
    if not wanted:  # every row would be this one text: trained on, or scored against, nothing of the data's
        raise UserInputError(
            f"the text template {spec.text_template!r} names no column: every row would be the same text",
            hint=f"name the data's columns in braces, e.g. {{{columns[0] if columns else 'question'}}}",
        )
    missing = [f for f in dict.fromkeys(wanted) if f not in columns]
    if missing:
        what = "text template names" if set(missing) & set(fields) else "--response_field names"
        raise _lacking(f"{what} column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}", columns,
                       hint="a template's {column} names must match the data's columns exactly")  # fmt: skip
    return wanted


def check_named_columns(spec: DatasetSpec) -> None:
    """Before work: the columns the user named (text template, --text_field) are in a local file's first row.

    The same errors the conversion to examples gives, seconds or minutes earlier (before a model loads)."""
    columns = first_row_columns(spec)
    if columns is None:
        return
    try:
        if spec.format in ("auto", "template") and spec.text_template:
            _template_columns(spec, columns)
        elif spec.format in ("auto", "text") and spec.text_field:
            _require_column(spec.text_field, columns, "--text_field")
    except UserInputError as e:  # the same words, with the file they were read from
        hint = e.hint
        if local_files(spec)[0] == "json":
            with contextlib.suppress(Exception):  # only a hint: the error stands without it
                hint = _nested_rows(rows_for_reading(spec.model_copy(update={"split": "train"}))) or hint
        raise UserInputError(f"data file {local_files(spec)[1][0]}: {e.message}", hint) from None


def _from_template(rows: Any, spec: DatasetSpec, columns: list[str]) -> list[Example]:
    template = spec.text_template or ""
    wanted = _template_columns(spec, columns)
    answer = response_field_of(spec)
    split = _split_template(template, answer)
    examples = []
    for i, row in enumerate(rows):
        values = {f: _cell_text(row[f], f, i) for f in dict.fromkeys(wanted)}
        try:
            if split is not None:  # prompt, then the answer and what the template puts after it
                end = split.tail.format(**values).rstrip()
                value = split.answer.format(**values)
                examples.append(Example(split.prompt.format(**values), value + end, value, end))
            elif answer:  # the answer column is not in the template: the whole template is the prompt
                examples.append(Example(template.format(**values), values[answer], values[answer]))
            else:
                examples.append(Example("", template.format(**values)))
        except (IndexError, KeyError, ValueError, AttributeError) as e:
            raise UserInputError(
                f"row {i}: text template {template!r} could not be filled: {type(e).__name__}: {e}",
                hint="placeholders are column names in braces, e.g. {question}; escape literal braces as {{ }}",
            ) from e
    return examples


def _from_input_cols(rows: Any, spec: DatasetSpec, columns: list[str]) -> list[Example]:
    """Olive's input_cols: the first column is the text, a second one its pair; the label (response_field, else a
    'label' column where there is one) is the reference. Olive's pre-processing tokenizes them the same way."""
    cols = list(spec.input_cols or [])
    label = spec.response_field or ("label" if "label" in columns else None)
    _require_columns([*cols, *([label] if label else [])], columns, "input_cols" if not spec.response_field
                     else "input_cols with --response_field")  # fmt: skip
    examples = []
    for i, row in enumerate(rows):
        texts = [_cell_text(row[c], c, i) for c in cols]
        value = _cell_text(row[label], label, i) if label else None
        examples.append(Example(texts[0], value or "", value, pair=texts[1] if len(texts) == 2 else None))
    return examples


def _cell_text(value: Any, column: str, index: int) -> str:
    """A template column's value as text: text and numbers as written, a missing value as nothing; a list or an
    object is refused (its Python spelling would be trained on as the text)."""
    if value is None:
        return ""
    if isinstance(value, Mapping | list | tuple):
        shown = repr(value)
        raise UserInputError(
            f"row {index}: column {column!r} holds {'an object' if isinstance(value, Mapping) else 'a list'} "
            f"({shown[:60]}{'...' if len(shown) > 60 else ''}), not text",
            hint="template columns must hold text or numbers: fix that row, or name the field that holds the text",
        )
    return str(value)


# ----------------------------------------------------------------------------- alpaca


def _alpaca(row: Mapping[str, Any], tokenizer: Any, index: int) -> Example:
    """An alpaca row as LLaMA-Factory reads one: ``instruction`` (+ ``input``) asks, ``output`` answers, an
    optional ``system`` column is the system prompt and ``history`` the earlier [instruction, answer] turns.
    A missing or null cell is empty text (it was trained on as the word "None")."""
    instruction, extra, output = (_cell_text(row.get(c), c, index) for c in ("instruction", "input", "output"))
    system = _cell_text(row.get("system"), "system", index)
    history = _alpaca_history(row.get("history"), index)
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        msgs = [{"role": "system", "content": system}] if system else []
        for asked, answered in history:
            msgs += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
        # joined as LLaMA-Factory joins them (its AlpacaDatasetConverter: "\n"), so its adapters see their prompts
        msgs.append({"role": "user", "content": "\n".join(part for part in (instruction, extra) if part)})
        where = f"row {index}"
        whole = _conversation([*msgs, {"role": "assistant", "content": output}], tokenizer, where) if history else None
        return whole or _chat_pair(msgs, output, tokenizer, where)
    earlier = "".join(ALPACA_PROMPT.format(instruction=q, input_block="") + f"{a}\n\n" for q, a in history)
    prompt = ALPACA_PROMPT.format(instruction=instruction, input_block=f"### Input:\n{extra}\n\n" if extra else "")
    return Example((f"{system}\n\n" if system else "") + earlier + prompt, output, output)


def _alpaca_history(value: Any, index: int) -> list[tuple[str, str]]:
    """LLaMA-Factory's ``history`` column: a list of [instruction, answer] pairs (None or empty: no history)."""
    if value is None or value == []:
        return []
    pairs = value if isinstance(value, list) else None
    if pairs is None or not all(isinstance(p, list | tuple) and len(p) == 2 for p in pairs):
        raise UserInputError(
            f"row {index}: column 'history' holds {_short(value)}; alpaca's history is a list of "
            "[instruction, answer] pairs (LLaMA-Factory's format)",
            hint="fix that row, or drop the history column",
        )
    return [(_cell_text(q, "history", index), _cell_text(a, "history", index)) for q, a in pairs]


# ----------------------------------------------------------------------------- chat messages


def _require_chat_template(tokenizer: Any, what: str) -> None:
    """Refuse ``what`` (chat rows, or alpaca rows with --use_chat_template) when the tokenizer has no chat
    template: it renders every row, and its absence must not fall back to another prompt silently."""
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise UserInputError(
            f"{what} needs a tokenizer with a chat template; this model has none",
            hint="copy the chat template of the model it came from (chat_template.jinja, or tokenizer_config.json's "
            "chat_template) into its folder, or write the turns yourself with --text_template"
            + (" (or leave out --use_chat_template for alpaca's ### Instruction prompt)" if what.startswith("--")
               else ""),
        )


def _from_messages(rows: Any, spec: DatasetSpec, columns: list[str], tokenizer: Any) -> list[Example]:
    field = messages_column(spec, columns)
    if field is None:
        raise _lacking(f"the messages format reads column {spec.messages_field!r}", columns,
                       hint="name the column holding the chat messages with --messages_field COLUMN")  # fmt: skip
    _require_chat_template(tokenizer, "the messages format")
    with_tools = sum(1 for row in rows if row.get("tools") not in _NO_TOOLS) if "tools" in columns else 0
    takes_tools = "tools" in str(tokenizer.chat_template)
    if with_tools and not takes_tools:  # LLaMA-Factory writes the tool list into the system turn
        logger.warning("%s a 'tools' column, which this model's chat template does not render: the model sees the "
                       "tool calls and results but not the tool descriptions (describe the tools in a system "
                       "message to train with them)", "1 row holds" if with_tools == 1 else f"{with_tools} rows hold")
    examples: list[Example] = []
    broken: list[int] = []
    unanswered: list[int] = []
    calls_lost: list[int] = []
    renders_calls = "tool_calls" in str(tokenizer.chat_template)
    single_turn = 0
    for i, row in enumerate(rows):
        msgs = chat_messages(row, field, i)
        if msgs is None:
            broken.append(i)
            continue
        if not renders_calls and any(m.get("tool_calls") not in _NO_TOOLS for m in msgs):
            calls_lost.append(i)  # the call would vanish and its turn train as an empty answer
            continue
        if msgs[-1].get("role") != "assistant":  # nothing to answer: trained whole, the user's turn was learnt
            unanswered.append(i)
            continue
        where = f"row {i}, field {field!r}"
        tools = row_tools(row, i) if with_tools and takes_tools else None
        ex = _conversation(msgs, tokenizer, where, tools)
        if ex is None:
            single_turn += 1
            ex = _chat_pair(msgs[:-1], str(msgs[-1]["content"]), tokenizer, where, tools)
        examples.append(ex)
    if broken:
        message = (
            f"{len(broken)} of {len(broken) + len(examples)} rows of {field!r} have ShareGPT roles out of order "
            f"(first: row {broken[0]}); LLaMA-Factory's order is an optional system turn, then "
            f"{'/'.join(_SHAREGPT_ASKS)} and {'/'.join(_SHAREGPT_ANSWERS)} turns alternating, ending with an answer"
        )
        if not examples:
            raise UserInputError(message)
        logger.warning("%s; those rows are skipped", message)
    if calls_lost:
        message = (
            f"{len(calls_lost)} of {len(broken) + len(calls_lost) + len(examples)} rows of {field!r} hold assistant "
            f"'tool_calls' (first: row {calls_lost[0]}), which this model's chat template does not render: the calls "
            "would vanish and their turns train as empty answers"
        )
        hint = ("use a model whose chat template renders tool calls (Qwen2.5, Llama 3.1), or write each call into "
                "its message's content as the model should say it")  # fmt: skip
        if not examples:
            raise UserInputError(message, hint=hint)
        logger.warning("%s; those rows are skipped (%s)", message, hint)
    if unanswered:
        message = (
            f"{len(unanswered)} of {len(broken) + len(unanswered) + len(examples)} rows of {field!r} do not end with "
            f"an assistant turn (first: row {unanswered[0]}): there is no answer to learn"
        )
        if not examples:
            raise UserInputError(message, hint="each conversation must end with the assistant's answer")
        logger.warning("%s; those rows are skipped", message)
    if single_turn:
        logger.warning(
            "%d multi-turn rows: the chat template renders earlier turns differently once later ones follow, "
            "so the loss covers their last assistant turn only",
            single_turn,
        )
    return examples


_NO_TOOLS: tuple[Any, ...] = (None, "", "[]", [])


def row_tools(row: Mapping[str, Any], index: int) -> list[dict[str, Any]] | None:
    """The row's ``tools`` column as chat templates take it (``tools=`` of ``apply_chat_template``): LLaMA-Factory
    writes a JSON list of function definitions as text; a bare definition gets transformers' ``{"type":
    "function", "function": ...}`` wrapper. None when the row names no tools."""
    value = row.get("tools")
    if value in _NO_TOOLS:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as e:
            raise UserInputError(f"row {index}: column 'tools' is not JSON ({e}): {_short(row.get('tools'))}",
                                 hint="the tools column holds a JSON list of function definitions "
                                 "(LLaMA-Factory's format)") from e  # fmt: skip
    value = [value] if isinstance(value, Mapping) else value
    if not isinstance(value, list) or not all(isinstance(t, Mapping) and t for t in value):
        raise UserInputError(f"row {index}: column 'tools' holds {_short(value)}; expected a list of function "
                             "definitions ({'name': ..., 'description': ..., 'parameters': {...}})")  # fmt: skip
    return [dict(t) if t.get("type") == "function" and "function" in t else {"type": "function", "function": dict(t)}
            for t in value]  # fmt: skip


def chat_messages(row: Mapping[str, Any], field: str, index: int) -> list[dict[str, Any]] | None:
    """The row's messages as role/content dicts; ShareGPT rows are mapped, None if their roles are out of order."""
    where = f"row {index}, field {field!r}"
    value = row[field]
    if not isinstance(value, list) or not value or not all(isinstance(m, Mapping) for m in value):
        raise UserInputError(
            f"{where}: expected a list of messages ({{'role': ..., 'content': ...}} or ShareGPT "
            f"{{'from': ..., 'value': ...}}), got {_short(value)}"
        )
    if all("from" in m and "role" not in m for m in value):
        return _sharegpt(value, row, where)
    msgs = []
    for k, m in enumerate(value):
        if "role" not in m or "content" not in m:
            raise UserInputError(
                f"{where}: message {k} has keys {', '.join(map(repr, m)) or 'none'}; a message needs 'role' and "
                "'content' (or ShareGPT's 'from' and 'value')"
            )
        role = m["role"]  # other tools' names (human, gpt, Gemma's model, User): the template knows user/assistant
        msgs.append({**m, "role": _ROLE_ALIASES.get(role.lower(), role.lower()) if isinstance(role, str) else role,
                     "content": _content_text(m["content"], f"{where}, message {k}")})  # fmt: skip
    return msgs


def _content_text(content: Any, where: str) -> Any:
    """OpenAI's content as a list of parts (``[{"type": "text", "text": "hi"}]``) joined into one string (with
    newlines, as vLLM joins them); a part that is not text (image_url, input_audio...) is refused: the model reads
    text only. Other content is left as it is."""
    if not isinstance(content, list):
        return content
    texts: list[str] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
        if kind != "text" or not isinstance(part.get("text"), str):
            raise UserInputError(
                f"{where}: content part {j} is of type {kind!r}; only text parts ({{'type': 'text', 'text': ...}}) "
                "can be trained on here",
                hint="drop that part (or that row), or write what it shows as a text part",
            )
        texts.append(part["text"])
    return "\n".join(texts)


def _sharegpt(value: list[Mapping[str, Any]], row: Mapping[str, Any], where: str) -> list[dict[str, Any]] | None:
    """ShareGPT turns as LLaMA-Factory reads them: a leading system turn (or the row's ``system`` column), then
    human/observation and gpt/function_call turns alternating, ending with an answer."""
    value = [{**m, "from": _sharegpt_from(m.get("from"))} for m in value]
    for k, m in enumerate(value):
        if m.get("from") not in SHAREGPT_ROLES or "value" not in m:
            raise UserInputError(
                f"{where}: message {k} has from={m.get('from')!r}"
                + ("" if "value" in m else " and no 'value'")
                + f"; ShareGPT roles are {', '.join(SHAREGPT_ROLES)}"
            )
    turns = list(value)
    system = row.get("system") if isinstance(row.get("system"), str) else None
    if turns[0]["from"] == "system":
        system, turns = str(turns[0]["value"]), turns[1:]
    in_order = bool(turns) and len(turns) % 2 == 0
    in_order = in_order and all(
        m["from"] in (_SHAREGPT_ASKS if k % 2 == 0 else _SHAREGPT_ANSWERS) for k, m in enumerate(turns)
    )
    if not in_order:
        return None
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": SHAREGPT_ROLES[str(m["from"])], "content": m["value"]} for m in turns]


def _sharegpt_from(name: Any) -> Any:
    """A ShareGPT ``from`` as LLaMA-Factory names it: case aside (Human/GPT were refused), user/assistant/tool too."""
    if not isinstance(name, str):
        return name
    return _FROM_ALIASES.get(name.lower(), name.lower())


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_chat(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    where: str,
    generation_prompt: bool = False,
    tools: list[dict[str, Any]] | None = None,
) -> str:
    """The chat template applied to ``messages`` (and the row's ``tools``); a template error names the row and the
    field."""
    import jinja2

    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt,
                                             tools=tools)  # fmt: skip
    except (jinja2.TemplateError, TypeError, ValueError) as e:  # ValueError: transformers' own refusals
        raise UserInputError(
            f"{where}: the model's chat template failed on this row's messages: {type(e).__name__}: {e}",
            hint="every message needs a 'role' the template knows and a text 'content'; some templates also "
            "require user and assistant turns to alternate",
        ) from e
    return str(text)


def _conversation(
    msgs: list[dict[str, Any]], tokenizer: Any, where: str, tools: list[dict[str, Any]] | None = None
) -> Example | None:
    """Prompt/response of a chat row; every assistant turn's text is a trained piece, the last one the answer.

    Each assistant turn is rendered twice (the conversation up to it with the generation prompt,
    then including it); the difference is what the template adds for the answer, end-of-turn
    included. None when a template renders earlier turns differently once later ones follow
    (it drops their reasoning, say): then only the last turn can be cut out exactly.
    """
    # an assistant turn with nothing before it (a greeting that opens the chat) answers nothing: it is context
    answers = [k for k, m in enumerate(msgs) if m.get("role") == "assistant" and k > 0]
    if not answers or answers[-1] != len(msgs) - 1:  # no trailing answer: the whole chat is text to learn
        return Example("", render_chat(tokenizer, msgs, where, tools=tools))
    pieces: list[str] = []
    done = ""
    for k in answers:
        prompt = render_chat(tokenizer, msgs[:k], where, generation_prompt=True, tools=tools)
        full = render_chat(tokenizer, msgs[: k + 1], where, tools=tools)
        if not prompt.startswith(done) or not full.startswith(prompt):
            return None
        pieces += [prompt[len(done) :], full[len(prompt) :]]
        done = full
    context = _weighted(pieces[:-1], [msgs[k].get("weight") for k in answers[:-1]])
    if _zero(msgs[-1].get("weight")):
        _warn_last_weight()
    return Example(
        "".join(context),
        pieces[-1],
        str(msgs[-1]["content"]),
        prompt_turns=tuple(context) if len(context) > 1 else (),
    )


def _weighted(pieces: list[str], weights: list[Any]) -> list[str]:
    """Context, answer, ..., context pieces with each earlier answer whose message says ``"weight": 0`` (OpenAI's
    fine-tuning format: do not train on it) folded into the context around it: it was trained on."""
    out = [pieces[0]]
    for k, weight in enumerate(weights):
        answer, after = pieces[2 * k + 1], pieces[2 * k + 2]
        if _zero(weight):
            out[-1] += answer + after
        else:
            out += [answer, after]
    return out


def _zero(weight: Any) -> bool:
    """A message's weight of 0, as JSON wrote it (rows keep numbers as their text: "0")."""
    try:
        return weight is not None and float(weight) == 0
    except (TypeError, ValueError):
        return False


@functools.lru_cache(maxsize=1)
def _warn_last_weight() -> None:
    logger.warning('"weight": 0 on a row\'s last assistant message is not honoured: that message is the answer '
                   "trained and scored (earlier messages with weight 0 are not trained on)")


def _chat_pair(
    context: list[dict[str, Any]], answer: str, tokenizer: Any, where: str, tools: list[dict[str, Any]] | None = None
) -> Example:
    """Prompt = context rendered with the generation prompt; response = what the template adds for the answer."""
    prompt = render_chat(tokenizer, context, where, generation_prompt=True, tools=tools)
    full = render_chat(tokenizer, [*context, {"role": "assistant", "content": answer}], where, tools=tools)
    response = full[len(prompt) :] if full.startswith(prompt) else answer
    return Example(prompt, response, answer)


# ----------------------------------------------------------------------------- checks


def answer_problem(rows: Any, spec: DatasetSpec) -> str | None:
    """Why these rows cannot give (prompt, expected answer) pairs, or None when every row does.

    Reads the rows' structure only (no tokenizer): exact match, accuracy and perplexity of an
    LLM need a prompt to generate from and an answer to compare with.
    """
    with _nested_rows_said(rows):
        return _answer_problem(rows, spec)


def _answer_problem(rows: Any, spec: DatasetSpec) -> str | None:
    columns = columns_of(rows)
    fmt = detect_format(spec, columns)
    if fmt == "text" and spec.response_field:
        _require_column(spec.text_field or "text", columns, "--text_field")
        fmt, spec = "template", _text_and_response(spec, spec.text_field or "text")
    if fmt == "text":
        return f"the eval data is plain text (column {spec.text_field or 'text'!r}): no prompt and answer to compare"
    if fmt == "alpaca":
        _require_columns(["instruction", "output"], columns, "the alpaca format")
        return None
    if fmt == "template":
        spec = with_template(spec)
        examples = _from_template(rows, spec, columns)
        if any(e.reference is None for e in examples):
            return f"the text template {spec.text_template!r} names no column"
        empty = next((i for i, e in enumerate(examples) if not e.prompt.strip()), None)
        if empty is not None:
            return f"the text template {spec.text_template!r} leaves row {empty} no prompt before the answer"
        return None
    field = messages_column(spec, columns)
    if field is None:
        return f"the messages format reads column {spec.messages_field!r}, which the data lacks"
    for i, row in enumerate(rows):
        msgs = chat_messages(row, field, i)
        if msgs is not None and (msgs[-1].get("role") != "assistant" or len(msgs) < 2):
            return f"row {i} of {field!r} does not end with an assistant turn after a prompt"
    return None


def require_answers(spec: DatasetSpec, metric: str) -> None:
    """Raise before any work when ``metric`` cannot be measured on ``spec``'s rows (no prompt + answer)."""
    problem = answer_problem(rows_for_reading(spec), spec)
    if problem:
        raise UserInputError(
            f"{metric} needs eval examples with a prompt and an expected answer; {problem}",
            hint="use a template with the answer column after the prompt ('Q: {question}\\nA: {answer}'), "
            "alpaca rows (instruction/output), or chat messages ending in an assistant turn",
        )
