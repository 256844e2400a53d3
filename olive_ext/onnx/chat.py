"""A conversation with an onnxruntime-genai model: history kept within the context window, sampling
options, answers streamed and stoppable with Ctrl-C.

Each turn renders the whole conversation with the model's chat template and encodes it again: a
small model's prefill is cheap, and the prompt is then exactly what the template says (no drift
between a cached KV state and the text). When the conversation no longer fits in the context
window with room for the answer, the oldest turns are dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from olive_ext.errors import Terminated, UserInputError
from olive_ext.onnx.genai_tokens import genai_encode, genai_leading_bos
from olive_ext.onnx.runtime import genai
from olive_ext.onnx.text_stream import text_stream


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen: greedy when temperature is 0, else sampled."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 50  # 0: no top-k cut
    repetition_penalty: float = 1.0
    seed: int | None = None

    def search_options(self, vocab_size: int) -> dict[str, Any]:
        """onnxruntime-genai search options (``GeneratorParams.set_search_options``) for a vocabulary of
        ``vocab_size`` tokens."""
        options: dict[str, Any] = {"repetition_penalty": self.repetition_penalty}
        if self.temperature <= 0:
            return {**options, "do_sample": False}
        top_k = genai_top_k(self.top_k, vocab_size)
        options |= {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": top_k}
        if self.seed is not None:
            options["random_seed"] = self.seed
        return options


def genai_top_k(top_k: int, vocab_size: int) -> int:
    """``top_k`` as onnxruntime-genai takes it: 0 (no cut) or more than the vocabulary is the whole vocabulary
    (genai raised "top_k (1000000) must be less than or equal to vocab_size"), as llama.cpp and transformers
    read them."""
    return vocab_size if top_k <= 0 or top_k > vocab_size else top_k


def read_genai_config(folder: Path) -> dict[str, Any]:
    """``folder``'s genai_config.json; a file that is not JSON is a UserInputError naming it and where the JSON breaks
    (onnxruntime-genai's own parse error, or json's traceback in serve, said neither plainly)."""
    path = folder / "genai_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserInputError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})",
                             hint="fix the file, or build the model again") from e  # fmt: skip
    except (UnicodeDecodeError, RecursionError, ValueError) as e:  # not UTF-8, nested too deeply, a huge integer
        raise UserInputError(f"{path} cannot be read as JSON ({e})",
                             hint="fix the file, or build the model again") from e  # fmt: skip
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise UserInputError(f"{path} holds no 'model' object, which onnxruntime-genai reads",
                             hint="fix the file, or build the model again")  # fmt: skip
    return config


def vocab_size(folder: Path, config: dict[str, Any] | None = None) -> int:
    """The vocabulary size genai_config.json names (``config``: the file, already read)."""
    config = config or read_genai_config(folder)
    return int(config["model"]["vocab_size"])


class NoChatTemplateError(UserInputError):
    """The model has no chat template (onnxruntime-genai: "Empty chat template.")."""


class ChatTemplateRejectedError(UserInputError):
    """The model's chat template raised on these messages: a role it has no place for (Gemma's and Mistral's
    templates refuse a system message), turns out of the order it wants. ``reason``: the template's words."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the model's chat template rejected the conversation: {reason}")
        self.reason = reason


def genai_chat_prompt(tokenizer: Any, messages: list[dict[str, str]], template: str | None = None) -> str:
    """The chat template (``template``: chat_template.jinja's text, which wins as in transformers; else the
    tokenizer's) applied to ``messages``, the assistant's turn opened. A template's refusal is one line (the
    runtime's message repeats the template's source after it)."""
    kwargs = {"template_str": template} if template else {}
    try:
        return str(tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True, **kwargs))
    except RuntimeError as e:
        first = re.sub(r" at row \d+, column \d+:?$", "", (str(e).strip().splitlines() or [type(e).__name__])[0])
        if "empty chat template" in first.lower():
            raise NoChatTemplateError("the model has no chat template") from e
        raise ChatTemplateRejectedError(first) from e


class BrokenChatTemplateError(UserInputError):
    """The model's chat template is not Jinja that parses: the model's files are at fault, not a conversation."""


# transformers' {% generation %} tags (its AssistantTracker extension): no part of Jinja itself
_GENERATION_TAG = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")


