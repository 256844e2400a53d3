"""`olive-ext chat` on the tiny Llama built to onnxruntime-genai: history, sampling, /reset, /exit, Ctrl-C."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from convert_helpers import build

import olive_ext.deploy
from olive_ext.errors import UserInputError
from olive_ext.onnx.chat import ChatSession, PromptTooLongError, Sampling
from olive_ext.onnx.text_stream import TextStream, folder_decoder
from olive_ext.workflows.chat import ChatOptions, chat_loop, open_chat


@pytest.fixture(scope="module")
def genai_model(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    art = build(tiny_llama, {"build": {"type": "model_builder"}}, cache_dir=tmp_path_factory.mktemp("chat-cache"))
    return Path(art.path)


def _text(session: ChatSession, ids: list[int]) -> str:
    return str(session.tokenizer.decode(ids))


def _scripted(lines: list[str]) -> Iterator[str]:
    yield from lines
    raise EOFError


def test_turn_two_prompt_holds_turn_one_and_reset_forgets_it(genai_model: Path) -> None:
    session = open_chat(ChatOptions(model_name_or_path=str(genai_model), max_new_tokens=8))
    first = session.answer("my name is Zed")
    turn1 = _text(session, session.last_prompt_ids)
    session.answer("what is my name")
    turn2 = _text(session, session.last_prompt_ids)
    assert first.tokens > 0 and turn2.startswith(turn1.rstrip())  # turn 1's prompt, its answer, then turn 2
    assert first.text.strip() in turn2[len(turn1.rstrip()) :] and turn2.rstrip().endswith("assistant")
    assert "what is my name" in turn2
    out: list[str] = []
    lines = _scripted(["/reset", "who am I", "/exit", "never read"])
    chat_loop(session, lambda _: next(lines), out.append)
    turn3 = _text(session, session.last_prompt_ids)
    assert "(conversation cleared)" in "".join(out)
    assert "who am I" in turn3 and "Zed" not in turn3 and "what is my name" not in turn3
    assert next(lines) == "never read"  # /exit stopped reading


def _answer(session: ChatSession, sampling: Sampling, text: str = "tell me a story") -> str:
    session.sampling = sampling
    session.reset()
    return session.answer(text).text


def test_sampling_options_are_applied(genai_model: Path) -> None:
    session = open_chat(ChatOptions(model_name_or_path=str(genai_model), max_new_tokens=24))
    greedy = _answer(session, Sampling())
    assert _answer(session, Sampling()) == greedy
    assert _answer(session, Sampling(temperature=1.0, top_k=1, seed=1)) == greedy  # one candidate: greedy
    hot = _answer(session, Sampling(temperature=1.5, seed=3))
    assert hot != greedy and _answer(session, Sampling(temperature=1.5, seed=3)) == hot  # seeded: repeatable
    assert _answer(session, Sampling(temperature=1.5, seed=4)) != hot
    assert _answer(session, Sampling(repetition_penalty=1.8)) != greedy


def test_old_turns_are_dropped_to_fit_the_context_window(genai_model: Path) -> None:
    session = open_chat(ChatOptions(model_name_or_path=str(genai_model), max_new_tokens=400))
    budget = session.context_tokens - 400
    dropped = 0
    for i in range(6):
        reply = session.answer(f"message number {i} " + "about the weather in the city " * 3)
        dropped += reply.dropped_turns
        assert len(session.last_prompt_ids) <= budget
    prompt = _text(session, session.last_prompt_ids)
    assert dropped > 0 and "message number 0" not in prompt and "message number 5" in prompt
    with pytest.raises(PromptTooLongError, match="--max_new_tokens"):
        session.answer("weather " * 400)
    out: list[str] = []
    lines = _scripted(["weather " * 400])
    chat_loop(session, lambda _: next(lines), out.append)
    assert "--max_new_tokens" in "".join(out)  # said, and the chat goes on


def test_the_commands_mistakes_are_one_line_errors(
    genai_model: Path, tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from olive_ext.cli import main

    cases = [  # (arguments, what the error says): each was a traceback or another reason before
        # an encoder: an LM head of random weights was loaded, then "no chat template" (or it chatted noise)
        (["-m", str(tiny_bert), "--prompt", "hi"], "an encoder: chat needs a generative LLM"),
        (["-m", str(genai_model), "--prompt", "weather " * 3000], "--max_new_tokens"),
        (["-m", str(genai_model), "--max_new_tokens", "100000", "--prompt", "hi"], "give --max_new_tokens below"),
        (["-m", str(tmp_path / "gone"), "--prompt", "hi"], "gone does not exist"),
        (["-m", str(tmp_path / "bundle.zip"), "--prompt", "hi"], "is an archive; the model runs from the bundle's"),
        (["-m", str(genai_model), "--prompt", "caf\udce9"], "is not UTF-8 text (cannot decode 0xe9)"),  # argv's b"\xe9"
        (["-m", str(genai_model), "--adapter", "", "--prompt", "hi"], "adapter '' not found"),  # a TypeError
        (["-m", str(genai_model), "--prompt", " "], "prompt: is empty"),  # sent an empty user message
    ]
    (tmp_path / "bundle.zip").write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: what `package --zip` writes
    untemplated = _without_chat_template(genai_model, tmp_path / "no-template")
    cases.append((["-m", str(untemplated), "--prompt", "hi"], "has no chat template"))  # genai's RuntimeError
    # the hint named only "the base model's chat template", which a template-less base has none of: the form a
    # fine-tune of it on instruction rows learned is named
    cases.append((["-m", str(untemplated), "--prompt", "hi"], "'### Instruction:\\n...\\n\\n### Response:\\n'"))
    for args, said in cases:
        assert main(["chat", *args]) == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err and "hub" not in err, err


def test_top_k_over_the_vocabulary_or_0_and_the_seeds_range_are_one_rule_in_chat_and_serve(
    genai_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """top_k over the vocabulary was genai's RuntimeError ("must be less than or equal to vocab_size"): a traceback
    in chat, a 500 in serve; top_k 0 was refused by chat and taken by serve, a negative seed the other way round.
    Now top_k 0 or over the vocabulary is no top-k cut in both, and a seed is 0 to 2**31 - 1 in both."""
    import threading

    from olive_ext.cli import main
    from olive_ext.serve.backend import Sampling as Decoding
    from olive_ext.serve.genai_backend import GenAIBackend
    from olive_ext.serve.protocol import ChatCompletionRequest

    hi = ["chat", "-m", str(genai_model), "--prompt", "hi", "--max_new_tokens", "3", "--temperature", "1"]
    for top_k in ("100000", "0"):
        assert main([*hi, "--top_k", top_k, "--seed", "1"]) == 0
        assert "Traceback" not in capsys.readouterr().err
    assert main([*hi, "--seed", "-1"]) == 2
    err = capsys.readouterr().err
    assert "seed" in err and "-1" in err and "Traceback" not in err, err
    backend = GenAIBackend(genai_model, {})
    ids = backend.encode("hi")
    for top_k in (10**6, 0):
        pieces = backend.generate(ids, Decoding(3, temperature=1.0, top_k=top_k, seed=1), None, threading.Event())
        assert len(list(pieces)) <= 3
    for seed, ok in ((-1, False), (0, True), (2**31 - 1, True), (2**31, False)):
        chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "seed": seed, "top_k": 0}
        if ok:
            assert ChatCompletionRequest.model_validate(chat).seed == seed
            assert ChatOptions(model_name_or_path="m", seed=seed, top_k=0).seed == seed
        else:
            with pytest.raises(ValueError, match="seed"):
                ChatCompletionRequest.model_validate(chat)
            with pytest.raises(ValueError, match="seed"):
                ChatOptions(model_name_or_path="m", seed=seed)


def _without_chat_template(model: Path, out: Path) -> Path:
    """A copy of a built model with no chat template (a base model that never had one, fine-tuned on alpaca)."""
    import json
    import shutil

    shutil.copytree(model, out)
    (out / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((out / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    return out


def test_serve_answers_chat_on_a_model_without_a_template_with_a_400(genai_model: Path, tmp_path: Path) -> None:
    """It answered 500 "internal error: RuntimeError: Empty chat template."."""
    from olive_ext.serve.app import chat_prompt
    from olive_ext.serve.genai_backend import GenAIBackend
    from olive_ext.serve.protocol import APIError

    backend = GenAIBackend(_without_chat_template(genai_model, tmp_path / "m"), {})
    with pytest.raises(APIError) as e:
        chat_prompt(backend, [{"role": "user", "content": "hi"}])
    assert e.value.status == 400 and e.value.code == "no_chat_template", e.value


# Gemma's way of refusing a system message (its template's first lines)
_NO_SYSTEM_ROLE = (
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_a_template_that_refuses_a_system_role_is_said_by_chat_and_serve(
    genai_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A system message to a Gemma or Mistral template: chat --system printed a 45-line traceback holding the
    template's source three times, and serve answered 500 "internal error" with that source."""
    import shutil

    from olive_ext.cli import main
    from olive_ext.serve.app import chat_prompt
    from olive_ext.serve.genai_backend import GenAIBackend
    from olive_ext.serve.protocol import APIError

    model = tmp_path / "gemma-like"
    shutil.copytree(genai_model, model)
    (model / "chat_template.jinja").write_text(_NO_SYSTEM_ROLE)
    with pytest.raises(APIError) as e:
        chat_prompt(GenAIBackend(model, {}), [{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}])
    assert e.value.status == 400 and e.value.param == "messages"
    assert e.value.message == "the chat template rejected these messages: System role not supported", e.value.message
    assert main(["chat", "-m", str(model), "--system", "be brief", "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert "chat template refuses a conversation with --system: System role not supported" in err
    assert "leave out --system" in err and "Traceback" not in err and "raise_exception" not in err
    assert main(["chat", "-m", str(model), "--prompt", "hi", "--max_new_tokens", "2"]) == 0


def test_an_empty_system_message_is_rendered_as_asked(genai_model: Path) -> None:
    """`chat --system ""` was dropped without a word: a template with a default system prompt (Qwen2.5's "You are
    Qwen...") kept it, where serve and transformers render the empty system message the user asked for."""
    session = open_chat(ChatOptions(model_name_or_path=str(genai_model), system="", max_new_tokens=2))
    plain = open_chat(ChatOptions(model_name_or_path=str(genai_model), max_new_tokens=2))
    with_empty, without = _text(session, session.prompt_ids("hi")[0]), _text(plain, plain.prompt_ids("hi")[0])
    assert with_empty == "system\n\n" + without and without.startswith("user\nhi"), (with_empty, without)


def test_chat_prompts_are_serves_bos_included_and_the_end_token_is_not_answer_text(
    tiny_llama: Path, tmp_path: Path
) -> None:
    """chat encoded without the BOS serve, evaluation and fine-tuning put before a prompt (a template without
    {{ bos_token }}, Phi-3's), so it answered another prompt; and an end token that is no special token (a "\n"
    in generation_config's eos list) was printed and kept in the history."""
    import shutil

    from tiny_models import add_bos_post_processor

    from olive_ext.serve.genai_backend import GenAIBackend

    source = tmp_path / "bos-llama"
    shutil.copytree(tiny_llama, source)
    bos = add_bos_post_processor(source)
    (source / "chat_template.jinja").write_text(  # Phi-3's: no {{ bos_token }}, and its text does not start with it
        "{% for m in messages %}{{ '<|' + m['role'] + '|>\n' + m['content'] + '<|end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}")  # fmt: skip
    art = build(source, {"build": {"type": "model_builder"}}, cache_dir=tmp_path / "cache")
    model = Path(art.path)
    config = json.loads((model / "genai_config.json").read_text())
    session = ChatSession(model, max_new_tokens=8)
    served = GenAIBackend(model, {})
    ids, _ = session.prompt_ids("hello there")
    assert ids[0] == bos and ids == served.encode(served.chat_prompt([{"role": "user", "content": "hello there"}]))
    params = session.og.GeneratorParams(session.model)
    params.set_search_options(max_length=len(ids) + 1, do_sample=False)
    generator = session.og.Generator(session.model, params)
    generator.append_tokens(ids)
    generator.generate_next_token()
    first = int(generator.get_next_tokens()[0])  # the greedy answer's first token: made an end token below
    eos = config["model"]["eos_token_id"]
    config["model"]["eos_token_id"] = [*(eos if isinstance(eos, list) else [eos]), first]
    (model / "genai_config.json").write_text(json.dumps(config))
    reply = ChatSession(model, max_new_tokens=8).answer("hello there")
    assert reply.text == "" and reply.tokens == 0, reply


def test_ctrl_c_during_an_answer_stops_it_and_returns_to_the_prompt(
    genai_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import olive_ext.workflows.chat as chat_module
    from olive_ext.cli import main

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # what a terminal's Ctrl-C raises
    pieces = 0

    def write(text: str) -> None:
        nonlocal pieces
        sys.stdout.write(text)
        pieces += 1
        if pieces == 4:  # the help line, then three tokens of the first answer
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(chat_module, "write_stdout", write)
    monkeypatch.setattr("sys.stdin", io.StringIO("tell me a story\nand another one\n/exit\n"))
    try:
        code = main(["chat", "-m", str(genai_model), "--max_new_tokens", "200"])
    finally:
        signal.signal(signal.SIGINT, previous)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert " [stopped]\n" in captured.out and "interrupted" not in captured.err
    assert captured.out.count("> ") == 3  # the prompt came back for the second message and for /exit


def test_a_chat_template_that_does_not_parse_is_said_as_the_models_at_start_up(
    genai_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Jinja syntax error in chat_template.jinja was blamed on the user: chat said "chat template refuses a
    conversation with --system" with the hint "leave out --system", and serve started and answered every chat
    request with a 400 on ``messages``."""
    import shutil

    from olive_ext.cli import main
    from olive_ext.onnx.chat import BrokenChatTemplateError
    from olive_ext.serve import ServeOptions, build_app

    model = tmp_path / "broken"
    shutil.copytree(genai_model, model)
    (model / "chat_template.jinja").write_text("{% for m in messages %}\n{{ m.content }\n{% endfor %}")
    for system in (["--system", "be brief"], []):
        assert main(["chat", "-m", str(model), *system, "--prompt", "hi"]) == 2
        err = capsys.readouterr().err
        assert f"chat template in {model / 'chat_template.jinja'} is not valid Jinja: unexpected '}}' (line 2)" in err
        assert "--system" not in err and "Traceback" not in err, err
    with pytest.raises(BrokenChatTemplateError, match=r"chat_template\.jinja is not valid Jinja"):
        build_app(ServeOptions(model_name_or_path=str(model)))  # the server does not start
    (model / "chat_template.jinja").write_text(  # transformers' {% generation %} tags are no syntax error
        "{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}{% endfor %}"
    )
    assert main(["chat", "-m", str(model), "--prompt", "hi", "--max_new_tokens", "2"]) == 0


def test_cli_reads_piped_messages_until_end_of_input(genai_model: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "olive_ext", "chat", "-m", str(genai_model), "--max_new_tokens", "5",
         "--temperature", "0.8", "--seed", "1"],
        input="hello\n/reset\n/help\nhi\n/path/to/file is broken\n//help me\n", capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "(conversation cleared)" in proc.stdout and "unknown command /help" in proc.stdout
    assert "start a message with // to send it" in proc.stdout
    # a message starting with a path, or with // (sent with one "/"), is a message: "/path/..." was an unknown command
    assert proc.stdout.count("unknown command") == 1
    assert proc.stdout.count("> ") == 7 and "Traceback" not in proc.stderr


def test_a_piped_line_that_is_not_utf8_is_refused_and_the_chat_goes_on(genai_model: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "olive_ext", "chat", "-m", str(genai_model), "--max_new_tokens", "3"],
        input=b"caf\xe9\nhi\n", capture_output=True, timeout=120,
    )  # fmt: skip
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert "not UTF-8 text" in out and "not sent" in out and out.count("> ") == 3  # the next line was answered


def test_a_piped_line_too_long_for_the_context_is_dropped_as_it_is_read(genai_model: Path) -> None:
    """A 30 MB line piped into chat was held whole, decoded and tokenized (20 s, 1 GB) before the context refused
    it; it is read to its end and dropped now, and the next line is answered."""
    proc = subprocess.run(
        [sys.executable, "-m", "olive_ext", "chat", "-m", str(genai_model), "--max_new_tokens", "3"],
        input=b"x" * 30_000_000 + b"\nhi\n", capture_output=True, timeout=120,
    )  # fmt: skip
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert "(that line is 30000000 bytes, more text than the model's context of" in out, out[-500:]
    assert out.count("> ") == 3  # the next line was answered


def test_the_pipe_reader_drops_only_lines_over_its_limit() -> None:
    from olive_ext.line_reader import LineTooLongError, _PipeReader

    read_end, write_end = os.pipe()
    wake_r, wake_w = os.pipe()
    data = b"a" * 10 + b"\n" + b"b" * 11 + b"\n" + b"c" * 200_000 + b"\nlast"

    def feed() -> None:  # more than a pipe's buffer: written while the reader reads
        with os.fdopen(write_end, "wb") as f:
            f.write(data)

    threading.Thread(target=feed, daemon=True).start()
    reader = _PipeReader(read_end, wake_r, "utf-8", "strict", max_line_bytes=10)
    try:
        assert reader("") == "a" * 10  # exactly the limit is a line
        with pytest.raises(LineTooLongError) as e:
            reader("")
        assert (e.value.size, e.value.limit) == (11, 10)
        with pytest.raises(LineTooLongError) as e:  # longer than a read: dropped as it comes, not held
            reader("")
        assert e.value.size == 200_000 and len(reader.pending) <= 10
        assert reader("") == "last"  # the end of input without a newline is a line
        with pytest.raises(EOFError):
            reader("")
    finally:
        for fd in (read_end, wake_r, wake_w):
            os.close(fd)


def test_a_piped_line_with_a_nul_is_refused_and_kept_out_of_the_history(genai_model: Path) -> None:
    """The tokenizer read the line up to its NUL: the model answered the cut message, which stayed in the history
    the next turns were rendered with."""
    session = open_chat(ChatOptions(model_name_or_path=str(genai_model), max_new_tokens=3))
    out: list[str] = []
    lines = _scripted(["Tell me about a\x00b", "What is the capital of France?"])
    chat_loop(session, lambda _: next(lines), out.append)
    said = "".join(out)
    assert "(that line contains a NUL character (\\x00), which the model cannot read: remove it; it was not sent)" in (
        said
    )
    assert [m["content"] for m in session.history if m["role"] == "user"] == ["What is the capital of France?"]
    assert "Tell me about" not in _text(session, session.last_prompt_ids)
    with pytest.raises(ValueError, match="NUL"):
        ChatOptions(model_name_or_path=str(genai_model), system="be\x00brief")


WRITE_SYSCALL = {"x86_64": "1", "aarch64": "64"}.get(__import__("platform").machine())


def _terminal_session() -> None:
    """In the child, before exec: the pty becomes its controlling terminal (Ctrl-C is SIGINT), and SIGINT is back
    to its default, as a login shell gives it. A runner started in the background by a non-interactive shell
    (`make test &`, nohup) ignores SIGINT, the child inherits that, and Python then installs no KeyboardInterrupt
    handler: Ctrl-C would do nothing (seen: the test failed only under such a runner)."""
    import fcntl
    import signal
    import termios

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@pytest.mark.skipif(sys.platform != "linux" or WRITE_SYSCALL is None, reason="reads /proc/<pid>/syscall")
def test_ctrl_c_typed_in_a_terminal_stops_the_answer(genai_model: Path) -> None:
    """A real terminal (pty): Ctrl-S holds the answer's first write, Ctrl-C then stops that answer."""
    import pty
    import select
    import time

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "olive_ext", "chat", "-m", str(genai_model), "--max_new_tokens", "400"],
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        preexec_fn=_terminal_session,
    )  # fmt: skip
    os.close(slave)
    seen = b""

    def read_until(token: bytes, timeout: float = 120) -> bool:
        nonlocal seen
        deadline = time.time() + timeout
        while token not in seen and time.time() < deadline and proc.poll() is None:
            if select.select([master], [], [], 0.2)[0]:
                seen += os.read(master, 4096)
        return token in seen

    def blocked_in_write() -> bool:
        with open(f"/proc/{proc.pid}/syscall") as f:
            return f.read().split()[0] == WRITE_SYSCALL

    try:
        assert read_until(b"> "), seen
        os.write(master, b"\x13" + b"tell me a story\r")  # Ctrl-S: output held, the answer's first write waits
        deadline = time.time() + 60
        while not blocked_in_write() and time.time() < deadline:
            time.sleep(0.1)
        os.write(master, b"\x03")  # Ctrl-C
        assert read_until(b"[stopped]") and read_until(b"\n> "), seen
        os.write(master, b"/exit\r")
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"interrupted" not in seen and b"Traceback" not in seen


def test_chat_runs_a_gguf_model_on_llama_cpp_with_the_same_conversation(
    tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`make demo`'s "try it: olive-ext chat -m demo-out/bundle" failed whenever the chosen candidate was a GGUF
    (genai_config.json not found); a GGUF folder or file now chats on llama.cpp, greedy by default."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'olive-ext[llamacpp]')")
    from olive_ext.evaluate.backends.llama_cpp import LlamaCppBackend as Scorer
    from olive_ext.workflows.chat import GGUFChatSession

    art = build(tiny_llama, {"gguf": {"type": "gguf_export", "quant": "F32"}},
                cache_dir=tmp_path_factory.mktemp("gguf-chat-cache"))  # fmt: skip
    session = open_chat(ChatOptions(model_name_or_path=art.path, max_new_tokens=6))
    assert isinstance(session, GGUFChatSession)
    streamed: list[str] = []
    first = session.answer("my name is Zed", streamed.append)
    assert "".join(streamed) == first.text and first.tokens == len(streamed) and not first.interrupted
    ids_one = session.last_prompt_ids
    # greedy: the tokens llama.cpp's argmax decoding gives after the same prompt ids (the evaluator's backend)
    expected = Scorer(art.path, 1).generate(ids_one, 6).tokens
    assert expected and first.text == b"".join(session.backend._piece(t) for t in expected).decode("utf-8", "replace")
    session.answer("what is my name")
    ids_two = session.last_prompt_ids
    assert ids_two[: len(ids_one)] == ids_one and len(ids_two) > len(ids_one)  # turn one is in turn two's prompt
    session.reset()
    session.answer("who am I")
    assert len(session.last_prompt_ids) < len(ids_two)
    with pytest.raises(PromptTooLongError):
        session.answer("word " * (session.context_tokens + 10))
    # chat's own cap (2048 for a large model) was called "the model's context", with no flag to raise it
    small = open_chat(ChatOptions(model_name_or_path=art.path, max_new_tokens=6, context_length=256))
    assert small.context_tokens == 256 < session.context_tokens  # llama.cpp rounds a context up to 256s
    with pytest.raises(PromptTooLongError) as info:
        small.answer("word " * 300)
    assert f"raise --context_length (up to {session.context_tokens}" in str(info.value.hint)


def test_the_demo_suggests_only_commands_its_bundle_can_run(tmp_path: Path) -> None:
    """A GGUF bundle has a Modelfile and no run.py: the demo's "try it" line named run.py anyway."""
    from olive_ext.cli.demo import try_commands

    genai, gguf = tmp_path / "genai", tmp_path / "gguf"
    genai.mkdir()
    gguf.mkdir()
    (genai / "run.py").write_text("")
    (gguf / "Modelfile").write_text("")
    assert try_commands(genai, "smollm2-tone") == [f"olive-ext chat -m {genai}", f"python {genai / 'run.py'}"]
    assert try_commands(gguf, "smollm2-tone") == [
        f"olive-ext chat -m {gguf}",
        f"ollama create smollm2-tone -f {gguf / 'Modelfile'} && ollama run smollm2-tone",
    ]


def test_a_gguf_file_reads_the_chat_template_beside_it(tmp_path: Path) -> None:
    """A .gguf without a chat template got the hint "put the base model's chat template beside the model
    (chat_template.jinja)", and the template put there was ignored when -m named the file (the folder worked)."""
    from olive_ext.serve.llama_cpp_backend import find_gguf

    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    assert find_gguf(model) == (model, None)
    (tmp_path / "chat_template.jinja").write_text("{{ messages }}")
    assert find_gguf(model) == (model, tmp_path) == find_gguf(tmp_path)


def _run_py_stream() -> type:
    """The TextStream copy in the bundle's standalone run.py."""
    import importlib.util

    path = Path(olive_ext.deploy.__file__).parent / "templates/run.py"
    spec = importlib.util.spec_from_file_location("bundle_run", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TextStream  # type: ignore[no-any-return]


@pytest.mark.parametrize("where", ["olive_ext", "bundle run.py"])
def test_streamed_text_keeps_what_follows_bytes_that_are_not_utf8(genai_model: Path, where: str) -> None:
    """onnxruntime-genai's TokenizerStream gave "hellorld and more text" for the ids below."""
    from transformers import AutoTokenizer

    decode = folder_decoder(genai_model)
    assert decode is not None
    stream_type = TextStream if where == "olive_ext" else _run_py_stream()
    tok = AutoTokenizer.from_pretrained(genai_model)
    emoji = tok.encode("😀", add_special_tokens=False)
    assert len(emoji) > 1  # byte tokens: the first alone is not UTF-8

    def ids(text: str) -> list[int]:
        return list(tok.encode(text, add_special_tokens=False))

    cases = [
        [*ids("hello"), emoji[0], *ids(" world and more text")],
        [*ids("مرحبا بالعالم 😀 café — ok"), tok.eos_token_id],
        [*ids("end cut"), *emoji[:2]],
    ]
    for n, case in enumerate(cases):
        stream = stream_type(decode)
        pieces = [stream.push(i) for i in case]
        pieces.append(stream.flush())
        assert "".join(pieces) == tok.decode(case, skip_special_tokens=True), n
        if n == 1:  # valid text: no piece shows half a character
            assert "\ufffd" not in "".join(pieces)
        # an answer's end (chat, the bundle's run.py) drops a character cut in two, as serve does: chat printed U+FFFD
        stream = stream_type(decode)
        answer = "".join([stream.push(i) for i in case] + [stream.end()])
        assert answer == tok.decode(case, skip_special_tokens=True).rstrip("\ufffd"), n
        assert "\ufffd" not in answer or n == 0, n


def test_chat_warns_when_the_model_learned_a_text_template(
    genai_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A fine-tune on 'Phrase: {phrase}\\nTone: {tone}' measured 100% exact match, and chat (which wraps messages in
    the chat template) answered "yesyes" without a word: the prompt form it learned is recorded and said."""
    import json
    import logging
    import shutil

    from olive_ext.workflows.chat import trained_text_template

    out = tmp_path / "out"
    shutil.copytree(genai_model, out / "model")
    config = {"kind": "genai", "model": "model", "text_template": "Phrase: {phrase}\nTone: {tone}"}
    (out / "model_config.json").write_text(json.dumps(config))
    assert trained_text_template(out) == "Phrase: {phrase}\nTone: {tone}"
    with caplog.at_level(logging.WARNING, logger="olive_ext"):
        open_chat(ChatOptions(model_name_or_path=str(out)))
    assert "fine-tuned and measured on prompts in the form 'Phrase: {phrase}\\nTone: {tone}'" in caplog.text
    assert trained_text_template(genai_model) is None
    # a fine-tune's own output (chat in PyTorch) records it under train_data: chat on it said nothing
    ft = {"kind": "hf", "model": "model", "train_data": {"name": "json", "text_template": "{q}: {a}"}}
    (out / "model_config.json").write_text(json.dumps(ft))
    assert trained_text_template(out) == "{q}: {a}"
    # without a chat template: refused, with the recorded form as the way to prompt it (the hint said alpaca's, and
    # the warning about wrapping messages in a chat template came first)
    bare = tmp_path / "bare"
    _without_chat_template(genai_model, bare / "model")
    (bare / "model_config.json").write_text(json.dumps(config))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="olive_ext"), pytest.raises(UserInputError) as e:
        open_chat(ChatOptions(model_name_or_path=str(bare)))
    assert "has no chat template" in str(e.value) and "'Phrase: {phrase}\\nTone: {tone}' up to its answer" in (
        e.value.hint or ""), e.value.hint  # fmt: skip
    assert "wraps each message" not in caplog.text


def test_a_text_template_in_the_chat_templates_form_is_not_warned_of(tiny_llama: Path) -> None:
    """The demo's template writes ChatML turns itself: chat warned that it differed from the chat template."""
    from transformers import AutoTokenizer

    from olive_ext.workflows.run import in_chat_form

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    assert in_chat_form("<|im_start|>user\nWhat tone? {phrase}<|im_end|>\n<|im_start|>assistant\n{tone}", tok)
    assert not in_chat_form("Phrase: {phrase}\nTone: {tone}", tok)


def test_sigterm_ends_the_chat(genai_model: Path) -> None:
    """SIGTERM (`timeout`, `kill`, systemd, `docker stop`) was taken as Ctrl-C: the prompt came back and chat went on
    reading until its input closed."""
    import time

    proc = subprocess.Popen([sys.executable, "-m", "olive_ext", "chat", "-m", str(genai_model)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        assert proc.stdout is not None
        seen = b""
        deadline = time.time() + 120
        while b"> " not in seen and time.time() < deadline:
            seen += proc.stdout.read1(4096)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 143, seen  # stdin is still open: only the signal ends it
    finally:
        if proc.poll() is None:
            proc.kill()
        assert proc.stdin is not None
        proc.stdin.close()


def test_sigterm_stops_serve_as_a_stop_not_a_failure(genai_model: Path) -> None:
    """After uvicorn's graceful shutdown `serve` printed "error: terminated; finished steps are cached..." and exited
    143: `docker stop` and `systemctl stop` logged every stop as a failure."""
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "olive_ext", "serve", "-m", str(genai_model), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
        assert proc.returncode == 0 and "error" not in out, out
    finally:
        if proc.poll() is None:
            proc.kill()


_SIGTERM_AS_THE_PROMPT_IS_WRITTEN = """
import functools, io, os, signal, sys
from olive_ext.errors import Terminated
from olive_ext.workflows.chat import chat_loop

def terminate(*_):
    raise Terminated

signal.signal(signal.SIGTERM, terminate)
signal.alarm(20)  # the bug: asleep in read() with the signal's flag set; SIGALRM ends it (exit -14)
class Stdout:  # C-level methods only: the signal arrives where no Python handler can run before the read
    write = io.StringIO().write
    flush = functools.partial(os.kill, os.getpid(), signal.SIGTERM)
sys.stdout = Stdout()
try:
    chat_loop(None, write=lambda _: None)
except Terminated:
    sys.__stdout__.write("terminated")
finally:
    sys.stdout = sys.__stdout__
"""


def test_sigterm_as_the_prompt_is_written_ends_the_chat() -> None:
    """CI caught chat asleep after SIGTERM: input() on a pipe has a window between writing the prompt and read()
    where the signal sets Python's flag and the handler waits for a bytecode that comes only with the next line."""
    proc = subprocess.run([sys.executable, "-c", _SIGTERM_AS_THE_PROMPT_IS_WRITTEN], stdin=subprocess.PIPE,
                          capture_output=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout == b"terminated", proc


def test_a_fine_tune_output_chats_in_pytorch_as_transformers_and_peft_answer(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unsloth's for_inference: trying a fine-tune right after training. chat refused a Hugging Face model or an
    adapter folder ("holds no onnxruntime-genai model"); it answers in PyTorch with the adapter applied."""
    import torch
    from peft import PeftModel
    from tiny_models import make_random_adapter
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from olive_ext.cli import main

    adapter = make_random_adapter(tiny_llama, tmp_path / "adapter")
    session = open_chat(ChatOptions(model_name_or_path=str(adapter), max_new_tokens=12))
    reply = session.answer("tell me a story")
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), adapter).eval()
    text = tok.apply_chat_template([{"role": "user", "content": "tell me a story"}], add_generation_prompt=True,
                                   tokenize=False)  # fmt: skip
    ids = tok(text, add_special_tokens=False)["input_ids"]
    ids = ids if ids[:1] == [tok.bos_token_id] else [tok.bos_token_id, *ids]
    assert session.last_prompt_ids == ids  # the template and the BOS fine-tuning put before prompts
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False, eos_token_id=tok.eos_token_id)
    expected = tok.decode(out[0, len(ids):].tolist(), skip_special_tokens=True)
    assert reply.text == expected.rstrip("\ufffd") and reply.text, (reply.text, expected)
    base = open_chat(ChatOptions(model_name_or_path=str(tiny_llama), max_new_tokens=12)).answer("tell me a story")
    assert base.text != reply.text  # the adapter is applied
    assert main(["chat", "-m", str(adapter), "--prompt", "tell me a story", "--max_new_tokens", "12"]) == 0
    assert reply.text in capsys.readouterr().out
    assert main(["chat", "-m", str(adapter), "--adapter", "x", "--prompt", "hi"]) == 2
    assert "leave out --adapter" in capsys.readouterr().err
    bare = _without_chat_template(tiny_llama, tmp_path / "no-template")  # the hint spoke of exporting a GGUF
    assert main(["chat", "-m", str(bare), "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert f"write a chat template (the base model's, if it has one) to {bare / 'chat_template.jinja'}" in err
    assert "serve" not in err
    from olive_ext.serve.backend import load_backend  # serve needs a built model: it says how to build one

    with pytest.raises(UserInputError, match="holds no model serve runs") as e:
        load_backend(str(adapter))
    assert "build it first" in (e.value.hint or "") and "auto-opt" in (e.value.hint or "")


def test_chat_on_what_is_no_model_says_so_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty path (the current folder), an empty folder, a text file or /dev/null reached transformers' loaders
    and ended in their tracebacks ("not a valid JSON file", "Repo id must be in the form...")."""
    from olive_ext.cli import main

    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hi\n")
    for model in ("", str(tmp_path / "empty"), str(tmp_path / "notes.txt"), "/dev/null"):
        assert main(["chat", "-m", model, "--prompt", "hi"]) == 2, model
        err = capsys.readouterr().err
        assert err.startswith("error:") and ("holds no onnxruntime-genai model" in err or "path is empty" in err), err


def test_serve_context_length_and_threads_apply_to_a_genai_model(genai_model: Path) -> None:
    """`serve --context_length`/`--threads` were taken and left unused on an onnxruntime-genai model (llama.cpp
    only): a model served its whole context on onnxruntime's default threads. onnxruntime's pool starts
    threads - 1 workers beside the caller's, counted here in /proc."""
    import os

    from olive_ext.errors import UserInputError
    from olive_ext.serve.genai_backend import GenAIBackend

    def tasks() -> int:
        return len(os.listdir("/proc/self/task"))

    kept = []
    for threads in (1, 3):
        before = tasks()
        kept.append(GenAIBackend(genai_model, {}, threads=threads))
        assert tasks() - before == threads - 1
    backend = GenAIBackend(genai_model, {}, context_length=8)
    assert (backend.context_length, backend.max_context_length) == (8, kept[0].max_context_length)
    with pytest.raises(UserInputError, match=r"past .* context of"):
        GenAIBackend(genai_model, {}, context_length=backend.max_context_length + 1)


def test_chat_on_an_adapter_whose_base_is_a_hub_id_not_here_says_so_in_one_line(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An Unsloth LoRA folder names its base by hub id ("unsloth/llama-3-8b-Instruct-bnb-4bit"): chat retried the hub
    for 30 s, then ended in transformers' OSError traceback, where auto-opt and export said the model is not here.
    The hint says what chat can do (it takes no --adapter_path)."""
    from tiny_models import make_random_adapter

    from olive_ext.cli import main

    adapter = make_random_adapter(tiny_llama, tmp_path / "unsloth-lora")
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "unsloth/not-here"}))
    assert main(["chat", "-m", str(adapter), "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert "model 'unsloth/not-here' is not on this machine" in err and "Traceback" not in err, err
    assert "base_model_name_or_path" in err and "auto-opt -m BASE --adapter_path" in err
