"""Intermediates that several candidates of one run make from the same input, made once per process.

Every builder candidate of an auto-opt run starts from the same fine-tune: before this, each one
merged the adapter into the base again (load, merge, save: about 2 s on SmolLM2-135M, more than the
int4 quantization itself), and each GGUF candidate merged it and wrote the same F32 GGUF again before
quantizing. :func:`shared_folder` makes such an intermediate once, keyed by the input's content
fingerprint and what is made from it, and hands the same folder to every later candidate of the
process. The folders live in the cache's ``tmp`` (named with the process id, so a killed run's are
swept by the next :class:`~olive_ext.cache.Cache`), at most :data:`KEEP` at a time, and are removed
when the process exits. They are not cache entries: they cost disk only while a run builds, and a
fully cached re-run never makes them.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

# A merged model and its F32 GGUF: the two intermediates a run's candidates share.
KEEP = 2

_lock = threading.RLock()  # a make() may ask for another shared folder (the F32 GGUF needs the merged model)
_made: OrderedDict[str, Path] = OrderedDict()


def shared_folder(root: Path, fingerprint: str, what: str, make: Callable[[Path], None]) -> Path:
    """The folder ``make`` fills for input ``fingerprint`` and purpose ``what``, made once per process.

    ``make(folder)`` writes into an empty ``folder``; when it raises, nothing is kept. An input
    without a fingerprint (not fingerprinted by the engine) is not shared: it is made every time,
    in a folder of its own (removed like the others).
    """
    key = hashlib.sha256(json.dumps([fingerprint, what]).encode()).hexdigest()[:16] if fingerprint else ""
    with _lock:
        if key and key in _made and _made[key].exists():
            _made.move_to_end(key)
            return _made[key]
        key = key or os.urandom(8).hex()
        folder = root / f"shared.{os.getpid()}.{key}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            make(folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        _made[key] = folder
        while len(_made) > KEEP:
            _, old = _made.popitem(last=False)
            shutil.rmtree(old, ignore_errors=True)
        return folder


def forget_shared() -> None:
    """Remove every shared folder this process made (at exit; tests call it to start clean)."""
    with _lock:
        while _made:
            _, folder = _made.popitem()
            shutil.rmtree(folder, ignore_errors=True)


_idle: threading.Timer | None = None
_calls = 0  # forget_when_idle's calls: a timer that fires after a later call forgets nothing


def _forget_if_idle(call: int) -> None:
    with _lock:
        if call == _calls:
            forget_shared()


def forget_when_idle(seconds: float | None) -> None:
    """Remove this process's shared folders after ``seconds`` without another call; None: a task begins (the
    timer is stopped). For processes that outlive their work without exiting (a Ray worker, where ``atexit``
    does not run: its F32 GGUF stayed in the cache's tmp/ until the next run swept it)."""
    global _idle, _calls
    with _lock:
        _calls += 1
        if _idle is not None:
            _idle.cancel()
            _idle = None
        if seconds is not None:
            _idle = threading.Timer(seconds, _forget_if_idle, (_calls,))
            _idle.daemon = True
            _idle.start()


atexit.register(forget_shared)
