"""The composed scheduler: filter order, the NoValidHost message, ties and configuration."""

from __future__ import annotations

import random

import pytest

from kubenova.operator.resources import GroupPolicy
from kubenova.operator.scheduler import (
    DEFAULT_FILTERS,
    Chosen,
    NoValidHost,
    Scheduler,
    SchedulerConfig,
    schedule,
)
from tests.unit.scheduler.builders import a_host, a_request


def test_the_message_counts_what_each_filter_removed() -> None:
    hosts = [
        a_host("a", ready=False),
        a_host("b", memory_mb=2048),
        a_host("c", memory_mb=1024),
    ]
    decision = schedule(a_request(memory_mb=4096), hosts)
    assert isinstance(decision, NoValidHost)
    assert decision.message == (
        "3 hosts: 1 not ready, 2 lack memory (need 4096 MiB, max free 2048 MiB)"
    )
    assert decision.removed == {"ready": 1, "memory": 2}
    assert str(decision) == decision.message


def test_each_filter_sees_only_the_survivors_of_the_ones_before() -> None:
    hosts = [
        a_host("a", ready=False, memory_mb=0),  # counted as not ready, not as short of memory
        a_host("b", zone="az2"),
        a_host("c", vcpus=1),
        a_host("d", disk_gb=5),
        a_host("e", schedulable=False),
    ]
    decision = schedule(a_request(vcpus=2, disk_gb=10, zone="az1"), hosts)
    assert isinstance(decision, NoValidHost)
    assert decision.message == (
        "5 hosts: 1 not ready, 1 disabled by an admin, 3 outside availability zone az1"
    )
    hosts[1:4] = [
        a_host("b", zone="az1", vcpus=1),
        a_host("c", zone="az1", disk_gb=5),
        a_host("d", zone="az1", vcpus=1, disk_gb=5),
    ]
    decision = schedule(a_request(vcpus=2, disk_gb=10, zone="az1"), hosts)
    assert isinstance(decision, NoValidHost)
    assert decision.message == (
        "5 hosts: 1 not ready, 1 disabled by an admin, "
        "2 lack vCPUs (need 2, max free 1), 1 lacks disk (need 10 GiB, max free 5 GiB)"
    )


def test_no_hosts_and_one_host_are_worded_plainly() -> None:
    assert str(schedule(a_request(), [])) == "0 hosts: no host is registered"
    assert str(schedule(a_request(), [a_host(ready=False)])) == "1 host: 1 not ready"


def test_a_group_conflict_is_explained() -> None:
    request = a_request(group_policy=GroupPolicy.ANTI_AFFINITY, group_hosts={"a": 1, "b": 1})
    decision = schedule(request, [a_host("a"), a_host("b")])
    assert str(decision) == "2 hosts: 2 already run a member of server group web"


def test_an_explicit_host_still_has_to_pass_the_other_filters() -> None:
    hosts = [a_host("a"), a_host("b", memory_mb=512)]
    assert schedule(a_request(host="a"), hosts) == Chosen("a", ())
    decision = schedule(a_request(host="b"), hosts)
    assert str(decision) == (
        "2 hosts: 1 not the requested host b, 1 lacks memory (need 1024 MiB, max free 512 MiB)"
    )


def test_ties_go_to_the_smallest_host_name_whatever_the_input_order() -> None:
    names = [f"node-{i:03d}" for i in range(50)]
    for seed in range(5):
        shuffled = names[:]
        random.Random(seed).shuffle(shuffled)
        decision = schedule(a_request(), [a_host(name) for name in shuffled])
        assert decision == Chosen("node-000", ("node-001", "node-002"))


def test_alternates_follow_the_weights_and_their_number_is_configurable() -> None:
    hosts = [a_host(f"h{i}", memory_mb=1024 * i) for i in range(1, 7)]
    assert schedule(a_request(), hosts) == Chosen("h6", ("h5", "h4"))
    packing = SchedulerConfig(weighers=(("ram", -1.0),), alternates=4)
    assert schedule(a_request(), hosts, packing) == Chosen("h1", ("h2", "h3", "h4", "h5"))
    assert Chosen("h1", ("h2",)).candidates == ("h1", "h2")


def test_filters_can_be_left_out_by_configuration() -> None:
    hosts = [a_host("a", ready=False)]
    only_memory = SchedulerConfig(filters=("memory",))
    assert schedule(a_request(), hosts, only_memory) == Chosen("a", ())


def test_unknown_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown scheduler filter/weigher colour.*ready"):
        SchedulerConfig(filters=("ready", "colour"))
    with pytest.raises(ValueError, match=r"weighers are ram, cpu"):
        SchedulerConfig.from_settings(weighers={"gpu": 1.0})


def test_settings_keep_the_defaults_for_what_they_do_not_name() -> None:
    config = SchedulerConfig.from_settings(weighers={"ram": -1.0})
    assert config.filters == DEFAULT_FILTERS
    assert config.weighers == (("ram", -1.0),)


def test_the_same_input_gives_the_same_decision() -> None:
    rng = random.Random(7)
    hosts = [
        a_host(f"n{i}", vcpus=rng.randint(0, 8), memory_mb=rng.randint(0, 8192)) for i in range(200)
    ]
    scheduler = Scheduler()
    first = scheduler.schedule(a_request(vcpus=2, memory_mb=2048), hosts)
    assert isinstance(first, Chosen)
    assert all(
        scheduler.schedule(a_request(vcpus=2, memory_mb=2048), hosts) == first for _ in range(5)
    )
