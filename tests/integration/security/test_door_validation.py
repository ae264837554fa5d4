"""Rules the operator checks on a spec are checked at `kubectl apply`, naming the field.

Issue 12, item 8: a Network whose gateway the allocator cannot use (outside the CIDR,
its network or broadcast address) used to be admitted and only then marked
Ready=False InvalidCIDR. The CRD refuses it now, and nothing is left behind. A Network
overlapping another of its project (CIDROverlap) is refused by the webhook.
"""

from __future__ import annotations

import pytest

from kubenova.devcluster import ClusterAccess
from tests.builders import a_network, as_yaml
from tests.integration.auth.conftest import Tenancy, apply, kubectl_json, unique

pytestmark = pytest.mark.apiserver

NS = "door-validation"


@pytest.fixture(scope="module")
def cluster(apiserver: ClusterAccess, crds_installed: list[str]) -> ClusterAccess:
    apiserver.kubectl("create", "namespace", NS, check=False)
    return apiserver


@pytest.mark.parametrize(
    ("cidr", "gateway"),
    [
        ("10.1.2.0/24", "10.1.2.0"),  # the network address
        ("10.1.2.0/24", "10.1.2.255"),  # the broadcast address
        ("10.8.0.0/13", "10.15.255.255"),  # broadcast of a wide network
        ("10.1.2.8/29", "10.1.2.15"),  # broadcast of the smallest network
        ("10.1.2.8/29", "10.1.2.8"),
        ("10.1.2.0/24", "10.1.3.1"),  # outside
    ],
)
def test_a_gateway_that_is_no_host_address_is_refused_naming_spec_gateway(
    cluster: ClusterAccess, cidr: str, gateway: str
) -> None:
    name = "gw-" + gateway.replace(".", "-")
    network = a_network(name, NS, cidr=cidr, gateway=gateway)
    result = cluster.kubectl("apply", "-f", "-", input=as_yaml(network), check=False)
    assert result.returncode != 0, f"admitted: {result.stdout}"
    assert "spec.gateway" in result.stderr, result.stderr
    got = cluster.kubectl("get", "network", name, "-n", NS, check=False)
    assert got.returncode != 0, "a refused Network was left behind"


@pytest.mark.parametrize(
    ("cidr", "gateway"),
    [
        ("10.1.2.0/24", "10.1.2.1"),
        ("10.1.2.0/24", "10.1.2.254"),
        ("10.8.0.0/13", "10.15.255.254"),
        ("10.8.0.0/13", "10.9.0.0"),  # a host address although it ends in .0
        ("10.1.2.8/29", "10.1.2.14"),
    ],
)
def test_a_gateway_that_is_a_host_address_is_accepted(
    cluster: ClusterAccess, cidr: str, gateway: str
) -> None:
    name = "ok-" + gateway.replace(".", "-")
    network = a_network(name, NS, cidr=cidr, gateway=gateway)
    cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=as_yaml(network))


@pytest.mark.ldap
def test_a_network_overlapping_another_of_its_project_is_refused_naming_spec_cidr(
    tenancy: Tenancy,
) -> None:
    cluster, project = tenancy.cluster, unique("overlap")
    tenancy.project(project)
    apply(cluster, a_network("wide", project, cidr="10.50.0.0/16"))
    result = apply(cluster, a_network("inside", project, cidr="10.50.8.0/24"), check=False)
    assert result.returncode != 0, f"admitted: {result.stdout}"
    assert "spec.cidr" in result.stderr, result.stderr
    assert "overlaps Network wide (10.50.0.0/16)" in result.stderr
    assert kubectl_json(cluster, "get", "network", "inside", "-n", project) is None
    apply(cluster, a_network("beside", project, cidr="10.51.0.0/24"))  # no overlap: admitted
    cluster.kubectl("delete", "networks", "--all", "-n", project, "--wait=false")
