"""The options of `olive-ext serve`: one model whose fields give the flags, defaults and help."""

from __future__ import annotations

from pydantic import Field

from olive_ext.options import Options


class ServeOptions(Options):
    """Everything `olive-ext serve` takes."""

    model_name_or_path: str = Field(
        description="a bundle, auto-opt, generate-adapter or export output folder, a genai model folder, or a .gguf"
    )
    host: str = Field("127.0.0.1", description="address to bind; 0.0.0.0 opens the server to the network")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port)")
    api_key: str | None = Field(
        None,
        description="require `Authorization: Bearer <key>` on /v1 (default: $OLIVE_EXT_API_KEY; unset: no key; empty: "
        "refused; spaces at its ends are not part of it)",
    )
    served_model_name: str | None = Field(
        None,
        description="the base model's id in /v1/models and requests (default: a bundle's manifest name, else the "
        "folder's name; a .gguf's stem)",
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="generations run at once (a GGUF: one llama.cpp context each, the cores split between them); "
        "one generation already uses every core, so more than 1 mostly adds latency",
    )
    max_queue: int = Field(
        64, ge=0, description="requests that may wait for a worker; beyond that a request gets 503 at once"
    )
    default_max_tokens: int = Field(256, ge=1, description="new tokens when a request gives no max_tokens")
    max_body_bytes: int = Field(
        8 * 2**20,
        ge=1024,
        description="largest request body in bytes (default 8 MiB); a larger one gets 413 before it is read",
    )
    context_length: int = Field(
        0,
        ge=0,
        description="GGUF models: llama.cpp's context (KV cache) in tokens per worker (0: the model's, at most 2048); "
        "ONNX (onnxruntime-genai) models: the tokens a prompt and its answer may take (0: the model's); "
        "chat on a fine-tune output in PyTorch: the tokens it keeps (0: the model's, at most 4096)",
    )
    threads: int = Field(
        0,
        ge=0,
        description="GGUF models: llama.cpp threads per worker (0: the cores left free by the load at start, or "
        "$OLIVE_EXT_THREADS, split between the workers: llama.cpp's threads spin-wait, so fewer on a busy machine); "
        "ONNX models: onnxruntime's compute threads (0: as for GGUF, one model for all workers)",
    )
