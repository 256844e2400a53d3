"""Keep chatty library loggers out of the user's terminal unless olive-ext logs at debug level."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

# onnxruntime's weight-only quantizers (k-quant logs one INFO line per MatMul through neural_compressor)
QUANTIZER_LOGGERS = ("onnxruntime.quantization.matmul_nbits_quantizer", "neural_compressor")


@contextlib.contextmanager
def quiet_loggers(*names: str, level: int = logging.WARNING) -> Iterator[None]:
    """Raise the named loggers to ``level`` for the block (left alone when olive-ext logs at debug)."""
    if logging.getLogger("olive_ext").isEnabledFor(logging.DEBUG):
        yield
        return
    loggers = [logging.getLogger(n) for n in names]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, old in zip(loggers, saved, strict=True):
            lg.setLevel(old)


# deprecations raised inside the libraries we call, which a user of olive-ext can do nothing about
_LIBRARY_DEPRECATIONS = (
    r"`is_gradient_checkpointing` is deprecated",  # peft 0.21 reads transformers 5.2x's old property name
)
# loggers whose warnings mislead here: bitsandbytes 0.50 on AVX512-BF16 CPUs tries, at import, to fetch an
# inference kernel from the model hub (package `kernels`) and tells the user to install it; olive-ext trains
# with bitsandbytes' own kernels and turns that inference path off (olive_ext/train/model.py)
_MISLEADING_LOGGERS = ("bitsandbytes.backends.cpu.ops",)


def hide_library_noise() -> None:
    """Drop the library-internal warnings above from the user's terminal."""
    import warnings

    for message in _LIBRARY_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)
    for name in _MISLEADING_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
