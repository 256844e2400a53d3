"""GGUF headers read without loading a tensor: the trained context length, and whether a file is complete.

gguf's own ``GGUFReader`` parses every field and tensor header eagerly into numpy views: 3.6-3.8 s for
SmolLM2-135M's 49k-token vocabulary, paid on each llama.cpp load and on each preflight of a GGUF input. These
readers walk the same layout (GGUF v2/v3, little-endian: magic, version, tensor count, key-value count, the
key-values, the tensor infos, then the tensor data at the file's alignment) with ``struct``, skip the
vocabulary's arrays by their lengths, and stop as soon as they know. Every length is checked against the
file's size before it is read, so a damaged file is refused, never read out of bounds. Files they do not
handle (big-endian, version 1) go to ``GGUFReader``. The byte sizes of the tensor types come from the gguf
package (``GGML_QUANT_SIZES``), the same table its reader uses.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["GGUFLayoutError", "check_complete", "trained_context"]

# GGUF metadata value types (gguf.GGUFValueType) -> struct format of a scalar; 8 is a string, 9 an array
_SCALAR_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_DEFAULT_ALIGNMENT = 32  # GGUF's, where general.alignment is absent


class GGUFLayoutError(ValueError):
    """The file is not a readable GGUF file; the message says where it breaks."""


class _Reader:
    """Little-endian reads from ``f`` that refuse to go past the file's end."""

    def __init__(self, f: IO[bytes], size: int) -> None:
        self.f, self.size = f, size

    def remaining(self) -> int:
        return self.size - self.f.tell()

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or n > self.remaining():
            at = self.f.tell()
            raise GGUFLayoutError(f"{what} needs {n} bytes at byte {at}, past the end of the file ({self.size})")
        return self.f.read(n)

    def unpack(self, fmt: str, what: str) -> Any:
        values = struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))
        return values[0] if len(values) == 1 else values

    def string(self, what: str) -> str:
        return self.take(self.unpack("Q", what), what).decode("utf-8", errors="replace")

    def value(self, kind: int, what: str) -> Any:
        """One metadata value; arrays are skipped over (None) after a bounds check."""
        if kind == _STRING:
            return self.string(what)
        if kind == _ARRAY:
            item, count = self.unpack("IQ", what)
            if item in _SCALAR_FORMATS:
                self.take(count * struct.calcsize("<" + _SCALAR_FORMATS[item]), what)
            elif item in (_STRING, _ARRAY):
                if count * 8 > self.remaining():  # each item needs at least its 8-byte length
                    raise GGUFLayoutError(f"{what}: an array of {count} items cannot fit in the file")
                for _ in range(count):
                    self.value(item, what)
            else:
                raise GGUFLayoutError(f"{what}: unknown array item type {item}")
            return None
        if kind not in _SCALAR_FORMATS:
            raise GGUFLayoutError(f"{what}: unknown value type {kind}")
        return self.unpack(_SCALAR_FORMATS[kind], what)


def _open_v2_v3(f: IO[bytes], size: int) -> tuple[_Reader, int, int] | None:
    """The reader after the fixed header, with the tensor and key-value counts; None for files left to GGUFReader."""
    reader = _Reader(f, size)
    magic = f.read(4)
    if magic != b"GGUF":
        raise GGUFLayoutError("it does not start with the GGUF magic bytes")
    version = reader.unpack("I", "the version")
    if version not in (2, 3):
        return None  # version 1, or a big-endian file (its version reads byte-swapped)
    n_tensors, n_kv = reader.unpack("QQ", "the counts")
    return reader, n_tensors, n_kv


def _metadata(reader: _Reader, n_kv: int) -> Iterator[tuple[str, Any]]:
    """The header's key-value pairs in file order (array values as None)."""
    for _ in range(n_kv):
        key = reader.string("a metadata key")
        yield key, reader.value(reader.unpack("I", key), key)


def trained_context(path: Path) -> int | None:
    """The ``<arch>.context_length`` a GGUF file's metadata gives, or None when it has none (it comes before the
    tokenizer's arrays: the read stops there)."""
    with open(path, "rb") as f:
        opened = _open_v2_v3(f, Path(path).stat().st_size)
        if opened is None:
            return _trained_context_by_reader(path)
        reader, _tensors, n_kv = opened
        arch = None
        for key, value in _metadata(reader, n_kv):
            if key == "general.architecture":
                arch = value
            elif arch is not None and key == f"{arch}.context_length":
                return int(value)
    return None


