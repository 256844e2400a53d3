"""Reading a recipe file within limits: a path the system accepts, a small UTF-8 text file, bounded nesting and
alias expansion, each key once per mapping.

A recipe is a few kilobytes of YAML or JSON. Anything far outside that (a binary file, a "billion laughs" of
aliases, a thousand levels of brackets, a 5,000-digit number) is refused here, with the line it is on, before
any other code walks the data: the checks after this one may then recurse and repr freely.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.error import Mark
from yaml.resolver import Resolver

from olive_ext.errors import UserInputError
from olive_ext.options import check_path

MAX_BYTES = 256 << 10  # 256 KiB: the shipped recipes are 1-3 KB, and this much YAML parses in about a second
MAX_DEPTH = 64  # levels of nesting; the deepest recipe needs 6
MAX_VALUES = 100_000  # values after YAML aliases are expanded; a recipe has a few hundred
MAX_INT_DIGITS = 1000  # longer integers are no setting (and Python refuses to convert past 4,300 digits)

_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"


class _Refused(yaml.YAMLError):
    """A limit this reader sets, at a place in the file."""

    def __init__(self, message: str, mark: Any = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.mark, self.hint = message, mark, hint


def read_text(path: str | Path) -> str:
    """The file's text, or a UserInputError naming what is wrong with the path or the bytes."""
    name = str(path)
    _check_path(name)
    try:
        info = os.stat(name)
    except FileNotFoundError:
        raise UserInputError(f"recipe file {name!r} does not exist") from None
    except NotADirectoryError:
        raise UserInputError(f"recipe file {name!r} does not exist: a part of its path is a file") from None
    except OSError as e:
        raise UserInputError(f"recipe file {name!r} cannot be read: {e.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UserInputError(f"{name!r} is a folder, not a recipe file", hint="give the .yaml or .json file in it")
    if not stat.S_ISREG(info.st_mode):
        raise UserInputError(f"{name!r} is not a regular file (a device, pipe or socket), so it is not read")
    if info.st_size > MAX_BYTES:
        raise UserInputError(
            f"{name}: {info.st_size:,} bytes; a recipe is at most {MAX_BYTES:,}",
            hint="a recipe names its data files; it does not hold the data",
        )
    try:
        with open(name, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise UserInputError(f"recipe file {name!r} cannot be read: {e.strerror}") from None
    return decode(name, data)


def _check_path(name: str) -> None:
    if not name:
        raise UserInputError("the recipe path is empty", hint="give a recipe file: olive-ext validate recipe.yaml")
    try:
        check_path(name)
    except ValueError as e:
        raise UserInputError(f"recipe file: {e}", hint="move or rename the recipe so its path is shorter") from None


def decode(name: str, data: bytes) -> str:
    """UTF-8 text (a UTF-8 byte-order mark is dropped); binary and other encodings are refused by line."""
    hint = "save the recipe as UTF-8 text (YAML or JSON)"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserInputError(f"{name}: UTF-16 text; recipes are read as UTF-8", hint=hint)
    if b"\x00" in data[:8192]:
        raise UserInputError(f"{name}: a binary file, not a YAML or JSON recipe", hint=hint)
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise UserInputError(
            f"{name}: not UTF-8 text: byte 0x{data[e.start]:02x} at line {line}, column {column}", hint=hint
        ) from None


def parse(name: str, text: str, as_json: bool) -> Any:
    """The parsed document; syntax errors and refused limits name the line."""
    try:
        return _parse_json(text) if as_json else _parse_yaml(text)
    except json.JSONDecodeError as e:
        raise UserInputError(f"{name}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except _Refused as e:
        where = f" at line {e.mark.line + 1}, column {e.mark.column + 1}" if e.mark else ""
        raise UserInputError(f"{name}{where}: {e.message}", hint=e.hint) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        line = text.splitlines()[mark.line] if mark is not None and mark.line < len(text.splitlines()) else ""
        tab = "\t" in line[: mark.column + 1] if mark is not None else False
        raise UserInputError(
            f"{name}: invalid YAML{where}: {getattr(e, 'problem', None) or e}"
            + (" (a tab: YAML indents with spaces only)" if tab else ""),
            hint="replace the tabs with spaces" if tab else None,
        ) from None


# --------------------------------------------------------------------------- YAML


def _loader_base() -> Any:
    """SafeLoader, with libyaml's parser when PyYAML has it (3x faster): composing stays in Python, where the
    limits below are."""
    if not getattr(yaml, "__with_libyaml__", False):
        return yaml.SafeLoader
    from yaml._yaml import CParser

    class FastSafeLoader(Composer, CParser, SafeConstructor, Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    return FastSafeLoader


class _RecipeLoader(_loader_base()):  # type: ignore[misc]
    """PyYAML's safe loader with bounded nesting and alias expansion, and duplicate keys refused."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliased = False

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark, _FLATTER)
            self._aliased = self._aliased or self.check_event(yaml.AliasEvent)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], Any] = {}
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE_TAG:
                first = seen.setdefault((key.tag, key.value), key)
                if first is not key:
                    raise _Refused(
                        f"key '{key.value}' appears twice in one mapping (first at line {first.start_mark.line + 1}); "
                        "the second would silently replace the first",
                        key.start_mark,
                        "keep one of them",
                    )
        return node

    def compose_scalar_node(self, anchor: Any) -> Any:
        node = super().compose_scalar_node(anchor)
        if node.tag == _INT_TAG and len(node.value) > MAX_INT_DIGITS:
            raise _Refused(f"an integer of {len(node.value):,} digits; at most {MAX_INT_DIGITS}", node.start_mark)
        return node

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node, self._aliased)
        return node

    def construct_yaml_timestamp(self, node: Any) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as e:  # 2024-13-45 looks like a date to YAML
            raise _Refused(f"not a valid date: {node.value} ({e})", node.start_mark, "quote it to keep it text") from e


_RecipeLoader.add_constructor("tag:yaml.org,2002:timestamp", _RecipeLoader.construct_yaml_timestamp)

_FLATTER = "a recipe nests a few levels: input_model, passes.<name>.<parameter>"


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: Any, aliased: bool) -> None:
    """Refuse a document whose aliases expand it past MAX_VALUES values or MAX_DEPTH levels, or into a cycle.

    Aliases share one node, so the composed document stays small; what it expands to is what every later walk
    over the data (validation, messages) pays for. Sizes are counted per node, so this costs one pass over it.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            open_nodes.discard(key)
            if size[key] > MAX_VALUES and aliased:
                raise _Refused(
                    f"aliases (*name) expand this value to {size[key]:,} values; a recipe may hold {MAX_VALUES:,}",
                    node.start_mark,
                    "write the values out, or use fewer nested aliases",
                )
            if size[key] > MAX_VALUES:
                raise _Refused(f"{size[key]:,} values in one recipe; at most {MAX_VALUES:,}", node.start_mark)
            if depth[key] > MAX_DEPTH:
                raise _Refused(f"aliases nest this value deeper than {MAX_DEPTH} levels", node.start_mark, _FLATTER)
            continue
        if key in size:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for kid in _children(node):
            if id(kid) in open_nodes:
                raise _Refused("an alias refers to a value that contains it (a loop)", kid.start_mark)
            if id(kid) not in size:
                stack.append((kid, False))


def _parse_yaml(text: str) -> Any:
    loader = _RecipeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


# --------------------------------------------------------------------------- JSON

# a JSON string (skipped: its brackets are text) or a bracket
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _parse_json(text: str) -> Any:
    _check_json_depth(text)
    return json.loads(text, object_pairs_hook=_unique_pairs, parse_int=_bounded_int)


def _check_json_depth(text: str) -> None:
    """Refuse deep nesting before the parser recurses into it (Python's json recurses per level)."""
    level = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token[0] == '"':
            continue
        level += 1 if token in "[{" else -1
        if level > MAX_DEPTH:
            line = text.count("\n", 0, match.start())
            column = match.start() - (text.rfind("\n", 0, match.start()) + 1)
            mark = Mark("", match.start(), line, column, None, 0)
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels", mark, _FLATTER)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(
                f"key '{key}' appears twice in one object; the second would silently replace the first",
                None,
                "keep one of them",
            )
        out[key] = value
    return out


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(text):,} digits; at most {MAX_INT_DIGITS}")
    return int(text)
