"""The onnxruntime-genai backend: olive-ext's ONNX builds, with their LoRA adapters switched per request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from olive_ext.cpu_threads import plan_threads
from olive_ext.errors import UserInputError
from olive_ext.onnx.chat import (
    chat_template_file,
    check_folder_chat_template,
    end_ids,
    genai_chat_prompt,
    genai_top_k,
    read_genai_config,
    vocab_size,
)
from olive_ext.onnx.genai_tokens import genai_encode, genai_leading_bos
from olive_ext.onnx.runtime import genai
from olive_ext.onnx.text_stream import text_stream
from olive_ext.serve.backend import Piece, Sampling


class GenAIBackend:
    """One og.Model shared by all requests; each request gets its own og.Generator and tokenizer stream.

    Adapters are loaded once at start; a request activates one on its own generator, so requests
    for different adapters never disturb each other.
    """

    def __init__(
        self, folder: Path, adapter_files: dict[str, Path], context_length: int = 0, threads: int = 0
    ) -> None:
        """``context_length``: the tokens a prompt and its answer may take (0: the model's); ``threads``: its
        compute threads (0: the threads every command plans, from the free cores or OLIVE_EXT_THREADS). Both were
        taken by `serve` and left unused on a genai model."""
        self._og = genai()
        self._folder = folder
        config = read_genai_config(folder)  # not JSON: said with its line and column (json's traceback before)
        self.max_context_length = int(config["model"]["context_length"])
        if context_length > self.max_context_length:
            raise UserInputError(f"--context_length {context_length} is past {folder.name}'s context of "
                                 f"{self.max_context_length} tokens", hint=f"pass --context_length "
                                 f"{self.max_context_length} or less (0: the model's)")  # fmt: skip
        # genai allocates per request: the whole context is served unless asked for less
        self.context_length = context_length or self.max_context_length
        self.threads = threads or plan_threads().threads
        self._end_ids = end_ids(folder, config)
        self._vocab_size = vocab_size(folder, config)
        self._template = chat_template_file(folder)
        check_folder_chat_template(folder)  # broken: the server does not start (it was a 400 on every chat request)
        try:
            og_config = self._og.Config(str(folder))
            session = {"intra_op_num_threads": self.threads}
            og_config.overlay(json.dumps({"model": {"decoder": {"session_options": session}}}))
            self._model = self._og.Model(og_config)
            self._tokenizer = self._og.Tokenizer(self._model)
            self._bos = genai_leading_bos(self._og, self._model)
            # an og.Adapters only where there are adapters: a model built without LoRA inputs needs none
            self._adapters: Any = None
            if adapter_files:
                self._adapters = self._og.Adapters(self._model)
                for name, path in adapter_files.items():
                    self._adapters.load(str(path), name)
        except RuntimeError as e:
            raise UserInputError(f"onnxruntime-genai cannot load {folder}: {e}") from e
        self.adapters = sorted(adapter_files)
        self.penalties = False  # genai has repetition_penalty only

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """The model's chat template applied to ``messages``, ending with the assistant's turn opening."""
        return genai_chat_prompt(self._tokenizer, messages, self._template)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, with the BOS the model's tokenizer adds (once), as evaluation saw them."""
        return genai_encode(self._tokenizer, text, self._bos)

    def generate(
        self, ids: list[int], sampling: Sampling, adapter: str | None, cancelled: threading.Event
    ) -> Iterator[Piece]:
        """Tokens after ``ids`` on a fresh generator; stops at an end-of-turn id, the length limit or cancel."""
        generator = self._og.Generator(self._model, self._params(len(ids), sampling))
        if adapter is not None:
            generator.set_active_adapter(self._adapters, adapter)
        generator.append_tokens(ids)
        stream = text_stream(self._folder, self._tokenizer)
        for _ in range(sampling.max_new_tokens):
            if cancelled.is_set() or generator.is_done():
                return
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            if token in self._end_ids:
                yield Piece("", end_of_turn=True)
                return
            # an incomplete character left at the end is dropped, not sent as U+FFFD (as the llama.cpp backend does)
            yield Piece(stream.push(token))

    def _params(self, n_prompt: int, sampling: Sampling) -> Any:
        options: dict[str, Any] = {
            "max_length": min(self.context_length, n_prompt + sampling.max_new_tokens),
            "do_sample": sampling.temperature > 0,
            "repetition_penalty": sampling.repetition_penalty,
        }
        if sampling.temperature > 0:
            options.update(temperature=sampling.temperature, top_p=sampling.top_p)
            if sampling.top_k is not None:
                options["top_k"] = genai_top_k(sampling.top_k, self._vocab_size)
            if sampling.seed is not None:
                options["random_seed"] = sampling.seed
        params = self._og.GeneratorParams(self._model)
        params.set_search_options(**options)
        return params
