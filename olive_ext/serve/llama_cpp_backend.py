"""The llama.cpp backend (llama-cpp-python): GGUF models, from a bare ``.gguf`` or an olive-ext folder.

Concurrency: a ``llama_cpp.Llama`` holds one context (KV cache, batch, sampler) and is not
thread-safe, so each worker gets its own ``Llama`` from a pool and a generation holds it until it
ends. The weights are memory-mapped, so the copies share them; each adds only its KV cache and
compute buffers. Tokenizing runs on the event loop while workers decode: it reads only the model's
vocabulary (``llama_tokenize`` on the ``llama_vocab``), never a context, as llama.cpp's own server
tokenizes in its HTTP threads beside its decode loop.
"""

from __future__ import annotations

import codecs
import ctypes
import json
import queue
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from olive_ext.cpu_threads import plan_threads
from olive_ext.errors import MissingDependencyError, UserInputError
from olive_ext.evaluate.backends.llama_cpp import MAX_CONTEXT, gguf_in, held_context, load_llama
from olive_ext.models.gguf_header import trained_context
from olive_ext.onnx.chat import (
    ChatTemplateRejectedError,
    NoChatTemplateError,
    check_chat_template,
    folder_chat_template,
)
from olive_ext.onnx.runtime import LLAMACPP_INSTALL, llama_cpp_available
from olive_ext.serve.backend import Piece, Sampling


def find_gguf(root: Path) -> tuple[Path, Path | None] | None:
    """(the .gguf, the folder of its tokenizer files and chat template) when ``root`` is a GGUF model, else None.

    ``root`` is a ``.gguf`` file (its own metadata, or a ``chat_template.jinja`` beside it: what the hint for a
    GGUF without a chat template says to add, then ignored for a file), a ``gguf_export`` folder (``llama_cpp.json``
    names the file), an olive-ext output or bundle holding one in ``model/`` (``export --format gguf``,
    an auto-opt output whose chosen model is a GGUF, ``package`` of either), or a folder holding one
    .gguf and no ONNX model.
    """
    if root.is_file():
        if root.suffix.lower() != ".gguf":
            return None
        return root, (root.parent if (root.parent / "chat_template.jinja").is_file() else None)
    config = _json(root / "model_config.json")
    for folder in (root, root / str(config.get("model") or "model")):
        marked = gguf_in(folder)
        if marked is not None:
            return marked, folder
    if (root / "genai_config.json").exists() or (root / "model" / "genai_config.json").exists():
        return None
    files = sorted(root.glob("*.gguf"))
    if len(files) > 1:
        names = ", ".join(f.name for f in files)
        raise UserInputError(f"{root} holds {len(files)} .gguf files ({names})", hint="pass one: -m folder/model.gguf")
    return (files[0], root) if files else None


def _trained_context(gguf: Path) -> int | None:
    """The GGUF's trained context, or None when its header cannot say (llama.cpp then reports the file)."""
    try:
        return trained_context(gguf)
    except Exception:  # a damaged or foreign file: llama.cpp's own load below names it
        return None


