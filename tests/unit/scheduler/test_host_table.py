"""The columnar host table: name order, in-place updates, and rows back out."""

from __future__ import annotations

import pytest

from kubenova.operator.resources import Resources
from kubenova.operator.scheduler import HostTable
from tests.unit.scheduler.builders import a_host


def test_rows_are_sorted_by_name_and_come_back_unchanged() -> None:
    hosts = [a_host("c", vcpus=3), a_host("a", zone="az1", ready=False), a_host("b")]
    table = HostTable(hosts)
    assert table.names == ["a", "b", "c"]
    assert sorted(hosts, key=lambda h: h.name) == list(table)


def test_a_claim_and_a_release_change_one_row_in_place() -> None:
    table = HostTable([a_host("a", vcpus=4, memory_mb=4096, disk_gb=40), a_host("b")])
    table.take("a", Resources(1, 1024, 10))
    assert (table.row(0).free_vcpus, table.row(0).free_memory_mb) == (3, 3072)
    table.take("a", Resources() - Resources(1, 1024, 10))
    assert table.row(0) == a_host("a", vcpus=4, memory_mb=4096, disk_gb=40)
    table.take("ghost", Resources(1, 1, 1))  # unknown hosts are ignored
    assert list(table)[1] == a_host("b")


def test_put_replaces_a_row_or_inserts_a_new_host_in_name_order() -> None:
    table = HostTable([a_host("a"), a_host("c")])
    table.put(a_host("c", zone="a-much-longer-zone-name", ready=False))
    table.put(a_host("b", memory_mb=1))
    assert table.names == ["a", "b", "c"]
    assert table.row(1) == a_host("b", memory_mb=1)
    assert table.row(2) == a_host("c", zone="a-much-longer-zone-name", ready=False)
    assert table.index == {"a": 0, "b": 1, "c": 2}


def test_drop_forgets_a_host() -> None:
    table = HostTable([a_host("a"), a_host("b")])
    table.drop("a")
    table.drop("ghost")
    assert table.names == ["b"]
    assert table.index == {"b": 0}


def test_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        HostTable([a_host("a"), a_host("a")])
