"""Built-in passes: one module per pass. Importing this package registers them all.

Modules are discovered from this folder, so adding a pass means adding one file.
Pass modules import heavy libraries (torch, onnxruntime, ...) only inside ``run``.
"""

from __future__ import annotations

import importlib
import pkgutil

from olive_ext.passes.base import Pass, PassConfig, get_pass, register_pass, registered_passes, searchable

__all__ = ["Pass", "PassConfig", "get_pass", "register_pass", "registered_passes", "searchable"]

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
