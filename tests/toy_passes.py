"""Toy passes for engine tests: real file work, deterministic output, no heavy libraries.

Imported by the tests (and by the kill-and-resume subprocess), which registers them.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from pydantic import Field, model_validator

from olive_ext.artifacts import Artifact, iter_files
from olive_ext.passes.base import Pass, PassConfig, register_pass, searchable
from olive_ext.passes.context import RunContext


def toy_weights(model: Path, content: bytes = b"toy weights") -> None:
    """A model.safetensors holding ``content`` as one uint8 tensor: the toy passes never load it, the checks before
    work read a model folder's weights (safetensors only: pickles are refused)."""
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"w": np.frombuffer(content, dtype=np.uint8).copy()}, str(model / "model.safetensors"))


def digest_of(path: str) -> str:
    h = hashlib.sha256()
    for f in iter_files(Path(path)):
        h.update(f.read_bytes())
    return h.hexdigest()


class ToyConfig(PassConfig):
    factor: int = searchable(1, description="output size multiplier", ge=1, le=64)
    label: str = Field("x", description="text mixed into the output")
    wait_for: str | None = Field(None, description="block until this file exists (for kill tests)")
    fail: bool = searchable(False, description="raise instead of producing output")
    marker: str | None = Field(None, description="file to append one line to per real run")
    detail: int = searchable(0, description="only meaningful when factor > 1 (normalized to 0 otherwise)")
    hold_mb: int = Field(0, ge=0, description="hold this many MiB of touched memory while running (memory tests)")

    @model_validator(mode="after")
    def _detail_needs_factor(self) -> ToyConfig:
        if self.factor == 1 and self.detail:
            object.__setattr__(self, "detail", 0)  # like block_size on an fp32 build: irrelevant, so dropped
        return self


@register_pass("toy_transform")
class ToyTransform(Pass[ToyConfig]):
    """Writes model/blob.bin derived from the input's bytes and the config."""

    config_class = ToyConfig
    accepts = frozenset({"hf", "onnx"})
    produces = "onnx"

    def run(self, artifact: Artifact, ctx: RunContext) -> Artifact:
        if self.config.marker:
            with open(self.config.marker, "a") as f:
                f.write(f"{self.config.label}\n")
        while self.config.wait_for and not Path(self.config.wait_for).exists():
            time.sleep(0.05)
        if self.config.fail:
            raise RuntimeError(f"toy failure in {self.config.label}")
        held = bytearray(b"\x01" * (self.config.hold_mb << 20))  # written, so resident
        del held
        out = ctx.output_dir / "model"
        out.mkdir()
        seed = (digest_of(artifact.path) + self.config.label).encode()
        (out / "blob.bin").write_bytes(hashlib.sha256(seed).digest() * 32 * self.config.factor)
        return Artifact("onnx", str(out))


class ToyGpuConfig(PassConfig):
    pass


@register_pass("toy_gpu_only")
class ToyGpuOnly(Pass[ToyGpuConfig]):
    """A pass that only supports GPU targets (for chain validation tests)."""

    config_class = ToyGpuConfig
    accepts = frozenset({"onnx"})
    produces = "onnx"
    devices = frozenset({"gpu"})

    def run(self, artifact: Artifact, ctx: RunContext) -> Artifact:
        return artifact
