"""olive-ext serve on GGUF models (llama.cpp), with the official openai client against a running server.

The GGUF is the tiny in-code Llama written by our own `export --format gguf` (F32, so llama.cpp
computes what PyTorch does). Answers are checked against the evaluator's llama.cpp backend (its own
argmax loop, not llama.cpp's samplers) on prompt ids from transformers' chat template and
tokenizer, so the server must render the template, tokenize and decode as the model expects.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_serve import (  # noqa: F401
    HOSTILE,
    KEY,
    PROMPT,
    _free_port,
    ask_hostile,
    chat_whole_and_streamed,
    check_stop_strings,
    check_unusable_text_is_refused,
    run_server,
    wait_for_health,
)

from olive_ext.cli import main
from olive_ext.serve import ServeOptions

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'olive-ext[llamacpp]')")
openai = pytest.importorskip("openai")

CONTEXT = 512  # --context_length of the servers here: "word " * 600 does not fit


@pytest.fixture(scope="module")
def exported(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`olive-ext export --format gguf --quant F32` of the tiny Llama (model/ + model_config.json)."""
    out = tmp_path_factory.mktemp("gguf") / "tiny-gguf"
    assert main(["export", "-m", str(tiny_llama), "--format", "gguf", "--quant", "F32", "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def url(run_server: Any, exported: Path) -> str:  # noqa: F811
    # two workers: two llama.cpp contexts, so requests run side by side and queue beyond that
    opts = ServeOptions(model_name_or_path=str(exported), api_key=KEY, workers=2, context_length=CONTEXT)
    return str(run_server(opts))


@pytest.fixture(scope="module")
def client(url: str) -> Any:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def reference(tiny_llama: Path, exported: Path) -> Any:
    """Greedy text from the evaluator's llama.cpp backend on transformers' prompt ids (no server)."""
    from transformers import AutoTokenizer

    from olive_ext.evaluate.backends.llama_cpp import LlamaCppBackend

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    backend = LlamaCppBackend(str(exported / "model"), threads=2)

    def prompt_ids(text: str | None, messages: list[dict[str, str]] | None = None) -> list[int]:
        if messages is not None:
            text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(tokenizer(text)["input_ids"])

    def greedy(text: str | None, max_tokens: int, messages: list[dict[str, str]] | None = None) -> Any:
        """(the text, the prompt's length, the generated ids)."""
        ids = prompt_ids(text, messages)
        tokens = backend.generate(ids, max_tokens).tokens
        return tokenizer.decode(tokens, skip_special_tokens=True), len(ids), tokens

    return greedy


def test_models_and_health_name_the_export_folder(client: Any, url: str) -> None:
    assert [m.id for m in client.models.list()] == ["tiny-gguf"]
    assert httpx.get(f"{url}/health").json()["models"] == ["tiny-gguf"]


def test_chat_uses_the_models_template_and_answers_as_llama_cpp_does_streamed_and_not(
    client: Any, reference: Any
) -> None:
    whole, chunks, streamed = chat_whole_and_streamed(client, "tiny-gguf")
    expected, n_prompt, _ = reference(None, 12, messages=PROMPT)
    assert whole.choices[0].message.content == streamed == expected
    assert whole.usage.prompt_tokens == n_prompt  # the same template and tokens as transformers'
    assert whole.usage.completion_tokens == chunks[-1].usage.completion_tokens == 12
    assert whole.choices[0].finish_reason == "length"


def test_completions_streamed_and_not(client: Any, reference: Any) -> None:
    whole = client.completions.create(model="tiny-gguf", prompt="the city of", max_tokens=8, temperature=0)
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model="tiny-gguf", prompt="the city of", max_tokens=8, temperature=0, stream=True
        )
    )
    expected, n_prompt, _ = reference("the city of", 8)
    assert whole.choices[0].text == streamed == expected
    assert whole.usage.prompt_tokens == n_prompt


