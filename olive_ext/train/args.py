"""Other transformers TrainingArguments, passed through as Olive does: checked by name, converted by type."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from olive_ext.errors import UserInputError
from olive_ext.options import parse_bool

# Names transformers 4 had and 5 renamed or dropped -> what to do with them here.
RENAMED = {"evaluation_strategy": "eval_strategy"}
OURS_INSTEAD = {
    "group_by_length": "group_by_length",
    "logging_dir": "logging_dir",
    "output_dir": None,  # the output folder is -o/--output_path; checkpoints live in the cache
    "overwrite_output_dir": None,
}
# TrainingArguments that olive-ext sets itself from its own options.
MANAGED = {"bf16", "fp16", "remove_unused_columns", "prediction_loss_only", "train_sampling_strategy",
           "label_names", "disable_tqdm", "use_cpu"}  # fmt: skip


def training_argument_types() -> dict[str, Any]:
    """Every init field of transformers.TrainingArguments and its type."""
    import dataclasses

    from transformers import TrainingArguments

    try:
        hints = typing.get_type_hints(TrainingArguments)
    except Exception:
        hints = {}
    return {f.name: hints.get(f.name, str) for f in dataclasses.fields(TrainingArguments) if f.init}


def _convert(name: str, value: Any, tp: Any) -> Any:
    if not isinstance(value, str):
        return value
    options = _flatten(tp)
    if value.lower() in {"none", "null"} and type(None) in options:
        return None
    for opt in options:
        try:
            if opt is bool:
                return parse_bool(value)
            if opt is int:
                return int(value)
            if opt is float:
                return float(value)
        except (ValueError, TypeError):
            continue
        if opt is dict or typing.get_origin(opt) is dict:
            import json

            try:
                return json.loads(value)
            except ValueError:
                continue
        if opt is list or typing.get_origin(opt) is list:
            return [v for v in value.replace(",", " ").split() if v]
    _check_enum_value(name, value, options)
    if any(o in (bool, int, float) for o in options) and not any(o is str or _is_str_like(o) for o in options):
        kinds = "/".join(o.__name__ for o in options if o in (bool, int, float))
        raise UserInputError(f"--{name} expects {kinds}, got {value!r}")
    return value


def _check_enum_value(name: str, value: str, options: list[Any]) -> None:
    """A value of an enum-typed field (``SchedulerType | str``: lr_scheduler_type, optim, the strategies) is one of
    the enum's values, checked now: TrainingArguments refused it only when the run built it, after loading."""
    import enum

    for opt in options:
        if isinstance(opt, type) and issubclass(opt, enum.Enum):
            valid = [str(m.value) for m in opt]
            if value in valid:
                return
            close = difflib.get_close_matches(value, valid, n=1, cutoff=0.6)
            raise UserInputError(f"--{name} {value!r} is not one of its values"
                                 + (f"; did you mean {close[0]!r}?" if close else "")
                                 + f" (valid: {', '.join(valid)})")  # fmt: skip


def _is_str_like(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, str)


def _flatten(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin is typing.Union or (hasattr(types, "UnionType") and isinstance(tp, types.UnionType)):
        return [o for arg in typing.get_args(tp) for o in _flatten(arg)]
    if tp is None:
        return [type(None)]
    return [tp]


def check_training_args(raw: dict[str, Any], known_elsewhere: list[str] | None = None) -> dict[str, Any]:
    """Validated, type-converted TrainingArguments; every bad name is reported at once with a did-you-mean."""
    if not raw:
        return {}
    fields = training_argument_types()
    out: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in raw.items():
        key = RENAMED.get(name, name)
        if key in OURS_INSTEAD:
            ours = OURS_INSTEAD[key]
            problems.append(
                f"{name}: set by olive-ext" + (f"; use --{ours}" if ours else " (use -o/--output_path, --overwrite)")
            )
            continue
        if key in MANAGED:
            problems.append(f"{name}: set by olive-ext (see --torch_dtype, --group_by_length)")
            continue
        if key not in fields:
            close = difflib.get_close_matches(key, [*fields, *(known_elsewhere or [])], n=1, cutoff=0.7)
            problems.append(
                f"{name}: not a finetune option or transformers TrainingArguments field"
                + (f"; did you mean --{close[0]}?" if close else "")
            )
            continue
        try:
            out[key] = _convert(name, value, fields[key])
        except UserInputError as e:
            problems.append(e.message)
    if problems:
        raise UserInputError("; ".join(problems), hint="see olive-ext finetune --help")
    return out


def parse_flag_pairs(tokens: list[str]) -> dict[str, Any]:
    """``['--warmup_steps', '5', '--bf16']`` -> ``{'warmup_steps': '5', 'bf16': 'true'}``."""
    out: dict[str, Any] = {}
    i = 0
    stray: list[str] = []
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--"):
            stray.append(tok)
            i += 1
            continue
        name, eq, value = tok[2:].partition("=")
        if not eq:
            if i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                value = tokens[i + 1]
                i += 1
            else:
                value = "true"
        if name in out and out[name] != value:  # the last silently won: the first value was dropped
            raise UserInputError(f"--{name} given twice ({out[name]!r}, then {value!r}): it takes one value",
                                 hint="keep one")  # fmt: skip
        out[name] = value
        i += 1
    if stray:
        raise UserInputError(f"unexpected arguments: {' '.join(stray)}", hint="flags are written --name value")
    return out
