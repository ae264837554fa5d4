"""The host operator's live-migration knobs (`kubenova-agent --migration-bandwidth`,
`--migration-max-downtime`): bad values are refused at start-up, before the agent touches
anything. What the values do to a job is checked against real libvirtds in
tests/integration/compute/test_live_migration.py (a cancelled move runs capped at 1 MiB/s
with a 150 ms downtime limit)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kubenova.agents.main import agent


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--migration-bandwidth", "0"),
        ("--migration-bandwidth", "fast"),
        ("--migration-max-downtime", "0"),
        ("--migration-max-downtime", "60001"),
    ],
)
def test_bad_migration_options_are_refused(tmp_path: Path, option: str, value: str) -> None:
    result = CliRunner().invoke(
        agent, ["--host-name", "h1", "--state-dir", str(tmp_path), option, value]
    )
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output