class LlamaCppBackend:
    """A GGUF model run by llama.cpp on the CPU; one ``Llama`` per worker, taken from a pool per generation."""

    adapters: list[str]

    def __init__(
        self,
        gguf: Path,
        folder: Path | None,
        end_ids: set[int],
        workers: int = 1,
        context_length: int = 0,
        threads: int = 0,
    ) -> None:
        if not llama_cpp_available():
            raise MissingDependencyError("llama-cpp-python", "serving a GGUF model", LLAMACPP_INSTALL)
        import llama_cpp

        self._lib = llama_cpp
        # the workers split the threads every command plans (free cores, OLIVE_EXT_THREADS), unless ``threads`` says
        threads = threads or max(1, plan_threads().threads // workers)
        trained = _trained_context(gguf)
        if trained and context_length > trained:  # llama.cpp only logs "possible training context overflow" and
            raise UserInputError(  # answers past it with junk (a 9,000-token prompt got "\n\n\n..." as a 200)
                f"--context_length {context_length} is past {gguf.name}'s trained context of {trained} tokens; a "
                "model answers junk past it", hint=f"pass --context_length {trained} or less (0: the model's, at "
                f"most {MAX_CONTEXT})")  # fmt: skip
        try:
            models = [load_llama(gguf, threads, context_length) for _ in range(workers)]
        except Exception as e:  # a file llama.cpp (or gguf's reader of its context length) cannot read
            raise UserInputError(f"llama.cpp cannot load {gguf}: {' '.join(str(e).split())[:300]}") from e
        self._pool: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for llm in models:
            self._pool.put(llm)
        self._first = models[0]  # its vocabulary tokenizes (read-only; see the module's docstring)
        self.context_length = held_context(self._first)  # what --context_length asked for, not llama.cpp's padding
        # the model's trained context: what --context_length may raise the served one to
        self.max_context_length = max(self.context_length, trained or 0)
        self.adapters = []
        self.penalties = True
        self.gguf = gguf
        self._vocab = self._first._model.vocab
        self._add_bos = bool(self._first._model.add_bos_token())
        self._bos = int(self._first.token_bos())
        # end of turn: what llama.cpp calls end-of-generation (EOS, EOT, <|im_end|>, ...) plus ``end_ids``
        self._end_ids = set(end_ids)
        found = folder_chat_template(folder) if folder is not None else None
        template, source = found if found and found[0] else (self._first.metadata.get("tokenizer.chat_template"), None)
        # broken: said at start-up as the model's (Jinja2ChatFormatter raised its TemplateSyntaxError unexplained)
        check_chat_template(template, str(source or f"{gguf}'s tokenizer.chat_template metadata"))
        self._formatter = self._chat_formatter(template) if template else None

    def _chat_formatter(self, template: str) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        model = self._first._model

        def text(token: int) -> str:
            return str(model.token_get_text(token)) if token >= 0 else ""

        return Jinja2ChatFormatter(template, eos_token=text(model.token_eos()), bos_token=text(model.token_bos()))

    @property
    def has_chat_template(self) -> bool:
        """Whether the model has a chat template (the folder's own or the GGUF's) to render conversations with."""
        return self._formatter is not None

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """The chat template (the folder's own, else the GGUF's ``tokenizer.chat_template``) applied to ``messages``."""
        if self._formatter is None:
            raise NoChatTemplateError(f"{self.gguf.name} has no chat template")
        try:
            return str(self._formatter(messages=messages).prompt)
        except Exception as e:  # jinja2 errors and the template's own raise_exception("...")
            raise ChatTemplateRejectedError(str(e)) from e

    def encode(self, text: str) -> list[int]:
        """llama.cpp's tokens of ``text``, special tokens parsed, with the BOS the GGUF asks for (once)."""
        ids = [int(i) for i in self._first._model.tokenize(text.encode("utf-8"), self._add_bos, True)]
        if len(ids) > 1 and ids[0] == ids[1] == self._bos and self._add_bos:
            ids.pop(0)  # the template wrote the BOS itself
        return ids

    def generate(
        self, ids: list[int], sampling: Sampling, adapter: str | None, cancelled: threading.Event
    ) -> Generator[Piece, None, None]:
        """Sample after ``ids`` with llama.cpp's samplers on a pooled ``Llama`` held for the whole generation
        (given back when the generation ends or is closed)."""
        llm = self._pool.get()
        try:
            yield from self._generate(llm, ids, sampling, cancelled)
        finally:
            self._pool.put(llm)

    def _generate(self, llm: Any, ids: list[int], sampling: Sampling, cancelled: threading.Event) -> Iterator[Piece]:
        # the seed is read when generate() builds its sampler; LLAMA_DEFAULT_SEED means a random one
        llm.set_seed(self._lib.LLAMA_DEFAULT_SEED if sampling.seed is None else sampling.seed)
        # the whole prompt is evaluated afresh: generate(reset=True) would keep the KV cache of the prefix the last
        # request shared with this one, and batches split differently give (slightly) different logits, so a
        # greedy or seeded answer would depend on the request before it
        llm.reset()
        tokens = llm.generate(
            ids,
            temp=sampling.temperature,  # 0: llama.cpp's greedy sampler
            top_p=sampling.top_p,
            top_k=sampling.top_k or 0,  # 0: no top-k cut, as OpenAI's API samples
            min_p=0.0,  # llama-cpp-python's default 0.05 would cut what the request did not ask to cut
            typical_p=1.0,
            repeat_penalty=sampling.repetition_penalty,
            frequency_penalty=sampling.frequency_penalty,
            presence_penalty=sampling.presence_penalty,
            reset=True,  # after llm.reset() above: nothing is kept from the last request
        )
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may span tokens
        try:
            for n, token in enumerate(tokens, 1):
                if cancelled.is_set():
                    return
                if token in self._end_ids or self._lib.llama_vocab_is_eog(self._vocab, token):
                    yield Piece("", end_of_turn=True)
                    return
                final = n >= sampling.max_new_tokens
                # never final: a character the token limit cuts in two is dropped, not sent as U+FFFD
                yield Piece(decoder.decode(self._piece(token)))
                if final:
                    return
        finally:
            tokens.close()

    def _piece(self, token: int) -> bytes:
        """The bytes of one token (special tokens as nothing), however long it is.

        llama-cpp-python's own detokenize has a 32-byte buffer and garbles longer pieces (runs of spaces).
        """
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self._lib.llama_token_to_piece(self._vocab, token, buf, size, 0, False)
            if n >= 0:
                return buf.raw[:n]
            size = -n  # too small: llama.cpp says how much it needs


def end_of_turn_ids(root: Path) -> set[int]:
    """A bundle's end-of-turn token ids (its manifest's contract, which its Modelfile stops on too); else none."""
    listed = _json(root / "manifest.json").get("eos_token_ids") if root.is_dir() else None
    return {int(i) for i in listed} if isinstance(listed, list) else set()


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
