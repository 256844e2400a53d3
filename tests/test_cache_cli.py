"""`olive-ext cache ls|prune` over a real cache, and hub inputs keyed by the resolved commit."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from olive_ext.artifacts import Artifact
from olive_ext.cache import Cache, cache_key, list_entries
from olive_ext.cli import main

DAY = 86400.0


def _entry(
    cache: Cache, name: str, size: int, days_unused: float, pass_type: str = "toy", base: Path | None = None
) -> Path:
    """A whole entry holding ``size`` bytes, last used ``days_unused`` days ago (built a day before that)."""
    key = cache_key(name)
    with cache.building(key) as work:
        (work / "model").mkdir()
        (work / "model" / "weights.bin").write_bytes(os.urandom(size))
        path = str(base) if base else str(work / "model")
        cache.commit_artifact(key, work, Artifact("hf", path), {"pass": pass_type, "config": {}, "input": "x"})
    entry = cache.entries / key
    used = time.time() - days_unused * DAY
    os.utime(entry / "entry.json", (used - DAY, used - DAY))
    os.utime(entry, (used, used))
    return entry


def _ls(root: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["cache", "ls", "--cache_dir", str(root)]) == 0
    return capsys.readouterr().out


def test_ls_shows_each_entry_with_pass_size_age_and_last_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = Cache(tmp_path / "c")
    _entry(cache, "a", 2_000_000, 10, "model_builder")
    _entry(cache, "b", 30_000, 0, "lora")
    # the record the evaluator writes: the evaluated model's fingerprint, a string (ls and prune failed on it)
    cache.put_result(cache_key("eval"), {"latency_ms": 1.0}, {"artifact": cache_key("a model"), "metrics": ["latency"]})
    out = _ls(cache.root, capsys)
    rows = [line.split() for line in out.splitlines()[1:4]]
    assert [r[1] for r in rows] == ["evaluation", "lora", "model_builder"]  # most recently used first
    assert rows[2][2:4] == ["2.0", "MB"] and "11 d ago" in out and "10 d ago" in out
    assert "3 entries, 2.0 MB" in out
    assert main(["cache", "prune", "--older-than", "7d", "--cache_dir", str(cache.root)]) == 0
    assert "removed 1 entries" in capsys.readouterr().out


def test_prune_older_than_removes_unused_entries_and_a_cache_hit_counts_as_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = Cache(tmp_path / "c")
    old, recent, hit = _entry(cache, "old", 1000, 9), _entry(cache, "new", 1000, 1), _entry(cache, "hit", 1000, 9)
    assert cache.get_artifact(hit.name) is not None  # used now: kept
    assert main(["cache", "prune", "--older-than", "7d", "--cache_dir", str(cache.root)]) == 0
    assert "removed 1 entries" in capsys.readouterr().out
    assert not old.exists() and recent.exists() and hit.exists()
    assert cache.get_artifact(old.name) is None  # a miss: the next run rebuilds it
    assert not list((cache.root / "tmp").iterdir())


def test_prune_max_size_removes_least_recently_used_until_it_fits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = Cache(tmp_path / "c")
    entries = [_entry(cache, str(i), 1_000_000, days) for i, days in enumerate([5, 1, 3, 0])]
    assert main(["cache", "prune", "--max-size", "2.5MB", "--dry_run", "--cache_dir", str(cache.root)]) == 0
    assert "2 of 4 entries" in capsys.readouterr().out and all(e.exists() for e in entries)
    assert main(["cache", "prune", "--max-size", "2.5MB", "--cache_dir", str(cache.root)]) == 0
    assert [e.exists() for e in entries] == [False, True, False, True]
    assert sum(e.size_bytes for e in list_entries(cache.root)) <= 2_500_000


def test_prune_never_deletes_an_entry_being_written_or_locked(tmp_path: Path) -> None:
    import fcntl
    import subprocess
    import sys

    cache = Cache(tmp_path / "c")
    names = ("rebuilding", "locked", "unlocked", "dead-writer")
    rebuilding, locked, unlocked, dead = (_entry(cache, n, 1000, 30) for n in names)
    (cache.tmp / f"{rebuilding.name}.{os.getpid()}.abcd1234").mkdir()  # a live writer's folder
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (cache.tmp / f"{dead.name}.{gone.stdout.strip()}.abcd1234").mkdir()  # a killed writer's leftover
    locks = cache.root / "locks"
    locks.mkdir(exist_ok=True)
    (locks / f"{unlocked.name}.lock").write_text("")  # lock files stay after builds: only a held lock counts
    # a build holding the lock in another process (flock locks belong to open files, so a child holds it)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('held', flush=True); sys.stdin.read()", str(locks / f"{locked.name}.lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert main(["cache", "prune", "--older-than", "1d", "--cache_dir", str(cache.root)]) == 0
    finally:
        holder.communicate("")
    assert rebuilding.exists() and locked.exists() and not unlocked.exists() and not dead.exists()
    with open(locks / f"{locked.name}.lock") as f:  # released again after prune looked
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_prune_removes_entries_built_on_a_removed_one(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    base = _entry(cache, "base", 1000, 20)
    child = _entry(cache, "child", 1000, 0, base=base / "model")  # its artifact points into base
    assert list_entries(cache.root)[0].refers_to == {base.name}
    assert main(["cache", "prune", "--older-than", "7d", "--cache_dir", str(cache.root)]) == 0
    assert not base.exists() and not child.exists()  # a kept child would point at deleted files


@pytest.mark.parametrize(("flags", "message"), [([], "say what to remove"), (["--max-size", "2XB"], "not a size"),
                                                (["--older-than", "7y"], "not a duration")])  # fmt: skip
def test_prune_refuses_unclear_limits(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cache", "prune", *flags, "--cache_dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("action", [["ls"], ["prune", "--older-than", "1d"]])
def test_a_file_as_the_cache_folder_is_refused(
    action: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ls` used to list "0 entries in FILE/entries" for a file given as --cache_dir."""
    a_file = tmp_path / "model.gguf"
    a_file.write_text("x")
    assert main(["cache", *action, "--cache_dir", str(a_file)]) == 2
    assert f"cache folder {a_file} is a file" in capsys.readouterr().err


