"""olive-ext serve with the official openai client against a running server on a tiny multi-LoRA build.

Answers are compared with onnxruntime-genai run directly on the same folder, so the server must
apply the chat template, the adapter and the decoding settings that the request asked for.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_generate_adapter import multi, shared_cache, two_adapters  # noqa: F401  (the tiny multi-LoRA build)

from olive_ext.cli import main
from olive_ext.errors import MissingDependencyError, UserInputError
from olive_ext.serve import ServeOptions, build_app

openai = pytest.importorskip("openai")
uvicorn = pytest.importorskip("uvicorn")

KEY = "sk-test-key"
PROMPT = [{"role": "user", "content": "hello there"}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def run_server() -> Iterator[Any]:
    """Start servers in threads (real uvicorn on a free localhost port); all stop after the module."""
    servers: list[tuple[Any, threading.Thread]] = []

    def start(opts: ServeOptions) -> str:
        app, _ = build_app(opts)
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def url(run_server: Any, multi: Path) -> str:  # noqa: F811
    return str(run_server(ServeOptions(model_name_or_path=str(multi), api_key=KEY)))


@pytest.fixture(scope="module")
def client(url: str) -> Any:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def reference(multi: Path) -> Any:  # noqa: F811
    """Greedy text straight from onnxruntime-genai (no server): what the server must answer."""
    from transformers import AutoTokenizer

    from olive_ext.onnx.runtime import genai

    og = genai()
    model = og.Model(str(multi / "model"))
    tokenizer = og.Tokenizer(model)
    adapters = og.Adapters(model)
    for name in ("tone", "city"):
        adapters.load(str(multi / "adapters" / f"{name}.onnx_adapter"), name)
    eos = json.loads((multi / "model" / "genai_config.json").read_text())["model"]["eos_token_id"]
    hf_tokenizer = AutoTokenizer.from_pretrained(multi / "model")

    def greedy(text: str, adapter: str | None, max_tokens: int, chat: bool = True) -> str:
        prompt = tokenizer.apply_chat_template(json.dumps(PROMPT), add_generation_prompt=True) if chat else text
        ids = tokenizer.encode(prompt)
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(ids) + max_tokens, do_sample=False)
        gen = og.Generator(model, params)
        if adapter:
            gen.set_active_adapter(adapters, adapter)
        gen.append_tokens(ids)
        out: list[int] = []
        while not gen.is_done() and len(out) < max_tokens:
            gen.generate_next_token()
            token = int(gen.get_next_tokens()[0])
            if token == eos:
                break
            out.append(token)
        # decoded as transformers decodes (genai's own stream loses text after bytes that are not UTF-8, which this
        # random model generates); an incomplete character at the end is not sent
        return str(hf_tokenizer.decode(out, skip_special_tokens=True)).rstrip("\ufffd")

    return greedy


def test_models_lists_base_and_each_adapter(client: Any, url: str) -> None:
    assert [m.id for m in client.models.list()] == ["multi", "city", "tone"]
    assert client.models.retrieve("tone").id == "tone"
    health = httpx.get(f"{url}/health").json()  # open without a key: for load balancers
    assert health["status"] == "ok" and health["models"] == ["multi", "city", "tone"]


def chat_whole_and_streamed(client: Any, model: str, max_tokens: int = 12) -> tuple[Any, list[Any], str]:
    """PROMPT answered greedily twice: whole, then streamed with usage; (the whole reply, the chunks, their text)."""
    ask = {"model": model, "messages": PROMPT, "max_tokens": max_tokens, "temperature": 0}
    whole = client.chat.completions.create(**ask)
    chunks = list(client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
    return whole, chunks, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_chat_answers_as_genai_does_streamed_and_not_for_each_adapter(client: Any, reference: Any) -> None:
    texts = {}
    for model, adapter in [("multi", None), ("tone", "tone"), ("city", "city")]:
        whole, chunks, streamed = chat_whole_and_streamed(client, model)
        expected = reference("", adapter, 12)
        assert whole.choices[0].message.content == streamed == expected
        assert whole.model == model and whole.choices[0].finish_reason in {"stop", "length"}
        assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens <= 12
        assert whole.usage.prompt_tokens > 0
        texts[model] = expected
    assert len(set(texts.values())) > 1, "adapters made no difference to the answers"


def test_completions_streamed_and_not(client: Any, reference: Any) -> None:
    whole = client.completions.create(model="tone", prompt="the city of", max_tokens=8, temperature=0)
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(model="tone", prompt="the city of", max_tokens=8, temperature=0, stream=True)
    )
    assert whole.choices[0].text == streamed == reference("the city of", "tone", 8, chat=False)
    assert whole.object == "text_completion"


def test_sampling_parameters_are_honoured(client: Any) -> None:
    def text(**kw: Any) -> Any:
        return client.completions.create(model="multi", prompt="once upon", **kw).choices[0]

    seeded = {text(max_tokens=16, temperature=1.0, seed=s).text for s in (1, 1)}
    assert len(seeded) == 1, "the same seed gave different samples"
    assert len({text(max_tokens=16, temperature=1.5, seed=s, extra_body={"top_k": 100}).text for s in (1, 2, 3)}) > 1
    # a strong repetition penalty changes greedy decoding of a random model (each token repeats often)
    plain = text(max_tokens=16, temperature=0).text
    assert text(max_tokens=16, temperature=0, extra_body={"repetition_penalty": 50.0}).text != plain
    # top_p 0 keeps the most likely token alone (OpenAI's range includes 0; it was a 400)
    assert text(max_tokens=16, temperature=1.5, top_p=0, seed=3).text == plain
    short = client.completions.create(model="multi", prompt="once upon", max_tokens=3, temperature=0)
    assert short.usage.completion_tokens <= 3
    check_stop_strings(client, "multi")


def check_stop_strings(client: Any, model: str) -> None:
    """A stop string taken from the greedy text cuts it there, streamed or not, with finish_reason 'stop'."""

    def text(**kw: Any) -> Any:
        return client.completions.create(model=model, prompt="once upon", max_tokens=16, temperature=0, **kw)

    greedy = text().choices[0].text
    assert len(greedy) >= 4, greedy
    stop = greedy[len(greedy) // 2 : len(greedy) // 2 + 2]
    cut = text(stop=[stop]).choices[0]
    assert cut.text == greedy[: greedy.find(stop)] and cut.finish_reason == "stop"
    chunks = list(text(stop=stop, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == cut.text and chunks[-1].choices[0].finish_reason == "stop"


def test_stop_strings_split_across_tokens_are_held_back_and_cut() -> None:
    from olive_ext.serve.protocol import StopMatcher

    matcher = StopMatcher(["<end>", "##"])
    assert matcher.feed("hello <e") == ("hello ", False)  # "<e" may begin "<end>": held back
    assert matcher.feed("nd> more") == ("", True)
    other = StopMatcher(["<end>"])
    assert other.feed("a <e") == ("a ", False)
    assert other.feed("x") == ("<ex", False)  # not a stop after all: released
    assert other.feed("#") == ("#", False) and other.flush() == ""
    # a 1 MB stop string: every prefix of it was compared at each token (173 s for 20 tokens, the server frozen)
    huge = StopMatcher(["x" * 1_000_000, "<end>"])
    started = time.perf_counter()
    pieces = [huge.feed(t) for t in ["a", "b <", "e"] * 200 + ["x", "x"]]
    assert time.perf_counter() - started < 2, "each token scanned the whole stop string"
    assert pieces[1] == ("b ", False) and pieces[2] == ("", False) and pieces[3] == ("<ea", False)
    assert pieces[-2:] == [("<e", False), ("", False)] and huge.flush() == "xx"


def test_api_key_is_required(url: str) -> None:
    for key in ("wrong", ""):
        bad = openai.OpenAI(
            base_url=f"{url}/v1",
            api_key=key or "x",
            max_retries=0,
            default_headers={} if key else {"Authorization": ""},
        )
        with pytest.raises(openai.AuthenticationError) as info:
            bad.models.list()
        assert info.value.status_code == 401 and info.value.code == "invalid_api_key"
    assert httpx.post(f"{url}/v1/completions", json={"model": "multi", "prompt": "a"}).status_code == 401


# hostile requests to /v1/completions (model "multi" is replaced by each backend's model): each gets an
# OpenAI error object naming the parameter, and the server keeps serving; test_serve_gguf.py uses them too
HOSTILE = [
    ({"model": "nope"}, "NotFoundError", "model", "model_not_found"),
    ({"prompt": "word " * 600}, "BadRequestError", "prompt", "context_length_exceeded"),
    ({"temperature": 5}, "BadRequestError", "temperature", "invalid_value"),
    ({"temperature": "hot"}, "BadRequestError", "temperature", "invalid_value"),
    ({"max_tokens": 0}, "BadRequestError", "max_tokens", "invalid_value"),
    ({"max_tokens": "ten"}, "BadRequestError", "max_tokens", "invalid_value"),
    ({"n": 2}, "BadRequestError", "n", "invalid_value"),
    ({"seed": -1}, "BadRequestError", "seed", "invalid_value"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "BadRequestError", "stop", "invalid_value"),
    ({"stop": 7}, "BadRequestError", "stop", "invalid_value"),
    ({"prompt": 5}, "BadRequestError", "prompt", "invalid_value"),
    ({"prompt": ["one", "two"]}, "BadRequestError", "prompt", None),
    ({"model": ["multi"]}, "BadRequestError", "model", "invalid_value"),
    ({"prompt": ""}, "BadRequestError", "prompt", "invalid_value"),
    ({"seed": 2**40}, "BadRequestError", "seed", "invalid_value"),
    ({"logprobs": 2}, "BadRequestError", "logprobs", "unsupported_parameter"),
    ({"logit_bias": {"5": 10}}, "BadRequestError", "logit_bias", "unsupported_parameter"),
    ({"extra_body": {"adapter": "tone"}}, "BadRequestError", "adapter", "unsupported_parameter"),  # was ignored
    ({"suffix": " the end"}, "BadRequestError", "suffix", "unsupported_parameter"),  # answered without it
    ({"best_of": 3}, "BadRequestError", "best_of", "unsupported_parameter"),  # answered with one
    ({"max_tokens": True}, "BadRequestError", "max_tokens", "invalid_value"),  # was 1 token
    ({"temperature": True}, "BadRequestError", "temperature", "invalid_value"),  # was 1.0: sampled
    ({"top_p": "0.5"}, "BadRequestError", "top_p", "invalid_value"),  # was read as 0.5
    ({"extra_body": {"stream": "yes"}}, "BadRequestError", "stream", "invalid_value"),  # streamed
]


def ask_hostile(client: Any, model: str, kwargs: dict[str, Any], error: str, param: str, code: str | None) -> None:
    """Send one hostile request, check its error object, then check the server still answers."""
    request = {"model": model, "prompt": "hi", "max_tokens": 2, **kwargs}
    if request["model"] == "multi":
        request["model"] = model
    with pytest.raises(getattr(openai, error)) as info:
        client.completions.create(**request)
    assert (info.value.param, info.value.code, info.value.type) == (param, code, "invalid_request_error")
    assert client.completions.create(model=model, prompt="hi", max_tokens=2).choices[0].finish_reason


@pytest.mark.parametrize(("kwargs", "error", "param", "code"), HOSTILE)
def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(
    client: Any, kwargs: dict[str, Any], error: str, param: str, code: str | None
) -> None:
    ask_hostile(client, "multi", kwargs, error, param, code)


def test_chat_parameters_the_server_does_not_implement_are_refused_by_name(client: Any, url: str) -> None:
    """Answered as if not sent, a client would trust JSON mode, tools or log-probabilities it did not get."""
    chat = {"model": "multi", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    for extra in ({"logprobs": True}, {"response_format": {"type": "json_object"}}, {"tools": [tool]}):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(**chat, **extra)
        assert (info.value.param, info.value.code) == (next(iter(extra)), "unsupported_parameter")
    # an assistant's tool call in the history was dropped: the template rendered an empty assistant turn there
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "tool_calls": [call]},
               {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]  # fmt: skip
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(**{**chat, "messages": history})
    assert info.value.param == "messages.1.tool_calls" and "tool_calls are not supported" in info.value.message
    # what asks for nothing is accepted, as OpenAI's own clients may send it
    ok = client.chat.completions.create(**chat, logprobs=False, response_format={"type": "text"})
    assert ok.choices[0].finish_reason
    nan = httpx.post(f"{url}/v1/chat/completions", content=json.dumps({**chat, "temperature": float("nan")}),
                     headers={"Authorization": f"Bearer {KEY}"})  # fmt: skip
    assert nan.status_code == 400 and "finite number" in nan.json()["error"]["message"], nan.text


def test_a_message_without_content_is_refused_and_unsupported_parameters_read_well(client: Any) -> None:
    """``{"role": "user"}`` with no content was answered (200, an empty turn), where OpenAI answers 400; and the
    response_format refusal read "...ask for JSON in the prompt by this server (olive-ext serve)"."""
    for messages, i in (([{"role": "user"}], 0), ([*PROMPT, {"role": "assistant", "content": None}, *PROMPT], 1)):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="multi", messages=messages, max_tokens=2)
        assert info.value.param == f"messages.{i}.content", info.value
        assert f"messages[{i}].content: is missing" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="multi", messages=PROMPT, response_format={"type": "json_object"})
    assert info.value.body["message"] == (
        "response_format: JSON modes and schemas are not enforced by this server; ask for JSON in the prompt "
        "instead (olive-ext serve)"
    )


def test_null_for_an_optional_parameter_means_its_default(client: Any) -> None:
    """The official client sends null for a parameter given as None; OpenAI reads it as the default (was a 400)."""
    nulls = {name: None for name in ("temperature", "top_p", "n", "presence_penalty", "frequency_penalty", "seed",
                                     "stop", "stream", "stream_options", "max_tokens", "logprobs")}  # fmt: skip
    chat = client.chat.completions.create(model="multi", messages=PROMPT, **nulls, max_completion_tokens=2)
    assert chat.choices[0].finish_reason and chat.usage.completion_tokens <= 2
    text = client.completions.create(model="multi", prompt="hi", **{**nulls, "max_tokens": 2}, echo=None)
    assert text.choices[0].finish_reason


def check_unusable_text_is_refused(url: str, model: str) -> None:
    """A lone UTF-16 surrogate (a 500 before) or a NUL (which cut the prompt short on genai) in a prompt or a message:
    a 400 naming the field and the problem, for chat and completions; the server goes on."""
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    for text, said in (("hi \\ud83d", "lone UTF-16 surrogate"), ("\\u0000hi", "NUL character")):
        for route, field, param in (("chat/completions", '"messages": [{"role": "user", "content": "%s"}]',
                                     "messages.0.content"), ("completions", '"prompt": "%s"', "prompt")):  # fmt: skip
            body = f'{{"model": "{model}", "max_tokens": 2, {field % text}}}'  # raw: json.dumps would pair it
            r = httpx.post(f"{url}/v1/{route}", content=body, headers=headers, timeout=60)
            error = r.json()["error"]
            assert r.status_code == 400 and error["param"] == param and said in error["message"], r.text
            assert error["type"] == "invalid_request_error"
    ok = httpx.post(f"{url}/v1/completions", json={"model": model, "prompt": "hi", "max_tokens": 2}, headers=headers)
    assert ok.status_code == 200


def test_text_the_model_cannot_take_is_refused_by_field(url: str) -> None:
    check_unusable_text_is_refused(url, "multi")


def test_penalties_genai_has_not_are_refused(client: Any) -> None:
    for name in ("frequency_penalty", "presence_penalty"):
        with pytest.raises(openai.BadRequestError) as info:
            client.completions.create(model="multi", prompt="hi", max_tokens=2, **{name: 0.5})
        assert (info.value.param, info.value.code) == (name, "invalid_value")
        assert "repetition_penalty" in str(info.value.message)


def test_max_tokens_beyond_the_context_ends_at_the_context(client: Any, multi: Path) -> None:  # noqa: F811
    context = json.loads((multi / "model" / "genai_config.json").read_text())["model"]["context_length"]
    r = client.completions.create(model="multi", prompt="hi", max_tokens=10**9, temperature=0)
    assert r.choices[0].finish_reason == "length" and r.usage.total_tokens == context


def test_malformed_json_and_unknown_routes_get_error_objects(url: str, client: Any) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    for body in ('{"model": "multi", "messages": [', "[1, 2]", '{"model": "multi"}'):
        r = httpx.post(f"{url}/v1/chat/completions", content=body, headers=headers)
        assert r.status_code == 400 and set(r.json()["error"]) == {"message", "type", "param", "code"}, r.text
    assert httpx.get(f"{url}/v1/nothing", headers=headers).json()["error"]["code"] == "not_found"
    deep = httpx.post(f"{url}/v1/completions", content="[" * 5000, headers=headers)  # a RecursionError: was a 500
    assert deep.status_code == 400 and "nested too deeply" in deep.json()["error"]["message"], deep.text
    # over the body limit (8 MiB): refused by its Content-Length before it is read (a 50 MB one held the loop)
    big = httpx.post(f"{url}/v1/completions", content=b" " * (9 * 2**20), headers=headers, timeout=60)
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large", big.text
    assert "--max_body_bytes" in big.json()["error"]["message"]
    # curl -d without -H sends a form Content-Type: the body is still read as JSON
    form = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/x-www-form-urlencoded"}
    body = json.dumps({"model": "multi", "prompt": "hi", "max_tokens": 2})
    assert httpx.post(f"{url}/v1/completions", content=body, headers=form).json()["object"] == "text_completion"
    assert client.chat.completions.create(model="city", messages=PROMPT, max_tokens=2).choices


def test_concurrent_requests_for_different_adapters_do_not_mix(client: Any, reference: Any) -> None:
    jobs = [("multi", None), ("tone", "tone"), ("city", "city")] * 3

    def ask(job: tuple[str, str | None]) -> str:
        r = client.chat.completions.create(model=job[0], messages=PROMPT, max_tokens=10, temperature=0)
        return str(r.choices[0].message.content)

    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(ask, jobs))
    assert answers == [reference("", adapter, 10) for _, adapter in jobs]


class GatedBackend:
    """The real backend, but each generation waits for ``gate``: holds a worker busy on demand."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.gate, self.stopped = inner, threading.Event(), threading.Event()
        self.context_length, self.adapters, self.penalties = inner.context_length, inner.adapters, inner.penalties
        self.max_context_length = inner.max_context_length

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        return str(self.inner.chat_prompt(messages))

    def encode(self, text: str) -> list[int]:
        return list(self.inner.encode(text))

    def generate(self, ids: list[int], sampling: Any, adapter: str | None, cancelled: threading.Event) -> Any:
        self.gate.wait(30)
        yield from self.inner.generate(ids, sampling, adapter, cancelled)
        # a generation the tiny model ends early (end of turn) is held open until the server cancels it, so the
        # test sees the server's cancel whatever the model answers (its tokens vary with thread count and order)
        cancelled.wait(30)
        if cancelled.is_set():
            self.stopped.set()


