"""Download progress: a line per tenth, then one with the size and the rate."""

from __future__ import annotations

import logging

import pytest

from kubenova.agents.images.progress import MIB, UNKNOWN_SIZE_STEP, DownloadProgress

log = logging.getLogger("test.progress")


def test_one_line_per_tenth_then_a_summary(caplog: pytest.LogCaptureFixture) -> None:
    progress = DownloadProgress(log, "image cirros", 10 * MIB)
    with caplog.at_level(logging.INFO, logger="test.progress"):
        for _ in range(40):
            progress.advance(MIB // 4)
        progress.finish()

    lines = [record.getMessage() for record in caplog.records]
    assert [line.split(": ")[1].split("%")[0] for line in lines[:-1]] == [
        str(tenth * 10) for tenth in range(1, 10)
    ]
    assert lines[-1].startswith("image cirros: downloaded 10.0 MiB in ")
    assert lines[-1].endswith(" MiB/s)")


def test_big_chunks_skip_tenths_without_repeating(caplog: pytest.LogCaptureFixture) -> None:
    progress = DownloadProgress(log, "image cirros", 10 * MIB)
    with caplog.at_level(logging.INFO, logger="test.progress"):
        progress.advance(int(3.5 * MIB))
        progress.advance(MIB // 4)
        progress.advance(3 * MIB)

    assert [record.getMessage().split(": ")[1][:3] for record in caplog.records] == ["35%", "67%"]


def test_unknown_size_logs_every_step(caplog: pytest.LogCaptureFixture) -> None:
    progress = DownloadProgress(log, "image cirros", None)
    with caplog.at_level(logging.INFO, logger="test.progress"):
        for _ in range(5):
            progress.advance(UNKNOWN_SIZE_STEP // 2)

    assert [record.getMessage() for record in caplog.records] == [
        "image cirros: 256.0 MiB so far",
        "image cirros: 512.0 MiB so far",
    ]
