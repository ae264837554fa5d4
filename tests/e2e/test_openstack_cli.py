"""The unmodified `openstack` CLI and openstacksdk against `kubenova api`, the real apiserver,
the operator (webhook, quota, database auth backend) and a host agent.

python-openstackclient and openstacksdk come from PyPI, pinned, into a tool venv cached
under ~/.cache/kubenova/openstackclient-<version> (never the project's lock). The agent
runs libvirt's test driver: the whole flow of a server (create --wait, stop, start,
reboot, volumes, floating IPs, delete --wait) without a guest to boot.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import random
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubenova.cli.api import DEV_CLOUD, start_dev_api, stop_dev_api
from kubenova.devcluster import ClusterAccess
from kubenova.devcluster.binaries import cache_bin_dir
from kubenova.devcluster.libvirtd import PrivateLibvirtd
from kubenova.devcluster.objectstore import ObjectStoreAccess
from kubenova.openstack.views import server_status
from kubenova.operator import inventory as inv
from kubenova.operator.auth import Role
from kubenova.operator.auth import db as auth_db
from tests.builders import a_flavor, a_network, a_project, as_yaml
from tests.e2e.test_real_vm import upload
from tests.fixtures.agent import AgentFactory
from tests.fixtures.operator import OperatorProcess, clean_slate
from tests.fixtures.test_image import GuestImage
from tests.fixtures.tgtd import TgtDaemon
from tests.fixtures.webhook import forget_webhook
from tests.integration.operator.test_scheduling import wait_ready
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.s3]

OPENSTACKCLIENT = "10.5.0"
OPENSTACKSDK = "4.22.0"
TOOLS = Path.home() / ".cache" / "kubenova" / f"openstackclient-{OPENSTACKCLIENT}"
FLOATING_POOL = "198.51.100.32/28"
# Its own subnet: the real guest's bridge and dnsmasq live on this machine beside other tests'.
PRIVATE_CIDR = f"10.{random.randrange(100, 200)}.{random.randrange(256)}.0/24"
PASSWORD = "correct horse battery staple"
CHART = Path(__file__).resolve().parents[2] / "charts" / "kubenova"
API_USER = "kubenova-openstack-api"  # the API's identity here, bound to the chart's ClusterRole
IMAGE_LIMIT = 1024 * 1024  # bytes an upload may have here (the 413 test's file is larger)


def chart_cluster_role() -> dict[str, Any]:
    """The ClusterRole the chart gives the API's ServiceAccount: exactly what it runs with here."""
    rendered = subprocess.run(
        [
            str(cache_bin_dir() / "helm"), "template", "kubenova", str(CHART),
            "-n", "kubenova-system", "--kube-version=1.33.5",
            "--show-only=templates/openstack-rbac.yaml",
            "--set=openstackApi.enabled=true", "--set=database.type=postgresql",
            "--set=database.postgresql.url=postgresql+psycopg://unused@localhost/unused",
        ],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    role: dict[str, Any] = next(d for d in docs if d["kind"] == "ClusterRole")
    return role


def openstack_tools() -> Path:
    """The tool venv with the pinned clients, made once (a marker says it is complete)."""
    marker = TOOLS / ".complete"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(TOOLS)], check=True)
        subprocess.run(
            [
                str(TOOLS / "bin" / "pip"),
                "install",
                "--quiet",
                f"python-openstackclient=={OPENSTACKCLIENT}",
                f"openstacksdk=={OPENSTACKSDK}",
            ],
            check=True,
            timeout=900,
        )
        marker.touch()
    return TOOLS


