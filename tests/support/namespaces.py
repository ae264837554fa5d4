"""Namespaces on a control plane without kube-controller-manager.

Nothing finishes deleting a namespace there: a deleted one stays Terminating forever, and
a later test that needs the same name (an example Project's namespace, say) would wait for
it in vain. `finish_terminating` does what the namespace controller would at the end.
"""

from __future__ import annotations

import json

from kubenova.devcluster import ClusterAccess


def finish_terminating(cluster: ClusterAccess, *names: str) -> None:
    """Let Terminating namespaces among `names` go (empty their spec.finalizers)."""
    for name in names:
        got = cluster.kubectl("get", "namespace", name, "-o", "json", check=False)
        if got.returncode != 0:
            continue
        namespace = json.loads(got.stdout)
        if (namespace.get("status") or {}).get("phase") != "Terminating":
            continue
        namespace["spec"]["finalizers"] = []
        cluster.kubectl(
            "replace",
            "--raw",
            f"/api/v1/namespaces/{name}/finalize",
            "-f",
            "-",
            input=json.dumps(namespace),
        )
