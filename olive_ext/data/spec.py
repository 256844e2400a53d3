"""A named dataset as recipes, commands and the Python API describe it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from olive_ext.errors import RecipeError, UserInputError
from olive_ext.options import Options, StrictModel, check_path, problems_from_validation

# datasets' split syntax: "train", "train[:90%]", "train[4096:4224]", "train[-10%:]".
_SPLIT_RE = re.compile(r"^[A-Za-z_][\w.-]*(\[\s*-?\d*%?\s*:\s*-?\d*%?\s*\])?$")


def check_split(value: str) -> str:
    """Validate a datasets split expression such as ``train[:90%]``."""
    if not _SPLIT_RE.match(value.strip()):
        raise ValueError(
            "not a split expression; write a split name with an optional slice, "
            "like 'train', 'train[:90%]' or 'train[4096:4224]'"
        )
    return value.strip()


_HALF_SLICE = re.compile(r"^(?P<name>[A-Za-z_][\w.-]*)\[\s*(?P<start>-?\d*%?)\s*:\s*(?P<stop>-?\d*%?)\s*\]$")


def complement_split(split: str) -> str | None:
    """The rows of the same split that ``split`` leaves out, where one slice names them: ``train[480:]`` ->
    ``train[:480]``, ``train[:90%]`` -> ``train[90%:]``; None for a whole split or a slice with both ends."""
    match = _HALF_SLICE.match(split.strip())
    if match is None or bool(match["start"]) == bool(match["stop"]):
        return None
    name = match["name"]
    return f"{name}[:{match['start']}]" if match["start"] else f"{name}[{match['stop']}:]"


DataFormat = Literal["auto", "template", "alpaca", "messages", "text"]


class DatasetSpec(StrictModel):
    """One named dataset: a local file or a hub dataset, a split, and how to turn rows into text."""

    name: str = Field(description="'json', 'csv', 'parquet' (with data_files) or a hub dataset id")
    data_files: str | list[str] | None = Field(None, description="local file(s) for json/csv/parquet")
    split: str = Field("train", description="split expression, e.g. 'train[:90%]'")
    format: DataFormat = Field("auto", description="auto | template | alpaca | messages | text")
    text_template: str | None = Field(None, description="e.g. 'Q: {question}\\nA: {answer}'")
    text_field: str | None = Field(None, description="column holding ready text (format: text)")
    messages_field: str = Field(
        "messages",
        description="column holding chat messages (format: messages); ShareGPT's 'conversations' is found too",
    )
    response_field: str | None = Field(
        None, description="column with the expected answer; defaults to the template's last field"
    )
    response_template: str | None = Field(
        None,
        description="ready text rows (--text_field): the text that starts the answer, e.g. '<|im_start|>assistant\\n' "
        "(TRL's response_template, Unsloth's train_on_responses_only): the loss covers what follows its last "
        "occurrence",
    )
    input_cols: list[str] | None = Field(
        None,
        description="an encoder's input columns (Olive's input_cols): one text, or a text pair its tokenizer encodes "
        "as a pair (premise and hypothesis, two sentences); the label is response_field's column, else 'label'",
    )
    max_samples: int | None = Field(None, ge=1, description="use at most this many rows")

    _check_split = field_validator("split")(lambda cls, v: check_split(v))

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():  # an IndexError inside the datasets library
            raise ValueError("is empty: give json/csv/parquet with data_files, a data folder or a hub dataset id")
        return value

    @field_validator("data_files")
    @classmethod
    def _paths(cls, value: str | list[str] | None) -> str | list[str] | None:
        for path in [value] if isinstance(value, str) else value or []:
            check_path(path)
        return value

    @model_validator(mode="after")
    def _files_for_local_builders(self) -> DatasetSpec:
        if self.name in {"json", "csv", "parquet"} and not self.data_files:
            raise ValueError(f"name '{self.name}' reads local files: set data_files")
        if self.name in {"json", "csv", "parquet", "text"} and self.data_files:
            self.data_files = _expand_globs(self.data_files)
        if self.format == "template" and not self.text_template:
            raise ValueError("format 'template' needs text_template")
        if self.format == "text" and not self.text_field:
            raise ValueError("format 'text' needs text_field")
        if self.input_cols is not None:
            _check_input_cols(self)
        return self


def _check_input_cols(spec: DatasetSpec) -> None:
    """input_cols: one or two named columns (a tokenizer encodes one text or a pair), and not beside another way of
    making the text."""
    cols = spec.input_cols or []
    if not 1 <= len(cols) <= 2 or not all(c.strip() for c in cols):
        raise ValueError(f"input_cols {cols!r}: give one column (a text) or two (a text pair, as a sentence-pair "
                         "classifier reads them); for more, join them with a text template")  # fmt: skip
    others = [k for k in ("text_template", "text_field", "response_template") if getattr(spec, k)]
    others += ["chat messages (use_chat_template / messages_field)"] if spec.format == "messages" else []
    if others:
        raise ValueError(f"input_cols and {', '.join(others)} both say how rows become text: give one of them")


# how a file's suffix names its datasets builder (`-d data.jsonl` and `--data_files x.csv` both work)
_SUFFIX_BUILDER = {
    ".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "csv", ".tab": "csv", ".parquet": "parquet"
}  # fmt: skip


def _unescape(template: str) -> str:
    r"""Shell users type `\n` literally inside quotes (as Olive's docs do); make it a newline."""
    return template.replace("\\r\\n", "\n").replace("\\n", "\n").replace("\\t", "\t")


class DataOptions(Options):
    """The data flags every command shares (Olive's names); :meth:`to_spec` makes a DatasetSpec of them."""

    data_name: str | None = Field(
        None, description="'json', 'csv' or 'parquet' with data_files, a local file, or a hub dataset id"
    )
    data_files: str | list[str] | None = Field(
        None, description="local data file(s): comma-separated, several after the flag, or the flag repeated"
    )
    text_template: str | None = Field(
        None,
        description="e.g. 'Q: {question}\\nA: {answer}'; the last {column} is the answer, text after it "
        "(an end-of-turn) ends the answer (\\n typed literally becomes a newline)",
    )
    text_field: str | None = Field(None, description="column holding ready text")
    use_chat_template: bool = Field(
        False, description="rows hold chat messages (column 'messages'), rendered with the model's chat template"
    )
    messages_field: str | None = Field(
        None,
        description="column holding chat messages: role/content or ShareGPT from/value (default: 'messages', "
        "else 'conversations'); implies --use_chat_template",
    )
    response_field: str | None = Field(
        None, description="column with the expected answer (default: the template's last {column})"
    )
    response_template: str | None = Field(
        None,
        description="ready text rows: the text that starts the answer (TRL's response_template, Unsloth's "
        "train_on_responses_only); the loss covers what follows its last occurrence (\\n typed literally "
        "becomes a newline)",
    )
    input_cols: list[str] | None = Field(
        None,
        description="an encoder's input columns: one, or two that its tokenizer encodes as a text pair (an NLI or "
        "paraphrase classifier); the label column is --response_field, else 'label'",
    )
    max_samples: int | None = Field(None, ge=1, description="use at most this many rows")

    def file_list(self) -> list[str] | None:
        """data_files as a list: each item (the flag repeated gives several) is split at commas, unless it names a
        file whole."""
        files = self.data_files
        if not files:
            return None
        out: list[str] = []
        for item in [files] if isinstance(files, str) else files:
            out += [item] if Path(item).expanduser().is_file() else item.split(",")  # a file whose name holds a comma
        named = [f.strip() for f in out if f.strip()]
        seen: dict[Path, str] = {}
        for f in named:  # `--data_files a.jsonl a.jsonl` (or a glob and the file) read every row twice, unsaid
            key = Path(f).expanduser().resolve()
            if key in seen:
                raise UserInputError(f"--data_files names {f} twice ({seen[key]!r} and {f!r}): its rows would be "
                                     "read twice", hint="name each file once (to weight rows, repeat them in the "
                                     "file)")  # fmt: skip
            seen[key] = f
        return named or None

    def to_spec(self, split: str | None) -> DatasetSpec | None:
        """The DatasetSpec these flags mean for ``split``, or None when no data was named."""
        files = self.file_list()
        name = self.data_name
        if name is None and files:
            name = _SUFFIX_BUILDER.get(Path(files[0]).suffix.lower(), "json")
        if name is None:
            return None
        chat = self.use_chat_template or self.messages_field is not None
        fmt: DataFormat = "messages" if chat else ("text" if self.text_field else "auto")
        try:
            return self._spec(name, files, split, fmt)
        except ValidationError as e:
            raise RecipeError(problems_from_validation(e, DatasetSpec), source="the data flags") from e

    def _spec(self, name: str, files: list[str] | None, split: str | None, fmt: DataFormat) -> DatasetSpec:
        return DatasetSpec(
            name=name,
            data_files=files[0] if files and len(files) == 1 else files,
            split=split or "train",
            format=fmt,
            text_template=_unescape(self.text_template) if self.text_template else None,
            text_field=self.text_field,
            **({"messages_field": self.messages_field} if self.messages_field else {}),
            response_field=self.response_field,
            response_template=_unescape(self.response_template) if self.response_template else None,
            input_cols=self.input_cols,
            max_samples=self.max_samples,
        )


def _expand_globs(files: str | list[str]) -> str | list[str]:
    """Local data files with glob patterns (``data/*.jsonl``, as the datasets library takes them) as the sorted
    files they match, so that checks and cache keys see every file; a pattern matching nothing is kept (the check
    before work names it) and so is a path that exists as written."""
    import glob

    items = [files] if isinstance(files, str) else list(files)
    out: list[str] = []
    for item in items:
        matches = sorted(glob.glob(str(Path(item).expanduser()))) if glob.has_magic(item) else []
        out += matches if matches and not Path(item).exists() else [item]
    return out[0] if isinstance(files, str) and len(out) == 1 else out

