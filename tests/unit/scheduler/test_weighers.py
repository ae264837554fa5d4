"""Each weigher on its own, and how multipliers turn them into spread or pack."""

from __future__ import annotations

from kubenova.operator.resources import GroupPolicy
from kubenova.operator.scheduler import (
    Chosen,
    HostState,
    HostTable,
    PlacementRequest,
    Scheduler,
    SchedulerConfig,
)
from kubenova.operator.scheduler.weighers import (
    WEIGHERS,
    CpuWeigher,
    HostWeigher,
    RamWeigher,
    SoftAffinityWeigher,
    SoftAntiAffinityWeigher,
)
from tests.unit.scheduler.builders import a_host, a_request

HOSTS = [
    a_host("small", vcpus=4, memory_mb=4096),
    a_host("big", vcpus=2, memory_mb=32768),
    a_host("medium", vcpus=32, memory_mb=8192),
]


def chosen(
    config: SchedulerConfig,
    request: PlacementRequest | None = None,
    hosts: list[HostState] = HOSTS,
) -> str:
    decision = Scheduler(config).schedule(request or a_request(), hosts)
    assert isinstance(decision, Chosen), decision
    return decision.host


def scores(weigher: HostWeigher, request: PlacementRequest) -> dict[str, float]:
    table = HostTable(HOSTS)
    return dict(zip(table.names, weigher.weigh(table, request).tolist(), strict=True))


def test_ram_weigher_scores_free_memory() -> None:
    assert scores(RamWeigher(), a_request()) == {"small": 4096, "big": 32768, "medium": 8192}


def test_cpu_weigher_scores_free_vcpus() -> None:
    assert scores(CpuWeigher(), a_request()) == {"small": 4, "big": 2, "medium": 32}


def test_a_positive_ram_multiplier_spreads_and_a_negative_one_packs() -> None:
    assert chosen(SchedulerConfig(weighers=(("ram", 1.0),))) == "big"
    assert chosen(SchedulerConfig(weighers=(("ram", -1.0),))) == "small"


def test_a_positive_cpu_multiplier_spreads_and_a_negative_one_packs() -> None:
    assert chosen(SchedulerConfig(weighers=(("cpu", 1.0),))) == "medium"
    assert chosen(SchedulerConfig(weighers=(("cpu", -1.0),))) == "big"


def test_weighers_are_normalised_so_multipliers_compare() -> None:
    # RAM alone prefers big, CPU alone prefers medium; normalised to 0..1 each, the
    # larger multiplier decides whatever the units.
    assert chosen(SchedulerConfig(weighers=(("ram", 1.0), ("cpu", 2.0)))) == "medium"
    assert chosen(SchedulerConfig(weighers=(("ram", 2.0), ("cpu", 1.0)))) == "big"


def test_three_weighers_add_up() -> None:
    request = a_request(group_policy=GroupPolicy.SOFT_AFFINITY, group_hosts={"small": 1})
    config = SchedulerConfig(weighers=(("ram", 1.0), ("cpu", 1.0), ("soft-affinity", 3.0)))
    assert chosen(config, request) == "small"


def test_soft_affinity_prefers_hosts_with_members_but_does_not_require_them() -> None:
    request = a_request(group_policy=GroupPolicy.SOFT_AFFINITY, group_hosts={"small": 2})
    assert SoftAffinityWeigher().applies(request)
    assert scores(SoftAffinityWeigher(), request) == {"small": 2, "big": 0, "medium": 0}
    assert chosen(SchedulerConfig(weighers=(("soft-affinity", 1.0),)), request) == "small"
    only_elsewhere = [HOSTS[1]]
    config = SchedulerConfig(weighers=(("soft-affinity", 1.0),))
    assert chosen(config, request, only_elsewhere) == "big"


def test_soft_anti_affinity_prefers_hosts_with_fewest_members() -> None:
    request = a_request(
        group_policy=GroupPolicy.SOFT_ANTI_AFFINITY, group_hosts={"small": 2, "big": 1}
    )
    assert scores(SoftAntiAffinityWeigher(), request) == {"small": -2, "big": -1, "medium": 0}
    assert chosen(SchedulerConfig(weighers=(("soft-anti-affinity", 1.0),)), request) == "medium"
    full_everywhere = HOSTS[:2]
    config = SchedulerConfig(weighers=(("soft-anti-affinity", 1.0),))
    assert chosen(config, request, full_everywhere) == "big"


def test_group_weighers_only_apply_to_their_policy() -> None:
    no_group = a_request()
    assert not SoftAffinityWeigher().applies(no_group)
    assert not SoftAntiAffinityWeigher().applies(no_group)
    hard = a_request(group_policy=GroupPolicy.ANTI_AFFINITY)
    assert not SoftAntiAffinityWeigher().applies(hard)


def test_every_weigher_is_registered_under_its_name() -> None:
    assert set(WEIGHERS) == {"ram", "cpu", "soft-affinity", "soft-anti-affinity"}
    assert all(cls.name == name for name, cls in WEIGHERS.items())
