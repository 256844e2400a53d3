"""Background builds: a long single-threaded step runs in a child process on the core the run leaves free.

Olive's GPTQ computes on one thread (``OlivePass.single_threaded``), and so does the builder's k_quant rounding
(numpy); on the demo fine-tune they took 67 s and 31 s of a 352 s auto-opt while the second core idled. When
the search order is known up front (grid or random search, the local executor) and this machine has a second
core and the memory for a second model, the run loop starts one child process that builds each candidate's
steps up to its last single-threaded step, into the same cache, the costliest first (``Pass.single_threaded_cost``);
the run measures those candidates last, the child's last job first. The cache's per-key build lock does the rest:
when the loop reaches such a candidate it waits for the child's step and reuses it (or builds the step itself if
the child has not started it yet, on the core the child leaves; the child then reuses the loop's). Longest job
first: on the demo the child built k_quant (31 s) and then GPTQ (67 s), and the run waited 70-80 s at its end for
GPTQ; GPTQ first lets the run build k_quant itself beside it. Nothing is built twice, and the child runs the same
step code on the same inputs as the run would (on one thread: float sums may round differently in the last bits,
as on another machine sharing the cache, or a Ray worker).

Timings stay alone: the child leads its own process group, named to the evaluation workers in
``OLIVE_EXT_PAUSE_GROUP``; a worker stops the group (SIGSTOP) while it times a model and resumes it after
(the run resumes it too once each evaluation is over, whatever happened to the worker). Accuracy (teacher
forcing) runs beside the child: its result does not depend on speed. The child runs at the lowest priority
(nice 19: it takes only what the run leaves idle) and dies with the run (``PR_SET_PDEATHSIG`` on Linux;
``close`` otherwise). It is a fresh interpreter (``python -m olive_ext.engine.background request.json``, the
request in JSON), so neither the run's torch/onnxruntime state nor the caller's script is carried into it.
``OLIVE_EXT_BACKGROUND=0`` turns this off.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from olive_ext.artifacts import Artifact
from olive_ext.cache import Cache
from olive_ext.data.spec import DatasetSpec
from olive_ext.engine.runner import run_steps
from olive_ext.engine.search import Candidate
from olive_ext.engine.steps import Step
from olive_ext.evaluate.worker import PAUSE_ENV, die_with_parent
from olive_ext.memory import available_mb
from olive_ext.models.spec import InputModel
from olive_ext.passes.context import RunContext
from olive_ext.targets.base import Target

logger = logging.getLogger("olive_ext")

__all__ = ["BackgroundBuilds", "background_prefixes"]

# Free memory needed, as a multiple of the input model's weights, before a second model is loaded beside the
# run's own builds (the int8 builder peaked at 2.4x the fp32 weights; GPTQ holds the model, its calibration
# activations and one Hessian per layer). A quantized GGUF file counts 4x its size (its fp32 model, at 4 to 8
# bits a weight).
MEMORY_FACTOR = 8
GGUF_EXPANSION = 4
ENV_SWITCH = "OLIVE_EXT_BACKGROUND"


def background_prefixes(candidates: list[Candidate]) -> list[tuple[Candidate, list[Step]]]:
    """Each candidate with a single-threaded step, with its steps up to the last such one (deduplicated), the
    costliest first (the sum of their single-threaded steps' ``single_threaded_cost``; ties keep the search order)."""
    out: list[tuple[float, Candidate, list[Step]]] = []
    seen: set[tuple[str, ...]] = set()
    for candidate in candidates:
        lone = [(i, s) for i, s in enumerate(candidate.steps) if s.pass_class().single_threaded(s.params)]
        if not lone:
            continue
        prefix = list(candidate.steps[: lone[-1][0] + 1])
        key = (candidate.target.name, *(s.describe() for s in prefix))
        if key not in seen:
            seen.add(key)
            out.append((sum(s.pass_class().single_threaded_cost(s.params) for _, s in lone), candidate, prefix))
    out.sort(key=lambda job: -job[0])  # stable: equal costs stay in the search order
    return [(candidate, prefix) for _, candidate, prefix in out]


def _weights_mb(source: Artifact) -> float:
    """The input's weight files in MiB (GGUF files counted as the fp32 model they load as, roughly)."""
    path = Path(source.path)
    files = [path] if path.is_file() else [*path.glob("*.safetensors"), *path.glob("*.bin"), *path.glob("*.gguf")]
    sizes = [f.stat().st_size * (GGUF_EXPANSION if f.suffix == ".gguf" else 1) for f in files if f.is_file()]
    return sum(sizes) / 2**20


def why_not_background(source: Artifact, spare_cores: int) -> str | None:
    """Why no background build may start here (None: it may)."""
    if os.environ.get(ENV_SWITCH, "").strip() == "0":
        return f"{ENV_SWITCH}=0"
    if spare_cores < 1:
        return "no spare core (the run's thread plan uses every free core)"
    free, need = available_mb(), MEMORY_FACTOR * _weights_mb(source)
    if free is None or free < need:
        return f"not enough free memory for a second model ({free or 0:.0f} MiB free, {need:.0f} MiB wanted)"
    return None


class BackgroundBuilds:
    """The child process building single-threaded prefixes; evaluation workers pause it while they time."""

    def __init__(self, process: subprocess.Popen[bytes] | None, deferred: list[str]) -> None:
        self.process = process
        self.deferred = deferred  # ids of the candidates whose prefixes the child builds, in the child's order

    def run_order(self, candidates: Iterable[Candidate]) -> list[Candidate]:
        """``candidates`` with those the child builds for moved last, the child's last job first: the run measures
        the others meanwhile, then reaches the jobs the child has not started yet and builds them itself while the
        child finishes its first (the choice does not depend on the order)."""
        ordered = list(candidates)
        rank = {cid: i for i, cid in enumerate(reversed(self.deferred))}
        later = sorted((c for c in ordered if c.id in rank), key=lambda c: rank[c.id])
        return [c for c in ordered if c.id not in rank] + later

    @classmethod
    def start(cls, source: Artifact, jobs: list[tuple[Candidate, list[Step]]], ctx: RunContext) -> BackgroundBuilds:
        """Start the child on ``jobs`` (from :func:`background_prefixes`)."""
        request = {
            "parent": os.getpid(),
            "source": source.to_json(),
            "cache": str(ctx.cache.root),
            "datasets": {k: v.model_dump(mode="json") for k, v in ctx.datasets.items()},
            "input_model": ctx.input_model.model_dump(mode="json") if ctx.input_model else None,
            "work": [
                {"id": c.id, "target": [c.target.device, c.target.provider],
                 "steps": [[s.name, s.type, s.params] for s in prefix]}
                for c, prefix in jobs
            ],
        }  # fmt: skip
        fd, path = tempfile.mkstemp(prefix=ctx.cache.scratch_prefix("background"), suffix=".json", dir=ctx.cache.tmp)
        with os.fdopen(fd, "w") as f:
            json.dump(request, f)
        env = {**os.environ, "OLIVE_EXT_THREADS": "1", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
        env.pop(PAUSE_ENV, None)
        process = subprocess.Popen(
            [sys.executable, "-m", "olive_ext.engine.background", path],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # the run's terminal shows the run's progress only
            stderr=subprocess.DEVNULL,
            # its own process group, which a worker stops whole while timing; not its own session: Linux gives each
            # session its own scheduling group (autogroup), across which nice does not apply
            **_own_group(),
        )
        os.environ[PAUSE_ENV] = str(process.pid)  # inherited by the evaluation workers (evaluate/worker.py)
        described = "; ".join(f"{c.id}: {' -> '.join(s.describe() for s in prefix)}" for c, prefix in jobs)
        logger.info("building in the background (one thread, paused while candidates are timed): %s", described)
        return cls(process, [c.id for c, _ in jobs])

    def _signal(self, sig: int) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    @contextlib.contextmanager
    def measuring(self) -> Iterator[None]:
        """Around an evaluation: its worker pauses the child while it times; the child is resumed after, in any case."""
        try:
            yield
        finally:
            self._signal(signal.SIGCONT)

    def close(self) -> None:
        """End the child (resumed first, so that it can take the signal) and wait for it."""
        os.environ.pop(PAUSE_ENV, None)
        if self.process is None:
            return
        if self.process.poll() is None:
            self._signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.returncode not in (0, -signal.SIGTERM):
            logger.info("background build ended with exit code %s; the run built what it needed itself",
                        self.process.returncode)  # fmt: skip


def _own_group() -> dict[str, Any]:
    """Popen arguments that start the child in a process group of its own, in this session."""
    if sys.version_info >= (3, 11):
        return {"process_group": 0}
    return {"preexec_fn": os.setpgrp}  # pragma: no cover - Python 3.10


def main(request_path: str) -> int:
    """The child: quiet, at a lower priority, killed with its parent; each prefix built in order into the cache."""
    with open(request_path) as f:
        request = json.load(f)
    with contextlib.suppress(OSError):
        os.unlink(request_path)
        os.nice(19)  # idle CPU only: the run's steps come first; this child need only be done when the run gets there
    die_with_parent(int(request["parent"]))
    logging.getLogger("olive_ext").setLevel(logging.ERROR)
    ctx = RunContext(
        cache=Cache(request["cache"]),
        datasets={k: DatasetSpec.model_validate(v) for k, v in request["datasets"].items()},
        input_model=InputModel.model_validate(request["input_model"]) if request["input_model"] else None,
    )
    source = Artifact.from_json(request["source"])
    failed = 0
    for job in request["work"]:
        steps = [Step(name, type_, params) for name, type_, params in job["steps"]]
        try:
            run_steps(source, steps, ctx.for_step(ctx.output_dir, Target(*job["target"])), job["id"])
        except Exception:  # the run builds (and reports) it itself when it gets there
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    from olive_ext.quiet import hide_library_noise

    hide_library_noise(rich_logging=False)
    raise SystemExit(main(sys.argv[1]))
