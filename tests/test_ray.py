"""The Ray executor on a real cluster: a head and a worker node started with `ray start` as separate processes.

The same 2-candidate auto-opt on the tiny Llama runs here (local executor), then on the cluster while the
worker process running the first candidate's task is killed once (Ray retries it), then through `olive-ext run`
with models moving through Ray's object store to a worker that has a cache of its own. All three choose the
same candidate with the same accuracy figures, and every cache entry is whole.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ray_cluster import Cluster

from olive_ext.cli import main
from olive_ext.recipe.schema import resolved_recipe
from olive_ext.workflows.auto_opt import AutoOptOptions, auto_opt_recipe

# Ray reads its settings (token authentication among them) when first imported: the runs on the cluster are
# `olive-ext` processes of their own, with the cluster's environment
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs the ray extra")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("ray-cluster"), workers=1, cpus_per_worker=2)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def _auto_opt_args(model: Path, data: Path, out: Path, cache: Path) -> list[str]:
    return ["auto-opt", "-m", str(model), "--data_files", str(data), "--text_template", "Q: {q}\nA: {a}",
            "--precision", "int4", "--max_candidates", "2", "--gguf", "false", "--objective", "size",
            "--cache_dir", str(cache), "-o", str(out), "--warmup", "0", "--repeats", "2", "--new_tokens", "8",
            "--prompt_tokens", "16", "--max_new_tokens", "4", "--log_level", "2"]  # fmt: skip


def _olive_ext(cluster: Cluster, args: list[str]) -> None:
    env = {**os.environ, **cluster.env, "PYTHONPATH": str(REPO)}
    done = subprocess.run([os.sys.executable, "-m", "olive_ext", *args], env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def _task_pids() -> list[int]:
    """Ray worker processes running a candidate's task (Ray titles them ``ray::candidate-<id>``)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cmdline").read_bytes().startswith(b"ray::candidate"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def _kill_first_task(killed: list[int], stop: threading.Event) -> None:
    """Kill the first candidate task's worker process once, a second into its work."""
    while not stop.is_set():
        pids = _task_pids()
        if pids:
            time.sleep(1.0)
            if pids[0] in _task_pids():
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
                return
        time.sleep(0.1)


def _chosen(out: Path) -> tuple[str, dict[str, object]]:
    data = json.loads((out / "candidates.json").read_text())
    (chosen,) = [c for c in data["candidates"] if c["chosen"]]
    return chosen["id"], data


def _accuracy(candidate: dict[str, object]) -> dict[str, object]:
    metrics = candidate["metrics"]
    assert isinstance(metrics, dict)
    return {k: v for k, v in metrics.items() if k.startswith("exact_match") or k == "size"}


def _whole(cache: Path) -> None:
    for entry in (cache / "entries").iterdir():
        json.loads((entry / "entry.json").read_text())  # a half-written entry would have none, or a broken one


def test_cluster_same_choice_with_a_killed_worker_and_through_the_object_store(
    cluster: Cluster, tiny_llama: Path, eval_file: Path, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    assert main(_auto_opt_args(tiny_llama, eval_file, local, tmp_path / "cache-local")) == 0
    local_id, local_data = _chosen(local)

    # on the cluster (shared cache folder), one task's worker process killed mid-task: Ray reruns it
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_task, args=(killed, stop), daemon=True)
    killer.start()
    try:
        on_ray = tmp_path / "ray"
        args = _auto_opt_args(tiny_llama, eval_file, on_ray, tmp_path / "cache-ray")
        _olive_ext(cluster, [*args, "--executor", "ray", "--ray_address", cluster.address])
    finally:
        stop.set()
        killer.join(5)
    assert killed, "no candidate task was seen running on the worker"
    ray_id, ray_data = _chosen(on_ray)
    assert ray_id == local_id
    by_id = {c["id"]: c for c in ray_data["candidates"]}
    for c in local_data["candidates"]:
        assert _accuracy(by_id[c["id"]]) == _accuracy(c), c["id"]
        node = by_id[c["id"]]["node"]
        assert node["node_id"] and node["hostname"] == socket.gethostname() and node["cpu"]
        assert node["transfer"] == "shared"
    _whole(tmp_path / "cache-ray")

    # `olive-ext run` on the same recipe, models through Ray's object store to a worker with its own cache
    recipe = yaml.safe_load((local / "recipe.yaml").read_text())
    recipe["executor"] = {"type": "ray", "address": cluster.address, "transfer": "ray"}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))  # a pipeline is its steps in order
    driver_cache, moved = tmp_path / "cache-driver", tmp_path / "moved"
    _olive_ext(cluster, ["run", "--config", str(tmp_path / "recipe.yaml"), "-o", str(moved), "--cache_dir",
                         str(driver_cache), "--log_level", "2"])  # fmt: skip
    moved_id, moved_data = _chosen(moved)
    assert moved_id == local_id
    by_id = {c["id"]: c for c in moved_data["candidates"]}
    for c in local_data["candidates"]:
        assert _accuracy(by_id[c["id"]]) == _accuracy(c), c["id"]
        assert by_id[c["id"]]["node"]["transfer"] == "ray"
    # built in the worker's cache, the chosen one copied back whole into the driver's, then into model/
    assert (moved / "model" / "genai_config.json").exists()
    copies = [json.loads(e.read_text()) for e in (driver_cache / "entries").glob("*/entry.json")]
    assert [c for c in copies if c.get("pass") == "ray-transfer"], "the chosen model was not brought back"
    assert (cluster.worker_caches[0] / "inputs").is_dir(), "the inputs were not sent through the object store"
    _whole(driver_cache)
    _whole(cluster.worker_caches[0])


