"""`kubectl apply -R -f examples` as the README says, for real, against the admission webhook.

The operator runs with its webhook, which refuses an Instance whose Flavor, Image, Network
or Volume does not exist: the whole folder goes in with one command, into a namespace of
the test's own (no example names one), because the file names put references first.
Only the Image comes from elsewhere (`kubenova image upload` makes it; here a manifest
with its name). Every object is then there, and the webhook was really judging: the
Instance alone, in a namespace without its Network and Volume, is refused.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubenova.devcluster import ClusterAccess
from tests.builders import an_image, as_yaml
from tests.fixtures.operator import OperatorProcess, clean_slate
from tests.fixtures.webhook import serving_webhook
from tests.support.namespaces import finish_terminating

pytestmark = pytest.mark.apiserver

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
IMAGE = "busybox-test"
KINDS = {"Flavor", "Project", "Network", "Volume", "Instance"}


def example_objects() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(EXAMPLES.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


@pytest.fixture
def webhook(
    apiserver: ClusterAccess, crds_installed: list[str], inventory_url: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator serving its admission webhook; the configuration is removed afterwards."""
    clean_slate(apiserver)
    process = OperatorProcess(
        kubeconfig=apiserver.kubeconfig,
        database_url=inventory_url,
        log_path=tmp_path / "operator.log",
        env=dict(os.environ),
        extra_args=("--webhook-port", "0"),
    )
    with serving_webhook(apiserver, process):
        yield process


NAMESPACED = (
    "instances.kubenova.io,volumes.kubenova.io,networks.kubenova.io,servergroups.kubenova.io"
)


def _remove(cluster: ClusterAccess, namespaces: list[str]) -> None:
    """Every example object, the Image and the namespaces go (finalizers stripped)."""
    no_finalizers = ("--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    for namespace in namespaces:
        listed = cluster.kubectl("get", NAMESPACED, "-n", namespace, "-o", "name", check=False)
        for name in listed.stdout.split():
            cluster.kubectl("patch", name, "-n", namespace, *no_finalizers, check=False)
        cluster.kubectl("delete", NAMESPACED, "--all", "-n", namespace, "--wait=false", check=False)
    cluster_wide = [
        f"{doc['kind'].lower()}.kubenova.io/{doc['metadata']['name']}"
        for doc in example_objects()
        if doc["kind"] in ("Flavor", "Project")
    ]
    for name in cluster_wide:
        cluster.kubectl("patch", name, *no_finalizers, check=False)
    cluster.kubectl("delete", *cluster_wide, f"images.kubenova.io/{IMAGE}", "--wait=false",
                    check=False)  # fmt: skip
    cluster.kubectl("delete", "namespace", *namespaces, "--wait=false", check=False)
    projects = [d["metadata"]["name"] for d in example_objects() if d["kind"] == "Project"]
    finish_terminating(cluster, *namespaces, *projects)


def test_the_examples_folder_applies_recursively_through_the_webhook(
    webhook: OperatorProcess, apiserver: ClusterAccess
) -> None:
    namespace, empty = f"ex-{uuid.uuid4().hex[:6]}", f"ex-{uuid.uuid4().hex[:6]}"
    projects = [d["metadata"]["name"] for d in example_objects() if d["kind"] == "Project"]
    finish_terminating(apiserver, *projects)  # an earlier test's example Project
    for name in (namespace, empty):
        apiserver.kubectl("create", "namespace", name)
    try:
        # What `kubenova image upload` makes; an earlier test's Image of that name may have
        # another spec, which is immutable: made afresh.
        apiserver.kubectl("delete", "image", IMAGE, "--ignore-not-found", "--wait=true")
        apiserver.kubectl("apply", "-f", "-", input=as_yaml(an_image(IMAGE, minMemoryMiB=96)))

        applied = apiserver.kubectl(
            "apply", "-R", "-f", str(EXAMPLES), "-n", namespace, check=False
        )
        instance_alone = apiserver.kubectl(
            "apply", "-f", str(EXAMPLES / "30-instance.yaml"), "-n", empty, check=False
        )

        assert applied.returncode == 0, applied.stderr
        objects = example_objects()
        assert {d["kind"] for d in objects} >= KINDS
        listed = {
            (item["kind"], item["metadata"]["name"]): item
            for args in (
                ("flavors.kubenova.io,projects.kubenova.io",),
                (NAMESPACED, "-n", namespace),
            )
            for item in json.loads(apiserver.kubectl("get", *args, "-o", "json").stdout)["items"]
        }
        for doc in objects:
            meta = doc["metadata"]
            assert "namespace" not in meta, f"{doc['kind']} {meta['name']} names a namespace"
            got = listed.get((doc["kind"], meta["name"]))
            assert got is not None, f"{doc['kind']} {meta['name']} was not created"
            assert set(doc["spec"]) <= set(got["spec"]), f"{doc['kind']} {meta['name']}: {got}"
        assert instance_alone.returncode != 0
        assert "denied the request" in instance_alone.stderr, instance_alone.stderr
        # Only manifests (and a README, which kubectl skips) in the folder.
        files = [path for path in EXAMPLES.rglob("*") if path.is_file()]
        assert {path.suffix for path in files} <= {".yaml", ".md"}, files
        assert all(doc.get("apiVersion") and doc.get("kind") for doc in objects)
    finally:
        _remove(apiserver, [namespace, empty])
    assert "Traceback" not in webhook.log()
