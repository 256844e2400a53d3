"""Fine-tuning (LoRA, QLoRA, DoRA) fast on CPU and on the GPU when there is one.

Light to import: torch, transformers and peft are imported inside the functions that use them.
"""

from __future__ import annotations

# The options subclass the pass config, and the pass package imports every pass (ours included):
# load the passes first so that importing olive_ext.train.* on its own has no import cycle.
import olive_ext.passes  # noqa: F401
from olive_ext.train.options import FinetuneOptions

__all__ = ["FinetuneOptions"]
