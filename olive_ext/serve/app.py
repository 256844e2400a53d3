"""The OpenAI-compatible HTTP API over a :class:`~olive_ext.serve.backend.Backend` (FastAPI)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from olive_ext.onnx.chat import ChatTemplateRejectedError, NoChatTemplateError
from olive_ext.serve.backend import Backend, Sampling
from olive_ext.serve.options import ServeOptions
from olive_ext.serve.protocol import (
    APIError,
    ChatCompletionRequest,
    CompletionRequest,
    StopMatcher,
    _Sampling,
    chat_body,
    chat_chunk,
    new_id,
    text_body,
    usage,
    usage_chunk,
)
from olive_ext.serve.scheduler import Job, Running, Scheduler

log = logging.getLogger("olive_ext.serve")
BodyT = TypeVar("BodyT", bound=BaseModel)


@dataclass
class _Outcome:
    """How a generation ended, filled in while its text is consumed."""

    finish_reason: str = "length"
    completion_tokens: int = 0


class Server:
    """The models on offer (base and adapters), the scheduler, and the request-to-job logic."""

    def __init__(
        self,
        backend: Backend,
        base_name: str,
        scheduler: Scheduler,
        default_max_tokens: int,
        aliases: Sequence[str] = (),
    ) -> None:
        self.backend, self.base_name, self.scheduler = backend, base_name, scheduler
        self.default_max_tokens = default_max_tokens
        self.aliases = set(aliases) - {base_name} - set(backend.adapters)  # other ids of the base, not listed
        self.created = int(time.time())

    def model_ids(self) -> list[str]:
        """The base model's id, then each adapter's."""
        return [self.base_name, *self.backend.adapters]

    def adapter_for(self, model: str) -> str | None:
        """The adapter a request's ``model`` names (None: the base), or a 404 error."""
        if model == self.base_name or model in self.aliases:
            return None
        if model in self.backend.adapters:
            return model
        known = ", ".join(self.model_ids())
        raise APIError(
            404, f"the model {model!r} does not exist; models here: {known}", param="model", code="model_not_found"
        )

    def job(self, req: _Sampling, prompt: str) -> Job:
        """The generation for a request: checks the model, the prompt's length and the token budget."""
        adapter = self.adapter_for(req.model)
        ids = self.backend.encode(prompt)
        room = self.backend.context_length - len(ids)
        if room <= 0:
            raise APIError(
                400,
                f"the prompt has {len(ids)} tokens; {self.context_limit()}",
                param="messages" if isinstance(req, ChatCompletionRequest) else "prompt",
                code="context_length_exceeded",
            )
        for name in ("frequency_penalty", "presence_penalty"):
            if getattr(req, name) and not self.backend.penalties:
                raise APIError(
                    400,
                    f"{name}: is not supported by onnxruntime-genai; use repetition_penalty (e.g. 1.1) instead",
                    param=name,
                    code="invalid_value",
                )
        wanted = getattr(req, "max_completion_tokens", None) or req.max_tokens or self.default_max_tokens
        sampling = Sampling(
            max_new_tokens=min(wanted, room),  # what does not fit the context ends with finish_reason "length"
            temperature=req.temperature if req.top_p > 0 else 0.0,  # top_p 0: the most likely token alone
            top_p=req.top_p or 1.0,
            top_k=req.top_k,  # 0: no top-k cut; absent: the model's default
            seed=req.seed,
            repetition_penalty=req.repetition_penalty,
            frequency_penalty=req.frequency_penalty,
            presence_penalty=req.presence_penalty,
        )
        return Job(ids, sampling, adapter)

    def context_limit(self) -> str:
        """The context length a prompt must fit, and how to raise it when the server runs below the model's own."""
        n, most = self.backend.context_length, self.backend.max_context_length
        if most <= n:
            return f"this model's context length is {n}. Shorten the prompt."
        return (
            f"this server's context length is {n} (the model's own maximum is {most}). Shorten the prompt, or restart "
            f"`olive-ext serve` with --context_length up to {most} (each worker's KV cache grows with it)."
        )

    async def texts(self, running: Running, stops: list[str], outcome: _Outcome) -> AsyncGenerator[str, None]:
        """The generated text in pieces, cut at the first stop string; ``outcome`` says how it ended."""
        matcher = StopMatcher(stops)
        async with contextlib.aclosing(running.pieces()) as pieces:
            async for piece in pieces:
                if piece.end_of_turn:
                    outcome.finish_reason = "stop"
                    break
                outcome.completion_tokens += 1
                text, stopped = matcher.feed(piece.text)
                if text:
                    yield text
                if stopped:
                    outcome.finish_reason = "stop"
                    return
        if tail := matcher.flush():
            yield tail


