"""Separate virtual environments for the tools we compare against (Olive, llama.cpp).

Each is created once under .bench/ and reused; a lock file keeps two benchmarks from
building the same environment at once.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(os.environ.get("OLIVE_EXT_BENCH_DIR", ROOT / ".bench"))
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")

ENVS: dict[str, list[str]] = {
    # Olive as a user installs it for finetune and auto-opt (its docs: olive-ai[auto-opt,finetune]).
    # onnxruntime-genai 0.14.1 still ships models/quantized_model.py, which
    # Olive 0.13's ModelBuilder pass imports (0.18, the one olive-ext uses, fails there).
    "olive": [
        TORCH_SPEC,
        "olive-ai[finetune,auto-opt,cpu]==0.13.0",
        "onnxruntime-genai==0.14.1",
        "onnx-ir",
        "transformers==5.23.0",
        "peft==0.21.2",
        "datasets",
        "psutil",
        "requests",
    ],
    "llamacpp": ["llama-cpp-python==0.3.36", "psutil"],
}


def build_env(name: str) -> dict[str, str]:
    """Extra environment for building an environment's packages from source."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if name == "llamacpp" and "amx_int8" in flags and "CMAKE_ARGS" not in os.environ:
        # llama-cpp-python 0.3.36 built with -march=native on an AMX CPU segfaults in its first
        # llama_decode of a Q4_0 model (the AMX weight buffer; F32 runs, and Q4_0 runs with extra
        # buffer types off). Build for AVX-512 without AMX: Q4_0 keeps its CPU repack.
        features = ["AVX", "AVX2", "FMA", "F16C", "AVX512", "AVX512_VNNI", "AVX512_VBMI", "AVX512_BF16"]
        return {"CMAKE_ARGS": " ".join(["-DGGML_NATIVE=OFF", *(f"-DGGML_{f}=ON" for f in features)])}
    return {}


def env_python(name: str) -> Path:
    """Create (once) and return the interpreter of the named comparison environment."""
    venv = BENCH / f"{name}-venv"
    py = venv / "bin" / "python"
    marker = venv / ".ready"
    if marker.exists():
        return py
    BENCH.mkdir(parents=True, exist_ok=True)
    with open(BENCH / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            print(f"[bench] creating {venv} (one time)", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
            build = build_env(name)
            if build:
                print(f"[bench] building {name} with {build}", file=sys.stderr)
            subprocess.run(
                # no cache: a wheel built earlier with other flags must not be reused
                [str(py), "-m", "pip", "install", "-q", *(["--no-cache-dir"] if build else []), *ENVS[name]],
                check=True,
                env={**os.environ, **build},
            )
            marker.touch()
    return py


def env_bin(name: str, exe: str) -> Path:
    return env_python(name).parent / exe


if __name__ == "__main__":  # python benchmarks/_envs.py olive
    for arg in sys.argv[1:]:
        print(env_python(arg))