def _fake_hub_cache(root: Path, repo: str, commits: list[str]) -> Path:
    """The Hugging Face cache layout: models--owner--name/{snapshots/<commit>/, refs/main}."""
    folder = root / f"models--{repo.replace('/', '--')}"
    for commit in commits:
        snap = folder / "snapshots" / commit
        snap.mkdir(parents=True)
        (snap / "config.json").write_text(f'{{"commit": "{commit}"}}')
    (folder / "refs").mkdir()
    return folder


def test_hub_input_is_keyed_by_the_commit_the_local_cache_resolves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from olive_ext.artifacts import fingerprint_input, resolve_hub_revision

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    old, new = "a" * 40, "b" * 40
    folder = _fake_hub_cache(tmp_path / "hub", "owner/model", [old, new])
    (folder / "refs" / "main").write_text(old)
    before = fingerprint_input(Artifact("hf", "owner/model")).fingerprint
    assert resolve_hub_revision("owner/model") == old
    assert fingerprint_input(Artifact("hf", "owner/model")).fingerprint == before  # stable while main stays
    (folder / "refs" / "main").write_text(new)  # `huggingface-cli download` fetched an update
    assert resolve_hub_revision("owner/model") == new
    assert fingerprint_input(Artifact("hf", "owner/model")).fingerprint != before
    # a tag resolves through its own ref; a commit is already resolved
    (folder / "refs" / "v1").write_text(old)
    tagged = fingerprint_input(Artifact("hf", "owner/model", meta={"revision": "v1"})).fingerprint
    assert tagged == fingerprint_input(Artifact("hf", "owner/model", meta={"revision": old})).fingerprint
    assert tagged != fingerprint_input(Artifact("hf", "owner/model")).fingerprint


