"""chat on a Hugging Face model or a fine-tune output, in PyTorch (transformers + peft), before anything is built.

Unsloth's notebooks try a fine-tune right after training (``FastLanguageModel.for_inference`` then ``generate``);
here ``olive-ext chat -m out/ft`` does the same: the base model with the fine-tune's adapter, its chat template, the
BOS fine-tuning put before prompts, and transformers' own ``generate`` (sampling, repetition penalty, end-of-turn
tokens). It is slower than a built model (fp32 PyTorch on the CPU): auto-opt builds and measures the fast one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from olive_ext.artifacts import Artifact
from olive_ext.data.formats import encode_prompt
from olive_ext.errors import Terminated
from olive_ext.evaluate.backends.torch_lm import model_eos_ids
from olive_ext.models.folder import tokenizer_folder
from olive_ext.onnx.chat import (
    ChatTemplateRejectedError,
    Conversation,
    NoChatTemplateError,
    Reply,
    Sampling,
)
from olive_ext.onnx.peft_model import apply_adapter
from olive_ext.onnx.text_stream import TextStream

logger = logging.getLogger("olive_ext")

# the context a chat keeps when the model's config names none, and at most: fp32 attention on a CPU
MAX_CONTEXT = 4096


class TorchChatSession(Conversation):
    """A Hugging Face causal LM (with the fine-tune's adapter) in PyTorch, its chat template, and the conversation."""

    served = False  # serve runs built models only

    def __init__(
        self,
        source: Artifact,
        system: str | None = None,
        sampling: Sampling | None = None,
        max_new_tokens: int = 256,
        context_length: int = 0,
        trust_remote_code: bool = False,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = Path(source.path)
        # the adapter's tokenizer where it carries one: a fine-tune's added tokens were split as plain text
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder(folder, source.adapter_path),
                                                       trust_remote_code=trust_remote_code)  # fmt: skip
        kwargs = {"gguf_file": source.gguf_file} if source.gguf_file else {}
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, trust_remote_code=trust_remote_code,
                                                     **kwargs)  # fmt: skip
        if source.adapter_path:
            model = apply_adapter(model, source.adapter_path)
        self.model = model.eval()
        self.torch = torch
        tokenizer_eos = {int(self.tokenizer.eos_token_id)} if self.tokenizer.eos_token_id is not None else set()
        self._end_ids = sorted(model_eos_ids(model) | tokenizer_eos)
        trained = int(getattr(model.config, "max_position_embeddings", 0) or MAX_CONTEXT)
        self.context_tokens = min(trained, context_length or MAX_CONTEXT)
        self.context_hint = f"raise --context_length (up to {trained}), or lower --max_new_tokens"
        self.system = system
        self.sampling = sampling or Sampling()
        self.max_new_tokens = max_new_tokens
        self.history = []
        self.last_prompt_ids = []

    def _encode(self, messages: list[dict[str, str]]) -> list[int]:
        """The chat template's prompt, encoded as fine-tuning and evaluation encode prompts (BOS once)."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise NoChatTemplateError("this model has no chat template")
        try:
            text = self.tokenizer.apply_chat_template(self._system() + messages, add_generation_prompt=True,
                                                      tokenize=False)  # fmt: skip
        except Exception as e:  # jinja's TemplateError, or raise_exception() of Gemma's and Mistral's templates
            raise ChatTemplateRejectedError(str(e)) from e
        return encode_prompt(self.tokenizer, str(text))

    def answer(self, text: str, write: Callable[[str], Any] = lambda _: None) -> Reply:
        """Generate the answer to ``text``, streaming pieces to ``write``; Ctrl-C stops it and keeps what was said."""
        ids, dropped = self.prompt_ids(text)
        self.last_prompt_ids = ids
        stream = TextStream(lambda t: str(self.tokenizer.decode(list(t), skip_special_tokens=True)))
        pieces: list[str] = []
        interrupted = False
        try:
            if self.sampling.seed is not None:  # the same seed, the same answers (as on the other runtimes)
                self.torch.manual_seed(self.sampling.seed)
            with self.torch.inference_mode():
                self.model.generate(
                    self.torch.tensor([ids]), attention_mask=self.torch.ones(1, len(ids), dtype=self.torch.long),
                    max_new_tokens=self.max_new_tokens, streamer=_Pieces(stream, pieces, write, set(self._end_ids)),
                    eos_token_id=self._end_ids or None, pad_token_id=self._end_ids[0] if self._end_ids else None,
                    **_generate_options(self.sampling),
                )  # fmt: skip
        except Terminated:  # SIGTERM ends the command, not an answer
            raise
        except KeyboardInterrupt:  # Ctrl-C ends this answer, not the conversation
            interrupted = True
        if tail := stream.end():
            pieces.append(tail)
            write(tail)
        return self._reply(text, pieces, interrupted, dropped)


class _Pieces:
    """transformers' streamer protocol (``put``/``end``): each new token's text to ``write``, the prompt skipped."""

    def __init__(self, stream: TextStream, pieces: list[str], write: Callable[[str], Any], ends: set[int]) -> None:
        self.stream, self.pieces, self.write, self.ends = stream, pieces, write, ends
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # generate() sends the prompt first
            self.prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            if int(token) in self.ends:  # the end of the turn: not text of the answer
                continue
            piece = self.stream.push(int(token))
            self.pieces.append(piece)
            self.write(piece)

    def end(self) -> None:
        """Nothing held: the caller takes the stream's tail."""


def _generate_options(sampling: Sampling) -> dict[str, Any]:
    """transformers ``generate`` options for the chat's sampling settings (greedy at temperature 0)."""
    options: dict[str, Any] = {"repetition_penalty": sampling.repetition_penalty}
    if sampling.temperature > 0:
        options.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k)
    else:
        options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    return options
