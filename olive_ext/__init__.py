"""olive-ext: fine-tune, convert, quantize, measure and package small language models."""

__version__ = "0.1.0"
