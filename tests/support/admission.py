"""Hold an operator's hand-overs with the apiserver's own admission, not with timing.

A test that kills the operator "mid-drain" needs the drain unfinished when the signal
lands. Sleeping or polling first races a drain that gets faster every release. Refusing
the status writes that set `status.host` for some Instances (a ValidatingAdmissionPolicy,
as an admin would install one) makes the drain unable to finish by construction: the
operator claims them in the inventory as always, its hand-over is refused and retried,
and nothing in the product is changed or told. Removed, the next write goes through.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from kubenova.devcluster import ClusterAccess
from tests.support.waiting import eventually


def _policy(name: str, namespace: str, names: list[str]) -> list[dict[str, object]]:
    held = json.dumps(sorted(names))  # a JSON list of strings is a CEL list literal
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["kubenova.io"],
                        "apiVersions": ["*"],
                        "operations": ["UPDATE"],
                        "resources": ["instances/status"],
                    }
                ]
            },
            "matchConditions": [
                {
                    "name": "held-by-the-test",
                    "expression": f"request.namespace == '{namespace}' && "
                    f"object.metadata.name in {held}",
                }
            ],
            "validations": [
                {
                    "expression": "object.status.?host.orValue('') == ''",
                    "message": "hand-over held by the test",
                }
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }
    return [policy, binding]


def _refused(cluster: ClusterAccess, namespace: str, name: str) -> bool:
    probe = cluster.kubectl(
        "patch",
        "instance",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"host": "held-probe"}}),
        "--dry-run=server",
        check=False,
    )
    return probe.returncode != 0 and "hand-over held by the test" in probe.stderr


@contextmanager
def hand_overs_refused(cluster: ClusterAccess, namespace: str, names: list[str]) -> Iterator[None]:
    """While inside, no status write may set `status.host` on Instance `names` in `namespace`.

    The Instance `names[0]` must exist: entered, the policy is in force (the apiserver
    loads policies asynchronously), proved by a server-side dry run of such a write on it
    being refused. The policy is named after the namespace, unique per test.
    """
    name = f"test-hold-{namespace}"
    documents = _policy(name, namespace, names)
    cluster.kubectl("apply", "-f", "-", input="\n".join(json.dumps(d) for d in documents))
    try:
        eventually(
            lambda: _refused(cluster, namespace, names[0]),
            timeout=30,
            interval=0.2,
            what=f"the hand-over hold on {namespace} in force",
        )
        yield
    finally:
        cluster.kubectl(
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            name,
            "--ignore-not-found",
            "--wait=false",
        )