@dataclass(kw_only=True)
class ApiProcess(ManagedProcess):
    kubeconfig: Path
    database_url: str
    image_bucket: str
    port: int = field(default_factory=free_port)

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "kubenova.cli",
            "api",
            "--kubeconfig",
            str(self.kubeconfig),
            "--url",
            self.database_url,
            "--port",
            str(self.port),
            "--image-bucket",
            self.image_bucket,
            f"--image-size-limit={IMAGE_LIMIT}",
        ]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cloud:
    cluster: ClusterAccess
    api: ApiProcess
    tools: Path
    clouds_yaml: Path
    projects: dict[str, str]  # user -> project
    namespaces: dict[str, str]  # project -> namespace
    database_url: str
    s3: ObjectStoreAccess
    factory: AgentFactory  # starts the real guest's host
    suffix: str  # of every name this module makes on the shared apiserver and host

    def env(self, user: str) -> dict[str, str]:
        """The clients' environment: `user`'s cloud, nothing of the project's Python."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_") and k != "PYTHONPATH"}
        return env | {"OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml), "OS_CLOUD": user}

    def openstack(
        self, user: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.tools / "bin" / "openstack"), *args],
            capture_output=True,
            text=True,
            env=self.env(user),
            timeout=180,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"openstack {' '.join(args)} failed ({result.returncode}):\n{result.stderr}\n"
                f"--- api log ---\n{self.api.log()[-4000:]}"
            )
        return result

    def json(self, user: str, *args: str) -> Any:
        return json.loads(self.openstack(user, *args, "-f", "json").stdout)

    def status_becomes(self, user: str, server: str, status: str) -> None:
        """Waited for on the Instance `server` names, with the API's own mapping (a CLI call
        costs seconds on a loaded machine), then shown by the CLI."""
        eventually(
            lambda: server_status(self.instance(user, server) or {})[0] == status,
            timeout=90, interval=0.5, what=f"{server} {status}",
        )  # fmt: skip
        eventually(
            lambda: self.json(user, "server", "show", server)["status"] == status,
            timeout=30, interval=0.5, what=f"{server} {status} in `server show`",
        )  # fmt: skip

    def instance(self, user: str, name: str) -> dict[str, Any] | None:
        namespace = self.namespaces[self.projects[user]]
        result = self.cluster.kubectl(
            "get", "instance", name, "-n", namespace, "-o", "json", check=False
        )
        return json.loads(result.stdout) if result.returncode == 0 else None


def project_ready(cluster: ClusterAccess, name: str) -> dict[str, Any] | None:
    result = cluster.kubectl("get", "project", name, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    body: dict[str, Any] = json.loads(result.stdout)
    conditions = (body.get("status") or {}).get("conditions") or []
    return body if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) else None


@pytest.fixture(scope="module")
def cloud(
    apiserver: ClusterAccess,
    crds_installed: list[str],
    s3: ObjectStoreAccess,
    test_image: GuestImage,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cloud]:
    tools = openstack_tools()
    root = tmp_path_factory.mktemp("osapi")
    url = f"sqlite:///{root / 'inventory.db'}"
    inv.upgrade(url)
    clean_slate(apiserver)
    suffix = uuid.uuid4().hex[:6]
    first, second = f"osa-{suffix}", f"osb-{suffix}"
    # alice and bob: members of one project each; carol: alice's project, and a cloud
    # administrator (may list Hosts), who alone is shown where servers run.
    users = {f"alice-{suffix}": first, f"bob-{suffix}": second, f"carol-{suffix}": first}
    engine = inv.make_engine(url)
    for project in (first, second):
        auth_db.create_project(engine, project)
    for user, project in users.items():
        auth_db.create_user(engine, user, password=PASSWORD)
        auth_db.grant(engine, user, project, Role.MEMBER)
    engine.dispose()
    operator = OperatorProcess(
        kubeconfig=apiserver.kubeconfig,
        database_url=url,
        log_path=root / "operator.log",
        env={**os.environ, "KUBENOVA_FLOATING_IP_POOL": FLOATING_POOL},
        extra_args=("--project-sync-interval", "1", "--webhook-port", "0"),
    )
    operator.start()
    agents = AgentFactory(apiserver, root / "agents")
    # The API's own identity: only what openstack-rbac.yaml grants the chart's ServiceAccount.
    apiserver.kubectl(
        "create",
        "clusterrole",
        f"hosts-{suffix}",
        "--verb=get,list",
        "--resource=hosts.kubenova.io",
    )
    apiserver.kubectl(
        "create", "clusterrolebinding", f"hosts-{suffix}", f"--clusterrole=hosts-{suffix}",
        f"--user=carol-{suffix}",
    )  # fmt: skip
    # ... and may create Images (upload); alice and bob, project members, may not.
    apiserver.kubectl(
        "create", "clusterrole", f"images-{suffix}", "--verb=create,delete",
        "--resource=images.kubenova.io",
    )  # fmt: skip
    apiserver.kubectl(
        "create", "clusterrolebinding", f"images-{suffix}", f"--clusterrole=images-{suffix}",
        f"--user=carol-{suffix}",
    )  # fmt: skip
    role = chart_cluster_role()
    # Its own name: the session's apiserver is shared, and a Helm release of the chart in
    # a later test must not find an object of that name it does not own.
    role["metadata"]["name"] += f"-{suffix}"
    apiserver.kubectl("apply", "-f", "-", input=as_yaml(role))
    apiserver.kubectl(
        "create", "clusterrolebinding", f"{API_USER}-{suffix}",
        f"--clusterrole={role['metadata']['name']}", f"--user={API_USER}",
    )  # fmt: skip
    api = ApiProcess(
        log_path=root / "api.log",
        env=os.environ
        | {
            "KUBENOVA_S3_ENDPOINT": s3.url,
            "KUBENOVA_S3_ACCESS_KEY": s3.access_key,
            "KUBENOVA_S3_SECRET_KEY": s3.secret_key,
        },
        kubeconfig=apiserver.user_kubeconfig(API_USER),
        database_url=url,
        image_bucket=f"osapi-{suffix}",
    )
    try:
        apiserver.kubectl(
            "apply",
            "-f",
            "-",
            input=as_yaml(
                a_flavor("m1.tiny", vcpus=1, memory=128, disk=1),
                a_project(first, quota={"instances": 2, "volumeGiB": 4}),
                a_project(second),
            ),
        )
        # The real test guest (its bytes in the store): the fake host never reads them, the
        # real guest's host boots it.
        upload(apiserver, s3, f"osapi-{suffix}", test_image, "busybox-test")
        namespaces = {}
        for project in (first, second):
            body = eventually(lambda p=project: project_ready(apiserver, p), timeout=60,
                              what=f"project {project} Ready")  # fmt: skip
            namespaces[project] = body["status"]["namespace"]
        apiserver.kubectl(
            "apply", "-f", "-",
            input=as_yaml(a_network("private", namespaces[first], cidr=PRIVATE_CIDR)),
        )  # fmt: skip
        agents.start(
            f"os-{suffix}",
            capacity="vcpus=8,memoryMiB=4096,diskGiB=100",
            extra=("--services=compute,volume", "--fake-exports", "--storage-interface=lo"),
        )
        wait_ready(apiserver, f"os-{suffix}")
        api.start()
        clouds = {
            user: {
                "auth": {
                    "auth_url": f"{api.url}/identity",
                    "username": user,
                    "password": PASSWORD,
                    "project_name": project,
                    "user_domain_name": "Default",
                    "project_domain_name": "Default",
                },
                "region_name": "RegionOne",
                "identity_api_version": 3,
            }
            for user, project in users.items()
        }
        clouds_yaml = root / "clouds.yaml"
        clouds_yaml.write_text(yaml.safe_dump({"clouds": clouds}))
        made = Cloud(apiserver, api, tools, clouds_yaml, users, namespaces, url, s3, agents, suffix)
        first_user = next(iter(users))
        eventually(
            lambda: made.openstack(first_user, "flavor", "list", check=False).returncode == 0,
            timeout=60, what="the API answering",
        )  # fmt: skip
        yield made
    finally:
        api.stop()
        agents.stop_all()
        operator.stop()
        clean_slate(apiserver)
        for kind, name in (("clusterrolebinding", f"hosts-{suffix}"),
                           ("clusterrole", f"hosts-{suffix}"),
                           ("clusterrolebinding", f"images-{suffix}"),
                           ("clusterrole", f"images-{suffix}"),
                           ("clusterrolebinding", f"{API_USER}-{suffix}"),
                           ("clusterrole", role["metadata"]["name"])):  # fmt: skip
            apiserver.kubectl("delete", kind, name, check=False)
        forget_webhook(apiserver)  # the stopped operator's would refuse every later create


def test_a_server_lives_and_dies_through_the_openstack_cli(cloud: Cloud) -> None:
    alice, bob, _ = list(cloud.projects)
    server = cloud.json(
        alice, "server", "create", "--flavor", "m1.tiny", "--image", "busybox-test",
        "--network", "private", "vm1", "--wait",
    )  # fmt: skip
    assert server["status"] == "ACTIVE"
    body = cloud.instance(alice, "vm1")
    assert body is not None
    assert body["metadata"]["uid"] == server["id"]  # one truth
    listed = cloud.json(alice, "server", "list")
    assert [s["Name"] for s in listed] == ["vm1"]
    # a tenant never learns the host (the SDK lists the field, empty)
    assert cloud.json(alice, "server", "show", "vm1").get("OS-EXT-SRV-ATTR:host") is None

    cloud.openstack(alice, "server", "stop", "vm1")
    cloud.status_becomes(alice, "vm1", "SHUTOFF")
    cloud.openstack(alice, "server", "start", "vm1")
    cloud.status_becomes(alice, "vm1", "ACTIVE")
    cloud.openstack(alice, "server", "reboot", "vm1", "--wait")
    assert cloud.json(alice, "server", "show", "vm1")["status"] == "ACTIVE"

    # rename: the server's name changes, the Instance's (its identity) and the id do not
    cloud.openstack(alice, "server", "set", "--name", "Web server 1", "vm1")
    renamed = cloud.json(alice, "server", "show", "Web server 1")
    assert (renamed["id"], renamed["name"]) == (server["id"], "Web server 1")
    annotations = (cloud.instance(alice, "vm1") or {})["metadata"]["annotations"]
    assert annotations["openstack.kubenova.io/display-name"] == "Web server 1"
    assert [s["Name"] for s in cloud.json(alice, "server", "list")] == ["Web server 1"]
    padded = cloud.openstack(alice, "server", "set", "--name", " x", server["id"], check=False)
    assert padded.returncode != 0
    assert "no leading or trailing whitespace" in padded.stderr
    cloud.openstack(alice, "server", "set", "--name", "vm1", server["id"])  # back: no annotation
    annotations = (cloud.instance(alice, "vm1") or {})["metadata"].get("annotations") or {}
    assert "openstack.kubenova.io/display-name" not in annotations

    console = cloud.openstack(alice, "console", "log", "show", "vm1").stdout
    tail = ((cloud.instance(alice, "vm1") or {}).get("status") or {}).get("console") or {}
    assert console.strip() == (tail.get("tail") or "").strip()

    volume = cloud.json(alice, "volume", "create", "--size", "1", "data1")
    eventually(
        lambda: cloud.json(alice, "volume", "show", volume["id"])["status"] == "available",
        timeout=60, interval=0.5, what="data1 available",
    )  # fmt: skip
    # over the project's 4 GiB of volumes: Cinder's 413 and words
    over = cloud.openstack(alice, "volume", "create", "--size", "4", "data2", check=False)
    assert over.returncode != 0
    assert "413: Client Error" in over.stderr
    assert (
        "Requested volume or snapshot exceeds allowed gigabytes quota. Requested 4G, quota is "
        "4G and 1G has been consumed." in over.stderr
    )
    cloud.openstack(alice, "server", "add", "volume", "vm1", "data1")
    spec = (cloud.instance(alice, "vm1") or {})["spec"]
    assert spec["volumes"] == [{"volume": "data1"}]
    cloud.openstack(alice, "server", "remove", "volume", "vm1", "data1")
    assert not (cloud.instance(alice, "vm1") or {})["spec"].get("volumes")
    group = cloud.json(alice, "server", "group", "create", "--policy", "anti-affinity", "spread")
    assert group["policy"] == "anti-affinity"

    # another project's user: that server does not exist for them
    other = cloud.openstack(bob, "server", "show", server["id"], check=False)
    assert other.returncode != 0
    assert "No Server found" in other.stderr + other.stdout

    # wrong password
    wrong = cloud.openstack(alice, "--os-password", "nope", "server", "list", check=False)
    assert wrong.returncode != 0
    assert "401" in wrong.stderr

    # Held by a finalizer of the test's own, a server being deleted is what Nova shows while
    # its compute host tears it down: its status, task_state deleting, and no actions; never
    # DELETED, which ends openstacksdk's wait_for_delete, so `server delete --wait` returned
    # while the Instance still existed.
    namespace = cloud.namespaces[cloud.projects[alice]]
    cloud.cluster.kubectl(
        "patch", "instance", "vm1", "-n", namespace, "--type=json",
        "-p", '[{"op": "add", "path": "/metadata/finalizers/-", "value": "test.kubenova.io/hold"}]',
    )  # fmt: skip
    waiting = subprocess.Popen(
        [str(cloud.tools / "bin" / "openstack"), "server", "delete", "vm1", "--wait"],
        env=cloud.env(alice), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        eventually(
            lambda: (
                (cloud.instance(alice, "vm1") or {})["metadata"].get("finalizers")
                == ["test.kubenova.io/hold"]
            ),
            timeout=60,
            what="vm1 torn down, held by the test's finalizer",
        )
        held = cloud.json(alice, "server", "show", "vm1")
        assert (held["status"], held["OS-EXT-STS:task_state"]) == ("ACTIVE", "deleting")
        refused = cloud.openstack(alice, "server", "stop", "vm1", check=False)
        assert refused.returncode != 0
        assert "while it is in task_state deleting" in refused.stderr
        assert waiting.poll() is None, waiting.communicate()  # still waiting: vm1 exists
    finally:
        cloud.cluster.kubectl(
            "patch", "instance", "vm1", "-n", namespace, "--type=merge",
            "-p", '{"metadata": {"finalizers": null}}',
        )  # fmt: skip
    _, stderr = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, stderr
    assert cloud.instance(alice, "vm1") is None


def test_an_image_uploaded_with_the_cli_is_streamed_hashed_and_ruled_by_rbac(
    cloud: Cloud, tmp_path: Path
) -> None:
    alice, _, carol = list(cloud.projects)
    disk = tmp_path / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    data = disk.read_bytes()
    name = f"up-{uuid.uuid4().hex[:6]}"
    create = ("image", "create", "--disk-format", "qcow2", "--file", str(disk))

    # a project member may not create Images: refused before a byte is stored
    refused = cloud.openstack(alice, *create, name, check=False)
    assert refused.returncode != 0
    assert "You are not authorized to create images" in refused.stderr
    assert not cloud.json(alice, "image", "list", "--name", name)

    cloud.openstack(carol, *create, name)
    shown = cloud.json(carol, "image", "show", name)
    assert shown["status"] == "active"
    # the CLI shows the hash among the properties
    assert shown["properties"]["os_hash_algo"] == "sha256"
    assert shown["properties"]["os_hash_value"] == hashlib.sha256(data).hexdigest()
    assert shown["checksum"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert shown["size"] == len(data)
    body = json.loads(cloud.cluster.kubectl("get", "image", name, "-o", "json").stdout)
    assert body["metadata"]["uid"] == shown["id"]  # one truth
    assert body["spec"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["status"] == {"phase": "Available", "sizeBytes": len(data), "observedGeneration": 1}
    source = body["spec"]["source"]
    stored = cloud.s3.client.get_object(source["bucket"], source["key"])
    try:
        assert stored.read() == data
    finally:
        stored.close()
        stored.release_conn()

    # the declared format must be the data's
    raw = tmp_path / "disk.raw"
    raw.write_bytes(b"\0" * 65536)
    wrong = cloud.openstack(carol, *create[:-1], str(raw), f"{name}-x", check=False)
    assert wrong.returncode != 0
    assert "the data is a raw image, not qcow2" in wrong.stderr

    # over the size limit: Glance's 413
    big = tmp_path / "big.raw"
    big.write_bytes(b"\1" * (IMAGE_LIMIT + 4096))
    over = cloud.openstack(
        carol, "image", "create", "--disk-format", "raw", "--file", str(big), f"{name}-y",
        check=False,
    )  # fmt: skip
    assert over.returncode != 0
    assert "413" in over.stderr
    assert "Image exceeds the size limit" in over.stderr
    for leftover in (f"{name}-x", f"{name}-y"):
        assert not cloud.json(carol, "image", "list", "--name", leftover)

    cloud.openstack(carol, "image", "delete", name)
    assert cloud.cluster.kubectl("get", "image", name, check=False).returncode != 0


def console_log(cloud: Cloud, user: str, server: str) -> str:
    return cloud.openstack(user, "console", "log", "show", server).stdout


@pytest.mark.libvirt
@pytest.mark.tgt
def test_a_real_guest_boots_and_reboots_through_the_openstack_cli(
    cloud: Cloud, libvirtd: PrivateLibvirtd, test_image: GuestImage, tgtd: TgtDaemon
) -> None:
    """The one real TCG guest of this module: on a host of its own zone (its own private
    libvirtd), so every other server here stays on the fast fake host. The host's volume
    service exports the zone's volumes from this test's own tgtd (its own control port and
    portal), and the guest's QEMU logs in to it over loopback."""
    alice = next(iter(cloud.projects))
    host, zone = f"osreal-{cloud.suffix}", f"real-{cloud.suffix}"
    agent = cloud.factory.start(
        host,
        libvirt_uri=libvirtd.uri,
        domain_type="qemu",
        zone=zone,
        capacity="vcpus=2,memoryMiB=2048,diskGiB=20",
        env=cloud.s3.env(),
        # resyncs (which re-read the console tail) every 3 s, not 60: the waits below read it
        extra=("--services=compute,network,volume", "--underlay-ip=127.0.0.1",
               "--resync-interval=3", "--network-teardown-on-exit",
               f"--tgt-control-port={tgtd.control_port}", f"--iscsi-portal={tgtd.portal}"),
    )  # fmt: skip
    try:
        wait_ready(cloud.cluster, host)
        server = cloud.json(
            alice, "server", "create", "--flavor", "m1.tiny", "--image", "busybox-test",
            "--network", "private", "--availability-zone", zone, "vm1", "--wait",
        )  # fmt: skip
        assert server["status"] == "ACTIVE"
        status = (cloud.instance(alice, "vm1") or {})["status"]
        assert (status["host"], status["domain"]["type"]) == (host, "qemu")
        marker = test_image.ready_marker

        def booted_again(before: str, what: str) -> str:
            """The console `console log show` prints once it shows the marker of a boot after
            `before`. Waited for on the Instance (a CLI call costs seconds), then shown by the
            CLI."""

            def new_boot(text: str) -> str:
                return text if marker in text and text != before else ""

            def tail() -> str:
                # as the API shows it (lines joined by "\n"): compared with `before`, which the
                # CLI printed, a raw tail would always differ and end this wait at once
                console = ((cloud.instance(alice, "vm1") or {}).get("status") or {}).get("console")
                lines = str((console or {}).get("tail") or "").splitlines()
                return new_boot("\n".join(lines) + ("\n" if lines else ""))

            eventually(tail, timeout=120, interval=0.5, what=what)
            return eventually(lambda: new_boot(console_log(cloud, alice, "vm1")), timeout=30,
                              interval=0.5, what=f"{what}, shown by the CLI")  # fmt: skip

        booted = booted_again("", "the guest's marker")
        cloud.openstack(alice, "server", "stop", "vm1")
        cloud.status_becomes(alice, "vm1", "SHUTOFF")
        cloud.openstack(alice, "server", "start", "vm1")
        cloud.status_becomes(alice, "vm1", "ACTIVE")
        booted = booted_again(booted, "the marker of a new boot after start")
        cloud.openstack(alice, "server", "reboot", "vm1", "--wait")
        booted_again(booted, "the marker of a new boot after reboot")
        hot_plug_a_real_volume(cloud, alice, zone, tgtd)
        cloud.openstack(alice, "server", "delete", "vm1", "--wait")
        assert cloud.instance(alice, "vm1") is None
    finally:
        agent.stop()
    assert "Traceback" not in agent.log(), agent.log()[-3000:]


