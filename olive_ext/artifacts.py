"""Artifacts: what passes consume and produce, and their content fingerprints.

An artifact is a model on disk of one kind:

- ``hf``: a Hugging Face folder or hub id, optionally with a peft ``adapter_path``
- ``gguf``: a GGUF file (llama.cpp format), loaded through transformers
- ``onnx``: a folder holding one ONNX model (``model.onnx`` plus external data)
- ``genai``: a folder onnxruntime-genai loads (``genai_config.json``)
- ``openvino``: an OpenVINO IR folder (``openvino_model.xml`` + ``.bin``, tokenizer, ``openvino.json``), an
  encoder or a causal LM (``meta["causal"]``)
- ``composite``: a folder of ONNX components, one subfolder each (``meta["components"]`` names them in order):
  what Olive's SplitModel makes and its ComposeOnnxModels, StaticLLM and per-component passes take

The fingerprint is a content hash of the artifact's files. It is computed once:
for cache entries it is stored in the entry, for user inputs it is memoized by
(path, size, mtime) so a second run does not hash the same gigabytes again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from olive_ext.errors import UserInputError

ArtifactKind = Literal["hf", "gguf", "onnx", "genai", "openvino", "composite"]
ARTIFACT_KINDS: tuple[str, ...] = get_args(ArtifactKind)


def article(kind: str) -> str:
    """'an' before a kind that starts with a vowel ("an onnx model", "an openvino model"), else 'a'."""
    return "an" if kind[:1].lower() in "aeiou" else "a"

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Artifact:
    """A model on disk (or on the hub) plus what passes need to know about it."""

    kind: ArtifactKind
    path: str
    adapter_path: str | None = None
    gguf_file: str | None = None
    fingerprint: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def with_fingerprint(self, fp: str) -> Artifact:
        """A copy of this artifact with content fingerprint ``fp``."""
        return replace(self, fingerprint=fp)

    def to_json(self, relative_to: Path | None = None) -> dict[str, Any]:
        """Serialize; paths inside ``relative_to`` are stored relative so entries can move."""
        data = asdict(self)
        if relative_to is not None:
            for key in ("path", "adapter_path"):
                if data[key]:
                    data[key] = _relativize(data[key], relative_to)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], relative_to: Path | None = None) -> Artifact:
        """The artifact ``to_json`` wrote (``./`` paths resolved against ``relative_to``)."""
        data = dict(data)
        if relative_to is not None:
            for key in ("path", "adapter_path"):
                if data.get(key) and data[key].startswith("./"):
                    data[key] = str(relative_to / data[key][2:])
        return cls(**data)

    def describe(self) -> str:
        """A one-line description for logs and reports: kind, path, GGUF file, adapter."""
        text = f"{self.kind}:{self.path}"
        if self.gguf_file:
            text += f" ({self.gguf_file})"
        if self.adapter_path:
            text += f" + adapter {self.adapter_path}"
        return text


LM_ROLES = frozenset({"genai", "hf", "gguf"})
"""Evaluation roles (``eval_role``) measured as language models: generation, perplexity, TTFT, decode speed."""


def eval_role(artifact: Artifact) -> str:
    """The kind the evaluator measures an artifact as: an OpenVINO causal LM as an LLM folder ("genai"), an
    OpenVINO encoder as an encoder graph ("onnx"); every other kind as itself."""
    if artifact.kind == "openvino":
        return "genai" if artifact.meta.get("causal") else "onnx"
    return artifact.kind


def _relativize(path: str, root: Path) -> str:
    try:
        rel = Path(path).resolve().relative_to(root.resolve())
    except ValueError:
        return path
    return "./" + rel.as_posix() if str(rel) != "." else "./"


def hash_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def iter_files(root: Path) -> list[Path]:
    """Every regular file under root (or root itself), sorted, skipping our own marker files."""
    if root.is_file():
        return [root]
    files = [p for p in root.rglob("*") if p.is_file() and p.name != FINGERPRINT_MEMO]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


FINGERPRINT_MEMO = ".olive_ext_fingerprint.json"


# Records of how a folder was made (timings, memory peaks), not what it holds: two identical fine-tunes
# differ only there, and must fingerprint the same so that what is built from them is reused.
RUN_RECORDS = frozenset({"train_metrics.json"})


def content_hash(root: Path, memo: FingerprintMemo | None = None) -> str:
    """sha256 over (relative path, size, file hash) of every file under root, run records left out."""
    h = hashlib.sha256()
    for f in iter_files(root):
        if f.name in RUN_RECORDS:
            continue
        rel = f.name if root.is_file() else f.relative_to(root).as_posix()
        digest = memo.file_hash(f) if memo else hash_file(f)
        h.update(f"{rel}\0{f.stat().st_size}\0{digest}\n".encode())
    return h.hexdigest()


class FingerprintMemo:
    """Remembers file hashes by (absolute path, size, mtime_ns) in one JSON file."""

    def __init__(self, store: Path | None) -> None:
        self.store = store
        self._data: dict[str, str] = {}
        self._dirty = False
        if store and store.exists():
            try:
                self._data = json.loads(store.read_text())
            except (OSError, json.JSONDecodeError):
                self._data = {}

    def file_hash(self, path: Path) -> str:
        """The file's sha256, reused while its size and mtime are unchanged."""
        st = path.stat()
        key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        if key not in self._data:
            self._data[key] = hash_file(path)
            self._dirty = True
        return self._data[key]

    def save(self) -> None:
        """Write the memo back to its store (atomically), if it has one."""
        if not (self.store and self._dirty):
            return
        self.store.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.store.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(self._data))
        os.replace(tmp, self.store)
        self._dirty = False


