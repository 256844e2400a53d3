"""What the server needs from a model runtime, and choosing the runtime for a `-m` path.

A backend loads one base model (and its adapters), turns chat messages into a prompt with the
model's own template, and generates tokens for one request at a time per call. The server
(:mod:`olive_ext.serve.app`) owns HTTP, queueing, stop strings and response shapes, so a new
runtime (llama.cpp for .gguf files) only implements :class:`Backend`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from olive_ext.errors import UserInputError
from olive_ext.models.folder import find_genai_model


@dataclass(frozen=True)
class Sampling:
    """Decoding settings of one request. temperature 0 means greedy."""

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None  # None: the model's own default
    seed: int | None = None
    repetition_penalty: float = 1.0


@dataclass(frozen=True)
class Piece:
    """One generated token: its text (may be empty mid-character) and whether it ended the turn."""

    text: str
    end_of_turn: bool = False


class Backend(Protocol):
    """A loaded model that the server generates with. Methods may be called from worker threads."""

    context_length: int
    adapters: list[str]

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """The prompt text for chat ``messages`` by the model's chat template, ready for the reply."""
        ...

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``."""
        ...

    def generate(
        self, ids: list[int], sampling: Sampling, adapter: str | None, cancelled: threading.Event
    ) -> Iterator[Piece]:
        """Yield new tokens after ``ids`` until the end-of-turn token, max_new_tokens or ``cancelled``."""
        ...


def load_backend(path: str) -> tuple[Backend, str]:
    """The backend for ``path`` and the folder's name (the base model's default id)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserInputError(f"{path} does not exist", hint="pass a bundle, auto-opt or generate-adapter output")
    if p.suffix.lower() == ".gguf" or (p.is_dir() and any(p.glob("*.gguf")) and not _genai_folder(p)):
        raise UserInputError(
            f"{path} is a GGUF model; serving GGUF needs the llama.cpp backend, which olive-ext does not have yet",
            hint="serve an ONNX build instead: olive-ext auto-opt -m <model> -o out, then olive-ext serve -m out",
        )
    # each backend module imports this one (Piece, Sampling); a llama.cpp backend will be chosen here too
    from olive_ext.serve.genai_backend import GenAIBackend

    folder, adapters = find_genai_model(p)
    return GenAIBackend(folder, adapters), p.resolve().name


def _genai_folder(p: Path) -> bool:
    return (p / "genai_config.json").exists() or (p / "model" / "genai_config.json").exists()