def hot_plug_a_real_volume(cloud: Cloud, user: str, zone: str, tgtd: TgtDaemon) -> None:
    """rv1, created in the real host's zone, is exported by tgtd; `server add volume` makes
    the guest print the disk it sees appear, `server remove volume` the disk leaving (the
    guest had no volume before: any such line is this one's)."""
    volume = cloud.json(user, "volume", "create", "--size", "1", "--availability-zone", zone,
                        "rv1")  # fmt: skip
    eventually(
        lambda: cloud.json(user, "volume", "show", "rv1")["status"] == "available",
        timeout=60, interval=1, what="rv1 available",
    )  # fmt: skip
    assert len(tgtd.target_names()) == 1, tgtd.target_names()

    def console_tail() -> str:
        console = ((cloud.instance(user, "vm1") or {}).get("status") or {}).get("console")
        return str((console or {}).get("tail") or "")

    cloud.openstack(user, "server", "add", "volume", "vm1", "rv1")
    eventually(lambda: "KUBENOVA-BLOCK-ADDED vd" in console_tail(), timeout=120,
               interval=0.5, what="the guest's hot-added disk")  # fmt: skip
    added = re.findall(r"KUBENOVA-BLOCK-ADDED (vd[a-z]+)", console_log(cloud, user, "vm1"))
    assert added, "the CLI's console log lacks the hot-added disk"
    shown = eventually(
        lambda: (v := cloud.json(user, "volume", "show", "rv1"))["status"] == "in-use" and v,
        timeout=60, interval=1, what="rv1 in-use",
    )  # fmt: skip
    server = cloud.json(user, "server", "show", "vm1")
    assert [a["server_id"] for a in shown["attachments"]] == [server["id"]], shown
    assert shown["attachments"][0]["device"] == f"/dev/{added[-1]}", (shown, added)
    assert [v["id"] for v in server["volumes_attached"]] == [volume["id"]], server
    cloud.openstack(user, "server", "remove", "volume", "vm1", "rv1")
    eventually(lambda: f"KUBENOVA-BLOCK-REMOVED {added[-1]}" in console_tail(),
               timeout=120, interval=0.5, what="the disk gone from the guest")  # fmt: skip
    eventually(
        lambda: cloud.json(user, "volume", "show", "rv1")["status"] == "available",
        timeout=60, interval=1, what="rv1 available again",
    )  # fmt: skip
    assert not cloud.json(user, "server", "show", "vm1")["volumes_attached"]
    cloud.openstack(user, "volume", "delete", "rv1")
    eventually(lambda: tgtd.target_names() == [], timeout=60, what="rv1's target gone")


