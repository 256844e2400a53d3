"""The OpenAI wire format: request models, error objects, response bodies, and stop strings.

Only what olive-ext serves is modelled. Unknown request fields are ignored (clients send fields such
as ``user``); an optional field sent as JSON null takes its default, as OpenAI reads it (the official
client sends null for a parameter given as None); fields the runtime cannot honour with a value other
than their default are refused. Text the runtimes cannot take (a lone UTF-16 surrogate, a NUL) is refused
before any work.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, field_validator, model_validator


class APIError(Exception):
    """An error sent as OpenAI's ``{"error": {"message", "type", "param", "code"}}`` with an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# OpenAI parameters this server does not implement -> the value that asks for nothing (absent also does).
# Set to anything else, a request is refused naming the parameter, not answered as if it had not been sent.
UNSUPPORTED = {
    "logprobs": (False, "token log-probabilities are not returned by this server"),
    "top_logprobs": (0, "token log-probabilities are not returned by this server"),
    "response_format": (
        {"type": "text"},
        "JSON modes and schemas are not enforced by this server; ask for JSON in the prompt instead",
    ),
    "tools": ([], "tool calling is not supported by this server"),
    "tool_choice": ("none", "tool calling is not supported by this server"),
    "functions": ([], "function calling is not supported by this server"),
    "function_call": ("none", "function calling is not supported by this server"),
    "logit_bias": ({}, "logit_bias is not supported by this server"),
    # an adapter is a model here (`model: NAME`, as /v1/models lists it); `extra_body={"adapter": ...}` was
    # answered by the base model without a word
    "adapter": (None, "this server does not read it: choose an adapter with the 'model' field (its name, as "
                "/v1/models lists it)"),
    # /v1/completions: answered as if not sent before
    "suffix": ("", "suffix (text after the completion, fill-in-the-middle) is not supported by this server"),
    "best_of": (1, "best_of is not supported by this server: one completion per request"),
}


SEED_MAX = 2**31 - 1  # the largest seed every runtime takes; chat's --seed has the same range

_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads keeps a lone one; a pair is already one character


def text_problem(text: str) -> str | None:
    """What makes ``text`` unusable as model input, or None: a lone UTF-16 surrogate (JSON's ``\\ud83d`` without
    its pair) has no UTF-8 form, and a NUL ends the C strings the runtimes read (the rest would be dropped)."""
    if "\0" in text:
        return "contains a NUL character (\\u0000), which is not supported; remove it"
    if found := _SURROGATE.search(text):
        return (
            f"contains a lone UTF-16 surrogate (\\u{ord(found.group()):04x} at character {found.start()}), which is "
            "not valid text; send whole characters (a surrogate pair, or the character itself)"
        )
    return None


def _checked_text(value: Any) -> Any:
    """``value`` when its text (a string, strings in a list, or text parts' ``text``) is usable, else a ValueError."""
    texts = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    for item in texts:
        text = item.get("text") if isinstance(item, dict) else item
        if isinstance(text, str) and (problem := text_problem(text)):
            raise ValueError(problem)
    return value


class _Sampling(BaseModel):
    """Decoding fields common to chat and text completions."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        """Optional fields sent as null are dropped, so they take their defaults (required ones stay, to be refused)."""
        if isinstance(data, dict):
            fields = cls.model_fields
            return {k: v for k, v in data.items() if v is not None or (k in fields and fields[k].is_required())}
        return data

    model: str
    # strict: `"max_tokens": true` was 1 token, `"stream": "yes"` streamed and `"temperature": true` sampled at 1.0,
    # where OpenAI answers 400 (a float field still takes a JSON integer)
    max_tokens: StrictInt | None = Field(None, ge=1)
    temperature: StrictFloat = Field(1.0, ge=0.0, le=2.0)
    top_p: StrictFloat = Field(
        1.0, ge=0.0, le=1.0, description="0 keeps the most likely token alone: greedy, as OpenAI"
    )
    top_k: StrictInt | None = Field(
        None, ge=0, description="extension: 0 (or over the vocabulary): no top-k cut; absent: the model's default"
    )
    repetition_penalty: StrictFloat = Field(
        1.0, gt=0.0, description="extension: multiplies repeated tokens' logits away"
    )
    frequency_penalty: StrictFloat = Field(0.0, ge=-2.0, le=2.0)
    presence_penalty: StrictFloat = Field(0.0, ge=-2.0, le=2.0)
    seed: StrictInt | None = Field(None, ge=0, le=SEED_MAX)  # the runtimes' seeds are 32-bit (as chat's --seed)
    stop: str | list[str] | None = None
    n: StrictInt = Field(1, ge=1, le=1, description="one choice per request")
    stream: StrictBool = False
    stream_options: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _nothing_unsupported(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, (nothing, why) in UNSUPPORTED.items():
                value = data.get(name)
                if value is not None and value != nothing:
                    raise APIError(400, f"{name}: {why} (olive-ext serve)", param=name,
                                   code="unsupported_parameter")  # fmt: skip
        return data

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str]:
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("takes at most 4 non-empty strings")
        return stops

    def stops(self) -> list[str]:
        """The stop strings as a list (the validator normalised them)."""
        return list(self.stop or [])

    def include_usage(self) -> bool:
        """Whether a streamed response ends with a usage chunk (stream_options.include_usage)."""
        return bool((self.stream_options or {}).get("include_usage"))


class ChatMessage(BaseModel):
    """One chat message; content as a string or OpenAI's list of text parts."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[Any] | None = None

    @field_validator("content")
    @classmethod
    def _usable_content(cls, value: Any) -> Any:
        return _checked_text(value)

    @field_validator("tool_calls")
    @classmethod
    def _no_tool_calls(cls, value: list[Any] | None) -> None:
        if value:  # dropped before: the template rendered an empty assistant turn where the call was
            raise ValueError("tool_calls are not supported (as tools are not): send the assistant's call as its "
                             "content text")  # fmt: skip
        return None

    def text(self) -> str:
        """The message's text; parts other than text are refused."""
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        texts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(400, "only text content parts are supported", param="messages")
            texts.append(part["text"])
        return "".join(texts)