def test_sampling_parameters_are_honoured(client: Any) -> None:
    def text(**kw: Any) -> Any:
        return client.completions.create(model="tiny-gguf", prompt="once upon", **kw).choices[0]

    assert len({text(max_tokens=16, temperature=1.0, seed=7).text for _ in range(2)}) == 1, "seeded samples differ"
    assert len({text(max_tokens=16, temperature=1.5, seed=s).text for s in (1, 2, 3)}) > 1
    greedy = text(max_tokens=16, temperature=0).text
    # a top_p this small keeps only the likeliest token: sampling at any temperature is then greedy
    assert text(max_tokens=16, temperature=1.5, top_p=1e-6, seed=3).text == greedy
    assert text(max_tokens=16, temperature=0, extra_body={"repetition_penalty": 50.0}).text != greedy
    assert text(max_tokens=16, temperature=0, frequency_penalty=2.0).text != greedy
    assert text(max_tokens=16, temperature=0, presence_penalty=2.0).text != greedy
    short = client.completions.create(model="tiny-gguf", prompt="once upon", max_tokens=3, temperature=0)
    assert short.usage.completion_tokens == 3 and short.choices[0].finish_reason == "length"
    check_stop_strings(client, "tiny-gguf")


@pytest.mark.parametrize(("kwargs", "error", "param", "code"), HOSTILE)
def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(
    client: Any, kwargs: dict[str, Any], error: str, param: str, code: str | None
) -> None:
    ask_hostile(client, "tiny-gguf", kwargs, error, param, code)


