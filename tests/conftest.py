"""Shared pytest configuration: each real service lives in its own fixture module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.processes import ManagedProcess

LOG_TAIL_LINES = 150

# A module another one imports comes first: pytest rewrites a plugin's asserts only if it
# is the one importing it (the agent's fixtures import the operator's).
pytest_plugins = [
    "tests.fixtures.apiserver",
    "tests.fixtures.operator",
    "tests.fixtures.agent",
    "tests.fixtures.ldap",
    "tests.fixtures.libvirtd",
    "tests.fixtures.netns",
    "tests.fixtures.test_image",
    "tests.fixtures.postgres",
    "tests.fixtures.s3",
    "tests.fixtures.tgtd",
]


def _process_logs(item: pytest.Item) -> list[tuple[str, str]]:
    """The log tails of every kubenova process a test used, found through its fixtures."""
    found: list[ManagedProcess] = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, ManagedProcess):
            found.append(value)
        found.extend(p for p in getattr(value, "agents", []) if isinstance(p, ManagedProcess))
    sections = []
    for process in found:
        lines = process.log().splitlines()[-LOG_TAIL_LINES:]
        sections.append((f"{process.log_path.name} (last {len(lines)} lines)", "\n".join(lines)))
    return sections


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # A CI failure is often read only from its printed output: without the operator's and
    # agents' own logs a race in a restart test can't be told from a hang.
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.failed and report.when in ("call", "teardown"):
        report.sections.extend(_process_logs(item))