_DEFAULT = ServeOptions.model_fields  # one place for each option's default: the options model


def create_app(
    backend: Backend,
    base_name: str,
    *,
    api_key: str | None = None,
    workers: int = _DEFAULT["workers"].default,
    max_queue: int = _DEFAULT["max_queue"].default,
    default_max_tokens: int = _DEFAULT["default_max_tokens"].default,
    max_body_bytes: int = _DEFAULT["max_body_bytes"].default,
    aliases: Sequence[str] = (),
) -> FastAPI:
    """The FastAPI application serving ``backend`` as ``base_name`` plus one model id per adapter.

    ``aliases`` are other ids requests may give for the base model (not listed in /v1/models); a request body
    over ``max_body_bytes`` is refused with a 413 before it is parsed.
    """
    if base_name in backend.adapters:
        raise ValueError(f"an adapter is named {base_name!r} like the base model; choose another served name")
    scheduler = Scheduler(backend, workers, max_queue)
    server = Server(backend, base_name, scheduler, default_max_tokens, aliases)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        scheduler.shutdown()

    app = FastAPI(title="olive-ext serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.scheduler = scheduler  # serve's Ctrl-C ends its generations (Scheduler.stop_all)
    _add_error_handlers(app)
    auth = Depends(_bearer_check(api_key))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": server.model_ids(), "busy": scheduler.admitted}

    @app.get("/v1/models", dependencies=[auth])
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(m, server.created) for m in server.model_ids()]}

    @app.get("/v1/models/{model_id:path}", dependencies=[auth])  # ids hold "/" (HuggingFaceTB/SmolLM2-135M)
    async def model(model_id: str) -> dict[str, Any]:
        server.adapter_for(model_id)
        return _model_card(model_id, server.created)

    @app.post("/v1/chat/completions", dependencies=[auth], response_model=None)
    async def chat(request: Request) -> Any:
        req = await _body(request, ChatCompletionRequest, max_body_bytes)
        server.adapter_for(req.model)  # an unknown model is a 404 before the chat template is asked for
        # rendering and tokenizing a long prompt takes seconds (a 7.5 MB message: 12 s on llama.cpp): off the event
        # loop, which kept every other request and stream (and /health) waiting that long
        job = await asyncio.to_thread(lambda: server.job(req, chat_prompt(backend, req.plain_messages())))
        return await _answer(request, req, job, _chat_events, chat_body, "chatcmpl")

    @app.post("/v1/completions", dependencies=[auth], response_model=None)
    async def completions(request: Request) -> Any:
        req = await _body(request, CompletionRequest, max_body_bytes)
        job = await asyncio.to_thread(server.job, req, req.text())
        return await _answer(request, req, job, _text_events, text_body, "cmpl")

    async def _answer(request: Request, req: Any, job: Any, events: Any, body: Any, prefix: str) -> Any:
        """Run a job: streamed as server-sent events, or collected into one response body."""
        running = scheduler.submit(job)
        if req.stream:
            return _sse(events(server, req, job, running), request)
        outcome = _Outcome()
        text = await _collect(server.texts(running, req.stops(), outcome), request)
        use = usage(len(job.ids), outcome.completion_tokens)
        return body(new_id(prefix), req.model, text, outcome.finish_reason, use)

    return app


async def _collect(texts: AsyncGenerator[str, None], request: Request) -> str:
    """The whole text of a non-streamed answer; a client that disconnects stops the generation (as a stream's does):
    closing ``texts`` cancels the worker at its next token."""
    parts: list[str] = []
    async with contextlib.aclosing(texts):
        async for text in texts:
            if await request.is_disconnected():
                break
            parts.append(text)
    return "".join(parts)


def chat_prompt(backend: Backend, messages: list[dict[str, str]]) -> str:
    """The backend's chat prompt for ``messages``, a template's refusal a 400 naming ``messages`` (a system message
    to Gemma, two user turns in a row to Mistral: a 500 with the template's source on genai models)."""
    try:
        return backend.chat_prompt(messages)
    except NoChatTemplateError as e:
        raise APIError(400, f"{e.message}; send the prompt to /v1/completions instead", param="messages",
                       code="no_chat_template") from e  # fmt: skip
    except ChatTemplateRejectedError as e:
        raise APIError(400, f"the chat template rejected these messages: {e.reason}", param="messages") from e


def _model_card(model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "olive-ext"}


