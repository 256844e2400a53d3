"""The evaluation worker: runs one candidate in its own process and reports raw measurements.

    python -m olive_ext.evaluate.worker request.json result.json

The request names the model and the jobs (``timing``, ``generate``, ``nll``, ``classify``)
with token ids prepared by the parent; the result holds token ids, NLL sums and timings.
Running each candidate in a fresh process keeps peak-memory readings clean and keeps a
crashing runtime from taking the search down with it.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from olive_ext.evaluate.backends import LMBackend, open_backend


def run_jobs(request: dict[str, Any]) -> dict[str, Any]:
    """Open the model once and run each requested job on it."""
    model = request["model"]
    started = time.perf_counter()
    backend = open_backend(
        model["kind"],
        model["path"],
        model.get("adapter_path"),
        request["provider"],
        request["threads"],
        model.get("adapter_name"),
        model.get("gguf_file"),
    )
    result: dict[str, Any] = {"load_seconds": time.perf_counter() - started, "threads": request["threads"]}
    jobs = request["jobs"]
    if "timing" in jobs:
        result["timing"] = _timing(backend, jobs["timing"])  # type: ignore[arg-type]
    if "generate" in jobs:
        job = jobs["generate"]
        t = time.perf_counter()
        outs = [backend.generate(p, job["max_new_tokens"]).tokens for p in job["prompts"]]  # type: ignore[attr-defined]
        result["generate"] = {"outputs": outs, "seconds": time.perf_counter() - t}
    if "nll" in jobs:
        pairs = jobs["nll"]["pairs"]
        result["nll"] = {
            "nll": [backend.continuation_nll(p, c) for p, c in pairs],  # type: ignore[attr-defined]
            "tokens": [len(c) for _, c in pairs],
        }
    if "classify" in jobs:
        result["classify"] = _classify(backend, jobs["classify"])
    return result


def _timing(backend: LMBackend, job: dict[str, Any]) -> dict[str, Any]:
    for _ in range(job["warmup"]):
        backend.generate(job["prompt"], job["new_tokens"], job["new_tokens"])
    runs = []
    for _ in range(job["repeats"]):
        gen = backend.generate(job["prompt"], job["new_tokens"], job["new_tokens"])
        runs.append(gen.step_seconds)
    return {"runs": runs, "prompt_tokens": len(job["prompt"])}


def _classify(backend: Any, job: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    for features in job["features"][: job["warmup"]]:
        backend.run(features)
    predictions, seconds = [], []
    for features in job["features"]:
        out, took = backend.run(features)
        predictions.append(int(np.asarray(out).reshape(-1, np.asarray(out).shape[-1])[0].argmax()))
        seconds.append(took)
    return {"predictions": predictions, "seconds": seconds}


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM starts fresh at exec, unlike getrusage's ru_maxrss,
    which Linux carries over from the parent's image before exec."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str]) -> int:
    request_path, result_path = argv
    with open(request_path) as f:
        request = json.load(f)
    try:
        result = run_jobs(request)
    except Exception as e:  # reported to the parent, which records it on the candidate
        result = {"error": f"{type(e).__name__}: {e}"}
    result["peak_rss_mb"] = peak_rss_mb()
    with open(result_path, "w") as f:
        json.dump(result, f)
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    from olive_ext.quiet import hide_library_noise

    # this process's own filters and no library progress bars (importing olive_ext changes none); its stderr
    # goes to the parent, which shows the last line when the worker fails: plain logging suits that
    hide_library_noise(rich_logging=False)
    raise SystemExit(main(sys.argv[1:]))