class EndlessBackend:
    """Generates "x" every 10 ms until cancelled (at most 3000): a long answer, without a model."""

    def __init__(self) -> None:
        self.context_length = self.max_context_length = 4096
        self.adapters: list[str] = []
        self.penalties = True
        self.stopped = threading.Event()

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        return " ".join(m["content"] for m in messages)

    def encode(self, text: str) -> list[int]:
        return [1] * len(text.split())

    def generate(self, ids: list[int], sampling: Any, adapter: str | None, cancelled: threading.Event) -> Any:
        from olive_ext.serve.backend import Piece

        for _ in range(min(sampling.max_new_tokens, 3000)):
            if cancelled.wait(0.01):
                self.stopped.set()
                return
            yield Piece("x")


def test_a_client_that_leaves_a_whole_answer_stops_its_generation() -> None:
    """Not streamed: the generation went on for the client that left (the next request waited for it)."""
    from olive_ext.serve.app import create_app

    backend = EndlessBackend()
    server = uvicorn.Server(uvicorn.Config(create_app(backend, "m"), port=(port := _free_port()), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        body = {"model": "m", "prompt": "go", "max_tokens": 3000}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"http://127.0.0.1:{port}/v1/completions", json=body, timeout=0.5)
        assert backend.stopped.wait(10), "the generation went on after its client left"
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_full_queue_answers_503_and_a_closed_stream_frees_its_worker(multi: Path) -> None:  # noqa: F811
    from olive_ext.serve.app import create_app
    from olive_ext.serve.backend import load_backend

    backend = GatedBackend(load_backend(str(multi))[0])
    app = create_app(backend, "multi", workers=1, max_queue=1, default_max_tokens=400)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}/v1/completions"
    try:
        body = {"model": "tone", "prompt": "go", "stream": True, "max_tokens": 400}
        with (
            httpx.stream("POST", url, json=body, timeout=60) as first,
            httpx.stream("POST", url, json=body, timeout=60) as second,
        ):
            assert first.status_code == second.status_code == 200  # one generating (held), one queued
            for streamed in (True, False):  # refused before the response starts, streamed or not
                busy = httpx.post(url, json={**body, "stream": streamed}, timeout=60)
                assert busy.status_code == 503 and busy.json()["error"]["code"] == "server_overloaded"
            backend.gate.set()
            assert next(first.iter_lines()).startswith("data: ")
        # both streams closed mid-generation: their workers stop early and free their places
        assert backend.stopped.wait(30)
        deadline = time.monotonic() + 30
        tiny = {"model": "tone", "prompt": "x", "max_tokens": 2}
        while (r := httpx.post(url, json=tiny, timeout=60)).status_code == 503:  # httpx's default 5 s is short here
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] in {"stop", "length"}
    finally:
        server.should_exit = True
        thread.join(10)


