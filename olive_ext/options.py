"""Typed option models: the one place each option of a command, pass or recipe section is declared.

Every option model is a pydantic model whose fields carry the default and the help text; the
CLI's flags, recipe keys and the Python API's keyword arguments are derived from them. Validation
errors become :class:`~olive_ext.errors.Problem` records located by key path, with the value
received, what is allowed and a "did you mean".
"""

from __future__ import annotations

import argparse
import difflib
import os
from collections.abc import Callable
from dataclasses import replace
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from olive_ext.errors import Problem, RecipeError

_SEARCHABLE = "searchable"
_DATASET = "dataset"


class StrictModel(BaseModel):
    """A recipe section: unknown keys are refused, so a typo is reported instead of ignored; so are infinite and NaN
    numbers (a learning rate of inf trained an adapter of NaNs)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)


class Options(BaseModel):
    """Base of pass configs and command options: frozen, unknown keys and infinite or NaN numbers refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=(), allow_inf_nan=False)

    @classmethod
    def searchable_fields(cls) -> set[str]:
        """Fields where a list value in a recipe means "try each"."""
        return {
            name
            for name, f in cls.model_fields.items()
            if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get(_SEARCHABLE)
        }

    @classmethod
    def dataset_fields(cls) -> dict[str, bool]:
        """Fields naming a dataset of the recipe's ``data`` -> whether the pass needs one when the field is unset."""
        return {
            name: f.json_schema_extra[_DATASET] == "needed"
            for name, f in cls.model_fields.items()
            if isinstance(f.json_schema_extra, dict) and _DATASET in f.json_schema_extra
        }

    @classmethod
    def default_of(cls, name: str) -> Any:
        """The declared default of field ``name`` (factories are called)."""
        return default_of(cls, name)

    @classmethod
    def help_of(cls, name: str) -> str:
        """The help text of field ``name``, with its default when it has one (for --help)."""
        field = cls.model_fields[name]
        text = field.description or ""
        if field.is_required():
            return text.replace("%", "%%")
        default = default_of(cls, name)
        if default is not False and default not in (None, [], {}, "") and "default" not in text:
            text += f" (default: {default})"
        return text.replace("%", "%%")

    def canonical(self) -> dict[str, Any]:
        """The options as plain JSON data, defaults included, for cache keys and lineage."""
        return self.model_dump(mode="json")


def field_of(model: type[BaseModel], name: str) -> Any:
    """Field ``name`` of ``model`` to declare again on an options model: default, help and limits kept (one source)."""
    import copy

    return copy.copy(model.model_fields[name])


def default_of(model: type[BaseModel], name: str) -> Any:
    """The declared default of field ``name`` of ``model`` (factories are called)."""
    return model.model_fields[name].get_default(call_default_factory=True)


M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])


def validate_options(model: type[M], values: dict[str, Any]) -> M:
    """``model(**values)``, or a RecipeError naming each bad key, the value and a did-you-mean.

    Paths (``pathlib.Path`` or any ``os.PathLike``, alone or in a list) are taken as their text, so the Python
    API takes what it returns (``ft.output_dir``) wherever it takes a path."""
    try:
        values = {key: _path_text(value, key == "path" or key.endswith(_PATH_KEYS)) for key, value in values.items()}
        return model(**values)
    except ValidationError as e:
        raise RecipeError(problems_from_validation(e, model), source="options") from e


# options that name files or folders: a leading ~ is the home folder, as a shell would make it (from Python, a
# finetune to "~/ft" wrote $HOME/ft, then failed on the literal "~/ft"; a data file "~/rows.jsonl" was not found)
_PATH_KEYS = ("_path", "_files", "_file", "_dir", "model_name_or_path", "bundle")


def _path_text(value: Any, expand: bool = False) -> Any:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, list | tuple):
        return type(value)(_path_text(v, expand) for v in value)
    if expand and isinstance(value, str) and (value == "~" or value.startswith("~/")):
        return os.path.expanduser(value)
    return value


def with_options_signature(func: F, model: type[BaseModel]) -> F:
    """Give ``func(..., **options)`` a signature listing ``model``'s fields as typed keyword arguments.

    ``help(olive_ext.auto_opt)``, notebooks and ``inspect.signature`` then show every option with its
    type and default, taken from the model (declared once), while the function validates ``options``
    with the same model.
    """
    import inspect

    sig = inspect.signature(func)
    params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    taken = {p.name for p in params}
    for name, info in model.model_fields.items():
        if name in taken:
            continue
        default = inspect.Parameter.empty if info.is_required() else info.get_default(call_default_factory=True)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=info.annotation))  # fmt: skip
    func.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return func


