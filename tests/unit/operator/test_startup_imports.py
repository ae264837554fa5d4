"""The operator imports at start-up what its configuration uses, and no more: every module
is paid for before the first placement."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# What `kubenova-operator` imports before its event loop starts (see `operator.main`).
STARTUP = (
    "import sys, kopf, kubenova.operator.main, kubenova.operator.inventory, "
    "kubenova.operator.registry; "
    "from kubenova.operator.main import _check_webhook_options; "
    "_check_webhook_options(None, None, 90 * 86400.0, None); "
    "print(' '.join(sorted(sys.modules)))"
)


def imported_at_startup(cwd: Path) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", STARTUP],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,  # not a checkout, whose operator/ would shadow the standard library's
    )
    return set(done.stdout.split())


def test_no_webhook_means_no_cryptography_and_sqlite_means_no_postgresql_nor_orm(
    tmp_path: Path,
) -> None:
    modules = imported_at_startup(tmp_path)
    assert "kubenova.operator.registry" in modules
    assert not {m for m in modules if m.split(".")[0] == "cryptography"}
    assert "sqlalchemy.dialects.postgresql" not in modules
    # The inventory's tables are Core tables and every query a Core statement: no ORM.
    assert "kubenova.operator.inventory.models" in modules
    assert not {m for m in modules if m.split(".")[:2] == ["sqlalchemy", "orm"]}


def test_the_prefetch_threads_start_before_the_async_client_and_kopf_are_imported(
    tmp_path: Path,
) -> None:
    """`main` starts the prefetch before anything else: its lists are read with the
    standard library while aiohttp (the async client's, and kopf's) still imports."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys, kubenova.operator.main; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    modules = set(done.stdout.split())
    assert "kubenova.operator.prefetch" in modules
    assert not {m for m in modules if m.split(".")[0] in ("aiohttp", "kopf", "sqlalchemy")}
    assert "kubenova.kube.client" not in modules
