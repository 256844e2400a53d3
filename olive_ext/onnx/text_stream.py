"""Answer text from generated token ids, piece by piece, as the whole answer decodes.

onnxruntime-genai 0.18's ``TokenizerStream`` and ``Tokenizer.decode`` lose text after a token sequence that is
not valid UTF-8 (measured on a byte-level BPE: "hello" + the lone byte 0xF0 + " world and more text" streams as
"hellorld and more text" and decodes as "hello\\ufffd"), and a small or quantized model does generate such
bytes. The model folder's ``tokenizer.json`` decoded by the ``tokenizers`` library (what transformers decodes
with) keeps them as U+FFFD and the rest intact. Pieces are the growth of the decoded text (as Hugging Face's
text-generation-inference streams): a piece is held back while the text ends in an incomplete character, and a
window that starts one piece back keeps SentencePiece's leading spaces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Decode = Callable[[Sequence[int]], str]


class TextStream:
    """Feed token ids with :meth:`push`; each call returns the text they add ("" while a character is incomplete).

    :meth:`flush` returns what is held back at the end (an incomplete character becomes U+FFFD).
    """

    def __init__(self, decode: Decode) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._prefix = 0  # start of the window decoded for context
        self._read = 0  # end of the text already returned

    def push(self, token: int) -> str:
        """The text ``token`` completes; special tokens add none."""
        self._ids.append(int(token))
        before = self._decode(self._ids[self._prefix : self._read])
        now = self._decode(self._ids[self._prefix :])
        if len(now) > len(before) and not now.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self._ids)
            return now[len(before) :]
        return ""

    def flush(self) -> str:
        """What is held back (an incomplete character at the end of the answer)."""
        if self._read == len(self._ids):
            return ""
        before = self._decode(self._ids[self._prefix : self._read])
        now = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return now[len(before) :]

    def end(self) -> str:
        """What is held back at the end of an answer, less a character the token limit cut in two (dropped, not
        shown as U+FFFD: what serve sends and llama.cpp prints)."""
        return self.flush().rstrip("\ufffd")


def folder_decoder(folder: Path) -> Decode | None:
    """Decoding with the folder's tokenizer.json, special tokens left out; None where it has none."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer  # a dependency of transformers; loaded only to chat and serve

    tokenizer = Tokenizer.from_file(str(path))
    return lambda ids: str(tokenizer.decode(list(ids), skip_special_tokens=True))


def text_stream(folder: Path, genai_tokenizer: Any) -> TextStream | _GenAIStream:
    """A :class:`TextStream` over ``folder``'s tokenizer.json, else the genai tokenizer's own stream (same methods)."""
    decode = folder_decoder(folder)
    return TextStream(decode) if decode is not None else _GenAIStream(genai_tokenizer.create_stream())


class _GenAIStream:
    """onnxruntime-genai's TokenizerStream with TextStream's methods (a model folder without tokenizer.json)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def push(self, token: int) -> str:
        """The genai stream's piece for ``token``."""
        return str(self._stream.decode(int(token)))

    def flush(self) -> str:
        """Nothing: the genai stream holds nothing back that it would give later."""
        return ""

    def end(self) -> str:
        """Nothing, as :meth:`flush`."""
        return ""
