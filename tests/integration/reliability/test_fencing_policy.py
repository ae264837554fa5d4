"""Only a cluster admin fences or drains a host: an agent identity cannot create its Host
already out of service or drained (charts/kubenova/policies/fencing-is-the-admins.yaml)."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.devcluster.agent_identity import AGENT_RULES, agent_kubeconfig, install_agent_rbac
from tests.builders import a_host, as_yaml
from tests.fixtures.apiserver import REPO_ROOT
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver


def test_an_agent_may_not_fence_its_own_host_an_admin_may(
    apiserver: ClusterAccess, crds_installed: list[str]
) -> None:
    install_agent_rbac(apiserver, REPO_ROOT / AGENT_RULES)
    host = f"fenced-{uuid.uuid4().hex[:6]}"
    config = agent_kubeconfig(apiserver, host)
    try:

        def create_fenced() -> subprocess.CompletedProcess[str] | None:
            attempt = apiserver.kubectl(
                "create", "-f", "-", input=as_yaml(a_host(host, outOfService=True)),
                kubeconfig=config, check=False,
            )  # fmt: skip
            if attempt.returncode == 0:  # the policy was not loaded yet: try again
                apiserver.kubectl("delete", "host", host, "--wait=true", check=False)
                return None
            return attempt

        # The apiserver enforces a freshly installed policy once its informer has it.
        refused = eventually(create_fenced, timeout=30, what="the fencing policy refusing")
        assert f"spec.outOfService of Host {host} fences the host" in refused.stderr
        assert "only a cluster administrator may set or clear it" in refused.stderr
        drained = a_host(host, schedulable=False, drain=True)
        refused_drain = apiserver.kubectl(
            "create", "-f", "-", input=as_yaml(drained), kubeconfig=config, check=False
        )
        assert refused_drain.returncode != 0
        assert f"spec.drain of Host {host} moves every guest off" in refused_drain.stderr
        # The agent registers its Host as it always did; the admin fences it.
        apiserver.kubectl("create", "-f", "-", input=as_yaml(a_host(host)), kubeconfig=config)
        apiserver.kubectl(
            "patch", "host", host, "--type=merge", "-p", '{"spec":{"outOfService":true}}'
        )
        shown = apiserver.kubectl("get", "host", host, "-o", "jsonpath={.spec.outOfService}").stdout
        assert shown == "true"
    finally:
        apiserver.kubectl("delete", "host", host, "--wait=false", check=False)
