"""The Ray executor: each candidate's build and evaluation as a Ray task on a cluster (``executor: {type: ray}``).

Tasks ask Ray for the recipe's resources (CPUs, GPUs, memory, custom resources). Models move through the
cache folder when the worker sees it (a shared file system: the driver leaves a marker there and the
worker looks for it), otherwise through Ray's object store: the worker asks for the inputs once (the
model, adapter and data files, packed as tar bytes), builds in its own cache, and returns the built model
as a second return object that the driver fetches only for the candidate it chooses. A worker process or
node that dies is retried by Ray (``max_retries``); a task that gives no result within ``task_timeout_s``,
or that no node left in the cluster can run, is cancelled and reported as that candidate's failure.

Ray's usage statistics are switched off before Ray is imported (``RAY_USAGE_STATS_ENABLED=0``) and in
every task's environment; the dashboard is not started.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import time
import uuid
from pathlib import Path
from typing import Any

from olive_ext.artifacts import Artifact
from olive_ext.cache import ENTRY_FILE, Cache
from olive_ext.engine.executor import RunCandidate, build_share, measure_lock, node_info
from olive_ext.engine.results import CandidateResult
from olive_ext.engine.search import Candidate
from olive_ext.engine.transfer import digest, pack, unpack_once
from olive_ext.errors import MissingDependencyError, OliveExtError, UserInputError
from olive_ext.machine_lock import HELD_ENV
from olive_ext.passes.context import RunContext
from olive_ext.passes.shared import forget_when_idle
from olive_ext.recipe.schema import ExecutorSpec, Recipe

logger = logging.getLogger("olive_ext")

__all__ = ["RAY_QUIET_ENV", "RayExecutor", "candidate_task", "quiet_ray"]

# No usage statistics sent to Ray's collector, no dashboard; set in the driver and in every task.
RAY_QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_USAGE_STATS_PROMPT_ENABLED": "0"}
NEED_INPUTS = "need-inputs"
POLL_S = 2.0
# a Ray worker's shared intermediates (merged model, F32 GGUF) are removed after this long without a task:
# a worker process outlives the run and atexit does not run in it
SHARED_IDLE_S = 60.0


def quiet_ray() -> None:
    """Switch Ray's usage statistics off in this process (read by Ray when it starts or connects)."""
    os.environ.update(RAY_QUIET_ENV)


def _import_ray() -> Any:
    quiet_ray()
    try:
        import ray
    except ImportError as e:
        raise MissingDependencyError("ray", "executor type 'ray' (--executor ray)", "'olive-ext[ray]'") from e
    return ray


class _RayJob:
    """One candidate's task: its result, waited for with the executor's timeouts and node checks."""

    def __init__(self, executor: RayExecutor, candidate: Candidate, args: tuple[Any, ...]) -> None:
        self.executor, self.candidate, self.args = executor, candidate, args
        self.submitted = time.monotonic()
        self.refs = executor._launch(args, inputs=None)

    def result(self) -> CandidateResult:
        ex = self.executor
        try:
            outcome = ex._wait(self.refs[0], self.candidate, self.submitted)
            if outcome == NEED_INPUTS:  # the worker cannot see the inputs: send them through the object store
                self.refs = ex._launch(self.args, inputs=ex._inputs_ref(self.args[0], self.args[3]))
                outcome = ex._wait(self.refs[0], self.candidate, time.monotonic())
        except OliveExtError as e:
            return CandidateResult(self.candidate, error=str(e), exception=e)
        result: CandidateResult = outcome
        if result.ok and result.node.get("transfer") == "ray":
            ex._built[id(result)] = self.refs[1]
        return result


