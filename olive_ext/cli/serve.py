"""`olive-ext serve`: an OpenAI-compatible HTTP API over a built model and its adapters."""

from __future__ import annotations

import argparse

from olive_ext.cli.common import add_log_level, option

READS_HUB = False  # built models only: no hub probe (olive_ext/cli/common.py)

NAME = "serve"
HELP = "serve a built model (and its adapters) over an OpenAI-compatible HTTP API"
DESCRIPTION = """Serve /v1/chat/completions (streamed or not), /v1/completions, /v1/models and /health.
A generate-adapter output serves the base and each adapter as its own model id: the request's
`model` picks the adapter. A GGUF model (a .gguf file, an export --format gguf output, an auto-opt
output whose chosen model is a GGUF, or a bundle of one) runs on llama.cpp (llama-cpp-python).
Binds to 127.0.0.1 unless --host says otherwise.

  olive-ext serve -m out/multi
  olive-ext serve -m out/gguf/model/model-Q4_K_M.gguf --port 8001
  olive-ext serve -m bundle --host 0.0.0.0 --port 8080 --api-key "$KEY"
  curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \\
       -d '{"model": "tone", "messages": [{"role": "user", "content": "I love this!"}]}'
"""
ORDER = 65


def add_arguments(p: argparse.ArgumentParser) -> None:
    from olive_ext.serve.options import ServeOptions as O

    option(p, O, "model_name_or_path", "-m", "--model_name_or_path")
    option(p, O, "host")
    option(p, O, "port", type=int)
    option(p, O, "api_key", "--api_key", "--api-key")
    option(p, O, "served_model_name", "--served_model_name", "--served-model-name")
    option(p, O, "workers", type=int)
    option(p, O, "max_queue", "--max_queue", "--max-queue", type=int)
    option(p, O, "default_max_tokens", type=int)
    option(p, O, "max_body_bytes", "--max_body_bytes", "--max-body-bytes", type=int)
    option(p, O, "context_length", "--context_length", "--context-length", type=int)
    option(p, O, "threads", type=int)
    add_log_level(p)


def main(args: argparse.Namespace) -> int:
    import logging

    from olive_ext.cli.common import options_from_args
    from olive_ext.console import make_console
    from olive_ext.errors import Terminated
    from olive_ext.serve import ServeOptions, serve

    console = make_console(stderr=True)
    # uvicorn logs (one access line per request) at the level --log_level set for olive-ext
    level = logging.getLevelName(logging.getLogger("olive_ext").getEffectiveLevel()).lower()
    opts = options_from_args(ServeOptions, args)
    try:
        serve(opts, announce=lambda line: console.print(line, highlight=False), log_level=level)
    except Terminated:  # uvicorn shut down gracefully, then raised SIGTERM again: a stop asked for, not a failure
        console.print("stopped (SIGTERM)", highlight=False)
    return 0
