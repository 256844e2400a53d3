"""Running generations off the event loop: a bounded queue in front of a fixed pool of worker threads.

Why a queue and not batching: onnxruntime-genai's generators run one sequence each, and on a CPU one
generation already uses every core, so running more at once mostly splits the same cores. A fixed
pool (``workers``, default 1) keeps the model's memory and latency predictable; the queue in front is
bounded (``max_queue``) so an overload gets a quick 503 instead of unbounded waiting. Each request
has its own generator and tokenizer stream, so nothing is shared between requests but the model.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from olive_ext.serve.backend import Backend, Piece, Sampling
from olive_ext.serve.protocol import APIError

_DONE = object()


@dataclass(frozen=True)
class Job:
    """One generation: prompt ids, decoding settings and the adapter (None: the base model)."""

    ids: list[int]
    sampling: Sampling
    adapter: str | None


def _shutting_down() -> APIError:
    return APIError(503, "the server is shutting down (Ctrl-C); the answer ends here", type="server_error",
                    code="server_shutting_down")  # fmt: skip


class Running:
    """A submitted generation: its tokens arrive on an asyncio queue filled by a worker thread."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.cancelled = threading.Event()

    async def pieces(self) -> AsyncGenerator[Piece, None]:
        """The tokens as they come; closing this iterator cancels the generation at its next token."""
        try:
            while (item := await self.queue.get()) is not _DONE:
                if isinstance(item, Exception):
                    raise item
                assert isinstance(item, Piece)
                yield item
        finally:
            self.cancelled.set()  # a client that left, or a stop string reached


class Scheduler:
    """Admits up to ``workers + max_queue`` requests; ``workers`` of them generate at a time."""

    def __init__(self, backend: Backend, workers: int, max_queue: int) -> None:
        self.backend = backend
        self.capacity = workers + max_queue
        self.admitted = 0  # touched only on the event loop's thread
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="olive-ext-serve")
        self._running: set[Running] = set()  # admitted generations (the event loop's thread)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closing = False

    def shutdown(self) -> None:
        """Stop taking work; queued generations are dropped."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def stop_all(self) -> None:
        """Ctrl-C: refuse new requests and end every admitted generation now with a 503 error (an error event in a
        stream, then ``[DONE]``). The server waited for running streams to end (minutes of tokens) before it
        stopped, and a second Ctrl-C cut them with tracebacks. Safe from a signal handler (runs on the loop)."""
        if self._loop is None:
            self.closing = True
            return
        self._loop.call_soon_threadsafe(self._stop_all)

    def _stop_all(self) -> None:
        self.closing = True
        for running in list(self._running):
            running.cancelled.set()
            running.queue.put_nowait(_shutting_down())

    def submit(self, job: Job) -> Running:
        """Queue ``job`` for a worker, or a 503 error at once when every worker and queue place is taken.

        Called before a response starts, so a streamed request that is refused still gets an HTTP 503.
        """
        if self.closing:
            raise _shutting_down()
        if self.admitted >= self.capacity:
            raise APIError(
                503,
                "the server is busy: every worker and queue place is taken; retry later",
                type="server_error",
                code="server_overloaded",
            )
        loop = self._loop = asyncio.get_running_loop()
        running = Running()
        self._running.add(running)

        def put(item: object) -> None:
            if not _call_soon(loop, running.queue.put_nowait, item):
                running.cancelled.set()  # the server has stopped: no one reads the rest

        def work() -> None:
            try:
                for piece in self.backend.generate(job.ids, job.sampling, job.adapter, running.cancelled):
                    # a NUL the model generated (a byte-fallback token) is dropped: the client's next turn sent it
                    # back and was refused (protocol.text_problem), and C strings end at it
                    put(Piece(piece.text.replace("\0", ""), piece.end_of_turn) if "\0" in piece.text else piece)
                put(_DONE)
            except Exception as e:  # a runtime failure ends this request only; the handler reports it
                put(e)

        self.admitted += 1
        future = self._pool.submit(work)
        future.add_done_callback(lambda _: _call_soon(loop, self._release, running))
        return running

    def _release(self, running: Running) -> None:
        self.admitted -= 1
        self._running.discard(running)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Any, *args: object) -> bool:
    """Hand ``callback`` to the event loop from a worker thread; False when the loop has closed (Ctrl-C stopped the
    server while a generation ran: each later token and the worker's end were "Event loop is closed" tracebacks)."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        if not loop.is_closed():
            raise
        return False
    return True
