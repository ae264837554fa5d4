"""Migrations: an empty database is upgraded, a stale one refused, models match migrations."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import inspect, text

from kubenova.cli.db import db
from kubenova.operator import inventory as inv
from kubenova.operator.inventory import quotas
from kubenova.operator.inventory.models import Base


def test_upgrade_creates_every_table_on_an_empty_database(db_url: str) -> None:
    assert inv.current_revision(db_url) is None
    inv.upgrade(db_url)
    assert inv.current_revision(db_url) == inv.head_revision()
    engine = inv.make_engine(db_url)
    assert set(inspect(engine).get_table_names()) >= {
        "hosts",
        "allocations",
        "instances",
        "server_groups",
        "server_group_members",
        "networks",
        "fixed_ips",
        "segment_ids",
        "volume_targets",
    }
    engine.dispose()
    inv.upgrade(db_url)  # a second upgrade is a no-op
    inv.check_schema(db_url)


def test_the_head_read_from_the_files_is_alembics_own_head() -> None:
    # The operator reads it without importing alembic; alembic stays the judge.
    scripts = ScriptDirectory(str(inv.schema.MIGRATIONS))
    assert inv.head_revision() == scripts.get_current_head()


def test_operator_start_up_imports_no_alembic() -> None:
    probe = (
        "import sys; import kubenova.operator.main; "
        "from kubenova.operator import inventory as inv; inv.head_revision(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'kubernetes')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_check_schema_refuses_an_unmigrated_database(db_url: str) -> None:
    with pytest.raises(inv.SchemaOutOfDate) as refused:
        inv.check_schema(db_url)
    assert str(refused.value) == (
        f"database schema is at revision none (empty database), kubenova needs "
        f"{inv.head_revision()}: run `kubenova db upgrade`"
    )


def test_the_migrations_build_exactly_what_the_models_say(db_url: str) -> None:
    inv.upgrade(db_url)
    engine = inv.make_engine(db_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == [], "models changed without a migration: add an Alembic revision"


def test_the_cli_upgrades_and_reports_the_revision(db_url: str) -> None:
    runner = CliRunner()
    stale = runner.invoke(db, ["current", "--url", db_url])
    assert stale.exit_code == 1
    assert "database: none (empty database)" in stale.output
    assert "run `kubenova db upgrade`" in stale.output
    upgraded = runner.invoke(db, ["upgrade", "--url", db_url])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"upgraded from an empty database to {inv.head_revision()}" in upgraded.output
    current = runner.invoke(db, ["current", "--url", db_url])
    assert current.exit_code == 0
    assert f"database: {inv.head_revision()}" in current.output


def test_the_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    monkeypatch.setenv("KUBENOVA_DATABASE_URL", db_url)
    assert inv.default_url() == db_url
    assert CliRunner().invoke(db, ["upgrade"]).exit_code == 0
    assert inv.current_revision(db_url) == inv.head_revision()


def test_the_default_url_is_a_sqlite_file_in_the_user_data_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBENOVA_DATABASE_URL", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", "/home/someone")
    assert inv.default_url() == "sqlite:////home/someone/.local/share/kubenova/inventory.db"


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: object) -> None:
    engine = inv.make_engine(f"sqlite:///{tmp_path}/x.db")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()


def test_0005_drops_admission_reservations_and_keeps_claimed_charges(db_url: str) -> None:
    inv.upgrade(db_url, "0004")
    engine = inv.make_engine(db_url)
    insert = text(
        "INSERT INTO quota_charges (consumer_uid, consumer_kind, namespace, name, instances, "
        "vcpus, memory_mib, volumes, volume_gib, floating_ips, claimed, created_at) VALUES "
        "(:uid, 'Instance', 'alpha', :uid, 1, 1, 512, 0, 0, 0, :claimed, CURRENT_TIMESTAMP)"
    )
    with engine.begin() as connection:
        connection.execute(insert, [{"uid": "claimed", "claimed": True}])
        connection.execute(insert, [{"uid": "reserved", "claimed": False}])
    engine.dispose()
    inv.upgrade(db_url)
    engine = inv.make_engine(db_url)
    try:
        charges = quotas.list_charges(engine, "alpha")
        assert [c.consumer_uid for c in charges] == ["claimed"]
        columns = {c["name"] for c in inspect(engine).get_columns("quota_charges")}
        assert "claimed" not in columns
    finally:
        engine.dispose()
