"""Fine-tuning (LoRA, QLoRA, DoRA) fast on CPU and on the GPU when there is one.

Light to import: torch, transformers and peft are imported inside the functions that use them.
"""

from __future__ import annotations

from olive_ext.train.options import FinetuneOptions

__all__ = ["FinetuneOptions"]
