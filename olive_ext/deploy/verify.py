"""`olive-ext verify`: checksums, loading, a smoke generation per adapter, and the end-of-turn contract."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from olive_ext.deploy.archive import member_sizes, read_member, safe_extract
from olive_ext.deploy.bundle import chat_template_text
from olive_ext.deploy.files import (
    Tree,
    UnsafeFileError,
    hash_regular,
    plain_name,
    read_regular,
    regular_size,
    scan_tree,
    visible,
)
from olive_ext.deploy.manifest import (
    MANIFEST,
    MANIFEST_LIMIT,
    SIGNATURE,
    ManifestError,
    normalize_digest,
    parse_manifest,
    text_sha256,
)
from olive_ext.deploy.modelfile import MODELFILE, token_texts
from olive_ext.deploy.signature import check_public_key, verify_signature
from olive_ext.errors import UserInputError
from olive_ext.evaluate.backends.llama_cpp import LlamaCppBackend
from olive_ext.onnx.genai_tokens import genai_encode, genai_leading_bos
from olive_ext.onnx.runtime import LLAMACPP_INSTALL, llama_cpp_available

SMOKE_TOKENS = 64


@dataclass
class Check:
    """One verification step and its outcome."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class VerifyReport:
    """Every check verify ran, in order; ``ok`` when all passed."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def __bool__(self) -> bool:
        """``ok``: ``assert olive_ext.verify(bundle)`` fails on a bundle that failed a check (it never did: a
        dataclass is always true)."""
        return self.ok

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        """Record a check; control characters in ``detail`` (a file name's newline or terminal escapes) are shown
        escaped: a name holding ESC[2K and "\\n ok checksums" erased its FAIL line on a terminal and printed
        "bundle verified" lines of its own."""
        self.checks.append(Check(name, ok, visible(detail)))


def verify(
    path: Path,
    run_model: bool = True,
    expect: str | None = None,
    public_key: Path | None = None,
) -> VerifyReport:
    """Verify a bundle folder or zip. Bad flags, unsafe or unreadable archives, and input that is no bundle (no
    manifest.json at its top, or a zip without one top folder) raise UserInputError before anything is extracted.

    ``expect`` is the manifest digest ``package`` printed; ``public_key`` checks the model-signing signature.
    """
    digest = normalize_digest(expect) if expect is not None else None
    if public_key is not None:
        check_public_key(public_key)
    if path.is_file():
        if (early := _zip_against_manifest(path, digest)) is not None:
            return early  # nothing unpacked: a member the manifest does not list could be of any size
        with tempfile.TemporaryDirectory(prefix="olive-ext-verify-") as tmp:
            return verify_folder(safe_extract(path, Path(tmp)), run_model, digest, public_key)
    if not path.is_dir():
        raise UserInputError(
            f"{path} does not exist" if not path.exists() else f"{path} is neither a bundle folder nor a zip",
            hint="pass the folder or the .zip that `olive-ext package` wrote",
        )
    return verify_folder(path, run_model, digest, public_key)


def _zip_against_manifest(archive: Path, digest: str | None = None) -> VerifyReport | None:
    """The failed report of a zip whose members its manifest does not vouch for (missing or unreadable manifest,
    not the ``digest`` expected, members it does not list, sizes it does not state), read from the zip's directory
    before anything is unpacked: a 300 kB zip with a 200 MB member of zeros was written to /tmp first, and a 1 MB
    zip whose changed manifest listed a 1 GB member was unpacked before --expect failed it. None: extract and check
    the files."""
    top, sizes = member_sizes(archive)
    if MANIFEST not in sizes:
        raise not_a_bundle(f"{archive}'s top folder {top}/")
    report = VerifyReport()
    data = read_member(archive, f"{top}/{MANIFEST}", MANIFEST_LIMIT)
    if data is None:  # listed, but it unpacks to more than a manifest can hold
        report.add("manifest", False, f"{MANIFEST} in {archive.name} is over {MANIFEST_LIMIT >> 20} MiB; not unpacked")
        return report
    if digest is not None and (actual := hashlib.sha256(data).hexdigest()) != digest:
        _check_digest(actual, digest, report)
        return report
    try:
        listed = {e["path"]: e["size"] for e in parse_manifest(data)["files"]}
    except ManifestError as e:
        report.add("manifest", False, str(e))
        return report
    for rel in sorted(set(sizes) - set(listed) - {MANIFEST, SIGNATURE}):
        report.add("no extra files", False, f"{rel} is not in the manifest (not unpacked)")
    if report.checks:  # the zip is refused unpacked: a renamed member was named as an extra file only
        for rel in sorted(set(listed) - set(sizes)):
            report.add("file present", False, f"{rel} is missing")
    for rel in sorted(set(sizes) & set(listed)):
        if sizes[rel] != listed[rel]:
            report.add("checksum", False, f"{rel} unpacks to {sizes[rel]:,} bytes, the manifest says {listed[rel]:,}")
    return report if report.checks else None


def not_a_bundle(where: str) -> UserInputError:
    """The error for input that is no bundle at all (no manifest.json at its top): bad input, exit 2, like a zip with
    two top folders; a bundle that fails a check is a failed report instead (exit 1)."""
    return UserInputError(f"{where} holds no {MANIFEST}: it is not a bundle `olive-ext package` wrote",
                          hint="pass the bundle folder or the .zip that `olive-ext package --zip` wrote")  # fmt: skip


def verify_folder(
    root: Path, run_model: bool = True, expect: str | None = None, public_key: Path | None = None
) -> VerifyReport:
    """Check a bundle folder: file types first (nothing unsafe is read), then manifest, digest, signature, files.
    A folder without manifest.json is no bundle: UserInputError (:func:`not_a_bundle`)."""
    if not os.path.lexists(root / MANIFEST):  # not a bundle: said at once, without listing a folder of any size
        raise not_a_bundle(str(root))
    report = VerifyReport()
    tree = scan_tree(root)
    for problem in tree.problems:
        report.add("regular files only", False, problem)
    if tree.problems:
        return report  # nothing in the folder is read once it holds a link or a special file
    read = _read_checked_manifest(root, tree, report)
    if read is None:
        return report
    manifest, digest = read
    if expect is not None:
        _check_digest(digest, expect, report)
    signed = _check_signature(root, tree, public_key, report)
    _check_files(root, manifest, tree, report, signed)
    if report.ok:
        _check_chat_template(root, manifest, report)
    gguf = manifest.get("format") == "gguf"
    if gguf and report.ok:
        _check_modelfile(root, manifest, report)
    if run_model and report.ok:
        (_check_gguf_generation if gguf else _check_generation)(root, manifest, report)
    return report


def _read_checked_manifest(root: Path, tree: Tree, report: VerifyReport) -> tuple[dict[str, Any], str] | None:
    """The parsed manifest and the sha256 of the very bytes parsed; None (and a failed check) when unusable."""
    if MANIFEST not in tree.files:
        report.add("manifest", False, f"{MANIFEST} is missing")
        return None
    try:
        data = read_regular(root / MANIFEST, MANIFEST_LIMIT)
        return parse_manifest(data), hashlib.sha256(data).hexdigest()
    except (ManifestError, UnsafeFileError) as e:
        report.add("manifest", False, str(e))
        return None


def changed_files(root: Path, under: tuple[str, ...] = ("model/", "adapters/")) -> list[str]:
    """The files under ``under`` (default: what onnxruntime-genai reads) that differ from bundle ``root``'s manifest
    or are missing; [] when the manifest cannot be read (nothing to compare with)."""
    try:
        manifest = parse_manifest(read_regular(root / MANIFEST, MANIFEST_LIMIT))
    except (ManifestError, UnsafeFileError, OSError):
        return []
    changed: list[str] = []
    for entry in manifest["files"]:
        rel = entry["path"]
        if not rel.startswith(under):
            continue
        try:
            sha, size = hash_regular(root / rel)
        except (UnsafeFileError, OSError):  # missing, or no longer a regular file
            changed.append(rel)
            continue
        if (sha, size) != (entry["sha256"], entry["size"]):
            changed.append(rel)
    return changed


def _check_digest(actual: str, expect: str, report: VerifyReport) -> None:
    if actual == expect:
        report.add("manifest digest", True, f"sha256 {actual} as expected")
    else:
        report.add("manifest digest", False, f"sha256 {actual}, expected {expect}: the manifest was changed")


def _check_signature(root: Path, tree: Tree, public_key: Path | None, report: VerifyReport) -> dict[str, str]:
    """Check the signature when asked; return the sha256 of each file it verified ({} when not checked or broken)."""
    if public_key is None:
        if SIGNATURE in tree.files:
            report.add("signature", True, f"{SIGNATURE} present, not checked (pass --public_key to check it)")
        return {}
    problem, signed = verify_signature(root, public_key)
    if problem is None:
        report.add("signature", True, f"{SIGNATURE} verified with {public_key.name} (model-signing, offline)")
    else:
        report.add("signature", False, problem)
    return signed


def _check_files(
    root: Path, manifest: dict[str, Any], tree: Tree, report: VerifyReport, signed: dict[str, str]
) -> None:
    """Every file against the manifest; a file the signature check just hashed is compared by its signed sha256."""
    expected = {e["path"]: e for e in manifest["files"]}
    actual = set(tree.files) - {MANIFEST, SIGNATURE}
    failed = False
    for rel in sorted(set(expected) - actual):
        report.add("file present", False, f"{rel} is missing")
        failed = True
    for rel in sorted(actual - set(expected)):
        report.add("no extra files", False, f"{rel} is not in the manifest")
        failed = True
    holding = {str(parent) for rel in expected for parent in PurePosixPath(rel).parents}
    for rel in sorted(set(tree.folders) - holding):  # model/chat_template.jinja/ as a folder: read as the template
        report.add("no extra files", False, f"{rel}/ is a folder holding no file of the manifest")
        failed = True
    for rel in sorted(set(expected) & actual):
        e = expected[rel]
        try:
            sha, size = (signed[rel], regular_size(root / rel)) if rel in signed else hash_regular(root / rel)
        except UnsafeFileError as err:  # swapped for a link or a device since the folder was listed
            report.add("regular files only", False, str(err))
            failed = True
            continue
        if e["sha256"] != sha:
            report.add("checksum", False, f"{rel} does not match its sha256 in the manifest")
            failed = True
        elif e["size"] != size:  # the sha256 matches: the manifest's size was edited
            report.add("checksum", False, f"{rel} is {size:,} bytes, the manifest says {e['size']:,}")
            failed = True
    model = (_gguf_rel(manifest) if manifest.get("format") == "gguf" else "model/genai_config.json")
    if model is None or model not in expected:  # a manifest listing no files verified as "bundle verified"
        what = "a .gguf file in model/ (its 'gguf_file')" if manifest.get("format") == "gguf" else \
            "model/genai_config.json"
        report.add("model", False, f"the manifest lists no model: a bundle holds {what}")
        failed = True
    for name in manifest.get("adapters", []):
        if f"adapters/{name}.onnx_adapter" not in expected:
            report.add("adapters", False, f"adapter {name!r} has no adapters/{name}.onnx_adapter in the manifest")
            failed = True
    if not failed:
        report.add("checksums", True, f"{len(expected)} files match the manifest")


def _check_chat_template(root: Path, manifest: dict[str, Any], report: VerifyReport) -> None:
    info = manifest.get("chat_template") or {}
    try:
        shipped = chat_template_text(root / "model")
    except (ValueError, RecursionError) as e:  # a tokenizer_config.json that is not JSON or not UTF-8
        report.add("chat template", False, f"the chat template cannot be read: {e}")
        return
    if shipped is None and isinstance(manifest.get("text_template"), str):  # a completion model: prompts are text
        report.add("chat template", True, "none: the model was fine-tuned and measured on the manifest's text_template")
        return
    if shipped is None:
        report.add("chat template", False, "the model folder ships no chat template")
        return
    if info.get("finetune_sha256") and text_sha256(shipped) != info["finetune_sha256"]:
        report.add("chat template", False, "the shipped chat template differs from the one used in fine-tuning")
        return
    detail = "same as in fine-tuning" if info.get("finetune_sha256") else "shipped (no fine-tuning record)"
    report.add("chat template", True, detail)


def _check_generation(root: Path, manifest: dict[str, Any], report: VerifyReport) -> None:
    # loads the runtimes' native libraries: only when a model is run (not for `verify --no_run`)
    from olive_ext.onnx.runtime import genai, onnxruntime

    provider = (manifest.get("target") or {}).get("provider") or "CPUExecutionProvider"
    if provider not in onnxruntime().get_available_providers():
        report.add("load", True, f"not loaded: {provider} is not available on this machine")
        return
    og = genai()
    names: list[str] = list(manifest.get("adapters", []))
    try:
        model = og.Model(str(root / "model"))
        tokenizer = og.Tokenizer(model)
        adapters = og.Adapters(model)
        for name in names:  # plain names, checked with the manifest, and files whose checksums matched
            adapters.load(str(root / "adapters" / f"{name}.onnx_adapter"), name)
    except RuntimeError as e:  # onnxruntime-genai reports a model it cannot load this way
        report.add("load", False, " ".join(str(e).split())[:300])
        return
    report.add("load", True, f"loaded on {provider}")
    eos = set(manifest.get("eos_token_ids") or [int(t) for t in tokenizer.eos_token_ids])
    bos = genai_leading_bos(og, model)
    prompts = manifest.get("smoke_prompts") or []
    for label in [None, *names]:
        for i, prompt in enumerate(prompts):
            where = _smoke_label(f"adapter {label}" if label else "base model" if names else "model", i, len(prompts))
            _smoke(og, model, tokenizer, adapters, label, genai_encode(tokenizer, prompt, bos), eos, report, where)


def _smoke_label(model: str, index: int, count: int) -> str:
    """'end of turn (model, prompt 2 of 3)': which smoke prompt a line is about (three alike lines said ok, FAIL,
    ok, and the model a merged fine-tune was called "base model")."""
    return f"end of turn ({model}, prompt {index + 1} of {count})" if count > 1 else f"end of turn ({model})"


def _smoke(
    og: Any,
    model: Any,
    tokenizer: Any,
    adapters: Any,
    name: str | None,
    ids: list[int],
    eos: set[int],
    report: VerifyReport,
    label: str,
) -> None:
    """Greedy-generate up to SMOKE_TOKENS tokens and check that generation ends its turn on its own."""
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + SMOKE_TOKENS, do_sample=False)
    gen = og.Generator(model, params)
    if name:
        gen.set_active_adapter(adapters, name)
    gen.append_tokens(ids)
    out: list[int] = []
    while not gen.is_done() and len(out) < SMOKE_TOKENS:
        gen.generate_next_token()
        out.append(int(gen.get_next_tokens()[0]))
    stopped = bool(out) and out[-1] in eos
    short = json.dumps(tokenizer.decode([t for t in out if t not in eos])[:60], ensure_ascii=False)
    if stopped:
        report.add(label, True, f"stopped after {len(out)} tokens: {short}")
    else:
        report.add(
            label,
            False,
            f"ran to the {SMOKE_TOKENS}-token limit without an end-of-turn token: {short}",
        )


# ----------------------------------------------------------------------------- GGUF bundles


def _gguf_rel(manifest: dict[str, Any]) -> str | None:
    """The manifest's .gguf path when it is a plain file directly in model/ and listed; else None."""
    rel = manifest.get("gguf_file")
    listed = {e["path"] for e in manifest["files"]}
    if isinstance(rel, str) and rel.startswith("model/") and plain_name(rel[6:]) and rel in listed:
        return rel
    return None


def _check_modelfile(root: Path, manifest: dict[str, Any], report: VerifyReport) -> None:
    """The Modelfile is listed, points FROM the manifest's .gguf, and stops on the end-of-turn tokens."""
    rel = _gguf_rel(manifest)
    if rel is None:
        report.add("modelfile", False, "the manifest's 'gguf_file' is not a listed file in model/")
        return
    if MODELFILE not in {e["path"] for e in manifest["files"]}:
        report.add("modelfile", False, f"{MODELFILE} is missing from the bundle")
        return
    lines = read_regular(root / MODELFILE, MANIFEST_LIMIT).decode("utf-8", errors="replace").splitlines()
    if f"FROM ./{rel}" not in lines:
        report.add("modelfile", False, f"{MODELFILE} does not say FROM ./{rel}")
        return
    stops = {_modelfile_value(line.split(" ", 2)[2]) for line in lines if line.startswith("PARAMETER stop ")}
    missing = [t for t in token_texts(root / "model", list(manifest.get("eos_token_ids") or [])) if t not in stops]
    if missing:
        report.add("modelfile", False, f"{MODELFILE} does not stop on end-of-turn token(s) {missing}")
        return
    report.add("modelfile", True, f"FROM ./{rel}; stops on {sorted(stops)}")


def _modelfile_value(text: str) -> str:
    """A Modelfile parameter's value as Ollama reads it: a quoted string (JSON escapes, as package writes it) or
    the bare text (``PARAMETER stop <|im_end|>`` is valid Ollama syntax; json.loads of it was a traceback)."""
    text = text.strip()
    if text.startswith('"'):
        try:
            value = json.loads(text)
        except ValueError:
            return text
        return value if isinstance(value, str) else text
    return text


def _check_gguf_generation(root: Path, manifest: dict[str, Any], report: VerifyReport) -> None:
    """Load the .gguf with llama-cpp-python and check a greedy smoke generation ends its turn."""
    if not llama_cpp_available():
        report.add("load", False, f"llama-cpp-python is not installed: pip install '{LLAMACPP_INSTALL}' (or --no_run)")
        return
    try:
        backend = LlamaCppBackend(str(root / "model"), threads=os.cpu_count() or 1)
    except (ValueError, RuntimeError, OSError) as e:  # llama-cpp-python raises ValueError for a file it cannot load
        report.add("load", False, " ".join(str(e).split())[:300])
        return
    report.add("load", True, f"loaded {manifest.get('gguf_file')} with llama.cpp")
    # the manifest's end-of-turn ids are the contract (the Modelfile stops on them too)
    backend.eos_ids = set(manifest.get("eos_token_ids") or []) or backend.eos_ids
    prompts = manifest.get("smoke_prompts") or []
    for i, prompt in enumerate(prompts):
        label = _smoke_label("model", i, len(prompts))
        # llama.cpp's own tokenizer (the GGUF's metadata, as Ollama uses it), special tokens parsed
        ids = backend.llm.tokenize(prompt.encode(), add_bos=True, special=True)
        out = backend.generate(ids, SMOKE_TOKENS)
        short = json.dumps(backend.llm.detokenize(out.tokens).decode(errors="replace")[:60], ensure_ascii=False)
        if len(out.tokens) < SMOKE_TOKENS:
            report.add(label, True, f"stopped after {len(out.tokens) + 1} tokens: {short}")
        else:
            report.add(label, False,
                       f"ran to the {SMOKE_TOKENS}-token limit without an end-of-turn token: {short}")  # fmt: skip