def test_a_worker_node_that_disappears_is_reported_not_waited_for(
    tiny_llama: Path, eval_file: Path, tmp_path: Path
) -> None:
    lost = Cluster(tmp_path / "cluster", workers=1, cpus_per_worker=1)
    try:
        lost.start()
        worker = lost.procs[1]

        def kill_the_node() -> None:
            deadline = time.monotonic() + 300
            while not _task_pids() and time.monotonic() < deadline:
                time.sleep(0.2)
            os.killpg(worker.pid, signal.SIGKILL)  # the whole node: its raylet and its workers

        killer = threading.Thread(target=kill_the_node, daemon=True)
        killer.start()
        # the auto-opt recipe, with a short node_wait_s, through `olive-ext run`
        opts = AutoOptOptions(model_name_or_path=str(tiny_llama), output_path=str(tmp_path / "out"),  # type: ignore[call-arg]
                              data_files=str(eval_file), text_template="Q: {q}\nA: {a}", precision="int4",
                              max_candidates=2, gguf=False, objective="size", cache_dir=str(tmp_path / "cache"),
                              warmup=0, repeats=2, new_tokens=8, prompt_tokens=16, max_new_tokens=4)  # fmt: skip
        recipe = resolved_recipe(auto_opt_recipe(opts, "cpu", str(tmp_path / "out")))
        recipe["executor"] = {"type": "ray", "address": lost.address, "node_wait_s": 5, "max_retries": 1}
        (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
        env = {**os.environ, **lost.env, "PYTHONPATH": str(REPO)}
        started = time.monotonic()
        done = subprocess.run([os.sys.executable, "-m", "olive_ext", "run", "--config", str(tmp_path / "recipe.yaml"),
                               "--log_level", "2"], env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
        killer.join(5)
    finally:
        lost.stop()
    assert done.returncode != 0, "a run whose only worker node was lost cannot have built anything"
    assert "disappeared" in done.stderr, done.stderr[-3000:]
    assert "no live Ray node can run candidate" in done.stderr, done.stderr[-3000:]
    assert time.monotonic() - started < 300


@pytest.mark.parametrize(
    ("address", "said"),
    [("127.0.0.1:1", "no Ray cluster answers there (ConnectionRefusedError"), ("garbage", "is not HOST:PORT"),
     ("http://127.0.0.1:1", "Ray could not connect")],
)  # fmt: skip
def test_an_address_where_no_cluster_answers_is_an_error_not_a_hang(address: str, said: str, tmp_path: Path) -> None:
    """ray.init waited for ever on 127.0.0.1:1 (killed after 11 min); "garbage" and http:// were tracebacks."""
    import time

    from olive_ext.engine.ray_executor import RayExecutor
    from olive_ext.errors import OliveExtError
    from olive_ext.recipe.schema import ExecutorSpec

    started = time.monotonic()
    with pytest.raises(OliveExtError, match=re.escape(said)):
        RayExecutor(ExecutorSpec(type="ray", address=address), tmp_path)
    assert time.monotonic() - started < 60


def test_an_address_where_something_else_listens_is_an_error_within_seconds(tmp_path: Path) -> None:
    """A web server, or a server that never answers, at the address: ray.init retried "Failed to get cluster ID
    from GCS server" for 7.5 minutes (then killed), and Ctrl-C took 34 s to act."""
    import http.server
    import socket
    import threading
    import time

    from olive_ext.engine import ray_executor
    from olive_ext.engine.ray_executor import RayExecutor
    from olive_ext.errors import OliveExtError
    from olive_ext.recipe.schema import ExecutorSpec

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel's backlog) and never says a word
    try:
        for port, said in ((web.server_address[1], "something else listens there: it answered"),
                           (silent.getsockname()[1], "TimeoutError")):  # fmt: skip
            started = time.monotonic()
            with pytest.raises(OliveExtError, match=said):
                RayExecutor(ExecutorSpec(type="ray", address=f"127.0.0.1:{port}"), tmp_path)
            assert time.monotonic() - started < ray_executor.CONNECT_TIMEOUT_S + 5
    finally:
        web.shutdown()
        silent.close()


def test_a_request_no_node_can_meet_is_refused_at_start(cluster: Cluster, tiny_llama: Path, tmp_path: Path) -> None:
    """executor.num_cpus 4 on 2-CPU nodes: each candidate waited node_wait_s (60 s), one after another, then
    failed with "restart the worker nodes" though none had gone."""
    import json

    recipe = tmp_path / "recipe.json"
    executor = {"type": "ray", "address": cluster.address, "num_cpus": 64}
    recipe.write_text(json.dumps({"input_model": {"path": str(tiny_llama)}, "passes": {"b": {"type": "model_builder"}},
                                  "executor": executor, "output": {"path": str(tmp_path / "out")},
                                  "cache_dir": str(tmp_path / "c")}))  # fmt: skip
    env = {**os.environ, **cluster.env, "PYTHONPATH": str(REPO)}  # a process of its own: Ray reads its token once
    done = subprocess.run([os.sys.executable, "-m", "olive_ext", "run", "--config", str(recipe)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    assert "no node of the Ray cluster has what each candidate asks for (64 CPU): the largest has 2 CPU" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_cluster_with_token_authentication_joined_without_it_names_the_setting(
    cluster: Cluster, tiny_llama: Path, tmp_path: Path
) -> None:
    """A cluster `ray start` made (Ray 2.60 turns token authentication on) joined without RAY_AUTH_MODE: "no Ray
    cluster answers there" and "start one with ray start --head", though one answered."""
    import json

    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"input_model": {"path": str(tiny_llama)}, "passes": {"b": {"type": "model_builder"}},
                                  "executor": {"type": "ray", "address": cluster.address},
                                  "output": {"path": str(tmp_path / "out")}, "cache_dir": str(tmp_path / "c")}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env |= {"PYTHONPATH": str(REPO), "HOME": str(tmp_path)}  # no ~/.ray/auth_token either
    done = subprocess.run([os.sys.executable, "-m", "olive_ext", "run", "--config", str(recipe)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    assert "a server answers there, but Ray could not join it as a cluster" in done.stderr, done.stderr[-3000:]
    assert "RAY_AUTH_MODE=token" in done.stderr and "start one with" not in done.stderr


def test_dry_run_checks_the_cluster_address_as_the_run_does(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry_run --executor ray passed (exit 0) with an address that is no HOST:PORT or where nothing listens; a
    stale $RAY_ADDRESS was reported as executor.address, with a hint to leave that unset (it was)."""
    from olive_ext.cli import main

    args = ["auto-opt", "-m", str(tiny_llama), "-o", str(tmp_path / "out"), "--executor", "ray", "--dry_run"]
    assert main([*args, "--ray_address", "garbage"]) == 2
    assert "executor.address 'garbage' is not HOST:PORT" in capsys.readouterr().err
    assert main([*args, "--ray_address", "127.0.0.1:99999"]) == 2
    assert "a port is 1 to 65535" in capsys.readouterr().err
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "$RAY_ADDRESS '127.0.0.1:1': no Ray cluster answers there" in err and "unset RAY_ADDRESS" in err
    assert not (tmp_path / "out").exists()


def test_a_failed_task_says_the_workers_own_error_without_colours() -> None:
    """A worker without olive_ext: "Ray task failed after 2 retries: [36mray::candidate-c8fd5f7372()[39m (pid=...)":
    no cause, colour codes in candidates.json, and nothing had been retried."""
    import ray

    from olive_ext.engine.ray_executor import _task_error

    error = ray.exceptions.RaySystemError(
        "\x1b[36mray::candidate-c8fd5f7372()\x1b[39m (pid=28160, ip=192.0.2.2)\n  File x\nModuleNotFoundError: No "
        "module named 'olive_ext'"
    )
    e = _task_error(error, ray, 2)
    assert e.message == "Ray task failed: ModuleNotFoundError: No module named 'olive_ext'"
    assert "pip install olive-ext" in (e.hint or "")
