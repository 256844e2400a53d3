"""olive_ext.memory: the peak RSS helper shared by fine-tuning and the evaluation worker."""

from __future__ import annotations

import sys

import pytest

from olive_ext.memory import peak_rss_mb, reset_peak_rss


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM and its reset are Linux's")
def test_peak_rss_follows_an_allocation_and_resets_after_it() -> None:
    reset_peak_rss()
    before = peak_rss_mb()
    block = b"\x01" * (128 << 20)  # written: every page is resident
    during = peak_rss_mb()
    del block
    reset_peak_rss()
    after = peak_rss_mb()
    assert before is not None and during is not None and after is not None
    assert during - before > 100 and during - after > 100