def architecture(path: Path) -> str | None:
    """A GGUF file's ``general.architecture`` ("llama", "qwen2", ...), or None when it names none."""
    with open(path, "rb") as f:
        opened = _open_v2_v3(f, Path(path).stat().st_size)
        if opened is None:
            from gguf import GGUFReader

            field = GGUFReader(path).fields.get("general.architecture")
            return str(field.contents()) if field is not None else None
        reader, _tensors, n_kv = opened
        for key, value in _metadata(reader, n_kv):
            if key == "general.architecture":
                return str(value)
    return None


_FLOAT_FILE_TYPES = {0: "F32", 1: "F16", 32: "BF16"}  # llama.cpp's LLAMA_FTYPE values that hold no quantization


def quantized_file_type(path: Path) -> str | None:
    """The quantization a GGUF file's ``general.file_type`` names ("Q4_1", "Q8_0"...), or None for float files and
    files that name none."""
    with open(path, "rb") as f:
        opened = _open_v2_v3(f, Path(path).stat().st_size)
        if opened is None:
            return None
        reader, _tensors, n_kv = opened
        value = next((v for k, v in _metadata(reader, n_kv) if k == "general.file_type"), None)
    if not isinstance(value, int) or value in _FLOAT_FILE_TYPES:
        return None
    try:
        from gguf import LlamaFileType

        return LlamaFileType(value).name.removeprefix("MOSTLY_")
    except (ImportError, ValueError):
        return f"file type {value}"


def split_count(path: Path) -> int:
    """How many files the model is split into (``split.count``, what llama.cpp's gguf-split writes in each
    shard); 1 for a whole model."""
    with open(path, "rb") as f:
        opened = _open_v2_v3(f, Path(path).stat().st_size)
        if opened is None:
            return 1
        reader, _tensors, n_kv = opened
        for key, value in _metadata(reader, n_kv):
            if key == "split.count" and isinstance(value, int):
                return value
    return 1


def split_problem(model: Path) -> str | None:
    """Why the GGUF file ``model`` cannot be converted when it is one shard of a split model (gguf-split's
    -00001-of-0000N files), else None: transformers reads only the file it is given, and the layers in the other
    shards came up random ("newly initialized"), were trained on and built, exit 0. llama.cpp reads them all."""
    count = split_count(model) if model.is_file() else 1
    if count <= 1:
        return None
    return (f"{model.name} is one of {count} shards of a split GGUF, and transformers reads one file (the other "
            "shards' layers would be random); merge the shards into one file first: llama-gguf-split --merge "
            f"{model.name} merged.gguf (llama.cpp's tool; chat and serve read split files as they are)")  # fmt: skip


def check_complete(path: Path) -> None:
    """Raise :class:`GGUFLayoutError` unless the header, every tensor info and every tensor's bytes are there."""
    size = Path(path).stat().st_size
    with open(path, "rb") as f:
        opened = _open_v2_v3(f, size)
        if opened is None:
            _check_by_reader(path)
            return
        reader, n_tensors, n_kv = opened
        alignment = _DEFAULT_ALIGNMENT
        for key, value in _metadata(reader, n_kv):
            if key == "general.alignment" and isinstance(value, int) and value > 0:
                alignment = value
        if n_tensors * 24 > reader.remaining():  # name length, dimension count, type and offset at least
            raise GGUFLayoutError(f"a tensor table of {n_tensors} tensors cannot fit in the file")
        spans = [_tensor_span(reader) for _ in range(n_tensors)]
        data_start = -(-f.tell() // alignment) * alignment
    for name, offset, nbytes in spans:
        if data_start + offset + nbytes > size:
            raise GGUFLayoutError(
                f"tensor {name} ends at byte {data_start + offset + nbytes}, past the end of the file ({size})"
            )


def _tensor_span(reader: _Reader) -> tuple[str, int, int]:
    """One tensor info: its name, its data offset and its size in bytes."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    name = reader.string("a tensor name")
    n_dims = reader.unpack("I", name)
    if n_dims > 8:
        raise GGUFLayoutError(f"tensor {name} claims {n_dims} dimensions")
    dims = struct.unpack(f"<{n_dims}Q", reader.take(8 * n_dims, name))
    kind, offset = reader.unpack("IQ", name)
    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
    except (ValueError, KeyError):
        raise GGUFLayoutError(f"tensor {name} has unknown type {kind}") from None
    return name, offset, math.prod(dims) // block * type_size


def _trained_context_by_reader(path: Path) -> int | None:
    from gguf import GGUFReader

    fields = GGUFReader(path).fields
    arch = fields["general.architecture"].contents()
    trained = fields.get(f"{arch}.context_length")
    return int(trained.contents()) if trained else None


def _check_by_reader(path: Path) -> None:
    from gguf import GGUFReader

    try:
        GGUFReader(path)
    except Exception as e:  # gguf raises ValueError on a wrong magic, struct/index errors on a truncated file
        raise GGUFLayoutError(f"{type(e).__name__}: {e}") from None
