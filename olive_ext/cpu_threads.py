"""How many compute threads to use and how they wait, from the CPUs actually free: the one place this is decided.

On a machine other processes keep busy, compute threads that *spin* at barriers (OpenMP's and
onnxruntime's default) burn the time slices the others need and wait for threads that are not
running: measured on this project's 2-core machine at a 1-minute load of 10 (benchmarks/RESULTS.md,
"Busy machine, as it is"), a torch training step with 2 spinning threads ran at 0.7-3.5 steps/s, with
2 passive threads at 40, with 1 thread at 38-53; an onnxruntime MatMul chain with 2 threads at 218-398
runs/s spinning and 426-639 passive. So:

- threads = the cores this process may use (``os.sched_getaffinity``, physical cores at most) less the
  cores other processes keep busy (the 1-minute load average when the command starts, capped by the
  processes running at that moment, so that a job of ours that just ended is not counted), at least 1;
- threads wait passively (``OMP_WAIT_POLICY=PASSIVE``, inherited by the evaluation workers; onnxruntime
  sessions we open ourselves get ``session.intra_op.allow_spinning=0``) whenever other processes are
  running, and spin only on a quiet machine, where spinning costs nobody anything and saves the
  wake-up latency. (onnxruntime-genai's sessions keep their own setting: its genai_config has no
  place for it.)

``OLIVE_EXT_THREADS`` fixes the count (else ``OMP_NUM_THREADS``, the usual way to say it); ``OMP_WAIT_POLICY``
set in the environment wins over ours.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# A 1-minute load average below this (in cores) counts as a quiet machine: our own start-up and the
# system's housekeeping, not another job.
QUIET_LOAD = 0.5


@dataclass(frozen=True)
class ThreadPlan:
    """The thread count and wait policy for compute in this process, and what they were derived from.

    ``passive`` False means the libraries' defaults (spinning a while at barriers).
    """

    threads: int
    passive: bool
    cores: int
    load: float
    reason: str


def allowed_cores() -> int:
    """The cores this process may run on, physical cores at most."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        allowed = os.cpu_count() or 1
    physical = _physical_cores() or allowed
    return max(1, min(allowed, physical))


# Variables that fix the thread count, first found wins: ours, then OpenMP's (which torch and onnxruntime users
# already set; without this, our plan would override the OMP_NUM_THREADS=1 a user gave)
_THREAD_VARS = ("OLIVE_EXT_THREADS", "OMP_NUM_THREADS")

_machine: tuple[float, int] | None = None  # (load, cores) when this process first asked


def plan_threads(load: float | None = None, cores: int | None = None) -> ThreadPlan:
    """The plan for this process (``load``/``cores`` given: for that machine state).

    The load and cores are read once per process, at the first call (the CLI makes it before any
    work): later, the load average counts this process's own work too, and would take a core from a
    run on a quiet machine. ``OLIVE_EXT_THREADS`` (else ``OMP_NUM_THREADS``) and ``OMP_WAIT_POLICY`` are read at
    every call.
    """
    global _machine
    if load is None and cores is None:
        if _machine is None:
            _machine = (_load_now(), allowed_cores())
        load, cores = _machine
    cores = allowed_cores() if cores is None else cores
    load = _load_now() if load is None else load
    busy = min(cores, int(load + 0.5)) if load >= QUIET_LOAD else 0
    passive = os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE" or (
        "OMP_WAIT_POLICY" not in os.environ and busy > 0
    )
    for name in _THREAD_VARS:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return ThreadPlan(int(value), passive, cores, load, name)
    threads = max(1, cores - busy)
    reason = "quiet machine" if busy == 0 else f"load {load:.1f} on {cores} cores: {threads} left free"
    return ThreadPlan(threads, passive, cores, load, reason)


def apply_wait_policy(plan: ThreadPlan) -> None:
    """Put a passive plan's wait policy into the environment, for OpenMP (read when torch loads) and child processes.

    Call before torch is imported. An ``OMP_WAIT_POLICY`` already set is left as it is; on a quiet
    machine nothing is set (OpenMP's default: spin a while, then sleep).
    """
    if plan.passive:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def ort_allows_spinning() -> bool:
    """Whether onnxruntime sessions may spin (``session.intra_op.allow_spinning``): as OpenMP's policy says."""
    return os.environ.get("OMP_WAIT_POLICY", "ACTIVE").upper() != "PASSIVE"


def _load_now() -> float:
    """Cores other processes keep busy: the 1-minute load average, capped by the processes running right now.

    The average lags by a minute: just after a job of ours ended (a fine-tune before an auto-opt) it
    still counts that job. The running count of /proc/loadavg (this process included) does not.
    """
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows
        return 0.0
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):  # not Linux
        return load
    return min(load, float(max(0, running - 1)))


def _physical_cores() -> int | None:
    try:
        import psutil

        return psutil.cpu_count(logical=False)
    except Exception:
        return None
