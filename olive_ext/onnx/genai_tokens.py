"""Prompt token ids from onnxruntime-genai's tokenizer, as evaluation and fine-tuning saw them.

onnxruntime-genai 0.18's ``Tokenizer.encode`` adds no special tokens unless told to (``update_options
(add_special_tokens="true")``), where a Hugging Face tokenizer adds the BOS its ``tokenizer.json`` post-processor
names (Llama 2 and 3, Mistral, Gemma): a raw prompt sent to a built Llama model then lacked the BOS it was
fine-tuned and measured with (``data.formats.encode_prompt``). Chat-templated text usually holds the BOS already,
and it is never doubled.
"""

from __future__ import annotations

from typing import Any


def genai_leading_bos(og: Any, model: Any) -> int | None:
    """The BOS id the model's tokenizer puts before a text when asked for special tokens (None: it puts none)."""
    probe = og.Tokenizer(model)
    probe.update_options(add_special_tokens="true")
    bos = int(probe.bos_token_id)
    return bos if bos >= 0 and [int(i) for i in probe.encode("a")][:1] == [bos] else None


def genai_encode(tokenizer: Any, text: str, bos: int | None) -> list[int]:
    """Token ids of ``text``, starting with ``bos`` once where the tokenizer adds one (see the module)."""
    ids = [int(i) for i in tokenizer.encode(text)]
    return ids if bos is None or ids[:1] == [bos] else [bos, *ids]
