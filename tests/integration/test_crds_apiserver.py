"""The CRDs in a real kube-apiserver: examples are accepted, bad manifests refused at the door.

Every refusal must name the offending field, so a user knows what to change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubenova.devcluster import ClusterAccess
from tests.builders import (
    a_flavor,
    a_network,
    a_server_group,
    a_volume,
    an_image,
    an_instance,
    as_yaml,
    manifest,
)

pytestmark = pytest.mark.apiserver

REPO = Path(__file__).resolve().parents[2]
NS = "crd-tests"


@pytest.fixture(scope="module")
def cluster(apiserver: ClusterAccess, crds_installed: list[str]) -> ClusterAccess:
    apiserver.kubectl("create", "namespace", NS, check=False)
    return apiserver


def apply(cluster: ClusterAccess, text: str, *extra: str) -> tuple[int, str]:
    result = cluster.kubectl("apply", *extra, "-f", "-", input=text, check=False)
    return result.returncode, result.stdout + result.stderr


def test_every_crd_is_established(cluster: ClusterAccess, crds_installed: list[str]) -> None:
    assert sorted(n.rsplit("/", 1)[-1] for n in crds_installed) == sorted(
        f"{p}.kubenova.io"
        for p in (
            "instances",
            "instancemigrations",
            "volumes",
            "networks",
            "flavors",
            "images",
            "hosts",
            "servergroups",
            "projects",
        )
    )


def test_examples_are_accepted(cluster: ClusterAccess) -> None:
    for path in sorted((REPO / "examples").glob("*.yaml")):
        code, out = apply(cluster, path.read_text(), "--dry-run=server")
        assert code == 0, f"{path.name} refused: {out}"
    code, out = apply(
        cluster,
        "".join(p.read_text() + "\n---\n" for p in sorted((REPO / "examples").glob("*.yaml"))),
    )
    assert code == 0, out


def test_kubectl_surface(cluster: ClusterAccess) -> None:
    cluster.kubectl("apply", "-f", "-", input=as_yaml(a_flavor("m1.surface")))
    listing = cluster.kubectl("get", "kubenova").stdout
    assert "flavor.kubenova.io/m1.surface" in listing
    short = cluster.kubectl("get", "flv", "m1.surface", "-o", "name").stdout
    assert short.strip() == "flavor.kubenova.io/m1.surface"
    explain = cluster.kubectl("explain", "instance.spec.networks").stdout
    assert "fixed IP" in explain
    assert "network" in explain
    header = cluster.kubectl("get", "inst", "-A").stdout.splitlines()
    if header:
        for column in ("PHASE", "HOST", "IP", "READY", "AGE"):
            assert column in header[0]


def test_defaults_are_filled_in(cluster: ClusterAccess) -> None:
    cluster.kubectl("apply", "-f", "-", input=as_yaml(a_volume("defaulted", NS)))
    got = yaml.safe_load(cluster.kubectl("get", "vol", "defaulted", "-n", NS, "-o", "yaml").stdout)
    assert got["spec"]["protocol"] == "iscsi"
    assert got["spec"]["multiAttach"] is False


# (id, manifest, words the refusal must contain)
INVALID: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("negative-vcpus", a_flavor("bad.vcpus", vcpus=-1), ("spec.vcpus",)),
    ("zero-memory", a_flavor("bad.mem", memory=0), ("spec.memoryMiB",)),
    ("flavor-unknown-field", a_flavor("bad.field", gpus=1), ("gpus",)),
    (
        "instance-flavor-and-resources",
        an_instance("both", NS, resources={"vcpus": 1, "memoryMiB": 128, "diskGiB": 1}),
        ("spec.flavor", "spec.resources"),
    ),
    (
        "instance-neither",
        an_instance("neither", NS, flavor=None),
        ("spec.flavor", "spec.resources"),
    ),
    (
        "instance-no-image",
        manifest("Instance", "noimg", {"flavor": "m1.tiny"}, NS),
        ("spec.image",),
    ),
    ("instance-bad-power-state", an_instance("pwr", NS, powerState="Paused"), ("spec.powerState",)),
    (
        "instance-bad-ip",
        an_instance("ip", NS, networks=[{"network": "n", "ip": "10.0.0.300"}]),
        ("spec.networks[0].ip",),
    ),
    (
        "instance-duplicate-network",
        an_instance("dup", NS, networks=[{"network": "n"}, {"network": "n"}]),
        ("spec.networks",),
    ),
    ("instance-bad-image-name", an_instance("imgname", NS, image="Not_A_Name"), ("spec.image",)),
    (
        "instance-too-many-vcpus",
        an_instance(
            "big", NS, flavor=None, resources={"vcpus": 1000, "memoryMiB": 128, "diskGiB": 1}
        ),
        ("spec.resources.vcpus",),
    ),
    ("instance-unknown-field", an_instance("unk", NS, colour="red"), ("spec.colour",)),
    ("volume-unknown-protocol", a_volume("proto", NS, protocol="nfs"), ("spec.protocol",)),
    ("volume-zero-size", a_volume("zero", NS, sizeGiB=0), ("spec.sizeGiB",)),
    ("network-bad-cidr", a_network("garbage", NS, cidr="banana"), ("spec.cidr",)),
    ("network-host-bits", a_network("hostbits", NS, cidr="10.1.2.3/24"), ("spec.cidr",)),
    ("network-prefix-too-small", a_network("slash30", NS, cidr="10.1.2.0/30"), ("spec.cidr",)),
    (
        "network-gateway-outside",
        a_network("gw", NS, cidr="10.1.2.0/24", gateway="10.9.9.1"),
        ("spec.gateway",),
    ),
    ("network-bad-mode", a_network("mode", NS, mode="gre"), ("spec.mode",)),
    ("network-bad-dns", a_network("dns", NS, dns=["not-an-ip"]), ("spec.dns[0]",)),
    ("image-bad-sha", an_image("badsha", sha256="xyz"), ("spec.sha256",)),
    ("image-bad-format", an_image("badfmt", format="vmdk"), ("spec.format",)),
    ("server-group-bad-policy", a_server_group("pol", NS, policy="scatter"), ("spec.policy",)),
    ("host-bad-service", manifest("Host", "h-bad", {"services": ["gpu"]}), ("spec.services",)),
    (
        "host-overcommit-below-one",
        manifest("Host", "h-oc", {"overcommit": {"memory": 0.5}}),
        ("spec.overcommit.memory",),
    ),
    (
        "project-negative-quota",
        manifest("Project", "p-neg", {"quota": {"vcpus": -4}}),
        ("spec.quota.vcpus",),
    ),
]


@pytest.mark.parametrize(
    ("manifest_", "words"), [(m, w) for _, m, w in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_manifest_is_refused(
    cluster: ClusterAccess, manifest_: dict[str, Any], words: tuple[str, ...]
) -> None:
    code, out = apply(cluster, as_yaml(manifest_))
    assert code != 0, f"accepted: {out}"
    for word in words:
        assert word in out, f"refusal does not name {word!r}: {out}"
    kind = manifest_["kind"].lower()
    namespace = ["-n", NS] if manifest_["metadata"].get("namespace") else []
    got = cluster.kubectl("get", kind, manifest_["metadata"]["name"], *namespace, check=False)
    assert got.returncode != 0, "a refused manifest left an object behind"


# (id, created, changed, words)
IMMUTABLE: list[tuple[str, dict[str, Any], dict[str, Any], tuple[str, ...]]] = [
    (
        "instance-image",
        an_instance("imm-img", NS, image="a"),
        an_instance("imm-img", NS, image="b"),
        ("spec.image", "immutable"),
    ),
    (
        "instance-flavor-while-running",
        an_instance("imm-flv", NS),
        an_instance("imm-flv", NS, flavor="m1.other"),
        ("spec.flavor", "spec.powerState is Stopped", "spec.resizePolicy: Restart"),
    ),
    (
        "instance-resources-while-running",
        an_instance(
            "imm-res", NS, flavor=None, resources={"vcpus": 1, "memoryMiB": 128, "diskGiB": 1}
        ),
        an_instance(
            "imm-res", NS, flavor=None, resources={"vcpus": 2, "memoryMiB": 128, "diskGiB": 1}
        ),
        ("spec.resources", "spec.powerState is Stopped"),
    ),
    (
        "instance-flavor-to-resources",
        an_instance("imm-sw", NS),
        an_instance(
            "imm-sw", NS, flavor=None, resources={"vcpus": 1, "memoryMiB": 128, "diskGiB": 1}
        ),
        ("spec.flavor", "spec.resources"),
    ),
    (
        "instance-zone",
        an_instance("imm-az", NS, availabilityZone="a"),
        an_instance("imm-az", NS, availabilityZone="b"),
        ("spec.availabilityZone", "immutable"),
    ),
    (
        "instance-nic-added",
        an_instance("imm-nic", NS, networks=[{"network": "a"}]),
        an_instance("imm-nic", NS, networks=[{"network": "a"}, {"network": "b"}]),
        ("spec.networks", "NICs cannot be added, removed or reordered"),
    ),
    (
        "instance-nic-network",
        an_instance("imm-nicnet", NS, networks=[{"network": "a", "floatingIP": True}]),
        an_instance("imm-nicnet", NS, networks=[{"network": "b", "floatingIP": True}]),
        ("spec.networks", "NICs cannot be added, removed or reordered"),
    ),
    (
        "instance-nic-ip",
        an_instance("imm-nicip", NS, networks=[{"network": "a", "ip": "10.0.0.5"}]),
        an_instance(
            "imm-nicip", NS, networks=[{"network": "a", "ip": "10.0.0.6", "floatingIP": True}]
        ),
        ("spec.networks", "spec.networks[].ip cannot be changed"),
    ),
    (
        "volume-shrink",
        a_volume("imm-vol", NS, sizeGiB=5),
        a_volume("imm-vol", NS, sizeGiB=4),
        ("spec.sizeGiB", "immutable"),
    ),
    (
        "volume-protocol",
        a_volume("imm-proto", NS),
        a_volume("imm-proto", NS, protocol="aoe"),
        ("spec.protocol", "immutable"),
    ),
    (
        "network-cidr",
        a_network("imm-net", NS),
        a_network("imm-net", NS, cidr="10.31.0.0/24"),
        ("spec.cidr", "immutable"),
    ),
    (
        "network-mode",
        a_network("imm-mode", NS),
        a_network("imm-mode", NS, mode="flat"),
        ("spec.mode", "immutable"),
    ),
    ("flavor-spec", a_flavor("imm.flavor"), a_flavor("imm.flavor", vcpus=2), ("immutable",)),
    (
        "server-group-policy",
        a_server_group("imm-sg", NS),
        a_server_group("imm-sg", NS, policy="affinity"),
        ("spec.policy", "immutable"),
    ),
]


@pytest.mark.parametrize(
    ("created", "changed", "words"),
    [(c, u, w) for _, c, u, w in IMMUTABLE],
    ids=[i for i, _, _, _ in IMMUTABLE],
)
def test_immutable_field_cannot_change(
    cluster: ClusterAccess, created: dict[str, Any], changed: dict[str, Any], words: tuple[str, ...]
) -> None:
    code, out = apply(cluster, as_yaml(created))
    assert code == 0, out
    code, out = apply(cluster, as_yaml(changed))
    assert code != 0, f"change accepted: {out}"
    for word in words:
        assert word in out, f"refusal does not name {word!r}: {out}"


@pytest.mark.parametrize(
    "allowed",
    [{"powerState": "Stopped"}, {"resizePolicy": "Restart"}],
    ids=["stopped", "restart-policy"],
)
def test_instance_sizing_changes_when_stopped_or_restartable(
    cluster: ClusterAccess, allowed: dict[str, str]
) -> None:
    name = "resize-" + next(iter(allowed)).lower()
    assert apply(cluster, as_yaml(an_instance(name, NS, **allowed)))[0] == 0
    code, out = apply(cluster, as_yaml(an_instance(name, NS, flavor="m1.bigger", **allowed)))
    assert code == 0, out


def test_instance_stopped_and_resized_in_one_apply(cluster: ClusterAccess) -> None:
    # A resize of a guest about to stop: the agent stops it first, then resizes it.
    assert apply(cluster, as_yaml(an_instance("resize-and-stop", NS)))[0] == 0
    code, out = apply(
        cluster,
        as_yaml(an_instance("resize-and-stop", NS, flavor="m1.bigger", powerState="Stopped")),
    )
    assert code == 0, out
    # Started again with yet another size in the same apply: refused.
    code, out = apply(cluster, as_yaml(an_instance("resize-and-stop", NS)))
    assert code != 0, f"resize of a guest being started accepted: {out}"
    assert "spec.resizePolicy: Restart" in out, out


def test_volume_size_is_immutable_with_a_clear_error(cluster: ClusterAccess) -> None:
    # Growing is refused rather than accepted and ignored: nothing would grow the claim,
    # the backing file or the exported LUN.
    assert apply(cluster, as_yaml(a_volume("grows", NS, sizeGiB=1)))[0] == 0
    code, out = apply(cluster, as_yaml(a_volume("grows", NS, sizeGiB=2)))
    assert code != 0, f"size change accepted: {out}"
    assert "spec.sizeGiB is immutable once created" in out, out


def test_a_nic_floating_ip_may_be_toggled(cluster: ClusterAccess) -> None:
    # The one mutable field of a NIC: associating and releasing a floating IP on a server.
    nics = [{"network": "a", "ip": "10.0.0.5"}, {"network": "b"}]
    assert apply(cluster, as_yaml(an_instance("fip-toggle", NS, networks=nics)))[0] == 0
    for on in (True, False):
        toggled = [nics[0], {**nics[1], "floatingIP": on}]
        code, out = apply(cluster, as_yaml(an_instance("fip-toggle", NS, networks=toggled)))
        assert code == 0, out
