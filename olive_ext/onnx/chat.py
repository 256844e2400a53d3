"""A conversation with an onnxruntime-genai model: history kept within the context window, sampling
options, answers streamed and stoppable with Ctrl-C.

Each turn renders the whole conversation with the model's chat template and encodes it again: a
small model's prefill is cheap, and the prompt is then exactly what the template says (no drift
between a cached KV state and the text). When the conversation no longer fits in the context
window with room for the answer, the oldest turns are dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from olive_ext.errors import Terminated, UserInputError
from olive_ext.onnx.runtime import genai
from olive_ext.onnx.text_stream import text_stream


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen: greedy when temperature is 0, else sampled."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.0
    seed: int | None = None

    def search_options(self) -> dict[str, Any]:
        """onnxruntime-genai search options (``GeneratorParams.set_search_options``)."""
        options: dict[str, Any] = {"repetition_penalty": self.repetition_penalty}
        if self.temperature <= 0:
            return {**options, "do_sample": False}
        options |= {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k}
        if self.seed is not None:
            options["random_seed"] = self.seed
        return options


class PromptTooLongError(UserInputError):
    """The newest message alone does not fit in the context window with room for the answer (exit code 2 when it
    was the command's --prompt; in a conversation, a note and the next turn)."""


@dataclass(frozen=True)
class Reply:
    """One answer: its text, how many tokens it took, whether Ctrl-C stopped it, turns dropped to fit."""

    text: str
    tokens: int
    interrupted: bool
    dropped_turns: int


class Conversation:
    """The conversation so far, kept within a context window: what the chat sessions of every runtime share.

    A runtime's session sets the attributes below and implements :meth:`_encode` (messages -> prompt ids with
    its chat template, the system message first)."""

    context_tokens: int
    context_hint = "lower --max_new_tokens"  # a runtime whose context can be raised says how
    max_new_tokens: int
    system: str | None
    history: list[dict[str, str]]  # user/assistant messages, oldest first
    last_prompt_ids: list[int]

    def reset(self) -> None:
        """Forget the conversation (the system message stays)."""
        self.history.clear()

    def prompt_ids(self, text: str) -> tuple[list[int], int]:
        """Token ids of the conversation plus ``text``, and how many old turns were dropped to fit."""
        budget = self.context_tokens - self.max_new_tokens
        if budget <= 0:
            raise PromptTooLongError(
                f"--max_new_tokens {self.max_new_tokens} leaves no room for a message: the model's context holds "
                f"{self.context_tokens} tokens",
                hint=f"give --max_new_tokens below {self.context_tokens}",
            )
        dropped = 0
        while True:
            ids = self._encode([*self.history, {"role": "user", "content": text}])
            if len(ids) <= budget:
                return ids, dropped
            if not self.history:
                raise PromptTooLongError(
                    f"this message is {len(ids)} tokens; the model's context holds {self.context_tokens}, "
                    f"{self.max_new_tokens} of them kept for the answer (--max_new_tokens)",
                    hint=f"shorten the message, or {self.context_hint}",
                )
            del self.history[:2]  # the oldest user message and its answer
            dropped += 1

    def _encode(self, messages: list[dict[str, str]]) -> list[int]:
        raise NotImplementedError

    def _reply(self, text: str, pieces: list[str], interrupted: bool, dropped: int) -> Reply:
        """Keep the turn (what was said, even when stopped) and describe it."""
        reply = "".join(pieces)
        self.history += [{"role": "user", "content": text}, {"role": "assistant", "content": reply}]
        return Reply(reply, len(pieces), interrupted, dropped)

    def _system(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}] if self.system else []


class ChatSession(Conversation):
    """A genai model, its chat template, and the conversation so far."""

    def __init__(
        self,
        model_dir: str | Path,
        adapters: dict[str, Path] | None = None,
        adapter: str | None = None,
        system: str | None = None,
        sampling: Sampling | None = None,
        max_new_tokens: int = 256,
    ) -> None:
        og = genai()
        self.og = og
        self.model = og.Model(str(model_dir))
        self.tokenizer = og.Tokenizer(self.model)
        self.folder = Path(model_dir)
        self.context_tokens = context_window(self.folder)
        self.system = system
        self.sampling = sampling or Sampling()
        self.max_new_tokens = max_new_tokens
        self.history: list[dict[str, str]] = []  # user/assistant messages, oldest first
        self.last_prompt_ids: list[int] = []
        self.adapter = adapter
        self.adapters = None
        if adapters:
            self.adapters = og.Adapters(self.model)
            for name, path in adapters.items():
                self.adapters.load(str(path), name)

    def answer(self, text: str, write: Callable[[str], Any] = lambda _: None) -> Reply:
        """Generate the answer to ``text``, streaming pieces to ``write``; Ctrl-C stops it and keeps what was said."""
        ids, dropped = self.prompt_ids(text)
        self.last_prompt_ids = ids
        params = self.og.GeneratorParams(self.model)
        params.set_search_options(max_length=len(ids) + self.max_new_tokens, **self.sampling.search_options())
        generator = self.og.Generator(self.model, params)
        if self.adapter is not None:
            generator.set_active_adapter(self.adapters, self.adapter)
        stream = text_stream(self.folder, self.tokenizer)
        pieces: list[str] = []
        interrupted = False
        try:
            generator.append_tokens(ids)
            while not generator.is_done():
                generator.generate_next_token()
                pieces.append(stream.push(generator.get_next_tokens()[0]))
                write(pieces[-1])
        except Terminated:  # SIGTERM ends the command, not an answer
            raise
        except KeyboardInterrupt:  # Ctrl-C ends this answer, not the conversation
            interrupted = True
        pieces.append(stream.flush())
        write(pieces[-1])
        return self._reply(text, pieces, interrupted, dropped)

    def _encode(self, messages: list[dict[str, str]]) -> list[int]:
        prompt = self.tokenizer.apply_chat_template(json.dumps(self._system() + messages), add_generation_prompt=True)
        return [int(t) for t in self.tokenizer.encode(prompt)]


def context_window(folder: Path) -> int:
    """Tokens the model can attend to: genai_config.json's search max_length (the generator's hard limit),
    else the model's context_length."""
    config = json.loads((folder / "genai_config.json").read_text())
    return int(config.get("search", {}).get("max_length") or config["model"]["context_length"])