def check_chat_template(template: str | None, source: str) -> None:
    """Raise :class:`BrokenChatTemplateError` when ``template`` (read from ``source``: a file, or the metadata that
    held it) does not parse as Jinja. A syntax error was blamed on each conversation ("the chat template refuses a
    conversation with --system", a 400 on ``messages`` for every request) instead of the model's file."""
    if not template:
        return
    try:
        import jinja2
    except ImportError:  # the runtime renders it without jinja2: its own error says what is wrong, at the first turn
        return
    try:
        jinja2.Environment(extensions=["jinja2.ext.loopcontrols"]).parse(_GENERATION_TAG.sub("", template))
    except jinja2.TemplateSyntaxError as e:
        raise BrokenChatTemplateError(
            f"the model's chat template in {source} is not valid Jinja: {e.message} (line {e.lineno})",
            hint=f"fix the template in {source} (or copy the base model's chat template there): chat and serve "
            "render every conversation with it",
        ) from e


def folder_chat_template(folder: Path) -> tuple[str, Path] | None:
    """(the chat template, the file it is in) of a model folder, as the runtimes read it: chat_template.jinja,
    else tokenizer_config.json's ``chat_template`` text; None without either."""
    if (text := chat_template_file(folder)) is not None:
        return text, folder / "chat_template.jinja"
    config = folder / "tokenizer_config.json"
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    template = data.get("chat_template") if isinstance(data, dict) else None
    return (template, config) if isinstance(template, str) else None


def check_folder_chat_template(folder: Path) -> None:
    """:func:`check_chat_template` on a model folder's template (chat_template.jinja or tokenizer_config.json)."""
    if found := folder_chat_template(folder):
        template, source = found
        check_chat_template(template, str(source))


def chat_template_file(folder: Path) -> str | None:
    """chat_template.jinja's text beside a genai model (what transformers reads first), or None."""
    path = folder / "chat_template.jinja"
    return path.read_text(encoding="utf-8") if path.is_file() else None


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
    served = True  # `olive-ext serve` runs this model too (its /v1/completions takes prompts as written)
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
        return [{"role": "system", "content": self.system}] if self.system is not None else []


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
        read_genai_config(Path(model_dir))  # not JSON: named with its line and column, not genai's parse error
        self.model = og.Model(str(model_dir))
        self.tokenizer = og.Tokenizer(self.model)
        self.folder = Path(model_dir)
        self._bos = genai_leading_bos(og, self.model)  # as serve, evaluation and fine-tuning put it
        self._template = chat_template_file(self.folder)
        check_folder_chat_template(self.folder)  # broken: said now, as the model's, not at the first turn
        self._end_ids = end_ids(self.folder)
        self.context_tokens = context_window(self.folder)
        self._vocab_size = vocab_size(self.folder)
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
        options = self.sampling.search_options(self._vocab_size)
        params.set_search_options(max_length=len(ids) + self.max_new_tokens, **options)
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
                token = int(generator.get_next_tokens()[0])
                if token in self._end_ids:  # the end of the turn: not text of the answer (a plain "\n" may be one)
                    break
                pieces.append(stream.push(token))
                write(pieces[-1])
        except Terminated:  # SIGTERM ends the command, not an answer
            raise
        except KeyboardInterrupt:  # Ctrl-C ends this answer, not the conversation
            interrupted = True
        if tail := stream.end():  # the end of a character cut between tokens: no token of its own
            pieces[-1] += tail
            write(tail)
        return self._reply(text, pieces, interrupted, dropped)

    def _encode(self, messages: list[dict[str, str]]) -> list[int]:
        prompt = genai_chat_prompt(self.tokenizer, self._system() + messages, self._template)
        return genai_encode(self.tokenizer, prompt, self._bos)


def end_ids(folder: Path, config: dict[str, Any] | None = None) -> set[int]:
    """The end-of-turn token ids genai_config.json names (one id or a list; ``config``: the file, already read):
    chat and serve stop on them and show none of them as text."""
    config = config or read_genai_config(folder)
    eos = config["model"].get("eos_token_id")
    return {int(i) for i in (eos if isinstance(eos, list) else [] if eos is None else [eos])}


def context_window(folder: Path) -> int:
    """Tokens the model can attend to: genai_config.json's search max_length (the generator's hard limit),
    else the model's context_length."""
    config = read_genai_config(folder)
    return int(config.get("search", {}).get("max_length") or config["model"]["context_length"])