def test_chat_over_the_context_and_malformed_json_get_error_objects(client: Any, url: str) -> None:
    long = [{"role": "user", "content": "word " * 600}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny-gguf", messages=long, max_tokens=2, stream=True)
    assert (info.value.param, info.value.code) == ("messages", "context_length_exceeded")
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    for body in ('{"model": "tiny-gguf", "messages": [', "[1, 2]", '{"model": "tiny-gguf", "messages": "hi"}'):
        r = httpx.post(f"{url}/v1/chat/completions", content=body, headers=headers)
        assert r.status_code == 400 and set(r.json()["error"]) == {"message", "type", "param", "code"}, r.text
    r = client.completions.create(model="tiny-gguf", prompt="hi", max_tokens=10**9, temperature=0)
    assert r.choices[0].finish_reason == "length" and r.usage.total_tokens == CONTEXT  # ends at the context


def test_text_the_model_cannot_take_is_refused_by_field(url: str) -> None:
    check_unusable_text_is_refused(url, "tiny-gguf")  # a lone surrogate was a 500 (UnicodeEncodeError) here


@pytest.fixture(scope="module")
def small(exported: Path) -> Any:
    """The export on llama.cpp with one small context (128 tokens), below the model's 512."""
    from olive_ext.serve.backend import gguf_backend

    return gguf_backend(exported, workers=1, context_length=128)


def test_an_answer_does_not_depend_on_the_request_before_it(small: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """llama-cpp-python's generate(reset=True) kept the KV cache of the prefix a request shared with the one before
    and evaluated only the rest, so a greedy (or seeded) answer depended on the earlier request."""
    import threading

    from olive_ext.serve.backend import Sampling

    def greedy(prompt: str) -> str:
        pieces = small.generate(
            small.encode(prompt), Sampling(max_new_tokens=8, temperature=0), None, threading.Event()
        )
        return "".join(p.text for p in pieces)

    prompt = "the history of the city of"
    fresh = greedy(prompt)
    evaluated: list[int] = []
    llm, evaluate = small._first, small._first.eval  # workers=1: the only Llama in the pool
    monkeypatch.setattr(llm, "eval", lambda tokens: (evaluated.append(len(tokens)), evaluate(tokens))[1])
    greedy("zzz")
    greedy("the history of the sea")  # shares "the history of the" with the prompt
    evaluated.clear()
    assert greedy(prompt) == fresh
    assert evaluated[0] == len(small.encode(prompt)), "only the part after the shared prefix was evaluated"


def test_a_nul_the_model_generates_is_not_served(small: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A byte-fallback token decoding to NUL went out in the answer, and the client's next turn, which sends the
    answer back, was refused ("contains a NUL character")."""
    import asyncio

    from olive_ext.serve.backend import Sampling
    from olive_ext.serve.protocol import text_problem
    from olive_ext.serve.scheduler import Job, Scheduler

    monkeypatch.setattr(small, "_piece", lambda token: b"a\x00b")  # as llama.cpp gives a <0x00> token's bytes
    scheduler = Scheduler(small, 1, 0)

    async def answer() -> str:
        running = scheduler.submit(Job(small.encode("the city of"), Sampling(max_new_tokens=4, temperature=0), None))
        return "".join([p.text async for p in running.pieces()])

    try:
        text = asyncio.run(answer())
    finally:
        scheduler.shutdown()
    assert text.startswith("abab") and text_problem(text) is None


def test_a_prompt_over_a_context_below_the_models_says_how_to_raise_it(small: Any) -> None:
    from olive_ext.serve.app import Server
    from olive_ext.serve.protocol import APIError, CompletionRequest
    from olive_ext.serve.scheduler import Scheduler

    server = Server(small, "tiny-gguf", Scheduler(small, 1, 0), 16)
    with pytest.raises(APIError) as info:
        server.job(CompletionRequest(model="tiny-gguf", prompt="word " * 300), "word " * 300)
    assert info.value.code == "context_length_exceeded" and small.context_length < 512
    assert f"context length is {small.context_length} (the model's own maximum is 512)" in info.value.message
    assert "--context_length up to 512" in info.value.message


def test_concurrent_requests_queue_for_the_llama_cpp_contexts_and_do_not_mix(client: Any, reference: Any) -> None:
    prompts = [f"the {w} of" for w in ("city", "cat", "one", "two", "sun", "dog", "red", "sea")] * 2

    def ask(prompt: str) -> str:
        r = client.completions.create(model="tiny-gguf", prompt=prompt, max_tokens=24, temperature=0)
        return str(r.choices[0].text)

    with ThreadPoolExecutor(len(prompts)) as pool:  # 16 at once on 2 contexts
        answers = list(pool.map(ask, prompts))
    assert answers == [reference(p, 24)[0] for p in prompts]
    assert len(set(answers)) > 1


def test_a_bundle_and_a_bare_gguf_serve_with_their_template_and_end_of_turn(
    exported: Path,
    run_server: Any,  # noqa: F811
    reference: Any,
    tmp_path: Path,
) -> None:
    bundle = tmp_path / "bundle"
    assert main(["package", "-m", str(exported), "-o", str(bundle), "--name", "tiny"]) == 0
    (gguf,) = (bundle / "model").glob("*.gguf")
    expected, _, tokens = reference(None, 12, messages=PROMPT)
    # the bundle's end-of-turn contract: its manifest's ids end the turn (made here to name a token the model says)
    from transformers import AutoTokenizer

    end = tokens.index(tokens[4])
    before = AutoTokenizer.from_pretrained(bundle / "model").decode(tokens[:end], skip_special_tokens=True)
    manifest = json.loads((bundle / "manifest.json").read_text())
    (bundle / "manifest.json").write_text(json.dumps({**manifest, "eos_token_ids": [tokens[4]]}))
    for path, name in ((bundle, "tiny"), (gguf, gguf.stem)):  # a bundle: its manifest's name (was its folder's)
        c = openai.OpenAI(base_url=f"{run_server(ServeOptions(model_name_or_path=str(path)))}/v1", api_key="x")
        assert [m.id for m in c.models.list()] == [name]
        if path == bundle:  # the folder's name is taken too
            assert c.completions.create(model="bundle", prompt="hi", max_tokens=2).model == "bundle"
        answer = c.chat.completions.create(model=name, messages=PROMPT, max_tokens=12, temperature=0).choices[0]
        if path == gguf:  # the GGUF's own tokenizer.chat_template (no folder beside it is read)
            assert answer.message.content == expected and answer.finish_reason == "length"
        else:
            assert answer.finish_reason == "stop" and answer.message.content == before


def test_the_command_serves_a_gguf_file_on_any_free_port_and_says_which(exported: Path) -> None:
    (gguf,) = (exported / "model").glob("*.gguf")
    cmd = [sys.executable, "-m", "olive_ext", "serve", "-m", str(gguf), "--port", "0", "--log_level", "3"]
    proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the socket is bound, before the model answers
        match = re.search(rf"serving {gguf.stem} at (http://127\.0\.0\.1:(\d+)/v1)", line)
        assert match and match.group(2) != "0", line + (proc.stdout.read() if proc.poll() is not None else "")
        wait_for_health(proc, match.group(1)[:-3])
        c = openai.OpenAI(base_url=match.group(1), api_key="unused", max_retries=0)
        assert c.completions.create(model=gguf.stem, prompt="hi", max_tokens=3).usage.completion_tokens == 3
        taken = int(match.group(2))  # a second server on the same port: a one-line error, no traceback
        busy = subprocess.run([*cmd[:-4], "--port", str(taken)], capture_output=True, text=True, timeout=120)
        assert busy.returncode == 2 and f"cannot listen on --host 127.0.0.1 --port {taken}" in busy.stderr
        assert "Traceback" not in busy.stderr
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.mark.integration
def test_smollm2_gguf_answers_a_chat_and_ends_its_turn(smollm2_gguf: Path, run_server: Any) -> None:  # noqa: F811
    """SmolLM2-135M-Instruct (Q4_1) from its PyPI package: its template, and <|im_end|> ends the turn."""
    c = openai.OpenAI(base_url=f"{run_server(ServeOptions(model_name_or_path=str(smollm2_gguf)))}/v1", api_key="x")
    name = smollm2_gguf.stem
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    answer = c.chat.completions.create(model=name, messages=messages, max_tokens=48, temperature=0)
    assert answer.choices[0].finish_reason == "stop", answer
    assert "paris" in str(answer.choices[0].message.content).lower()
    assert "<|im_end|>" not in str(answer.choices[0].message.content)
    streamed = c.chat.completions.create(model=name, messages=messages, max_tokens=48, temperature=0, stream=True)
    assert "".join(ch.choices[0].delta.content or "" for ch in streamed) == answer.choices[0].message.content


@pytest.mark.integration
def test_smollm2_long_pieces_are_decoded_whole(smollm2_gguf: Path) -> None:
    """SmolLM2 has 47 tokens over 32 bytes (runs of spaces), which llama-cpp-python's detokenize cuts short."""
    from olive_ext.serve.llama_cpp_backend import LlamaCppBackend

    backend = LlamaCppBackend(smollm2_gguf, None, set(), context_length=64, threads=1)
    # GPT-2's byte-level alphabet (bytes_to_unicode): the vocabulary's strings map back to the bytes
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = [b for b in range(256) if b not in printable]
    to_byte = {chr(b): b for b in printable} | {chr(256 + i): b for i, b in enumerate(extra)}
    model = backend._first._model
    long = [t for t in range(backend._first.n_vocab()) if len(model.token_get_text(t)) > 32]
    assert len(long) >= 10
    for token in long:
        text = model.token_get_text(token)
        if text.startswith("<|"):
            continue  # special tokens are sent as nothing
        assert backend._piece(token) == bytes(to_byte[c] for c in text), token


def test_a_character_cut_by_the_token_limit_is_dropped_not_sent_as_a_replacement(
    exported: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A character may span tokens (byte-level vocabularies): when max_tokens ends the answer inside one, its
    first bytes are held back and dropped; they were sent as U+FFFD."""
    import threading

    from olive_ext.serve.backend import Sampling, gguf_backend

    backend = gguf_backend(exported)
    assert backend is not None
    # the generated tokens' bytes: a whole emoji across two tokens, then the first half of another
    halves = iter([b"\xf0\x9f", b"\x91\xa9", b"\xf0\x9f"])
    monkeypatch.setattr(backend, "_end_ids", set())
    monkeypatch.setattr(backend._lib, "llama_vocab_is_eog", lambda *_: False)
    monkeypatch.setattr(backend, "_piece", lambda _token: next(halves))
    pieces = backend.generate(backend.encode("hi"), Sampling(max_new_tokens=3, temperature=0), None, threading.Event())
    assert "".join(p.text for p in pieces) == "\N{WOMAN}"


def test_a_context_length_llama_cpp_pads_is_the_one_checked_and_trimmed_to(exported: Path) -> None:
    """llama.cpp pads --context_length 200 up to 256 (n_ctx()), while llama-cpp-python's token buffer holds 200:
    serve checked prompts against 256, so one that fit 256 but not 200 was a 500 ("could not broadcast input
    array"), and chat trimmed turns to 256 and crashed the same way."""
    import threading

    from olive_ext.onnx.chat import Sampling as ChatSampling
    from olive_ext.serve.app import Server
    from olive_ext.serve.backend import gguf_backend
    from olive_ext.serve.protocol import APIError, CompletionRequest
    from olive_ext.serve.scheduler import Scheduler
    from olive_ext.workflows.chat import GGUFChatSession

    backend = gguf_backend(exported, workers=1, context_length=200)
    assert backend is not None and backend.context_length == 200
    server = Server(backend, "tiny-gguf", Scheduler(backend, 1, 0), 16)
    try:
        prompt = "word " * 150
        assert 150 <= len(backend.encode(prompt)) < 200
        job = server.job(CompletionRequest(model="tiny-gguf", prompt=prompt, max_tokens=100), prompt)
        assert len(job.ids) + job.sampling.max_new_tokens == 200
        pieces = list(backend.generate(job.ids, job.sampling, None, threading.Event()))  # raised ValueError
        assert pieces
        with pytest.raises(APIError) as info:
            server.job(CompletionRequest(model="tiny-gguf", prompt="word " * 230), "word " * 230)
        assert info.value.code == "context_length_exceeded" and "context length is 200" in info.value.message
    finally:
        server.scheduler.shutdown()
    session = GGUFChatSession(backend, None, ChatSampling(), max_new_tokens=20)
    replies = [session.answer("word " * 60) for _ in range(4)]  # the fourth turn no longer fits 200 with the rest
    assert sum(r.dropped_turns for r in replies) >= 1
    assert len(session.last_prompt_ids) + session.max_new_tokens <= 200


def test_a_gguf_chat_template_that_does_not_parse_stops_the_server_at_start_up(exported: Path, tmp_path: Path) -> None:
    """llama-cpp-python's Jinja2ChatFormatter raised its TemplateSyntaxError (a traceback) for a broken template."""
    import shutil

    from olive_ext.onnx.chat import BrokenChatTemplateError
    from olive_ext.serve.backend import gguf_backend
    from olive_ext.serve.llama_cpp_backend import find_gguf

    copy = tmp_path / "broken"
    shutil.copytree(exported, copy)
    found = find_gguf(copy)
    assert found is not None and found[1] is not None
    (found[1] / "chat_template.jinja").write_text("{% for m in messages %}{{ m.content }")
    with pytest.raises(BrokenChatTemplateError) as info:
        gguf_backend(copy)
    assert "chat_template.jinja is not valid Jinja: unexpected '}' (line 1)" in info.value.message


def test_a_context_past_the_models_trained_one_is_refused_before_loading(exported: Path) -> None:
    """`serve --context_length 20000` on a model trained on 8192 started, llama.cpp only logged "possible training
    context overflow", and a 9,000-token prompt got "\\n\\n\\n..." as a 200; far past it, the error read as a broken
    file ("Failed to create llama_context"). Refused before loading, naming the model's trained context."""
    from olive_ext.errors import UserInputError
    from olive_ext.serve.backend import gguf_backend

    with pytest.raises(UserInputError, match=r"--context_length 513 is past .* trained context of 512 tokens") as e:
        gguf_backend(exported, workers=1, context_length=513)
    assert "--context_length 512 or less" in (e.value.hint or "")
    with pytest.raises(UserInputError, match="trained context of 512"):
        gguf_backend(exported, workers=1, context_length=10_000_000)
