"""`olive-ext serve`: an OpenAI-compatible HTTP server over a built model and its adapters.

Layers inside: :mod:`.backend` (what a runtime provides; onnxruntime-genai in :mod:`.genai_backend`,
llama.cpp for GGUF models in :mod:`.llama_cpp_backend`),
:mod:`.scheduler` (worker pool and bounded queue), :mod:`.protocol` (OpenAI request/response shapes)
and :mod:`.app` (the FastAPI routes). FastAPI and uvicorn come with the ``serve`` extra.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

from olive_ext.errors import MissingDependencyError, UserInputError
from olive_ext.serve.backend import load_backend, local_model_path, served_names
from olive_ext.serve.options import ServeOptions

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["ServeOptions", "build_app", "serve"]

API_KEY_ENV = "OLIVE_EXT_API_KEY"


def _api_key(given: str | None) -> str | None:
    """The key clients must send: --api-key, else $OLIVE_EXT_API_KEY, else None (no key). An empty one is refused
    (it was taken as no key, without a word: OLIVE_EXT_API_KEY="" from a missing secret served everyone), and one
    with spaces at its ends is read without them, as a client's Bearer token is (" abc" could never be matched)."""
    where, key = ("--api-key", given) if given is not None else (f"${API_KEY_ENV}", os.environ.get(API_KEY_ENV))
    if key is not None and not key.strip():
        raise UserInputError(
            f"{where} is empty: no key would be asked of clients",
            hint=f"give the key clients must send, or leave {where} {'out' if given is not None else 'unset'} to "
            "serve without one",
        )
    return key.strip() if key is not None else None


def build_app(opts: ServeOptions) -> tuple[FastAPI, list[str]]:
    """Load the model named by ``opts`` and return the app with the model ids it serves."""
    api_key = _api_key(opts.api_key)
    _require_extra()
    # app imports fastapi, an optional extra: checked just above, with a pip command if missing
    from olive_ext.serve.app import create_app

    backend, default_name = load_backend(opts.model_name_or_path, opts.workers, opts.context_length, opts.threads)
    name = opts.served_model_name or default_name
    # a bundle's folder name keeps working beside its manifest name (not listed; an adapter's name wins)
    # (load_backend checked the path and the bundle: its files were hashed, and a changed one warned of, twice)
    aliases = [] if opts.served_model_name else served_names(local_model_path(opts.model_name_or_path))[1:]
    if name in backend.adapters:
        raise UserInputError(
            f"an adapter is named {name!r} like the base model", hint="give the base another --served_model_name"
        )
    app = create_app(
        backend,
        name,
        api_key=api_key,
        workers=opts.workers,
        max_queue=opts.max_queue,
        default_max_tokens=opts.default_max_tokens,
        max_body_bytes=opts.max_body_bytes,
        aliases=aliases,
    )
    return app, [name, *backend.adapters]


def serve(opts: ServeOptions, announce: Any = print, log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C); ``log_level`` is uvicorn's (its access log is at info)."""
    if not opts.host.strip():  # bound every interface (0.0.0.0) without a word: the server open to the network
        raise UserInputError(
            "--host is empty, which binds every address of this machine (the network too)",
            hint="give 127.0.0.1 to serve this machine only, or 0.0.0.0 to open it to the network",
        )
    app, ids = build_app(opts)
    sock = _listen(opts.host, opts.port)  # bound here, so the announced port is the real one (--port 0 too)
    where = f"http://{'[' + opts.host + ']' if ':' in opts.host else opts.host}:{sock.getsockname()[1]}/v1"
    announce(f"serving {', '.join(ids)} at {where}")
    uvicorn_server(app, log_level=log_level).run(sockets=[sock])


def uvicorn_server(app: Any, **config: Any) -> Any:
    """A uvicorn server for ``app`` (``config``: uvicorn.Config's keywords) whose Ctrl-C (or SIGTERM) ends the
    running answers at once, each with a 503 error (:meth:`Scheduler.stop_all`); streams still open 10 s later
    are closed (uvicorn's timeout_graceful_shutdown)."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.scheduler.stop_all()
            super().handle_exit(sig, frame)

    return Server(uvicorn.Config(app, timeout_graceful_shutdown=10, **config))


def _listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (uvicorn listens on it), or a one-line error naming both."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, TypeError, UnicodeError) as e:  # TypeError: a name the IDNA codec cannot encode
        sock.close()
        raise UserInputError(
            f"cannot listen on --host {host} --port {port}: {getattr(e, 'strerror', None) or e}",
            hint="choose another --port (0: any free port), or a --host address of this machine",
        ) from e
    return sock


def _require_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError(e.name or "fastapi", "olive-ext serve", install="'olive-ext[serve]'") from e