class ChatCompletionRequest(_Sampling):
    """POST /v1/chat/completions."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: StrictInt | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _every_message_has_content(self) -> ChatCompletionRequest:
        """A message without content is refused, as OpenAI does (a template rendered it as an empty turn)."""
        for i, message in enumerate(self.messages):
            if message.content is None:
                raise APIError(400, f"messages[{i}].content: is missing; give the {message.role} message's text (a "
                               "string, or a list of text parts)", param=f"messages.{i}.content",
                               code="invalid_value")  # fmt: skip
        return self

    def plain_messages(self) -> list[dict[str, str]]:
        """The messages as ``{"role", "content"}`` dicts for a chat template (developer -> system)."""
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in self.messages]


class CompletionRequest(_Sampling):
    """POST /v1/completions: one prompt string (or a list holding one)."""

    prompt: str | list[str]
    echo: StrictBool = False

    @field_validator("prompt")
    @classmethod
    def _usable_prompt(cls, value: Any) -> Any:
        return _checked_text(value)

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, value: bool) -> bool:
        if value:
            raise ValueError("echo is not supported")
        return value

    def text(self) -> str:
        """The single prompt."""
        if not isinstance(self.prompt, str) and len(self.prompt) != 1:
            raise APIError(400, "give exactly one prompt per request", param="prompt")
        prompt = self.prompt if isinstance(self.prompt, str) else self.prompt[0]
        if not prompt:
            raise APIError(400, "prompt: is empty; give the text to continue", param="prompt", code="invalid_value")
        return prompt


class StopMatcher:
    """Cuts generated text at the first stop string, holding back text that may start one."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = stops
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """(text safe to send now, whether a stop string was reached)."""
        self.pending += text
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.pending = self.pending[: min(hits)], ""
            return out, True
        # the longest end of the text that begins a stop string: at most as long as the text held (a 1 MB stop string
        # scanned every prefix of itself at each token, blocking the server for minutes)
        keep = max((next((k for k in range(min(len(s) - 1, len(self.pending)), 0, -1) if self.pending.endswith(s[:k])),
                         0) for s in self.stops), default=0)  # fmt: skip
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(out) :]
        return out, False

    def flush(self) -> str:
        """Text held back when generation ends without a stop string."""
        out, self.pending = self.pending, ""
        return out


def new_id(prefix: str) -> str:
    """An id such as ``chatcmpl-3f2a...``."""
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """OpenAI's usage object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_body(rid: str, model: str, text: str, finish: str, use: dict[str, int]) -> dict[str, Any]:
    """A whole chat.completion."""
    message = {"role": "assistant", "content": text}
    choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
    return _envelope(rid, "chat.completion", model, [choice], use)


def chat_chunk(rid: str, model: str, delta: dict[str, str], finish: str | None) -> dict[str, Any]:
    """One chat.completion.chunk of a streamed answer."""
    return _envelope(rid, "chat.completion.chunk", model, [{"index": 0, "delta": delta, "finish_reason": finish}])


def text_body(rid: str, model: str, text: str, finish: str | None, use: dict[str, int] | None) -> dict[str, Any]:
    """A text_completion (whole, or one streamed chunk when ``use`` is None)."""
    choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
    return _envelope(rid, "text_completion", model, [choice], use)


def usage_chunk(rid: str, obj: str, model: str, use: dict[str, int]) -> dict[str, Any]:
    """The last chunk of a stream with stream_options.include_usage: no choices, only usage."""
    return _envelope(rid, obj, model, [], use)


def _envelope(
    rid: str, obj: str, model: str, choices: list[dict[str, Any]], use: dict[str, int] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"id": rid, "object": obj, "created": int(time.time()), "model": model, "choices": choices}
    if use is not None:
        body["usage"] = use
    return body