def test_unloadable_gguf_and_missing_inputs_get_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("llama_cpp")
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert main(["serve", "-m", str(gguf)]) == 2
    assert "llama.cpp cannot load" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["serve", "-m", str(tmp_path / "empty")]) == 2
    assert "no onnxruntime-genai model (genai_config.json) and no .gguf" in capsys.readouterr().err
    assert main(["serve", "-m", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["serve", "-m", "pypi:no-such-model"]) == 2  # pypi: names are resolved, as every command does
    assert "unknown packaged model pypi:no-such-model; known: pypi:smollm2-135m-instruct" in capsys.readouterr().err


def test_without_the_serve_extra_the_error_names_the_pip_command(
    multi: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import fails as if uvicorn were not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'olive-ext\[serve\]'"):
        build_app(ServeOptions(model_name_or_path=str(multi)))


def wait_for_health(proc: subprocess.Popen[str], root: str, seconds: float = 60) -> None:
    """Poll ``root``/health until the server answers; fail with its output if it exits or takes too long."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(f"{root}/health")
            return
        except httpx.TransportError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.1)


def test_the_command_serves_on_localhost_with_a_key(multi: Path) -> None:  # noqa: F811
    port = _free_port()
    env = {**os.environ, "OLIVE_EXT_API_KEY": KEY}
    cmd = [sys.executable, "-m", "olive_ext", "serve", "-m", str(multi), "--port", str(port), "--log_level", "3"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_health(proc, f"http://127.0.0.1:{port}")
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
        assert [m.id for m in c.models.list()] == ["multi", "city", "tone"]
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert f"at http://127.0.0.1:{port}/v1" in out


def test_ctrl_c_ends_running_streams_at_once_with_an_error_event() -> None:
    """The first Ctrl-C left serve "Waiting for connections to close" while a long answer streamed (90 s later it
    still streamed); a second one cut the stream with no error event and logged two tracebacks. Now the first ends
    every running answer with a 503 error event and [DONE], refuses new requests, and the server stops."""
    import signal

    from olive_ext.serve import uvicorn_server
    from olive_ext.serve.app import create_app

    backend = EndlessBackend()
    server = uvicorn_server(create_app(backend, "m"), port=(port := _free_port()), log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    body = {"model": "m", "prompt": "go", "max_tokens": 3000, "stream": True}
    events: list[str] = []
    with httpx.stream("POST", f"http://127.0.0.1:{port}/v1/completions", json=body, timeout=30) as r:
        lines = r.iter_lines()
        events.append(next(lines))  # streaming has begun
        server.handle_exit(signal.SIGINT, None)  # what uvicorn's Ctrl-C handler calls
        started = time.monotonic()
        events += [line for line in lines if line]
    assert time.monotonic() - started < 5 and backend.stopped.wait(5)
    assert "server_shutting_down" in events[-2] and events[-1] == "data: [DONE]", events[-3:]
    thread.join(15)
    assert not thread.is_alive()


def test_a_model_id_with_a_slash_is_retrieved() -> None:
    """--served_model_name HuggingFaceTB/SmolLM2-135M: /v1/models listed it and chat answered it, but the openai
    client's models.retrieve of it (GET /v1/models/HuggingFaceTB/SmolLM2-135M) was a bare 404 "Not Found"."""
    from olive_ext.serve import uvicorn_server
    from olive_ext.serve.app import create_app

    server = uvicorn_server(create_app(EndlessBackend(), "org/m"), port=(port := _free_port()), log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        assert [m.id for m in client.models.list()] == ["org/m"] and client.models.retrieve("org/m").id == "org/m"
        with pytest.raises(openai.NotFoundError, match="org/other"):
            client.models.retrieve("org/other")
    finally:
        server.should_exit = True
        thread.join(15)


def test_a_generation_still_running_when_the_event_loop_closes_ends_without_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ctrl-C while llama.cpp computed a token: the server's loop closed first, and the worker's next token and its
    end were three "RuntimeError: Event loop is closed" tracebacks ("exception calling callback"). The worker now
    sees the loop gone, stops generating, and logs nothing."""
    from olive_ext.serve.backend import Piece, Sampling
    from olive_ext.serve.scheduler import Job, Scheduler

    class Deaf(EndlessBackend):  # computes its next token without looking at the cancel flag
        def generate(self, ids: list[int], sampling: Any, adapter: str | None, cancelled: threading.Event) -> Any:
            for _ in range(200):
                if cancelled.is_set():
                    self.stopped.set()
                    return
                time.sleep(0.05)
                yield Piece("x")

    backend = Deaf()
    scheduler = Scheduler(backend, workers=1, max_queue=0)
    loop = asyncio.new_event_loop()

    async def start() -> None:
        scheduler.submit(Job([1], Sampling(max_new_tokens=100), None))

    with caplog.at_level("ERROR"):
        loop.run_until_complete(start())
        loop.close()  # the server stopped while the worker computes
        assert backend.stopped.wait(5), "the worker went on generating for a closed loop"
        scheduler.shutdown()
        time.sleep(0.2)  # the done-callback runs on the worker's thread
    assert "Event loop is closed" not in caplog.text and "exception calling callback" not in caplog.text


def test_an_empty_host_or_key_is_refused_before_the_model_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--host "" bound every interface (0.0.0.0) without a word, and --api-key "" meant no key: with both, a server
    open to the network. A host name the IDNA codec cannot encode was a TypeError traceback."""
    from olive_ext.cli import main

    missing = str(tmp_path / "no-model")  # refused before the model is read
    assert main(["serve", "-m", missing, "--host", ""]) == 2
    assert "--host is empty, which binds every address" in capsys.readouterr().err
    assert main(["serve", "-m", missing, "--api-key", " "]) == 2
    assert "--api-key is empty" in capsys.readouterr().err
    # OLIVE_EXT_API_KEY="" (a secret that was not set) served everyone without a word; " abc" could never be matched
    from olive_ext.serve import _api_key

    monkeypatch.setenv("OLIVE_EXT_API_KEY", "")
    assert main(["serve", "-m", missing]) == 2
    assert "$OLIVE_EXT_API_KEY is empty" in capsys.readouterr().err
    monkeypatch.setenv("OLIVE_EXT_API_KEY", "abc \n")
    assert _api_key(None) == "abc" and _api_key(" k ") == "k"
    from olive_ext.serve import _listen

    with pytest.raises(UserInputError, match="cannot listen on --host"):
        _listen("a" * 64 + ".example", 0)
