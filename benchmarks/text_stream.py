"""Streaming answer text: olive-ext's TextStream (tokenizer.json through `tokenizers`) against onnxruntime-genai's
TokenizerStream, per token, on the same ids (an answer of the tiny test model's byte-level BPE, Arabic, emoji and
Latin text). Prints a table: microseconds per token and whether the streamed text equals the whole decode.

    python benchmarks/text_stream.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import load_average, machine_line, run_main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Writing model shards" bar while the tiny model is saved
    from convert_helpers import build  # type: ignore[import-not-found]
    from tiny_models import build_tiny_llama  # type: ignore[import-not-found]

    from olive_ext.onnx.runtime import genai
    from olive_ext.onnx.text_stream import TextStream, folder_decoder

    with tempfile.TemporaryDirectory() as tmp:
        base = build_tiny_llama(Path(tmp) / "tiny")
        folder = Path(build(base, {"build": {"type": "model_builder"}}, cache_dir=Path(tmp) / "cache").path)
        og = genai()
        tokenizer = og.Tokenizer(og.Model(str(folder)))
        text = "The weather is fine today, مرحبا بالعالم 😀 café naïve — ok. " * 20
        ids = [int(i) for i in tokenizer.encode(text)]
        decode = folder_decoder(folder)
        assert decode is not None
        whole = decode(ids)
        print(machine_line(), f"load {load_average():.2f}")
        print(f"{len(ids)} tokens per answer, 20 answers each")
        print("| stream | us/token | equals the whole decode |")
        print("|---|---|---|")
        for name, make in (("olive-ext TextStream", lambda: TextStream(decode)),
                           ("onnxruntime-genai TokenizerStream", tokenizer.create_stream)):  # fmt: skip
            pieces: list[str] = []
            started = time.perf_counter()
            for _ in range(20):
                stream, pieces = make(), []
                for i in ids:
                    pieces.append(stream.push(i) if isinstance(stream, TextStream) else stream.decode(i))
                if isinstance(stream, TextStream):
                    pieces.append(stream.flush())
            per_token = (time.perf_counter() - started) / (20 * len(ids)) * 1e6
            print(f"| {name} | {per_token:.1f} | {''.join(pieces) == whole} |")


if __name__ == "__main__":
    run_main(main)
