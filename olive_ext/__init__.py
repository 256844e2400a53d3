"""olive-ext: fine-tune, convert, quantize, measure and package small language models."""

__version__ = "0.1.0"

from olive_ext.quiet import hide_library_noise as _hide_library_noise

_hide_library_noise()
