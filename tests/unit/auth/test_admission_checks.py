"""The webhook's decisions on plain bodies, with lookups answered from dicts."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar, cast

import pytest

from kubenova.kube.meta import Body
from kubenova.operator.admission import AdmissionRefused
from kubenova.operator.admission.instances import check_instance
from kubenova.operator.admission.networks import check_network
from kubenova.operator.admission.projects import check_project, check_project_deletion
from kubenova.operator.admission.references import References
from kubenova.operator.admission.volumes import check_volume
from kubenova.operator.inventory.quotas import QuotaAmounts
from tests.builders import a_flavor, a_network, a_project, a_volume, an_image, an_instance

T = TypeVar("T")


class DictReferences:
    """What References answers, from plain dicts."""

    def __init__(self, *objects: Body, holdings: dict[str, int] | None = None) -> None:
        self.objects = {
            (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects
        }
        self._holdings = holdings or {}

    def _get(self, kind: str, name: str, namespace: str | None = None) -> Body | None:
        return self.objects.get((kind, namespace, name))

    async def flavor(self, name: str) -> Body | None:
        return self._get("Flavor", name)

    async def image(self, name: str) -> Body | None:
        return self._get("Image", name)

    async def network(self, namespace: str, name: str) -> Body | None:
        return self._get("Network", name, namespace)

    async def volume(self, namespace: str, name: str) -> Body | None:
        return self._get("Volume", name, namespace)

    async def networks(self, namespace: str) -> list[Body]:
        return [
            o
            for o in self.objects.values()
            if o["kind"] == "Network" and o["metadata"].get("namespace") == namespace
        ]

    async def server_group(self, namespace: str, name: str) -> Body | None:
        return self._get("ServerGroup", name, namespace)

    async def host(self, name: str) -> Body | None:
        return self._get("Host", name)

    async def namespace(self, name: str) -> Body | None:
        return self._get("Namespace", name)

    async def projects(self) -> list[Body]:
        return [o for o in self.objects.values() if o["kind"] == "Project"]

    async def holdings(self, namespace: str) -> dict[str, int]:
        return self._holdings


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def refs(*objects: Body, **kwargs: Any) -> References:
    catalog = (a_flavor("m1", vcpus=2, memory=256, disk=5), an_image("img", minDiskGiB=2))
    return cast(References, DictReferences(*catalog, *objects, **kwargs))


def test_a_new_instance_is_charged_its_flavor() -> None:
    amounts = run(check_instance(an_instance("vm", "ns", flavor="m1", image="img"), None, refs()))
    assert amounts == QuotaAmounts(instances=1, vcpus=2, memory_mib=256)


def test_an_update_checks_only_what_it_adds_and_charges_nothing() -> None:
    old = an_instance("vm", "ns", flavor="gone", image="gone", volumes=[{"volume": "a"}])
    new = an_instance(
        "vm", "ns", flavor="gone", image="gone", volumes=[{"volume": "a"}, {"volume": "b"}]
    )
    with pytest.raises(AdmissionRefused) as refused:
        run(check_instance(new, old, refs()))
    assert refused.value.field == "spec.volumes[1].volume"
    assert run(check_instance(new, old, refs(a_volume("b", "ns")))) is None


def test_a_resize_is_checked_like_a_creation_and_charged_its_new_flavor() -> None:
    old = an_instance("vm", "ns", flavor="m1", image="img", powerState="Stopped")
    bigger = a_flavor("m2", vcpus=4, memory=512, disk=5)
    new = an_instance("vm", "ns", flavor="m2", image="img", powerState="Stopped")
    amounts = run(check_instance(new, old, refs(bigger)))
    assert amounts == QuotaAmounts(instances=1, vcpus=4, memory_mib=512)
    cases = {
        "Flavor m3 does not exist": ("m3", ()),
        "needs a root disk of at least 2 GiB, spec.flavor gives 1 GiB": (
            "tiny",
            (a_flavor("tiny", disk=1),),
        ),
        "cannot shrink the root disk: spec.flavor gives 3 GiB, the Instance has 5 GiB": (
            "small",
            (a_flavor("small", disk=3),),
        ),
    }
    for words, (flavor, extra) in cases.items():
        changed = an_instance("vm", "ns", flavor=flavor, image="img", powerState="Stopped")
        with pytest.raises(AdmissionRefused) as refused:
            run(check_instance(changed, old, refs(*extra)))
        assert refused.value.field == "spec.flavor"
        assert words in refused.value.message, refused.value.message


def test_a_volume_of_another_namespace_is_out_of_reach() -> None:
    body = an_instance("vm", "ns", flavor="m1", image="img", volumes=[{"volume": "v"}])
    with pytest.raises(AdmissionRefused, match="Volume v does not exist in namespace ns"):
        run(check_instance(body, None, refs(a_volume("v", "other"))))


@pytest.mark.parametrize(
    ("ip", "why"),
    [
        ("10.0.0.0", "the network or broadcast address"),
        ("10.0.0.255", "the network or broadcast address"),
        ("10.0.1.1", "outside network n"),
    ],
)
def test_a_fixed_ip_must_be_a_host_address_of_the_network(ip: str, why: str) -> None:
    body = an_instance("vm", "ns", flavor="m1", image="img", networks=[{"network": "n", "ip": ip}])
    with pytest.raises(AdmissionRefused, match=why) as refused:
        run(check_instance(body, None, refs(a_network("n", "ns", cidr="10.0.0.0/24"))))
    assert refused.value.field == "spec.networks[0].ip"


def test_a_flavor_too_small_for_the_image_names_the_flavor() -> None:
    flavor = a_flavor("tiny", vcpus=1, memory=64, disk=1)
    body = an_instance("vm", "ns", flavor="tiny", image="img")
    with pytest.raises(AdmissionRefused) as refused:
        run(check_instance(body, None, refs(flavor)))
    assert str(refused.value) == (
        "spec.flavor: image img needs a root disk of at least 2 GiB, spec.flavor gives 1 GiB"
    )


def test_a_volume_is_charged_when_new_only() -> None:
    # spec.sizeGiB is immutable (CEL), so an update never asks for more.
    small = a_volume("v", "ns", sizeGiB=5)
    assert run(check_volume(small, None, refs())) == QuotaAmounts(volumes=1, volume_gib=5)
    assert run(check_volume(small, small, refs())) is None
    with pytest.raises(AdmissionRefused, match=r"spec\.sizeGiB: image img needs at least 2 GiB"):
        run(check_volume(a_volume("v", "ns", sizeGiB=1, image="img"), None, refs()))


def test_a_project_deletion_lists_what_it_still_holds() -> None:
    references = refs(holdings={"Instance": 2, "Volume": 0})
    with pytest.raises(AdmissionRefused) as refused:
        run(check_project_deletion(a_project("p"), references))
    assert str(refused.value).startswith("project p still holds 2 Instances in namespace p")
    assert refused.value.code == 403
    run(check_project_deletion(a_project("p"), refs(holdings={"Instance": 0, "Volume": 0})))


def test_a_project_may_adopt_an_unlabelled_namespace_but_not_anothers() -> None:
    free = {"kind": "Namespace", "metadata": {"name": "shared"}}
    run(check_project(a_project("p", namespace="shared"), refs(free), "kubenova-system"))
    taken = {
        "kind": "Namespace",
        "metadata": {"name": "shared", "labels": {"kubenova.io/project": "q"}},
    }
    with pytest.raises(AdmissionRefused, match="namespace shared belongs to project q"):
        run(check_project(a_project("p", namespace="shared"), refs(taken), "kubenova-system"))
    with pytest.raises(
        AdmissionRefused, match=r"metadata\.name: namespace kubenova-system is reserved"
    ):
        run(check_project(a_project("kubenova-system"), refs(), "kubenova-system"))


def deleting(body: Body) -> Body:
    body["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return body


def test_a_network_or_volume_being_deleted_cannot_be_attached() -> None:
    body = an_instance("vm", "ns", flavor="m1", image="img", networks=[{"network": "n"}])
    with pytest.raises(AdmissionRefused, match="Network n is being deleted") as refused:
        run(check_instance(body, None, refs(deleting(a_network("n", "ns")))))
    assert refused.value.field == "spec.networks[0].network"
    body = an_instance("vm", "ns", flavor="m1", image="img", volumes=[{"volume": "v"}])
    with pytest.raises(AdmissionRefused, match="Volume v is being deleted") as refused:
        run(check_instance(body, None, refs(deleting(a_volume("v", "ns")))))
    assert refused.value.field == "spec.volumes[0].volume"


def test_a_floating_ip_needs_a_pool() -> None:
    nic = {"network": "n", "floatingIP": True}
    body = an_instance("vm", "ns", flavor="m1", image="img", networks=[nic])
    network = a_network("n", "ns")
    with pytest.raises(AdmissionRefused, match="floating IPs are not configured") as refused:
        run(check_instance(body, None, refs(network), floating_ips=False))
    assert refused.value.field == "spec.networks[0].floatingIP"
    assert run(check_instance(body, None, refs(network), floating_ips=True)) is not None


def test_a_network_overlapping_another_of_its_namespace_is_refused() -> None:
    mine = a_network("big", "ns", cidr="10.50.0.0/16")
    others = refs(mine, a_network("elsewhere", "other", cidr="10.50.8.0/24"))
    with pytest.raises(AdmissionRefused, match=r"overlaps Network big \(10\.50\.0\.0/16\)") as e:
        run(check_network(a_network("small", "ns", cidr="10.50.8.0/24"), None, others))
    assert e.value.field == "spec.cidr"
    run(check_network(a_network("small", "other2", cidr="10.50.8.0/24"), None, others))
    run(check_network(mine, None, others))  # itself (a re-apply) is no overlap
    run(check_network(a_network("small", "ns", cidr="10.50.8.0/24"), None, refs(deleting(mine))))