class RayExecutor:
    """Candidates as Ray tasks; results taken back in submission order (see olive_ext.engine.run)."""

    def __init__(self, spec: ExecutorSpec, cache_root: Path) -> None:
        self.ray = ray = _import_ray()
        self.spec, self.cache_root = spec, cache_root
        address, where = cluster_address(spec)
        self.connected_here = not ray.is_initialized()
        if self.connected_here:
            kwargs: dict[str, Any] = {"configure_logging": False, "log_to_driver": False}
            if address is None:  # a Ray instance of this run's own: "local", not a cluster found running here
                kwargs["include_dashboard"] = False
            else:
                _check_answers(address, where)  # ray.init waits for ever on an address where nothing answers
            try:
                ray.init(address=address or "local", runtime_env={"env_vars": dict(RAY_QUIET_ENV)}, **kwargs)
            except ConnectionError as e:  # a gRPC server answered (checked above): most often Ray's token auth
                raise OliveExtError(
                    f"{where} {address!r}: a server answers there, but Ray could not join it as a cluster ({e})",
                    hint=_AUTH_HINT,
                ) from e
            except Exception as e:  # a malformed address (ValueError), authentication, ray[client] missing
                cause = _ANSI.sub("", str(e)).strip().splitlines()
                client = "ray[client]" in str(e)
                raise OliveExtError(
                    f"{where} {address!r}: Ray could not connect: {type(e).__name__}: {cause[0] if cause else ''}",
                    hint="a ray:// address needs Ray's client: pip install 'ray[client]' (or give the HOST:PORT "
                    "`ray start --head` printed)" if client else "the address is HOST:PORT of a `ray start --head` "
                    "cluster; " + _AUTH_HINT,
                ) from e
        self.marker = cache_root / "tmp" / f"ray-run-{uuid.uuid4().hex}"
        self.marker.parent.mkdir(parents=True, exist_ok=True)
        self.marker.touch()
        self._task = ray.remote(candidate_task)
        self._built: dict[int, Any] = {}
        self._inputs: Any = None
        self.nodes_at_start = self._alive_nodes()
        self._reported_gone: set[str] = set()
        if self.nodes_at_start and not self._can_run_somewhere(self.nodes_at_start):
            self.close()  # each candidate waited node_wait_s, one after another, then failed naming "restart"
            raise UserInputError(
                f"no node of the Ray cluster has what each candidate asks for ({self._asks()}): the largest has "
                f"{self._largest(self.nodes_at_start)}",
                hint="lower executor.num_cpus / num_gpus / memory_gb / resources, or add a node that has them "
                "(`ray start --address HEAD:PORT --num-cpus N`)",
            )
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        self.slots = spec.max_parallel or max(1, int(cpus // spec.num_cpus))
        logger.info("ray: %d node(s), %g CPUs; up to %d candidates at once", len(self.nodes_at_start), cpus,
                    self.slots)  # fmt: skip

    # ----------------------------------------------------------------- submission

    def submit(self, run: RunCandidate, *args: Any) -> _RayJob:
        """Start the candidate's task; ``args``: run_candidate's (source, candidate, ctx, recipe, reference, race[,
        lock]). A lock of the run loop's is for the local machine; each task holds this machine's measure_lock."""
        source, candidate, _ctx, recipe, reference, race = args[:6]
        return _RayJob(self, candidate, (source, candidate, run, recipe, reference, race))

    def _launch(self, args: tuple[Any, ...], inputs: Any) -> list[Any]:
        source, candidate, run, recipe, reference, race = args
        spec = self.spec
        options: dict[str, Any] = {"num_cpus": spec.num_cpus, "num_gpus": spec.num_gpus, "num_returns": 2,
                                   "max_retries": spec.max_retries, "retry_exceptions": False,
                                   "name": f"candidate-{candidate.id}"}  # fmt: skip
        if spec.memory_gb:
            options["memory"] = int(spec.memory_gb * 1e9)
        if spec.resources:
            options["resources"] = dict(spec.resources)
        shared = {"shared": True, "ray": False}.get(spec.transfer)
        return list(
            self._task.options(**options).remote(
                run,
                source,
                candidate,
                recipe,
                reference,
                race,
                str(self.cache_root),
                str(self.marker),
                shared,
                inputs,
            )
        )

    def _inputs_ref(self, source: Artifact, recipe: Recipe) -> Any:
        """The run's inputs in the object store, packed once per run."""
        if self._inputs is None:
            members = input_members(source, recipe)
            data = pack(members)
            logger.info("ray: sending the inputs (%.1f MB) through the object store", len(data) / 1e6)
            self._inputs = self.ray.put(data)
        return self._inputs

    # ----------------------------------------------------------------- waiting

    def _wait(self, ref: Any, candidate: Candidate, since: float) -> Any:
        ray = self.ray
        deadline = max(since, time.monotonic()) + self.spec.task_timeout_s
        no_node_since: float | None = None
        while True:
            ready, _ = ray.wait([ref], timeout=POLL_S)
            if ready:
                try:
                    return ray.get(ref)
                except ray.exceptions.RayError as e:
                    raise _task_error(e, ray, self.spec.max_retries) from e
            now = time.monotonic()
            alive = self._alive_nodes()
            self._report_gone(alive)
            if not self._can_run_somewhere(alive):
                no_node_since = no_node_since or now
                if now - no_node_since > self.spec.node_wait_s:
                    ray.cancel(ref, force=True)
                    gone = ", ".join(sorted(self._reported_gone)) or "none"
                    raise OliveExtError(
                        f"no live Ray node can run candidate {candidate.id} (it asks for {self._asks()}); "
                        f"nodes that disappeared: {gone}",
                        hint=("restart the worker nodes (`ray start --address ...`) and rerun" if self._reported_gone
                              else f"the live nodes are busy or too small (largest: {self._largest(alive)})")
                        + ": finished candidates are reused from the cache",
                    )
            else:
                no_node_since = None
            if now > deadline:
                ray.cancel(ref, force=True)
                raise OliveExtError(
                    f"candidate {candidate.id} gave no result within executor.task_timeout_s="
                    f"{self.spec.task_timeout_s:g} s; cancelled",
                    hint="raise executor.task_timeout_s for large models, or check the worker nodes",
                )

    def _alive_nodes(self) -> dict[str, dict[str, Any]]:
        return {n["NodeID"]: n for n in self.ray.nodes() if n.get("Alive")}

    def _report_gone(self, alive: dict[str, dict[str, Any]]) -> None:
        for node_id, node in self.nodes_at_start.items():
            name = f"{node.get('NodeManagerHostname', '?')} ({node_id[:8]})"
            if node_id not in alive and name not in self._reported_gone:
                self._reported_gone.add(name)
                logger.warning("ray: node %s disappeared; its tasks are retried elsewhere (max_retries=%d)",
                               name, self.spec.max_retries)  # fmt: skip

    def _can_run_somewhere(self, alive: dict[str, dict[str, Any]]) -> bool:
        need = {"CPU": self.spec.num_cpus, "GPU": self.spec.num_gpus, **self.spec.resources}
        if self.spec.memory_gb:
            need["memory"] = self.spec.memory_gb * 1e9
        return any(all(n.get("Resources", {}).get(k, 0.0) >= v for k, v in need.items() if v) for n in alive.values())

    @staticmethod
    def _largest(nodes: dict[str, dict[str, Any]]) -> str:
        def has(n: dict[str, Any]) -> dict[str, float]:
            return dict(n.get("Resources", {}))

        most = max(nodes.values(), key=lambda n: (has(n).get("GPU", 0.0), has(n).get("CPU", 0.0)))
        r = has(most)
        parts = [f"{r.get('CPU', 0.0):g} CPU"] + ([f"{r['GPU']:g} GPU"] if r.get("GPU") else [])
        return ", ".join([*parts, f"{r.get('memory', 0.0) / 1e9:.1f} GB"])

    def _asks(self) -> str:
        spec = self.spec
        parts = [f"{spec.num_cpus:g} CPU"] + ([f"{spec.num_gpus:g} GPU"] if spec.num_gpus else [])
        parts += [f"{spec.memory_gb:g} GB"] if spec.memory_gb else []
        return ", ".join(parts + [f"{v:g} {k}" for k, v in spec.resources.items()])

    # ----------------------------------------------------------------- results

    def materialize(self, result: CandidateResult) -> None:
        """Bring a candidate built in a worker's own cache into this cache (atomically) and point at it there."""
        ref = self._built.pop(id(result), None)
        if ref is None or result.artifact is None:
            return
        cache = Cache(self.cache_root)
        key = result.records[-1].cache_key if result.records else f"ray-{result.candidate.id}"
        here = cache.get_artifact(key)
        if here is None:
            data = self.ray.get(ref)
            with cache.lock(key), cache.building(key) as work:
                unpack_once(data, work / "copy")
                art = result.artifact
                # an artifact that is its whole cache entry brings the worker's entry.json along: not model content
                (work / "copy" / "model" / Path(art.path).name / ENTRY_FILE).unlink(missing_ok=True)
                moved = Artifact(art.kind, str(work / "copy" / "model" / Path(art.path).name),
                                 str(work / "copy" / "adapter") if art.adapter_path else None, art.gguf_file,
                                 meta=art.meta)  # fmt: skip
                record = {"pass": "ray-transfer", "node": result.node.get("hostname"), "input": art.fingerprint}
                here = cache.commit_artifact(key, work, moved, record)
        if here.fingerprint != result.artifact.fingerprint:
            raise OliveExtError(f"candidate {result.candidate.id}: the copy brought back from "
                                f"{result.node.get('hostname')} differs from what was built there")  # fmt: skip
        result.artifact = here

    def close(self) -> None:
        """Remove the run's marker; disconnect from Ray when this executor connected (a Ray it started stops)."""
        self.marker.unlink(missing_ok=True)
        if self.connected_here:
            self.ray.shutdown()


# --------------------------------------------------------------------- the task (runs on a worker)


def input_members(source: Artifact, recipe: Recipe) -> dict[str, Path]:
    """What a worker without the shared file system needs: the model, its adapter and the data files."""
    members: dict[str, Path] = {}
    if Path(source.path).exists():
        members["model"] = Path(source.path)
    if source.adapter_path and Path(source.adapter_path).exists():
        members["adapter"] = Path(source.adapter_path)
    for name, spec in recipe.data.items():
        files = spec.data_files if isinstance(spec.data_files, list) else [spec.data_files] if spec.data_files else []
        for i, f in enumerate(files):
            if Path(f).is_file():
                members[f"data/{name}/{i}/{Path(f).name}"] = Path(f)
    return members


def _relocated(source: Artifact, recipe: Recipe, root: Path) -> tuple[Artifact, Recipe]:
    """The source artifact and recipe with their paths pointing into the unpacked inputs at ``root``."""
    path = str(root / "model") if (root / "model").exists() else source.path
    adapter = str(root / "adapter") if (root / "adapter").exists() else source.adapter_path
    moved = Artifact(source.kind, path, adapter, source.gguf_file, source.fingerprint, source.meta)
    data = {}
    for name, spec in recipe.data.items():
        folder = root / "data" / name
        if folder.is_dir():
            files = [str(next((folder / d).iterdir())) for d in sorted(os.listdir(folder), key=int)]
            spec = spec.model_copy(update={"data_files": files if isinstance(spec.data_files, list) else files[0]})
        data[name] = spec
    model = recipe.input_model.model_copy(update={"path": path, "adapter_path": adapter})
    return moved, recipe.model_copy(update={"data": data, "input_model": model})


def candidate_task(
    run: RunCandidate,
    source: Artifact,
    candidate: Candidate,
    recipe: Recipe,
    reference: float | None,
    race: Any,
    cache_root: str,
    marker: str,
    shared: bool | None,
    inputs: bytes | None,
) -> tuple[Any, bytes]:
    """Build and measure one candidate on this node. Returns (CandidateResult or NEED_INPUTS, built model tar).

    ``shared`` None means: shared when this node sees the driver's marker in the cache folder."""
    quiet_ray()
    import ray

    forget_when_idle(None)  # this worker's merged model and F32 GGUF serve its next candidate too
    os.environ[HELD_ENV] = "1"  # measure_lock is held around the whole evaluation: its workers must not wait for it
    try:
        if shared is None and Path(marker).exists():
            shared = True
        if shared:
            cache = Cache(cache_root)
        else:
            cache = Cache(None)  # this node's own cache: $OLIVE_EXT_CACHE or ~/.cache/olive-ext
            # transfer: ray sends the inputs whatever the node sees; auto only when it lacks one
            if inputs is None and (shared is False or input_needed(source, recipe)):
                return NEED_INPUTS, b""
            if inputs is not None:
                root = unpack_once(inputs, cache.root / "inputs" / digest(inputs))
                source, recipe = _relocated(source, recipe, root)
        ctx = RunContext(cache=cache, datasets=dict(recipe.data), input_model=recipe.input_model)
        result: CandidateResult = run(source, candidate, ctx, recipe, reference, race, measure_lock, build_share)
        result.node = {**node_info(), "node_id": ray.get_runtime_context().get_node_id(),
                       "transfer": "shared" if shared else "ray"}  # fmt: skip
        _picklable_exception(result)
        built = b""
        if not shared and result.ok and result.artifact is not None:
            built = pack(_built_members(result.artifact))
        return result, built
    finally:
        os.environ.pop(HELD_ENV, None)
        forget_when_idle(SHARED_IDLE_S)


def _built_members(artifact: Artifact) -> dict[str, Path]:
    """A built model's files by name in the archive: ``model/<its name>`` (a folder or file) and ``adapter``."""
    path = Path(artifact.path)
    members = {f"model/{path.name}": path}
    if artifact.adapter_path:
        members["adapter"] = Path(artifact.adapter_path)
    return members


def input_needed(source: Artifact, recipe: Recipe) -> bool:
    """True when this node lacks a local input the driver has (the model, adapter or a data file)."""
    looks_local = source.path.startswith(("/", ".", "~")) or source.path.count("/") != 1
    if looks_local and not Path(source.path).exists():
        return True
    if source.adapter_path and not Path(source.adapter_path).exists():
        return True
    for spec in recipe.data.values():
        files = spec.data_files if isinstance(spec.data_files, list) else [spec.data_files] if spec.data_files else []
        if any(not Path(f).exists() for f in files):
            return True
    return False


def _picklable_exception(result: CandidateResult) -> None:
    """Replace an exception that would not survive the trip back to the driver by an OliveExtError."""
    exc = result.exception
    if exc is None:
        return
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        plain = OliveExtError(result.error or f"{type(exc).__name__}: {exc}")
        plain.fails_every_candidate = bool(getattr(exc, "fails_every_candidate", False))  # type: ignore[attr-defined]
        result.exception = plain


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
CONNECT_TIMEOUT_S = 10.0


_AUTH_HINT = (
    "a cluster `ray start` made with token authentication (Ray 2.60 and later turn it on) is joined with "
    "RAY_AUTH_MODE=token set here, and its token in ~/.ray/auth_token or RAY_AUTH_TOKEN; else check that the port is "
    "the one `ray start --head --port` named (the GCS), not another of the cluster's ports"
)


def cluster_address(spec: ExecutorSpec) -> tuple[str | None, str]:
    """The cluster's address and where it was given: executor.address (the recipe or --ray_address), else
    $RAY_ADDRESS (a stale one was reported as executor.address, with a hint to leave that unset, which it was)."""
    if spec.address:
        return spec.address, "executor.address"
    env = os.environ.get("RAY_ADDRESS") or None
    return env, "$RAY_ADDRESS"


def check_cluster(spec: ExecutorSpec) -> None:
    """Before work (and in --dry_run): Ray imports, and the cluster's address, where one is given, is HOST:PORT (or
    ray://, auto) and a gRPC server answers there; the dry run passed all three where the run failed at once."""
    _import_ray()
    address, where = cluster_address(spec)
    if address is not None:
        _check_answers(address, where)


def _no_cluster(address: str | None, why: str, where: str = "executor.address") -> OliveExtError:
    unset = "unset RAY_ADDRESS" if where == "$RAY_ADDRESS" else "leave executor.address unset"
    return OliveExtError(
        f"{where} {address!r}: no Ray cluster answers there ({why})",
        hint=f"start one with `ray start --head` (see README, 'From one machine to a cluster') or {unset} to start "
        "Ray on this machine",
    )


# HTTP/2's client preface and an empty SETTINGS frame: a gRPC server (Ray's GCS) answers with its own SETTINGS
_H2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_H2_SETTINGS = 4


def _check_answers(address: str, where: str = "executor.address") -> None:
    """A gRPC server (Ray's GCS) answers at HOST:PORT (``ray://`` and ``auto`` are Ray's to resolve), within
    CONNECT_TIMEOUT_S: ray.init waited for ever on a port where nothing listens, and for 7 minutes and more (Ctrl-C
    taking half a minute) on one where a web server, or a server that never answers, listens."""
    import socket

    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserInputError(f"{where} {address!r} is not HOST:PORT (a port is 1 to 65535)",
                             hint="give the address `ray start --head` printed, e.g. 192.168.1.10:6379")  # fmt: skip
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S) as conn:
            conn.sendall(_H2_HELLO)
            frame = conn.recv(9)
    except OSError as e:  # refused, unreachable, or no answer within the timeout
        raise _no_cluster(address, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__, where) from e
    if len(frame) < 4 or frame[3] != _H2_SETTINGS:
        said = frame[:16].decode("ascii", "replace").strip() or "nothing"
        raise _no_cluster(address, f"something else listens there: it answered {said!r} where Ray's GCS speaks gRPC",
                          where)  # fmt: skip


def _task_error(e: BaseException, ray: Any, retries: int) -> OliveExtError:
    """What a failed task says: the worker's own last line (Ray's first line names only the task), without
    terminal colours; retries named only where Ray retried (a worker or node that died)."""
    lines = [line.strip() for line in _ANSI.sub("", str(e)).splitlines() if line.strip()]
    cause = lines[-1] if lines else type(e).__name__
    died = isinstance(e, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError)
    where = f" after {retries} retries" if died and retries else ""
    hint = None
    if "No module named 'olive_ext'" in cause or "No module named 'olive_ext." in cause:
        hint = "install olive-ext (the same version) on every node of the cluster: pip install olive-ext"
    return OliveExtError(f"Ray task failed{where}: {cause}", hint=hint)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
