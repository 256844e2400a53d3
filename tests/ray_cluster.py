"""A Ray cluster on this machine for tests and benchmarks: a head and worker nodes started with `ray start`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from olive_ext.engine.ray_executor import RAY_QUIET_ENV

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A Ray head (no CPUs: it schedules only) and worker nodes, each a `ray start --block` process of its own.

    Each worker node has its own olive-ext cache ($OLIVE_EXT_CACHE), used when models go through Ray's
    object store. ``stop`` ends the process groups it started, nothing else (not `ray stop`, which would end
    every Ray process of the user on the machine)."""

    def __init__(self, root: Path, workers: int = 1, cpus_per_worker: int = 2) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.temp = tempfile.mkdtemp(prefix="oe-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
        self.workers, self.cpus_per_worker = workers, cpus_per_worker
        self.worker_caches = [root / f"worker-cache-{i}" for i in range(workers)]
        # Ray's token authentication, with a token of the test's own (not ~/.ray/auth_token)
        self.env = {**RAY_QUIET_ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(16).hex()}

    def _start(self, args: list[str], log: str, **env: str) -> subprocess.Popen[bytes]:
        full_env = {**os.environ, **self.env, "PYTHONPATH": str(REPO), **env}
        out = open(self.root / log, "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen([str(RAY), "start", "--block", "--disable-usage-stats", *args], env=full_env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        common = ["--object-store-memory", str(80 * 2**20), "--node-ip-address", "127.0.0.1"]
        self._start(["--head", "--port", str(self.port), "--num-cpus", "0", "--include-dashboard=false",
                     "--temp-dir", self.temp, *common], "head.log")  # fmt: skip
        self._wait_for_nodes(1)
        for i, cache in enumerate(self.worker_caches):
            self._start(["--address", self.address, "--num-cpus", str(self.cpus_per_worker), *common],
                        f"worker-{i}.log", OLIVE_EXT_CACHE=str(cache))  # fmt: skip
            self._wait_for_nodes(2 + i)

    def _wait_for_nodes(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = subprocess.run([str(RAY), "status", "--address", self.address], capture_output=True, text=True,
                                    env={**os.environ, **self.env})  # fmt: skip
            if status.returncode == 0 and status.stdout.count("node_") >= n:
                return
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(1.0)
        logs = "\n".join((self.root / f).read_text(errors="replace")[-2000:] for f in ("head.log", "worker-0.log")
                         if (self.root / f).exists())  # fmt: skip
        raise RuntimeError(f"the Ray cluster did not come up with {n} node(s):\n{logs}")

    def stop(self) -> None:
        """Stop the nodes this fixture started (their process groups), worker first; nothing else on the machine."""
        for proc in reversed(self.procs):
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                if proc.poll() is not None:
                    break
                try:
                    os.killpg(proc.pid, sig)
                    proc.wait(wait)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
        shutil.rmtree(self.temp, ignore_errors=True)