def test_prune_keeps_what_a_running_process_uses_and_removes_it_after(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cache prune --max-size 0` beside a running auto-opt removed the entry its parity step was about to read:
    the run failed with "Error opening .../genai_config.json"."""
    import subprocess
    import sys

    cache = Cache(tmp_path / "c")
    base = _entry(cache, "merged", 1000, 30)
    built = _entry(cache, "build", 1000, 30, base=base / "model")  # points into base, as a build on a merge does
    unused = _entry(cache, "unused", 1000, 30)
    # another process opens the cache and reads the build (a cache hit), then keeps running
    code = ("import sys; from olive_ext.cache import Cache; c = Cache(sys.argv[1]); "
            "assert c.get_artifact(sys.argv[2]) is not None; print('using', flush=True); sys.stdin.read()")
    user = subprocess.Popen([sys.executable, "-c", code, str(cache.root), built.name], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert user.stdout is not None and user.stdout.readline().strip() == "using"
        assert main(["cache", "prune", "--max-size", "0", "--cache_dir", str(cache.root)]) == 0
        out = capsys.readouterr().out
    finally:
        user.communicate("")
    assert built.exists() and base.exists() and not unused.exists(), out
    assert "2 in use" in out and "1 olive-ext process use" in out, out
    # the process has ended: its run file is removed and nothing is held back any more
    assert main(["cache", "prune", "--max-size", "0", "--cache_dir", str(cache.root)]) == 0
    assert not built.exists() and not base.exists()
    assert [p.name.split(".")[0] for p in (cache.root / "runs").glob("*.lock")] == [str(os.getpid())]


def test_prune_removes_damaged_entries_and_refuses_empty_limits_and_a_missing_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = Cache(tmp_path / "c")
    damaged = _entry(cache, "damaged", 5000, 0)
    (damaged / "entry.json").write_text("{not json")  # listed nowhere and never pruned before
    kept = _entry(cache, "fine", 1000, 0)
    assert "damaged" in _ls(cache.root, capsys)
    assert main(["cache", "prune", "--older-than", "7d", "--cache_dir", str(cache.root)]) == 0
    assert not damaged.exists() and kept.exists()
    for flag, message in (("--older-than", "not a duration"), ("--max-size", "not a size")):
        assert main(["cache", "prune", flag, "", "--cache_dir", str(cache.root)]) == 2  # "$AGE" left unset
        assert message in capsys.readouterr().err
    typo = tmp_path / "chace"
    a_file = tmp_path / "f"
    a_file.write_text("x")
    for missing in (typo, a_file / "sub"):  # created empty / NotADirectoryError traceback
        assert main(["cache", "prune", "--older-than", "7d", "--cache_dir", str(missing)]) == 2
        assert "nothing to prune" in capsys.readouterr().err
    assert not typo.exists()


def test_a_killed_runs_reference_logits_are_swept_by_the_next_run(tiny_llama: Path, tmp_path: Path) -> None:
    """The parity check's recorded PyTorch logits went to the system's temporary folder and stayed there whenever a
    run was killed (22 folders in /tmp after a day of runs; a prompt's logits are 20 MB on SmolLM2's vocabulary).
    They are in the cache's tmp under the process's id now, and the next run's cache removes them."""
    import signal
    import subprocess
    import sys

    script = (
        "import os, signal, sys\n"
        "from olive_ext.cache import Cache\n"
        "from olive_ext.passes.parity_check import recorded_reference\n"
        "cache = Cache(sys.argv[1])\n"
        "ref = recorded_reference(sys.argv[2], None, (cache.tmp, cache.scratch_prefix('parity')))\n"
        "ref.record([[1, 5, 7, 9]], 2)\n"
        "print(*[p.name for p in cache.tmp.iterdir()], flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    cache_dir = tmp_path / "cache"
    done = subprocess.run([sys.executable, "-c", script, str(cache_dir), str(tiny_llama)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    left = done.stdout.split()
    assert len(left) == 1 and left[0].startswith("parity."), left
    assert any((cache_dir / "tmp" / left[0]).glob("*.f32"))  # the logits the killed run left
    Cache(cache_dir)
    assert not (cache_dir / "tmp" / left[0]).exists()


def _checkpoints(cache: Cache, run_id: str, size: int, days_unused: float) -> Path:
    """A fine-tune run's checkpoint folder (as the lora pass writes it) last written ``days_unused`` days ago."""
    step = cache.root / "checkpoints" / run_id / "checkpoint-10"
    step.mkdir(parents=True)
    (step / "adapter_model.safetensors").write_bytes(os.urandom(size))
    when = time.time() - days_unused * DAY
    for p in (step, step.parent):
        os.utime(p, (when, when))
    return step.parent


def test_an_interrupted_fine_tunes_checkpoints_are_listed_and_pruned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checkpoints of interrupted fine-tunes (and --save_steps) stayed in <cache>/checkpoints for ever: `cache ls`
    did not show them, --max-size did not count them and prune never removed them. They are entries now; while
    another process uses the cache they are kept (a fine-tune may be resuming from old ones)."""
    import subprocess
    import sys

    cache = Cache(tmp_path / "c")
    old, recent = _checkpoints(cache, "run-old", 3000, 20), _checkpoints(cache, "run-new", 2000, 0)
    entry = _entry(cache, "model", 1000, 0)
    listing = _ls(cache.root, capsys)
    assert "checkpoints/run-old" in listing and "checkpoints" in listing
    by_key = {e.key: e for e in list_entries(cache.root)}
    assert by_key["checkpoints/run-old"].size_bytes == 3000 and by_key["checkpoints/run-new"].kind == "checkpoints"

    code = "import sys; from olive_ext.cache import Cache; Cache(sys.argv[1]); print('using', flush=True); input()"
    user = subprocess.Popen([sys.executable, "-c", code, str(cache.root)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert user.stdout is not None and user.stdout.readline().strip() == "using"
        assert main(["cache", "prune", "--older-than", "7d", "--cache_dir", str(cache.root)]) == 0
    finally:
        user.communicate("\n")
    assert old.exists()  # kept while another process uses the cache
    assert main(["cache", "prune", "--older-than", "7d", "--cache_dir", str(cache.root)]) == 0
    assert not old.exists() and recent.exists() and entry.exists()
    assert main(["cache", "prune", "--max-size", "1500", "--cache_dir", str(cache.root)]) == 0
    assert not recent.exists() and entry.exists()  # the least recently used first: the checkpoints went
    assert not list((cache.root / "tmp").iterdir())


def test_a_size_larger_than_any_disk_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cache prune --max-size 999...9GB` (400 digits) ended in an OverflowError traceback."""
    cache = Cache(tmp_path / "c")
    assert main(["cache", "prune", "--max-size", "9" * 400 + "GB", "--dry_run", "--cache_dir", str(cache.root)]) == 2
    assert "larger than any disk" in capsys.readouterr().err


def test_a_negative_value_reaches_its_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`cache prune --older-than -1d` got argparse's "expected one argument" (a value starting with "-" was taken for
    a flag); it reaches the duration check now, which says how to write one. Plain negative numbers did already."""
    cache = Cache(tmp_path / "c")
    assert main(["cache", "prune", "--older-than", "-1d", "--cache_dir", str(cache.root)]) == 2
    err = capsys.readouterr().err
    assert "'-1d' is not a duration" in err and "expected one argument" not in err
    assert main(["cache", "prune", "--max-size", "-1GB", "--cache_dir", str(cache.root)]) == 2
    assert "'-1GB' is not a size" in capsys.readouterr().err


def test_a_live_process_of_another_namespace_keeps_its_scratch_and_a_reused_entry_is_not_pruned(
    tmp_path: Path,
) -> None:
    """A pid alone is this PID namespace's: a Ray worker or a container sharing the cache swept another's builds in
    progress (6 of 13 candidates failed: FileNotFoundError). Its run file, flock-held for its life, says it runs.
    A prune removed entries a run beside it had reused since the listing (candidates failed opening them)."""
    import subprocess
    import sys

    from olive_ext.cache import delete_entries, select_for_pruning

    cache = Cache(tmp_path / "c")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = gone.stdout.strip()  # a pid no process here has: as another namespace's process looks from here
    (cache.root / "runs" / f"{pid}.elsewhere.lock").write_text("{}")
    work = cache.tmp / f"somekey.{pid}.abcd1234"
    work.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys; f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('held', flush=True); sys.stdin.read()", str(cache.root / "runs" / f"{pid}.elsewhere.lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        Cache(cache.root)  # another process opening the cache sweeps tmp/
        assert work.is_dir()  # its owner runs: kept
    finally:
        holder.communicate("")
    Cache(cache.root)
    assert not work.exists()  # the owner ended: swept
    old = _entry(cache, "old", 1000, 30)
    doomed, _ = select_for_pruning(list_entries(cache.root), older_than_s=DAY, max_size_bytes=None)
    assert [e.path for e in doomed] == [old]
    os.utime(old)  # a cache hit after the listing, before the deletion
    assert delete_entries(cache.root, doomed) == [] and old.is_dir()
