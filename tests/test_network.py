"""No network unless asked: a whole quantize and a chat turn on a tiny model make no connection and no DNS lookup.

The run goes in a fresh network namespace (``unshare -rn``: nothing can leave, whatever happens) under
``strace -f``, which records every connect/send from every thread and child process; any to an address
outside loopback, or any to port 53, fails the test. onnxruntime's telemetry (1DS, on Linux since 1.29)
resolves its collector about 9 s after import, so the process stays alive 12 s after the chat turn.
onnxruntime switches its telemetry off by itself on CI machines (it looks for GITHUB_ACTIONS, TF_BUILD and
the like): those variables are removed here, so the test sees what a user's machine does.
Where strace cannot run, the namespace alone keeps the run offline, and the check is on disk: the telemetry
writes a device id and an event store under ``$XDG_CACHE_HOME/Microsoft`` as soon as it starts.

olive-ai's own telemetry (OpenTelemetry to a Microsoft collector, exported a second after the first event) is
covered by an ``olive`` step run the same way; the script then asks olive-ai's Telemetry singleton to log, as
any olive-ai code path that reports would, and the control run (the user opting in with
``OLIVE_DISABLE_TELEMETRY=0``) shows that the trace would catch it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# the variables onnxruntime 1.32 reads to decide that it runs on a CI machine (strings of its native library)
CI_VARIABLES = ("CI", "TF_BUILD", "GITHUB_ACTIONS", "GITLAB_CI", "CIRCLECI", "TRAVIS", "JENKINS_URL",
                "CODEBUILD_BUILD_ID", "BUILDKITE", "TEAMCITY_VERSION", "APPVEYOR", "BITBUCKET_BUILD_NUMBER",
                "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI")  # fmt: skip
SECONDS_AFTER = 12.0

SCRIPT = """
import sys, time
from olive_ext.cli import main
model, out = sys.argv[1], sys.argv[2]
assert main(["quantize", "-m", model, "-o", out, "--log_level", "3"]) == 0, "quantize failed"
assert main(["chat", "-m", out, "--prompt", "hello", "--max_new_tokens", "4", "--log_level", "3"]) == 0, "chat failed"
time.sleep(float(sys.argv[3]))
"""

OLIVE_SCRIPT = """
import sys, time
from olive_ext.cli import main
model, out = sys.argv[1], sys.argv[2]
if model == "-":  # the control: olive-ai loaded the way olive-ext loads it, no step run
    from olive_ext.onnx.runtime import olive_ai
    olive_ai("the network test")
else:
    recipe = {"input_model": {"path": model}, "output": {"path": out},
              "passes": {"export": {"type": "onnx_export"},
                         "peephole": {"type": "olive", "olive_type": "OnnxPeepholeOptimizer"}}}
    import json, pathlib
    pathlib.Path(out + ".json").write_text(json.dumps(recipe))
    assert main(["run", "--config", out + ".json", "--log_level", "3"]) == 0, "olive step failed"
from olive.telemetry.telemetry import Telemetry
Telemetry().log("OliveAction", {"action_name": "probe"})  # what any olive-ai code path that reports does
time.sleep(float(sys.argv[3]))
"""
OLIVE_SECONDS_AFTER = 4.0  # olive-ai's exporter sends a batch 1 s after the first event

OPENVINO_SCRIPT = """
import sys, time
from olive_ext.cli import main
model, out = sys.argv[1], sys.argv[2]
recipe = {"input_model": {"path": model}, "output": {"path": out},
          "passes": {"convert": {"type": "openvino_convert"},
                     "compress": {"type": "openvino_compress", "precision": "int8"}}}