def searchable(default: Any, description: str = "", **kwargs: Any) -> Any:
    """A config field a recipe may give as a list of choices for search to try."""
    return Field(default, description=description, json_schema_extra={_SEARCHABLE: True}, **kwargs)


PATH_MAX, NAME_MAX = 4096, 255  # Linux's limits in bytes; longer fails with "File name too long"


def check_path(value: str) -> str:
    """``value`` if the system can open it as a path, else ValueError saying why (a NUL, too long a path or name).

    Recipe paths are checked with this before anything touches the file system.
    """
    if "\x00" in value:
        raise ValueError("a path cannot contain a NUL character")
    raw = os.fsencode(value)
    if len(raw) >= PATH_MAX:
        raise ValueError(f"a path of {len(raw):,} bytes; the system accepts at most {PATH_MAX - 1:,}")
    longest = max(raw.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        raise ValueError(
            f"a file or folder name of {len(longest):,} bytes ('{os.fsdecode(longest[:20])}...'); "
            f"the system accepts at most {NAME_MAX}"
        )
    return value


def dataset_ref(description: str, needed: bool = False) -> Any:
    """A config field naming a dataset of the recipe's ``data`` (checked by `validate`).

    ``needed``: the pass needs a dataset when the field is unset, so ``data`` must then define exactly one.
    """
    return Field(None, description=description, json_schema_extra={_DATASET: "needed" if needed else "optional"})


def parse_bool(value: Any) -> bool:
    """Olive writes booleans as flags with values (`--gradient_checkpointing true`)."""
    if isinstance(value, bool):
        return value
    lowered = str(value).lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def format_loc(loc: tuple[Any, ...]) -> str:
    """('passes', 'quant', 'block_size') -> 'passes.quant.block_size'; ints become [i]."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part)
            # a key holding a newline or other control character is quoted, so a problem stays on one line
            out += ("." if out else "") + (text if text.isprintable() else repr(text))
    return out


def problems_from_validation(error: ValidationError, root: Any, prefix: tuple[Any, ...] = ()) -> list[Problem]:
    """Turn pydantic errors into Problems with key paths, allowed values and did-you-mean hints."""
    problems: list[Problem] = []
    alternatives: dict[str, int] = {}  # path -> index of its problem, for errors of union members
    for err in error.errors(include_url=False):
        etype = err["type"]
        loc = user_loc(root, err["loc"], key_error=etype != "extra_forbidden")
        path = format_loc(prefix + loc)
        if len(loc) < len(err["loc"]) and etype not in ("extra_forbidden", "missing"):
            # one value refused by each member of a union: one problem listing what each wanted
            if path in alternatives:
                first = problems[alternatives[path]]
                more = err["msg"].removeprefix("Value error, ").removeprefix("Input should be ")
                problems[alternatives[path]] = replace(first, message=f"{first.message} or {more}")
                continue
            alternatives[path] = len(problems)
        if etype == "extra_forbidden" and loc:
            fields = _fields_at(root, loc[:-1])
            key = str(loc[-1])
            close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else _KEY_ANSWERS.get(key)
            allowed = ", ".join(sorted(fields)) if fields and len(fields) <= 25 else None
            problems.append(Problem(path, "unknown key", allowed=allowed, hint=hint))
        elif etype == "missing":
            problems.append(Problem(path, "required key is missing"))
        elif etype == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            suggestion = _close_literal(err.get("input"), expected)
            problems.append(
                Problem(path, "value not allowed", err.get("input"), True, allowed=expected, hint=suggestion)
            )
        else:
            msg = err["msg"].removeprefix("Value error, ")
            # a number out of range: the field's own description says what it is and why the range
            hint = _description_at(root, loc) if etype in _BOUND_ERRORS else None
            # a check of several fields together (a model validator): its message says what, the input is everything
            problems.append(Problem(path, msg, err.get("input"), "input" in err and bool(loc), hint=hint))
    return problems


# keys with no field anywhere, answered with what does their job (the CLI's --dry_run is no option of the API)
_KEY_ANSWERS = {"dry_run": "the Python API has no dry run: olive_ext.validate(RECIPE) runs a recipe's checks before "
                "work, and `olive-ext COMMAND --dry_run` a command's"}


# errors that say a limit, not what the field is for: the field's description is their hint
_BOUND_ERRORS = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "string_pattern_mismatch"}
)


def _description_at(model: Any, loc: tuple[Any, ...]) -> str | None:
    """The description of the field at ``loc`` (walked from ``model`` through dicts and lists), if it has one."""
    parent = _model_at(model, loc[:-1]) if loc else None
    field = parent.model_fields.get(str(loc[-1])) if parent is not None else None
    return field.description if field is not None and field.description else None


def user_loc(root: Any, loc: tuple[Any, ...], key_error: bool = True) -> tuple[Any, ...]:
    """pydantic's error location with its own parts removed: the recipe's keys and indexes only.

    pydantic inserts the name of the union member it tried ("str", "list[str]") and marks a bad mapping key
    with "[key]". A user's key can be spelt the same, so the parts are told apart by walking the annotation
    of ``root`` alongside: a member name only where the annotation is a union.
    """
    out: list[Any] = []
    current: Any = root
    after_mapping_key = False
    for i, part in enumerate(loc):
        members = _union_members(current)
        if members and isinstance(part, str):
            current = _member_named(members, part)
            continue
        if key_error and after_mapping_key and part == "[key]" and i == len(loc) - 1:
            break
        if current is None and _is_union_tag(part):  # past what the walk can follow: pydantic's naming
            continue
        after_mapping_key = get_origin(_strip(current)) is dict
        out.append(str(part) if after_mapping_key else part)  # a mapping's key 5 is `.5`, not the index `[5]`
        current = _unwrap(current, part) if current is not None else None
    return tuple(out)


def _is_union_tag(part: Any) -> bool:
    # pydantic's names for union members ("str", "list[str]", "function-after[...]").
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool", "list", "dict"})


def _strip(annotation: Any) -> Any:
    """Annotated[X, ...] -> X."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _union_members(annotation: Any) -> list[Any]:
    """The members of a union of two or more non-None types (pydantic names the member it tried), else []."""
    annotation = _strip(annotation)
    if get_origin(annotation) not in (Union, UnionType):
        return []
    members = [_strip(a) for a in get_args(annotation) if a is not type(None)]
    return members if len(members) > 1 else []


def _member_named(members: list[Any], tag: str) -> Any:
    base = tag.split("[")[0]
    for member in members:
        origin = get_origin(member) or member
        name = "literal" if origin is Literal else getattr(origin, "__name__", None)
        if name == base:
            return member
    return None


def _close_literal(value: Any, expected: str) -> str | None:
    if not isinstance(value, str):
        return None
    options = [o.strip().strip("'") for o in expected.replace(" or ", ",").split(",") if o.strip()]
    if value.strip() in options:  # the text of an allowed number ("32" for 32): it said "did you mean '32'?"
        return f"write it as a number, without quotes: {value.strip()}"
    spelled = {o.lower(): o for o in options}  # matched in lower case, suggested as the option is spelled
    close = difflib.get_close_matches(value.lower(), list(spelled), n=1, cutoff=0.5)
    return f"did you mean '{spelled[close[0]]}'?" if close else None


def _fields_at(model: Any, loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model found by walking ``loc`` from ``model`` (through dicts and lists)."""
    found = _model_at(model, loc)
    return list(found.model_fields) if found is not None else []


def _model_at(model: Any, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model found by walking ``loc`` from ``model`` (through dicts and lists), or None."""
    current: Any = model
    for part in loc:
        current = _unwrap(current, part)
        if current is None:
            return None
    current = _strip(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any, part: Any) -> Any:
    annotation = _strip(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(str(part))
        return _strip_optional(field.annotation) if field else None
    origin = get_origin(annotation)
    if origin in (dict, list):
        return _strip_optional(get_args(annotation)[-1])
    return None


def _strip_optional(annotation: Any) -> Any:
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is not None and get_origin(annotation) not in (dict, list) and len(args) == 1:
        return args[0]
    return annotation


def literal_choices(annotation: Any) -> list[Any] | None:
    """The values of a ``Literal`` field (inside ``| None`` or ``list[...]``), or None. Used by the CLI for an
    option's choices and by the Olive translation for SEARCHABLE_VALUES."""
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    inner = [a for a in get_args(annotation) if a is not type(None)]
    return literal_choices(inner[0]) if len(inner) == 1 else None