def _bearer_check(api_key: str | None) -> Any:
    async def check(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise APIError(401, "missing or wrong API key: send `Authorization: Bearer <key>`", code="invalid_api_key")

    return check


async def _chat_events(
    server: Server, req: ChatCompletionRequest, job: Job, running: Running
) -> AsyncGenerator[dict[str, Any], None]:
    rid, outcome = new_id("chatcmpl"), _Outcome()
    yield chat_chunk(rid, req.model, {"role": "assistant", "content": ""}, None)
    async for text in server.texts(running, req.stops(), outcome):
        yield chat_chunk(rid, req.model, {"content": text}, None)
    yield chat_chunk(rid, req.model, {}, outcome.finish_reason)
    if req.include_usage():
        yield usage_chunk(rid, "chat.completion.chunk", req.model, usage(len(job.ids), outcome.completion_tokens))


async def _text_events(
    server: Server, req: CompletionRequest, job: Job, running: Running
) -> AsyncGenerator[dict[str, Any], None]:
    rid, outcome = new_id("cmpl"), _Outcome()
    async for text in server.texts(running, req.stops(), outcome):
        yield text_body(rid, req.model, text, None, None)
    yield text_body(rid, req.model, "", outcome.finish_reason, None)
    if req.include_usage():
        yield usage_chunk(rid, "text_completion", req.model, usage(len(job.ids), outcome.completion_tokens))


def _sse(events: AsyncGenerator[dict[str, Any], None], request: Request) -> StreamingResponse:
    """Server-sent events ending with ``data: [DONE]``; a failure mid-stream is sent as an error event.

    A client that disconnects stops its generation: the events are closed, which cancels the worker.
    """

    async def lines() -> AsyncIterator[str]:
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    if await request.is_disconnected():
                        return
                    yield f"data: {json.dumps(event)}\n\n"
        except APIError as e:
            yield f"data: {json.dumps(e.body())}\n\n"
        except Exception as e:  # the status line is already sent; the client learns of the failure here
            log.exception("generation failed mid-stream")
            yield f"data: {json.dumps(APIError(500, f'generation failed: {e}', type='server_error').body())}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(lines(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _add_error_handlers(app: FastAPI) -> None:
    """Every failure answers with an OpenAI error object; none stops the server."""

    def respond(e: APIError) -> JSONResponse:
        headers = (
            {"WWW-Authenticate": "Bearer"} if e.status == 401 else {"Retry-After": "1"} if e.status == 503 else None
        )
        return JSONResponse(e.body(), status_code=e.status, headers=headers)

    @app.exception_handler(APIError)
    async def api_error(_: Request, e: APIError) -> JSONResponse:
        return respond(e)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        return respond(_from_validation(e.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code)
        return respond(APIError(e.status_code, str(e.detail), code=code))

    @app.exception_handler(Exception)
    async def internal(_: Request, e: Exception) -> JSONResponse:
        log.exception("request failed")
        return respond(APIError(500, f"internal error: {type(e).__name__}: {e}", type="server_error"))


async def _body(request: Request, model: type[BodyT], max_bytes: int) -> BodyT:
    """The request body as ``model``; read as JSON whatever its Content-Type (curl's -d sends a form type).

    A body over ``max_bytes`` is a 413 (said by its Content-Length, else counted as it arrives): parsing one
    that large would hold the event loop, and every other request, for seconds.
    """
    raw = await _raw_body(request, max_bytes)
    try:
        data = json.loads(raw)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise APIError(400, f"the request body is not valid JSON: {e}", code="invalid_json") from e
    except RecursionError as e:
        raise APIError(400, "the request body is nested too deeply to read", code="invalid_json") from e
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise _from_validation(e.errors(include_url=False)) from e
    except RecursionError as e:
        raise APIError(400, "the request body is nested too deeply to read", code="invalid_json") from e


async def _raw_body(request: Request, max_bytes: int) -> bytes:
    """The body's bytes, or a 413 as soon as it is known to be over ``max_bytes``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(max_bytes: int) -> APIError:
    return APIError(
        413,
        f"the request body is larger than this server's limit of {max_bytes} bytes; send a shorter request, or "
        "restart `olive-ext serve` with a larger --max_body_bytes",
        code="request_too_large",
    )


def _from_validation(errors: Sequence[Any]) -> APIError:
    """The first problem of a request body as a 400, naming the parameter."""
    first = errors[0] if errors else {}
    # pydantic names union members in the location ("stop.str", "prompt.list[str]"): keep the fields only
    loc = [str(p) for p in first.get("loc", ()) if p != "body" and not _union_member(p)]
    param = ".".join(loc) or None
    message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    if first.get("type") == "missing":
        message = "required parameter is missing"
    return APIError(400, f"{param}: {message}" if param else message, param=param, code="invalid_value")


def _union_member(part: Any) -> bool:
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool", "list", "dict"})