import json, pathlib
pathlib.Path(out + ".json").write_text(json.dumps(recipe))
assert main(["run", "--config", out + ".json", "--log_level", "3"]) == 0, "openvino steps failed"
# what openvino.convert_model (ovc) does on every call: start its telemetry and report
from openvino.tools.ovc.telemetry_utils import init_ovc_telemetry
telemetry = init_ovc_telemetry()
telemetry.start_session("ovc")
telemetry.send_event("ovc", "probe", "olive-ext network test")
telemetry.end_session("ovc")
telemetry.force_shutdown(1.0)
time.sleep(float(sys.argv[3]))
"""

_ADDRESS = re.compile(
    r'sa_family=(AF_INET6?), sin6?_port=htons\((\d+)\).*?(?:inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")'
)


def _works(argv: list[str]) -> bool:
    tool = shutil.which(argv[0])
    if tool is None:
        return False
    try:
        return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _is_loopback(address: str) -> bool:
    return address.startswith("127.") or address in {"::1", "::ffff:127.0.0.1"} or address.startswith("::ffff:127.")


def network_attempts(trace: str) -> list[str]:
    """The traced connect/send calls that reach for the network: a non-loopback address, or DNS (port 53)."""
    found = []
    for line in trace.splitlines():
        if not re.search(r"\b(connect|sendto|sendmsg|sendmmsg)\(", line):
            continue
        for _family, port, v4, v6 in _ADDRESS.findall(line):
            address = v4 or v6
            if port == "53" or not _is_loopback(address):
                found.append(line.strip())
    return found


def _child_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES and k != "ORT_DISABLE_TELEMETRY"}
    (tmp_path / "home").mkdir()
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_CACHE_HOME=str(tmp_path / "xdg-cache"),
        PYTHONPATH=str(REPO),
        HF_HUB_OFFLINE="1",
        OLIVE_EXT_CACHE=str(tmp_path / "cache"),
        OLIVE_EXT_THREADS="1",
    )
    return env


def test_quantize_and_chat_send_nothing_over_the_network(tiny_llama: Path, tmp_path: Path) -> None:
    namespace = ["unshare", "-rn"] if _works(["unshare", "-rn", "true"]) else []
    strace = _works(["strace", "-f", "-qq", "-o", os.devnull, "true"])
    if not namespace and not strace:
        pytest.skip("neither strace nor `unshare -rn` can run here (install strace: `make install` does as root)")
    trace = tmp_path / "trace.txt"
    tracer = ["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg,sendmmsg", "-o", str(trace)] if strace else []
    argv = [*namespace, *tracer, sys.executable, "-c", SCRIPT, str(tiny_llama), str(tmp_path / "q"), str(SECONDS_AFTER)]
    proc = subprocess.run(argv, env=_child_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "q" / "model" / "genai_config.json").exists()
    if strace:
        attempts = network_attempts(trace.read_text())
        assert not attempts, "network attempts:\n" + "\n".join(attempts[:20])
    stores = [p for p in (tmp_path / "home" / ".cache", tmp_path / "xdg-cache") if (p / "Microsoft").exists()]
    assert not stores, f"the runtimes' telemetry started (device id / event store written in {stores[0]})"


def test_the_trace_reader_catches_dns_and_remote_connections() -> None:
    trace = "\n".join([
        '7 connect(8, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0',
        '7 connect(9, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("127.0.0.53")}, 16) = 0',
        '8 connect(5, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), '
        'inet_pton(AF_INET6, "2603:1030::5", &sin6_addr), sin6_scope_id=0}, 28) = -1 ENETUNREACH',
        '9 connect(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
        '9 connect(3, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT',
    ])  # fmt: skip
    assert [line.split()[0] for line in network_attempts(trace)] == ["7", "7", "8"]


RAY_CHECK = """
from olive_ext.engine.ray_executor import RAY_QUIET_ENV, quiet_ray
quiet_ray()
from ray._common.usage import usage_lib
assert not usage_lib.usage_stats_enabled(), "Ray would send usage statistics"
print(RAY_QUIET_ENV)
"""


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs the ray extra")
def test_ray_usage_statistics_are_off_where_olive_ext_starts_or_joins_ray(tmp_path: Path) -> None:
    """Ray's usage statistics (a report to Ray's collector) are off in the driver, before Ray is imported;
    the executor passes the same variables to every task (RAY_QUIET_ENV in its runtime_env), and the test
    cluster (tests/ray_cluster.py) starts its nodes with them and --disable-usage-stats."""
    env = {k: v for k, v in _child_env(tmp_path).items() if not k.startswith("RAY_USAGE_STATS")}
    done = subprocess.run([sys.executable, "-c", RAY_CHECK], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "RAY_USAGE_STATS_ENABLED" in done.stdout


def _traced_run(
    script: str, args: list[str], env: dict[str, str], tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], list[str] | None]:
    namespace = ["unshare", "-rn"] if _works(["unshare", "-rn", "true"]) else []
    strace = _works(["strace", "-f", "-qq", "-o", os.devnull, "true"])
    if not namespace:
        pytest.skip("`unshare -rn` cannot run here: an olive-ai run is traced only inside a network namespace")
    trace = tmp_path / "trace.txt"
    tracer = ["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg,sendmmsg", "-o", str(trace)] if strace else []
    proc = subprocess.run([*namespace, *tracer, sys.executable, "-c", script, *args], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    return proc, network_attempts(trace.read_text()) if strace else None


@pytest.mark.skipif(not importlib.util.find_spec("olive"), reason="olive-ai is not installed (the olive extra)")
@pytest.mark.parametrize("opted_in", [False, True], ids=["default", "user-opted-in-control"])
def test_an_olive_step_sends_nothing_over_the_network(tiny_bert: Path, tmp_path: Path, opted_in: bool) -> None:
    env = _child_env(tmp_path)
    env.pop("OLIVE_DISABLE_TELEMETRY", None)
    if opted_in:
        env["OLIVE_DISABLE_TELEMETRY"] = "0"  # the user asks for olive-ai's telemetry: it must then be visible
    args = ["-" if opted_in else str(tiny_bert), str(tmp_path / "out"), str(OLIVE_SECONDS_AFTER)]
    proc, attempts = _traced_run(OLIVE_SCRIPT, args, env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stores = [p for p in (tmp_path / "home" / ".cache", tmp_path / "xdg-cache") if (p / "Microsoft").exists()]
    if opted_in:  # the control: olive-ai's telemetry started, so the checks below can see it
        assert stores or attempts, "olive-ai's telemetry left no trace: this test could not catch it"
        return
    assert not attempts, "network attempts:\n" + "\n".join((attempts or [])[:20])
    assert not stores, f"olive-ai's or the runtimes' telemetry started (files written in {stores[0]})"


@pytest.mark.skipif(not importlib.util.find_spec("openvino"), reason="openvino is not installed (the openvino extra)")
@pytest.mark.parametrize("opted_in", [False, True], ids=["default", "user-opted-in-control"])
def test_openvino_steps_send_nothing_over_the_network(tiny_bert: Path, tmp_path: Path, opted_in: bool) -> None:
    """openvino_convert + openvino_compress (openvino.convert_model, NNCF) and OpenVINO's converter telemetry.

    OpenVINO's telemetry (openvino_telemetry, Google Analytics) counts a missing consent file as consent for its
    converter; it writes a client id under ``~/intel`` and posts. The control (the user setting
    OLIVE_EXT_OPENVINO_TELEMETRY=1) shows that the trace and the disk check would see it."""
    env = _child_env(tmp_path)
    if opted_in:
        env["OLIVE_EXT_OPENVINO_TELEMETRY"] = "1"
    args = [str(tiny_bert), str(tmp_path / "out"), "2.0"]
    proc, attempts = _traced_run(OPENVINO_SCRIPT, args, env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stores = [p for p in (tmp_path / "home" / "intel", tmp_path / "home" / ".cache" / "Microsoft") if p.exists()]
    if opted_in:  # the control: OpenVINO's telemetry started, so the checks below can see it
        assert stores or attempts, "OpenVINO's telemetry left no trace: this test could not catch it"
        return
    assert not attempts, "network attempts:\n" + "\n".join((attempts or [])[:20])
    assert not stores, f"OpenVINO's or the runtimes' telemetry started (files written in {stores[0]})"