SDK_SCRIPT = """
import json, sys
import openstack

conn = openstack.connect(cloud=sys.argv[1])
image = conn.image.find_image("busybox-test", ignore_missing=False)
flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
network = conn.network.find_network("private", ignore_missing=False)
created = []
for name in sys.argv[2:]:
    try:
        server = conn.compute.create_server(
            name=name, image_id=image.id, flavor_id=flavor.id, networks=[{"uuid": network.id}]
        )
        server = conn.compute.wait_for_server(server, wait=120)
        created.append({"name": name, "status": server.status})
    except openstack.exceptions.HttpException as exc:
        created.append({"name": name, "code": exc.status_code, "message": exc.details})
print(json.dumps(created))
"""


def test_openstacksdk_creates_and_waits_and_meets_the_quota(cloud: Cloud) -> None:
    alice = next(iter(cloud.projects))
    result = subprocess.run(
        [str(cloud.tools / "bin" / "python"), "-c", SDK_SCRIPT, alice, "sdk1", "sdk2", "sdk3"],
        capture_output=True, text=True, timeout=300, check=False, env=cloud.env(alice),
        cwd=cloud.clouds_yaml.parent,  # not the checkout: its operator/ shadows the stdlib
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    first, second, third = json.loads(result.stdout)
    assert first == {"name": "sdk1", "status": "ACTIVE"}
    assert second == {"name": "sdk2", "status": "ACTIVE"}
    # the project's quota is 2 instances: Nova's code and words
    assert third["code"] == 403
    assert "Quota exceeded for instances: Requested 1, but already used 2 of 2" in third["message"]
    alice_view = cloud.json(alice, "server", "show", "sdk1")
    carol = next(u for u in cloud.projects if u.startswith("carol-"))
    carol_view = cloud.json(carol, "server", "show", "sdk1")
    instance = cloud.instance(alice, "sdk1") or {}
    assert alice_view.get("OS-EXT-SRV-ATTR:host") is None
    assert carol_view["OS-EXT-SRV-ATTR:host"] == instance["status"]["host"]
    for name in ("sdk1", "sdk2"):
        cloud.openstack(alice, "server", "delete", name, "--wait")


def test_the_dev_cloud_api_and_its_clouds_yaml_work(
    cloud: Cloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `kubenova dev up` adds: the API as a detached process, user dev (admin of
    Project dev), a clouds.yaml beside the kubeconfig; OS_CLOUD=kubenova-dev works."""
    monkeypatch.setenv("KUBENOVA_DEV_OPENSTACK_PORT", str(free_port()))
    clouds = start_dev_api(cloud.cluster, tmp_path, cloud.database_url, lambda _: None)
    try:
        assert clouds == cloud.cluster.kubeconfig.parent / "clouds.yaml"
        env = cloud.env("unused") | {"OS_CLIENT_CONFIG_FILE": str(clouds), "OS_CLOUD": DEV_CLOUD}

        def listed() -> bool:
            result = subprocess.run(
                [str(cloud.tools / "bin" / "openstack"), "server", "list", "-f", "json"],
                capture_output=True, text=True, env=env, timeout=120, check=False,
            )  # fmt: skip
            return result.returncode == 0 and json.loads(result.stdout) == []

        eventually(listed, timeout=90, interval=1, what="the dev cloud answering")
    finally:
        assert stop_dev_api(tmp_path) == ["openstack-api"]
        cloud.cluster.kubectl("delete", "project", "dev", "--wait=false", check=False)


def test_a_floating_ip_is_added_to_and_removed_from_a_running_server(cloud: Cloud) -> None:
    alice = next(iter(cloud.projects))
    project = cloud.projects[alice]
    cloud.json(
        alice, "server", "create", "--flavor", "m1.tiny", "--image", "busybox-test",
        "--network", "private", "fip1", "--wait",
    )  # fmt: skip
    cloud.openstack(
        alice, "server", "create", "--flavor", "m1.tiny", "--image", "busybox-test",
        "--network", "private", "fip2",
    )  # fmt: skip
    fip = cloud.json(alice, "floating", "ip", "create", "public")
    cloud.openstack(alice, "server", "add", "floating", "ip", "fip1", fip["id"])

    def floating_of(name: str) -> str | None:
        status = (cloud.instance(alice, name) or {}).get("status") or {}
        return next((a.get("floatingIP") for a in status.get("addresses") or []), None)

    address = eventually(lambda: floating_of("fip1"), timeout=30, what="fip1's floating IP")
    assert ipaddress.IPv4Address(address) in ipaddress.IPv4Network(FLOATING_POOL)
    shown = cloud.json(alice, "server", "show", "fip1")["addresses"]
    assert address in str(shown), shown
    assert cloud.json(alice, "floating", "ip", "show", address)["port_id"]
    namespace = cloud.namespaces[project]
    wide = cloud.cluster.kubectl("get", "inst", "fip1", "-n", namespace, "-o", "wide").stdout
    assert "FLOATING-IP" in wide
    assert address in wide

    # over the project's floatingIPs quota: refused at once, with the numbers
    cloud.cluster.kubectl(
        "patch", "project", project, "--type=merge", "-p", '{"spec":{"quota":{"floatingIPs":1}}}'
    )
    ports = eventually(
        lambda: cloud.json(alice, "port", "list", "--server", "fip2"), timeout=30, what="fip2 port"
    )
    other = cloud.json(alice, "floating", "ip", "create", "public")
    refused = cloud.openstack(
        alice, "floating", "ip", "set", "--port", ports[0]["ID"], other["id"], check=False
    )
    assert refused.returncode != 0
    assert "Quota exceeded for floatingIPs: Requested 1, but already used 1 of 1" in (
        refused.stderr
    ), refused.stderr
    assert floating_of("fip2") is None
    cloud.openstack(alice, "floating", "ip", "delete", other["id"])

    cloud.openstack(alice, "server", "remove", "floating", "ip", "fip1", address)
    eventually(lambda: floating_of("fip1") is None, timeout=30, what="fip1's floating IP gone")
    spec = (cloud.instance(alice, "fip1") or {})["spec"]["networks"]
    assert spec == [{"network": "private", "floatingIP": False}]
    cloud.openstack(alice, "floating", "ip", "delete", fip["id"])
    cloud.cluster.kubectl(
        "patch", "project", project, "--type=json",
        "-p", '[{"op":"remove","path":"/spec/quota/floatingIPs"}]',
    )  # fmt: skip
    cloud.openstack(alice, "server", "delete", "fip1", "fip2", "--wait")
