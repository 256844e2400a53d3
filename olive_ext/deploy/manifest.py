"""The bundle manifest: every file with its sha256 and size, plus what made the model and how it measured.

The manifest holds no timestamps, so packaging the same inputs twice gives the same bytes. Its own
sha256 (the *digest*) therefore names the whole bundle: ``package`` prints it and ``verify --expect``
checks it, so a file changed together with its line in the manifest is still caught.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from olive_ext.deploy.files import hash_regular, plain_name, read_regular, relative_path_problem, scan_tree
from olive_ext.errors import UserInputError

MANIFEST = "manifest.json"
# The model-signing signature sits beside the manifest; it signs every other file, manifest included.
SIGNATURE = "bundle.sig"
SCHEMA_VERSION = 1
# far above any real manifest (a line per file), far below what would hurt to read
MANIFEST_LIMIT = 16 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ManifestError(ValueError):
    """A manifest.json that cannot be trusted to describe a bundle; the message is one line."""


def file_entries(root: Path) -> list[dict[str, Any]]:
    """[{path, sha256, size}] for every file under root except the manifest and signature, sorted by path."""
    tree = scan_tree(root)
    if tree.problems:
        raise UserInputError(
            f"{root} holds links or special files: {'; '.join(tree.problems)}",
            hint="a bundle is made of regular files; copy the model folder without links",
        )
    entries = []
    for rel in tree.files:
        if rel in (MANIFEST, SIGNATURE):
            continue
        sha, size = hash_regular(root / rel)
        entries.append({"path": rel, "sha256": sha, "size": size})
    return entries


def text_sha256(text: str) -> str:
    """sha256 of a text's UTF-8 bytes (chat templates are compared this way)."""
    return hashlib.sha256(text.encode()).hexdigest()


def write_manifest(root: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Add the file list and write manifest.json (sorted keys, stable formatting)."""
    manifest = {**manifest, "schema_version": SCHEMA_VERSION, "files": file_entries(root)}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def read_manifest(root: Path) -> dict[str, Any]:
    """The parsed and checked manifest.json of a bundle folder (ManifestError when it cannot be trusted)."""
    return parse_manifest(read_regular(root / MANIFEST, MANIFEST_LIMIT))


def manifest_digest(root: Path) -> str:
    """The bundle's digest: the sha256 of its manifest.json bytes."""
    return hashlib.sha256(read_regular(root / MANIFEST, MANIFEST_LIMIT)).hexdigest()


def normalize_digest(value: str) -> str:
    """A digest as given by a user (``sha256:<hex>`` or ``<hex>``, any case) in the form package prints."""
    text = value.strip().lower().removeprefix("sha256:")
    if not _SHA256.fullmatch(text):
        raise UserInputError(
            f"--expect {value!r} is not a sha256 digest (64 hexadecimal digits)",
            hint="pass the 'manifest digest' line that `olive-ext package` printed",
        )
    return text


def parse_manifest(data: bytes) -> dict[str, Any]:
    """Decode and check the manifest fields verify relies on; ManifestError names the first problems."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ManifestError(f"{MANIFEST} is not UTF-8 text (byte {e.start})") from e
    except RecursionError as e:
        raise ManifestError(f"{MANIFEST} is nested too deeply") from e
    except ValueError as e:  # JSONDecodeError, and integers too long to convert
        raise ManifestError(f"{MANIFEST} is not valid JSON: {e}") from e
    if not isinstance(manifest, dict):
        raise ManifestError(f"{MANIFEST} must hold a JSON object, found a {_json_type(manifest)}")
    problems = _file_list_problems(manifest.get("files")) + _field_problems(manifest)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ManifestError(f"{MANIFEST}: " + "; ".join(problems[:3]) + more)
    return manifest


def _file_list_problems(files: object) -> list[str]:
    if not isinstance(files, list):
        return [f"'files' must be a list of {{path, sha256, size}}, found {_json_type(files)}"]
    problems: list[str] = []
    seen: set[str] = set()
    for i, entry in enumerate(files):
        if not isinstance(entry, dict):
            problems.append(f"files[{i}] must be an object, found {_json_type(entry)}")
            continue
        path = entry.get("path")
        where = f"files[{i}] ({path!r})" if isinstance(path, str) else f"files[{i}]"
        bad_path = relative_path_problem(path)
        if bad_path:
            problems.append(f"{where}: path {bad_path}; it was not followed")
        elif path in seen or path in (MANIFEST, SIGNATURE):
            problems.append(f"{where}: path is listed twice or names the manifest or signature")
        else:
            seen.add(str(path))
        sha = entry.get("sha256")
        if not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
            problems.append(f"{where}: 'sha256' is missing or not 64 lowercase hexadecimal digits")
        size = entry.get("size")
        if not (isinstance(size, int) and not isinstance(size, bool) and size >= 0):
            problems.append(f"{where}: 'size' is missing or not a non-negative integer")
    return problems


def _field_problems(manifest: dict[str, Any]) -> list[str]:
    problems = []
    version = manifest.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        problems.append(f"'schema_version' must be a whole number ({SCHEMA_VERSION} here), found {_json_type(version)}")
    elif version > SCHEMA_VERSION:
        problems.append(f"schema_version {version} is newer than this olive-ext reads ({SCHEMA_VERSION}): upgrade "
                        "olive-ext to verify this bundle")  # fmt: skip
    adapters = manifest.get("adapters", [])
    if not isinstance(adapters, list):
        problems.append(f"'adapters' must be a list of names, found {_json_type(adapters)}")
    else:
        problems += [
            f"adapter name {name!r} is not a plain file name (letters, digits, '.', '_', '-'); it was not followed"
            for name in adapters
            if not plain_name(name)
        ]
    target = manifest.get("target", {})
    if not isinstance(target, dict) or not isinstance(target.get("provider", ""), str):
        problems.append("'target' must be an object with a string 'provider'")
    if not _list_of(manifest.get("eos_token_ids", []), int):
        problems.append("'eos_token_ids' must be a list of integers")
    if not _list_of(manifest.get("smoke_prompts", []), str):
        problems.append("'smoke_prompts' must be a list of strings")
    template = manifest.get("chat_template", {})
    if template is not None and not (
        isinstance(template, dict) and isinstance(template.get("finetune_sha256") or "", str)
    ):
        problems.append("'chat_template' must be an object whose 'finetune_sha256' is a string")
    return problems


def _list_of(value: object, kind: type) -> bool:
    return isinstance(value, list) and all(isinstance(v, kind) and not isinstance(v, bool) for v in value)


def _json_type(value: object) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
