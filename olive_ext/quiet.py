"""Keep chatty library loggers and progress bars out of the user's terminal unless olive-ext logs at debug level.

Nothing here runs at import: the command line and the evaluation worker call :func:`hide_library_noise`
for their own process; importing olive_ext as a library changes no global state.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

from olive_ext.console import make_console

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


# tqdm bars of the libraries we call ("Loading weights", "Writing model shards", "Generating train split",
# "Converting and de-quantizing GGUF tensors"): one progress display, ours (olive_ext/progress.py). Read when
# each library is imported, so they are set before any is; TQDM_DISABLE covers the bars that use tqdm
# directly (transformers' GGUF reader). A value the user has set is kept.
PROGRESS_BAR_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}


class _DropMessages(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(f in message for f in self.fragments)


@contextlib.contextmanager
def drop_messages(logger_name: str, *fragments: str) -> Iterator[None]:
    """Drop the named logger's records that contain one of ``fragments`` during the block
    (all kept when olive-ext logs at debug). For messages known to be harmless where the block runs."""
    if logging.getLogger("olive_ext").isEnabledFor(logging.DEBUG):
        yield
        return
    target = logging.getLogger(logger_name)
    dropper = _DropMessages(fragments)
    target.addFilter(dropper)
    try:
        yield
    finally:
        target.removeFilter(dropper)


def hide_library_noise(rich_logging: bool = True) -> None:
    """This process's filters: the library-internal warnings above and library progress bars off; with
    ``rich_logging``, library log lines printed through rich (above our bars), not through a handler a
    library installs on the root logger."""
    import warnings

    for message in _LIBRARY_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)
    for name in _MISLEADING_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    disable_library_progress_bars()
    if rich_logging:
        _route_root_logging()


class _Bars(NamedTuple):
    """One library's progress-bar switches: its module, the probe (``probe_says_off``: it answers "disabled"),
    the functions that switch them off and on, and the environment variable it reads at import (None: none)."""

    package: str
    module: str
    probe: str
    probe_says_off: bool
    off: str
    on: str
    variable: str | None


_BAR_SWITCHES = (
    _Bars("huggingface_hub", "huggingface_hub.utils", "are_progress_bars_disabled", True, "disable_progress_bars",
          "enable_progress_bars", "HF_HUB_DISABLE_PROGRESS_BARS"),
    _Bars("transformers", "transformers.utils.logging", "is_progress_bar_enabled", False, "disable_progress_bar",
          "enable_progress_bar", None),
    _Bars("datasets", "datasets.utils.tqdm", "is_progress_bar_enabled", False, "disable_progress_bars",
          "enable_progress_bars", "HF_DATASETS_DISABLE_PROGRESS_BARS"),
)  # fmt: skip


def disable_library_progress_bars() -> None:
    """Switch off the progress bars of huggingface_hub, transformers, datasets and tqdm for this process."""
    for name, value in PROGRESS_BAR_ENV.items():
        os.environ.setdefault(name, value)
    # already imported (a program that calls olive_ext.cli.main): their switches, as the env vars come too late
    import importlib

    for bars in _BAR_SWITCHES:
        if bars.package in sys.modules:
            getattr(importlib.import_module(bars.module), bars.off)()


@contextlib.contextmanager
def library_noise_hidden(loads_models: bool = True) -> Iterator[None]:
    """:func:`hide_library_noise`'s warnings filters and progress-bar switches for one call of the Python API,
    undone after it: a notebook sees the call's own output ("Loading weights" and "Writing model shards" bars
    came through), and its settings come back as they were: bars a user switched off stay off, bars of a library
    first imported during the call are switched on again unless the user's environment switched them off.
    ``loads_models``: transformers is imported first (the call will import it; its bars read no variable)."""
    import importlib
    import warnings

    tqdm_bars = _tqdm_bars_off()  # imports tqdm before TQDM_DISABLE is set below: see there
    ours = [name for name in PROGRESS_BAR_ENV if name not in os.environ]  # disable_library_progress_bars sets them
    if loads_models and "transformers" not in sys.modules:
        with contextlib.suppress(ImportError):
            importlib.import_module("transformers.utils.logging")
    before = {
        bars.package: bool(getattr(importlib.import_module(bars.module), bars.probe)()) != bars.probe_says_off
        for bars in _BAR_SWITCHES
        if bars.package in sys.modules
    }
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level
    # onnxruntime's quantizer calls logging.basicConfig(level=INFO) at import: the caller's root logger then
    # printed every library's INFO lines for the rest of the process. A root with a handler makes it do nothing;
    # this one prints what Python's last-resort handler would (warnings and up, bare), and goes after the call.
    stand_in = logging.StreamHandler()
    stand_in.setLevel(logging.WARNING)
    if not root_handlers:
        root.addHandler(stand_in)
    threads = _torch_threads()
    misleading = [logging.getLogger(name) for name in _MISLEADING_LOGGERS]  # as the CLI: its kernels notice
    misleading_levels = [lg.level for lg in misleading]
    for lg in misleading:
        lg.setLevel(logging.ERROR)
    with warnings.catch_warnings(), tqdm_bars:
        for message in _LIBRARY_DEPRECATIONS:
            warnings.filterwarnings("ignore", message=message, category=FutureWarning)
        disable_library_progress_bars()
        try:
            yield
        finally:
            for name in ours:
                os.environ.pop(name, None)
            for bars in _BAR_SWITCHES:
                if bars.package in sys.modules and before.get(bars.package, bars.variable in ours):
                    with warnings.catch_warnings():  # datasets first imported during the call read our variable
                        warnings.simplefilter("ignore", UserWarning)  # and says so ("Cannot enable progress bars")
                        getattr(importlib.import_module(bars.module), bars.on)()
            for handler in [h for h in root.handlers if h not in root_handlers]:
                root.removeHandler(handler)
            root.setLevel(root_level)
            for lg, level in zip(misleading, misleading_levels, strict=True):
                lg.setLevel(level)
            if threads is not None:
                import torch

                torch.set_num_threads(threads)


@contextlib.contextmanager
def _tqdm_off(tqdm_class: Any) -> Iterator[None]:
    """tqdm's bars off by default for the block (a caller's explicit ``disable=`` still wins), then as before."""
    original = tqdm_class.__dict__["__init__"]
    tqdm_class.__init__ = functools.partialmethod(original, disable=True)
    try:
        yield
    finally:
        tqdm_class.__init__ = original


def _tqdm_bars_off() -> contextlib.AbstractContextManager[None]:
    """Bars that use tqdm directly (olive-ai's GPTQ and RTN "Processing layers", "Quantizing and packing linear
    layers") off for one API call. tqdm reads TQDM_DISABLE once, when it is first imported: in a caller that had
    imported it (transformers does), the variable came too late and the bars reached the notebook; read at a first
    import during the call, it would have switched the caller's own bars off for good. So tqdm is imported before
    the variable is set (the call's child processes read it) and its default is switched for the call only."""
    try:
        from tqdm import std
    except ImportError:  # pragma: no cover - transformers and huggingface_hub depend on tqdm
        return contextlib.nullcontext()
    return _tqdm_off(std.tqdm)


def _torch_threads() -> int | None:
    """torch's intra-op thread count when the caller had imported torch (a call sets its own), else None."""
    torch = sys.modules.get("torch")
    get = getattr(torch, "get_num_threads", None)
    return int(get()) if callable(get) else None


F = TypeVar("F", bound=Callable[..., Any])


def api_call(loads_models: bool = True) -> Callable[[F], F]:
    """Decorate a public API function: it runs inside :func:`library_noise_hidden`."""

    def wrap(func: F) -> F:
        @functools.wraps(func)
        def call(*args: Any, **kwargs: Any) -> Any:
            with library_noise_hidden(loads_models):
                return func(*args, **kwargs)

        return call  # type: ignore[return-value]

    return wrap


def _route_root_logging() -> None:
    """A rich handler (warnings and up) on the root logger, unless it has handlers.

    onnxruntime's weight-only quantizer calls ``logging.basicConfig(level=INFO)`` at import, which would put
    a plain stderr handler on the root logger and print every library's INFO lines with timestamps, through
    our live bars. A root logger that already has a handler makes basicConfig do nothing; rich's handler
    prints above the bars (olive_ext/progress.py routes it through the bars' console while they are live).
    """
    root = logging.getLogger()
    if root.handlers:
        return
    from rich.logging import RichHandler

    handler = RichHandler(level=logging.WARNING, show_path=False, show_time=False, markup=False,
                          console=make_console(stderr=True))  # fmt: skip
    root.addHandler(handler)
