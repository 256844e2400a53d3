"""`olive-ext chat`: try a built model from the terminal, streaming tokens, with the conversation kept."""

from __future__ import annotations

import argparse

from olive_ext.cli.common import add_log_level, option

READS_HUB = False  # built models only: no hub probe (olive_ext/cli/common.py)

NAME = "chat"
HELP = "chat with a built model (auto-opt, generate-adapter output, a bundle, a .gguf) or a fine-tune output"
DESCRIPTION = """Stream answers from a built model with its own chat template; generation stops at the
model's end-of-turn token. A fine-tune output, an adapter folder or a local Hugging Face model
runs in PyTorch (fp32, the adapter applied): slower, for trying a fine-tune before auto-opt.

The conversation is kept (the oldest turns are dropped when it outgrows
the context window); /reset forgets it, /exit or Ctrl-D quits, Ctrl-C stops an answer.

Answers are greedy by default (what auto-opt measured); --temperature above 0 samples.

  olive-ext chat -m out/onnx
  olive-ext chat -m out/onnx --temperature 0.7 --top_p 0.9 --repetition_penalty 1.1
  olive-ext chat -m out/multi --adapter tone --prompt "I love this!"
  olive-ext chat -m out/ft --prompt "I love this!"
"""
ORDER = 60


def add_arguments(p: argparse.ArgumentParser) -> None:
    from olive_ext.workflows.chat import ChatOptions as O

    option(p, O, "model_name_or_path", "-m", "--model_name_or_path")
    option(p, O, "adapter")
    option(p, O, "prompt")
    option(p, O, "system")
    group = p.add_argument_group("generation")
    option(group, O, "max_new_tokens", type=int)
    option(group, O, "temperature", type=float)
    option(group, O, "top_p", type=float)
    option(group, O, "top_k", type=int)
    option(group, O, "repetition_penalty", type=float)
    option(group, O, "seed", type=int)
    option(group, O, "context_length", "--context_length", "--context-length", type=int)
    add_log_level(p)


def main(args: argparse.Namespace) -> int:
    from olive_ext.cli.common import options_from_args
    from olive_ext.errors import Terminated
    from olive_ext.workflows.chat import ChatOptions, chat_loop, open_chat, write_stdout

    opts = options_from_args(ChatOptions, args)
    try:
        session = open_chat(opts)
        if opts.prompt is None:
            chat_loop(session, write=write_stdout)
        elif session.answer(opts.prompt, write_stdout).interrupted:
            write_stdout(" [stopped]\n")
        else:
            write_stdout("\n")
    except KeyboardInterrupt as e:  # nothing to keep, nothing cached (SIGTERM: ends at once, as a shell expects)
        write_stdout("\n")
        return 143 if isinstance(e, Terminated) else 130
    return 0