def fingerprint_input(artifact: Artifact, memo: FingerprintMemo | None = None) -> Artifact:
    """Fingerprint a user's input model: file contents when local, hub id and revision otherwise."""
    h = hashlib.sha256()
    h.update(artifact.kind.encode())
    p = Path(artifact.path)
    if artifact.gguf_file and p.is_dir():
        p = p / artifact.gguf_file
    olive_model = artifact.meta.get("olive_model")
    if olive_model and olive_model.get(NO_MODEL_PATH):
        pass  # the user's model_loader makes it: its Olive config and script below are its identity (the config's
        # folder was hashed whole, outputs written inside it included: every run missed the cache)
    elif p.exists():
        h.update(content_hash(p, memo).encode())
    elif looks_like_hub_id(artifact.path):
        revision = artifact.meta.get("revision") or "main"
        h.update(f"hub:{artifact.path}@{resolve_hub_revision(artifact.path, revision)}".encode())
    else:
        raise missing_model_error(artifact.path)
    if artifact.adapter_path:
        a = Path(artifact.adapter_path)
        if not a.exists():
            raise UserInputError(f"adapter_path {artifact.adapter_path!r} does not exist")
        h.update(b"adapter\0" + content_hash(a, memo).encode())
    if olive_model:
        h.update(olive_model_identity(olive_model, memo).encode())
    return artifact.with_fingerprint(h.hexdigest())


NO_MODEL_PATH = "olive_ext_no_model_path"
"""Key of an Olive model config (``input_model.olive``) whose model the user's model_loader makes without a
model_path: Olive hands the loader None, and the model's folder stands for nothing."""


def olive_model_identity(olive_model: dict[str, Any], memo: FingerprintMemo | None = None) -> str:
    """How Olive loads a model (load_kwargs, the user's hooks) and the user's script as it is now, for a
    fingerprint: the steps after read them, though the model's files do not hold them."""
    identity = "olive\0" + json.dumps(olive_model, sort_keys=True, default=str)
    script = Path(str(olive_model.get("model_script") or ""))
    if script.is_file():
        identity += content_hash(script, memo)
    return identity


def resolve_hub_revision(repo_id: str, revision: str = "main") -> str:
    """The commit a hub revision (branch or tag) points at now, so an updated hub model is a new input.

    Online: the hub's answer. Offline, or when the hub does not answer: the commit the local Hugging Face
    cache holds for it (``refs/<revision>``, which is what transformers would load). When neither knows,
    the revision name itself (the model cannot load then anyway)."""
    if re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    if os.environ.get("HF_HUB_OFFLINE", "").lower() not in {"1", "true", "yes", "on"}:
        import httpx
        from huggingface_hub import model_info
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

        try:
            sha = model_info(repo_id, revision=revision, timeout=10).sha
            if sha:
                return sha
        except (OSError, httpx.HTTPError, HfHubHTTPError, OfflineModeIsEnabled):
            pass  # unreachable, gated or missing: the local cache, below, decides
    return _cached_hub_revision(repo_id, revision) or revision


def _cached_hub_revision(repo_id: str, revision: str) -> str | None:
    ref = hub_cache_dir() / f"models--{repo_id.replace('/', '--')}" / "refs" / revision
    try:
        return ref.read_text().strip() or None
    except OSError:
        return None


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache folder, as huggingface_hub computes it (read now: tests and users set it late)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def spelled_as_path(value: str) -> bool:
    """A value written as a path, which no hub id is: ``.``, ``/`` or ``~`` first, a backslash, two slashes."""
    return value.startswith((".", "/", "~")) or "\\" in value or value.count("/") > 1


def generates_text(architectures: list[Any]) -> bool:
    """Whether config.json's ``architectures`` generate text (…ForCausalLM, …LMHeadModel, …ForConditionalGeneration);
    True when it names none (nothing to tell by). The one rule model_task, the builder's input check and chat use."""
    return not architectures or any(
        str(a).endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in architectures
    )


def looks_like_hub_id(path: str) -> bool:
    """``owner/name`` and nothing a path would be."""
    parts = path.split("/")
    return len(parts) == 2 and all(parts) and not spelled_as_path(path)


def missing_model_error(path: str) -> UserInputError:
    """The error for a model path that is neither on this machine nor a hub id."""
    return UserInputError(
        f"input model path {path!r} does not exist and is not a hub id (owner/name)",
        hint="give a local folder, a .gguf/.onnx file, or a Hugging Face id like HuggingFaceTB/SmolLM2-135M",
    )
