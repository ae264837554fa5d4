"""The web dashboard in headless Chromium against the real apiserver, operator and agent.

One cloud for the module (operator; one agent on libvirt's test driver with compute and a
volume service exporting from a real tgtd), two projects with one member each, and
`kubenova dashboard` as a process whose own identity may only impersonate. A member
launches a real TCG guest from the launch form onto the one host of its availability zone
(the private libvirtd), watches it go Running and print its console marker, attaches an
iSCSI volume the guest sees, stops and deletes it, all through the browser; the other
member sees none of it; requests without the session cookie or the CSRF token are refused.
Screenshots land in docs/dashboard/.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
import pytest

from kubenova.dashboard import images, rbac
from kubenova.dashboard.instances import INSTANCES, NETWORKS, VOLUMES
from kubenova.devcluster import ClusterAccess
from kubenova.devcluster.objectstore import ObjectStoreAccess
from kubenova.devcluster.policies import CATALOG_RULES, install_catalog_rbac
from kubenova.kube import KubeClient, ResourceKind, load_config
from kubenova.kube.paths import CORE_EVENTS
from kubenova.operator import inventory as inv
from kubenova.operator.auth import Role
from kubenova.operator.auth import db as auth_db
from tests.builders import a_flavor, a_project, an_instance, as_yaml
from tests.e2e.test_real_vm import start_guest_host
from tests.fixtures.agent import AgentFactory
from tests.fixtures.apiserver import REPO_ROOT
from tests.fixtures.operator import OperatorProcess, clean_slate
from tests.fixtures.test_image import GuestImage
from tests.fixtures.tgtd import TgtDaemon
from tests.integration.operator.test_scheduling import catalog, wait_ready
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess
from tests.support.waiting import eventually

# s3: browser uploads and the guest's image go to MinIO; the guest's volume is exported by tgtd
pytestmark = [pytest.mark.apiserver, pytest.mark.s3, pytest.mark.tgt]

CHROMIUM = "/usr/lib/chromium/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "dashboard"
PASSWORD = "correct horse battery"
# The cloud's external pool (TEST-NET-3, documentation addresses): the Floating IPs page
# shows one the operator allocated.
FLOATING_POOL = "203.0.113.10-203.0.113.20"


@dataclass(kw_only=True)
class DashboardProcess(ManagedProcess):
    kubeconfig: Path
    database_url: str
    port: int
    image_bucket: str

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "kubenova.cli",
            "dashboard",
            f"--kubeconfig={self.kubeconfig}",
            f"--url={self.database_url}",
            f"--port={self.port}",
            f"--image-bucket={self.image_bucket}",
        ]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cloud:
    access: ClusterAccess
    dashboard: DashboardProcess
    alpha: str  # project of alice
    beta: str  # project of bob
    flavor: str
    s3: ObjectStoreAccess
    tgtd: TgtDaemon


@pytest.fixture(scope="module")
def cloud(
    apiserver: ClusterAccess,
    crds_installed: list[str],
    s3: ObjectStoreAccess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cloud]:
    root = tmp_path_factory.mktemp("dashboard")
    suffix = uuid.uuid4().hex[:6]
    alpha, beta = f"alpha-{suffix}", f"beta-{suffix}"
    url = f"sqlite:///{root / 'inventory.db'}"
    inv.upgrade(url)
    engine = inv.make_engine(url)
    for user, project in ((f"alice-{suffix}", alpha), (f"bob-{suffix}", beta)):
        auth_db.create_user(engine, user, password=PASSWORD)
        auth_db.create_project(engine, project)
        auth_db.grant(engine, user, project, Role.MEMBER)
    auth_db.create_user(engine, f"carol-{suffix}", password=PASSWORD)  # a cloud admin
    engine.dispose()
    clean_slate(apiserver)
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    operator = OperatorProcess(
        log_path=root / "operator.log",
        env=env | {"KUBENOVA_FLOATING_IP_POOL": FLOATING_POOL},
        kubeconfig=apiserver.kubeconfig,
        database_url=url,
    )
    operator.start()
    tgtd = TgtDaemon(root / "tgtd")  # its own control port and portal: no other test's targets
    tgtd.start()
    agents = AgentFactory(apiserver, root / "agents")
    host = f"dash-{suffix}"
    volume_flags = (f"--tgt-control-port={tgtd.control_port}", f"--iscsi-portal={tgtd.portal}")
    agents.start(host, extra=("--services=compute,volume", *volume_flags))
    flavor = catalog(apiserver, memory=256)
    apiserver.kubectl("apply", "-f", "-", input=as_yaml(a_project(alpha), a_project(beta)))
    # the dashboard's own identity: a client certificate that may only impersonate
    identity = f"dashboard-{suffix}"
    subject = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": identity}
    docs = rbac.manifests(subject)
    for doc in docs:
        doc["metadata"]["name"] += f"-{suffix}"
    docs[1]["roleRef"]["name"] = docs[0]["metadata"]["name"]
    apiserver.kubectl("apply", "-f", "-", input=as_yaml(*docs, *cloud_reader(f"carol-{suffix}")))
    # Members pick flavors and images: the chart's catalog rules, as the dev cloud binds them.
    install_catalog_rbac(apiserver, REPO_ROOT / CATALOG_RULES)
    dashboard = DashboardProcess(
        log_path=root / "dashboard.log",
        env=env | s3.env(),
        kubeconfig=apiserver.user_kubeconfig(identity),
        database_url=url,
        port=free_port(),
        image_bucket=f"dash-images-{suffix}",
    )
    dashboard.start()
    try:
        wait_ready(apiserver, host)
        for project in (alpha, beta):
            eventually(
                lambda p=project: (
                    apiserver.kubectl(
                        "get", "rolebinding", "kubenova-member", "-n", p, check=False
                    ).returncode
                    == 0
                ),
                timeout=30,
                what=f"{project} bound",
            )
        eventually(lambda: _status(f"{dashboard.url}/healthz") == 200, what="dashboard up")
        yield Cloud(apiserver, dashboard, alpha, beta, flavor, s3, tgtd)
    finally:
        dashboard.stop()
        agents.stop_all()
        operator.stop()
        clean_slate(apiserver)
        tgtd.stop()
        for doc in (*docs, *cloud_reader(f"carol-{suffix}")):
            apiserver.kubectl("delete", doc["kind"].lower(), doc["metadata"]["name"], check=False)
        bucket = dashboard.image_bucket
        if s3.client.bucket_exists(bucket):
            for item in s3.client.list_objects(bucket, recursive=True):
                s3.client.remove_object(bucket, item.object_name)
            s3.client.remove_bucket(bucket)
        print(dashboard.log()[-3000:])


def cloud_reader(user: str) -> list[dict[str, object]]:
    """A cloud administrator who may read Hosts and every project's Instances."""
    name = f"dashboard-test-reader-{user}"
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": [
                {
                    "apiGroups": ["kubenova.io"],
                    "resources": ["hosts", "instances", "flavors", "images"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    ]


def timed_create(cloud: Cloud, kind: ResourceKind, body: dict[str, Any]) -> float:
    """Create `body` with one API request; the wall-clock time just before it was sent."""

    async def create() -> float:
        async with KubeClient(load_config(cloud.access.kubeconfig)) as client:
            await client.list(kind, body["metadata"].get("namespace"), limit=1)  # warm up
            sent = time.time()
            await client.create(kind, body, body["metadata"].get("namespace"))
            return sent

    # Playwright's sync API keeps an event loop running in this thread: use another one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, create()).result()


def seen_after(page: Any, container: str, sent: float, what: str) -> float:
    """Seconds from the change's request to the page showing it (its last live update)."""
    shown = int(page.locator(container).get_attribute("data-updated-at")) / 1000
    latency = shown - sent
    LATENCIES[what] = round(latency, 3)
    print(f"live update of {what}: {latency * 1000:.0f} ms after the API request")
    return latency


# Live updates seen in this module, printed at the end (the issue asks for < 1 s).
LATENCIES: dict[str, float] = {}
LIVE_LIMIT = 1.0


def _status(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: hack/install-deps.sh installs Debian's chromium")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - dev dependency

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


# Every form control a page shows must have a label (screen readers name it by that).
UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter((el) => !el.labels || el.labels.length === 0).map((el) => el.outerHTML)"""


def shot(page: Any, name: str) -> None:
    """The screenshot of a main page for docs/ (the README shows them), after an
    accessibility check of that page: no unlabelled control."""
    assert page.evaluate(UNLABELLED) == [], f"{name}: controls without a label"
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def log_in(browser: object, cloud: Cloud, user: str, landing: str = "**/instances") -> object:
    context = browser.new_context(viewport={"width": 1280, "height": 860})  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{cloud.dashboard.url}/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(landing)
    return page


@pytest.mark.libvirt
def test_a_member_runs_a_real_guest_from_the_browser(
    browser: object,
    cloud: Cloud,
    agents: AgentFactory,
    libvirtd: Any,
    s3_bucket: str,
    test_image: GuestImage,
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    suffix = cloud.alpha.removeprefix("alpha-")
    alice = "alice-" + suffix
    # The real host: TCG guests on the private libvirtd, alone in its availability zone, so
    # the member's choice of zone on the launch form is what puts the guest there. The agent
    # copies the console's last lines into status at each resync: every 2 s here.
    real_host, zone, image = f"dash-guest-{suffix}", f"real-{suffix}", f"dash-guest-{suffix}"
    start_guest_host(
        cloud.access,
        agents,
        libvirtd,
        cloud.s3,
        s3_bucket,
        test_image,
        host=real_host,
        image=image,
        flavor="dash.tiny",
        extra=("--resync-interval=2", f"--availability-zone={zone}"),
    )
    page = browser.new_page(viewport={"width": 1280, "height": 860})  # type: ignore[attr-defined]
    page.goto(f"{cloud.dashboard.url}/login")
    page.get_by_label("User name").fill(alice)
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong user name or password."
    shot(page, "login")
    # guessing slows down: after three failures for a name each wait doubles (1 s, 2 s,
    # ...), so one of the next quick attempts lands inside a wait however slow the machine
    said = []
    for _ in range(8):
        page.get_by_label("User name").fill("mallory")
        page.get_by_label("Password").fill("guess")
        page.get_by_role("button", name="Log in").click()
        said.append(page.get_by_role("alert").inner_text())
        if said[-1].startswith("Too many failed attempts"):
            break
    assert said[:3] == ["Wrong user name or password."] * 3
    assert said[-1].startswith("Too many failed attempts: try again in")
    page.close()
    page = log_in(browser, cloud, alice)
    base = f"{cloud.dashboard.url}/p/{cloud.alpha}"

    # a bad input is refused next to the field it names
    page.goto(f"{base}/launch")
    page.get_by_label("Name").fill("Not_A_Name")
    page.get_by_label("Flavor").select_option(cloud.flavor)
    page.get_by_role("button", name="Launch").click()
    assert page.locator("#err-name").inner_text().startswith("Use only lowercase letters")

    # launch the real guest, then watch it go Running and boot without a reload
    page.get_by_label("Name").fill("web-1")
    page.get_by_label("Flavor").select_option("dash.tiny")
    page.get_by_label("Image").select_option(image)
    page.get_by_label("Availability zone (optional)").fill(zone)
    page.get_by_label("User data (cloud-init)").fill("#cloud-config\n")
    shot(page, "launch")
    page.get_by_role("button", name="Launch").click()
    page.wait_for_url(f"{base}/instances/web-1")
    page.evaluate("window.__sameDocument = true")
    page.locator('[data-live="phase"]', has_text="Running").wait_for(timeout=120_000)
    assert page.locator('[data-live="host"]').inner_text() == real_host
    page.locator("#console", has_text=test_image.ready_marker).wait_for(timeout=120_000)
    assert page.evaluate("window.__sameDocument") is True
    shot(page, "console")
    uid = json.loads(
        cloud.access.kubectl("get", "instance", "web-1", "-n", cloud.alpha, "-o", "json").stdout
    )["metadata"]["uid"]
    # the Events timeline is live: an Event about web-1 appears without a reload
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"web-1.{uuid.uuid4().hex[:8]}", "namespace": cloud.alpha},
        "involvedObject": {
            "apiVersion": "kubenova.io/v1alpha1",
            "kind": "Instance",
            "name": "web-1",
            "namespace": cloud.alpha,
        },
        "reason": "DashboardProbe",
        "message": "an Event made by the browser test",
        "type": "Normal",
        "count": 1,
        "firstTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "lastTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": {"component": "dashboard-test"},
    }
    sent = timed_create(cloud, CORE_EVENTS, event)
    page.locator("#events tr", has_text="DashboardProbe").wait_for(timeout=10_000)
    assert seen_after(page, "#events", sent, "Instance Events") < LIVE_LIMIT

    # the list is live too: an Instance made elsewhere (kubectl) appears and goes Running
    # (in the default zone, on the test driver's host: one real guest in this module)
    page.goto(f"{base}/instances")
    page.locator("#live-state", has_text="live").wait_for()
    page.evaluate("window.__sameDocument = true")
    elsewhere = an_instance("web-2", cloud.alpha, flavor=cloud.flavor)
    elsewhere["spec"]["availabilityZone"] = "nova"
    cloud.access.kubectl("apply", "-f", "-", input=as_yaml(elsewhere))
    page.locator('tr[data-name="web-2"] [data-col="phase"]', has_text="Running").wait_for(
        timeout=60_000
    )
    assert page.evaluate("window.__sameDocument") is True
    shot(page, "instances")

    # a volume: create it, attach it to web-1
    page.goto(f"{base}/volumes")
    page.get_by_label("Name").fill("data-1")
    page.get_by_label("Size (GiB)").fill("1")
    page.get_by_role("button", name="Create").click()
    page.locator('tr[data-name="data-1"]').wait_for()
    # the Volumes table is live: one made and deleted elsewhere comes and goes
    page.locator('#volumes[data-live="live"]').wait_for(state="attached")
    page.evaluate("window.__sameDocument = true")
    sent = timed_create(
        cloud,
        VOLUMES,
        {
            "apiVersion": "kubenova.io/v1alpha1",
            "kind": "Volume",
            "metadata": {"name": "data-2", "namespace": cloud.alpha},
            "spec": {"sizeGiB": 1},
        },
    )
    page.locator('tr[data-name="data-2"]').wait_for(timeout=10_000)
    assert seen_after(page, "#volumes", sent, "Volumes") < LIVE_LIMIT
    cloud.access.kubectl("delete", "volume", "data-2", "-n", cloud.alpha, "--wait=false")
    page.locator('tr[data-name="data-2"]').wait_for(state="detached", timeout=60_000)
    assert page.evaluate("window.__sameDocument") is True
    # so is the Networks table
    page.goto(f"{base}/networks")
    page.locator('#networks[data-live="live"]').wait_for(state="attached")
    sent = timed_create(
        cloud,
        NETWORKS,
        {
            "apiVersion": "kubenova.io/v1alpha1",
            "kind": "Network",
            "metadata": {"name": "blue", "namespace": cloud.alpha},
            "spec": {"mode": "vxlan", "cidr": "10.77.0.0/29"},
        },
    )
    page.locator('#networks tr[data-key="blue"]', has_text="10.77.0.0/29").wait_for(timeout=10_000)
    assert seen_after(page, "#networks", sent, "Networks") < LIVE_LIMIT
    shot(page, "networks")
    # a NIC on blue asking for a floating IP (on the test driver's host): the live Floating
    # IPs table shows the address the operator took from the pool, beside the fixed one
    page.goto(f"{base}/floating-ips")
    page.locator('#floating-ips[data-live="live"]').wait_for(state="attached")
    public = an_instance("web-3", cloud.alpha, flavor=cloud.flavor)
    public["spec"] |= {
        "availabilityZone": "nova",
        "networks": [{"network": "blue", "floatingIP": True}],
    }
    cloud.access.kubectl("apply", "-f", "-", input=as_yaml(public))
    row = page.locator('#floating-ips tr[data-key="blue"]', has_text="web-3")
    row.wait_for(timeout=30_000)
    assert row.locator("td").first.inner_text().startswith("203.0.113.")
    assert row.locator("td").nth(1).inner_text().startswith("10.77.0.")

    def floating_used() -> bool:
        project = cloud.access.kubectl("get", "project", cloud.alpha, "-o", "json").stdout
        usage = (json.loads(project).get("status") or {}).get("usage") or {}
        return bool(usage.get("floatingIPs") == 1)

    # The usage bar is drawn with the page from the Project's status.usage, which the
    # operator refreshes when the Project changes or every sync interval (60 s): an
    # annotation makes it count the address now, then a reload draws the bar.
    cloud.access.kubectl(
        "annotate", "project", cloud.alpha, f"test.kubenova.io/poke={time.time()}", "--overwrite"
    )
    eventually(floating_used, timeout=30, what="the project's floating IP usage")
    page.reload()
    assert page.locator(".bar", has_text="Floating IPs").locator("b").inner_text() == "1"
    shot(page, "floating-ips")
    cloud.access.kubectl("delete", "instance", "web-3", "-n", cloud.alpha, "--wait=false")
    page.goto(f"{base}/instances/web-1")
    # a refused attachment is said beside the volume picker (a forged name: the CRD refuses)
    page.evaluate("document.querySelector('#f-volume option').value = 'Bad_Name'")
    page.get_by_label("Attach volume").select_option("Bad_Name")
    page.get_by_role("button", name="Attach").click()
    assert page.locator("#err-volume").inner_text() != ""
    page.get_by_label("Attach volume").select_option("data-1")
    page.get_by_role("button", name="Attach").click()
    page.wait_for_url(f"{base}/instances/web-1")
    assert page.get_by_role("cell", name="data-1", exact=True).is_visible()

    def device() -> str | None:
        body = json.loads(
            cloud.access.kubectl("get", "instance", "web-1", "-n", cloud.alpha, "-o", "json").stdout
        )
        found = [v for v in body["status"].get("volumes") or [] if v["volume"] == "data-1"]
        return found[0]["device"] if found else None

    page.evaluate("window.__sameDocument = true")
    guest_device = eventually(device, timeout=60, what="data-1 attached")
    # the device appears without a reload (the Instance page's stream redraws its volumes),
    # and the guest itself reports a new disk on its console: QEMU logged in to tgtd. (The
    # guest names disks in probe order, so with the cloud-init seed disk present it is not
    # always the libvirt target name the API reports; Nova says the same of its devices.)
    page.locator("#attached tr", has_text="data-1").locator("td").nth(1).filter(
        has_text=guest_device
    ).wait_for(timeout=10_000)
    page.locator("#console", has_text=re.compile(r"KUBENOVA-BLOCK-ADDED vd[a-z]")).wait_for(
        timeout=60_000
    )
    assert page.evaluate("window.__sameDocument") is True
    volume = json.loads(
        cloud.access.kubectl("get", "volume", "data-1", "-n", cloud.alpha, "-o", "json").stdout
    )
    iqn = volume["status"]["target"]["iqn"]
    assert iqn in cloud.tgtd.target_names()
    connection = libvirt.open(libvirtd.uri)
    try:
        xml = connection.lookupByUUIDString(uid).XMLDesc()
    finally:
        connection.close()
    assert f"<target dev='{guest_device}' bus='virtio'/>" in xml
    assert f"name='{iqn}/" in xml  # the guest's disk is the tgtd export
    page.goto(f"{base}/volumes")
    shot(page, "volumes")
    page.goto(f"{base}/overview")
    shot(page, "quota")

    # stop, then delete
    page.goto(f"{base}/instances/web-1")
    page.get_by_role("button", name="Stop").click()
    page.locator('[data-live="phase"]', has_text="Stopped").wait_for(timeout=90_000)
    shot(page, "instance")
    page.get_by_role("button", name="Delete").click()
    page.wait_for_url(f"{base}/instances")
    page.locator('tr[data-name="web-1"]').wait_for(state="detached", timeout=60_000)
    connection = libvirt.open(libvirtd.uri)
    try:
        names = [d.name() for d in connection.listAllDomains()]
    finally:
        connection.close()
    assert f"kubenova-{uid}" not in names  # the real host destroyed and undefined the guest


def test_another_project_sees_nothing_and_forged_requests_are_refused(
    browser: object, cloud: Cloud
) -> None:
    bob = "bob-" + cloud.beta.removeprefix("beta-")
    # by keyboard alone: the skip link first, then the fields in order, Enter logs in
    page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()  # type: ignore[attr-defined]
    page.goto(f"{cloud.dashboard.url}/login")

    def tab_to() -> str:
        page.keyboard.press("Tab")
        return str(page.evaluate("document.activeElement.id || document.activeElement.textContent"))

    assert [tab_to() for _ in range(3)] == ["Skip to content", "kubenova", "f-user"]
    page.keyboard.type(bob)
    assert tab_to() == "f-password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/instances")
    assert page.url.endswith(f"/p/{cloud.beta}/instances")
    assert tab_to() == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    options = page.locator("#project-switch option").all_inner_texts()
    assert options == [cloud.beta]
    response = page.goto(f"{cloud.dashboard.url}/p/{cloud.alpha}/instances")
    assert response is not None
    assert response.status == 404
    response = page.goto(f"{cloud.dashboard.url}/admin/hosts")
    assert response is not None
    assert response.status == 403

    cookie = next(c for c in page.context.cookies() if c["name"] == "kubenova_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    form = urllib.parse.urlencode({"name": "x", "flavor": cloud.flavor, "image": "test-image"})
    target = f"{cloud.dashboard.url}/p/{cloud.beta}/instances"
    session = {"Cookie": f"kubenova_session={cookie['value']}"}
    # with the session but without the CSRF token
    assert _status(target, form.encode(), session) == 403
    # with a CSRF token but no session
    assert _status(target, (form + "&_csrf=abc").encode()) == 403
    # no cookie at all: nothing to read either
    assert _status(target) == 401
    listing = cloud.access.kubectl("get", "instances", "-n", cloud.beta, "-o", "json")
    assert json.loads(listing.stdout)["items"] == []

    # the dashboard's own identity can do nothing by itself but impersonate
    def can_i(*args: str) -> str:
        answer = cloud.access.kubectl(
            "auth", "can-i", *args, kubeconfig=cloud.dashboard.kubeconfig, check=False
        )
        return answer.stdout.strip()

    assert can_i("list", "instances.kubenova.io", "-A") == "no"
    assert can_i("get", "secrets", "-A") == "no"
    assert can_i("impersonate", "groups/system:masters") == "no"
    assert can_i("impersonate", "serviceaccounts", "-n", "kubenova-system") == "no"
    assert can_i("impersonate", "groups/kubenova:dashboard") == "yes"

    # after logging out, the old session id is worth nothing
    page.goto(f"{cloud.dashboard.url}/p/{cloud.beta}/instances")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")
    assert _status(f"{cloud.dashboard.url}/p/{cloud.beta}/instances", headers=session) == 401


def flavor_vcpus(cloud: Cloud, flavor: str) -> int:
    found = cloud.access.kubectl("get", "flavor", flavor, "-o", "jsonpath={.spec.vcpus}")
    return int(found.stdout)


def placed_vcpus(cloud: Cloud, host: str) -> int | None:
    """The vCPUs of the Instances the API shows placed on `host`; None while one of them is
    being deleted (its claim goes with it, at a moment we cannot see)."""
    listed = json.loads(cloud.access.kubectl("get", "instances", "-A", "-o", "json").stdout)
    placed = [i for i in listed["items"] if (i.get("status") or {}).get("host") == host]
    if any(i["metadata"].get("deletionTimestamp") for i in placed):
        return None
    return sum(flavor_vcpus(cloud, i["spec"]["flavor"]) for i in placed)


def vcpu_bar(card: Any) -> int:
    return int(float(card.locator("meter").first.get_attribute("value") or "nan"))


def test_a_cloud_admin_sees_hosts_and_placement_failures(browser: object, cloud: Cloud) -> None:
    carol = "carol-" + cloud.alpha.removeprefix("alpha-")
    page = log_in(browser, cloud, carol, landing="**/admin/hosts")
    host = "dash-" + cloud.alpha.removeprefix("alpha-")
    card = page.locator(f'section.host[data-key="{host}"]')
    assert "Ready" in card.locator("h2").inner_text()
    assert card.locator("meter").count() == 3
    page.locator('#hosts[data-live="live"]').wait_for(state="attached")
    # Settled first: an Instance of the test before may still be leaving this host, and its
    # release and the claim below can fall into one sample of the host's fill (no change).
    eventually(
        lambda: (placed := placed_vcpus(cloud, host)) is not None and vcpu_bar(card) == placed,
        timeout=45,
        what=f"the vCPU bar of {host} shows what is placed there",
    )
    settled = placed_vcpus(cloud, host) or 0
    before = card.locator(".instances").inner_text()
    # the cards are live: an Instance placed on the host moves its count and its vCPU bar
    hosted = an_instance("hosted", cloud.beta, flavor=cloud.flavor)
    hosted["spec"]["placement"] = {"host": host}
    sent = timed_create(cloud, INSTANCES, hosted)
    count = int(before.split()[0])
    card.locator(".instances", has_text=f"{count + 1} instances").wait_for(timeout=30_000)
    seen_after(page, "#hosts", sent, "Hosts (the Instance count, after placement)")
    page.wait_for_function(
        """([host, after]) => document.querySelector(
             `section.host[data-key="${host}"] meter`).getAttribute("value") == after""",
        arg=[host, settled + flavor_vcpus(cloud, cloud.flavor)],
        timeout=30_000,
    )
    print(f"vCPU bar moved {time.time() - sent:.1f} s after the API request")
    shot(page, "hosts")

    # placement failures are live too: an Instance no host fits appears with its reason
    page.goto(f"{cloud.dashboard.url}/admin/placement")
    page.locator('#placement[data-live="live"]').wait_for(state="attached")
    page.evaluate("window.__sameDocument = true")
    cloud.access.kubectl(
        "apply",
        "-f",
        "-",
        input=as_yaml(
            a_flavor("t.huge", vcpus=2, memory=4_000_000, disk=1),
            an_instance("too-big", cloud.beta, flavor="t.huge"),
        ),
    )
    page.get_by_role("cell", name=f"{cloud.beta}/too-big").wait_for(timeout=30_000)
    assert "NoValidHost" in page.locator("#placement").inner_text()
    assert page.evaluate("window.__sameDocument") is True
    shot(page, "placement")
    cloud.access.kubectl("delete", "instance", "hosted", "too-big", "-n", cloud.beta)
    print(f"live update latencies (s): {json.dumps(LATENCIES)}")


def image_uploader(user: str) -> list[dict[str, object]]:
    """What `kubenova image upload` needs: create Images and write their status."""
    name = f"dashboard-test-uploader-{user}"
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": [
                {"apiGroups": ["kubenova.io"], "resources": ["images"], "verbs": ["create"]},
                {"apiGroups": ["kubenova.io"], "resources": ["images/status"], "verbs": ["patch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    ]


def test_an_image_upload_streams_into_the_store_with_its_checksum(
    browser: object, cloud: Cloud, tmp_path: Path
) -> None:
    suffix = cloud.alpha.removeprefix("alpha-")
    carol, image = f"carol-{suffix}", f"uploaded-{suffix}"
    disk = tmp_path / "tiny.raw"
    # one byte over a part: the upload is multipart and the checksum spans both parts
    disk.write_bytes(os.urandom(images.PART + 1))
    real = hashlib.sha256(disk.read_bytes()).hexdigest()
    page = log_in(browser, cloud, carol, landing="**/admin/hosts")
    page.goto(f"{cloud.dashboard.url}/admin/catalog")

    def send(sha256: str) -> None:
        page.set_input_files("#f-file", disk)
        page.get_by_label("Image name").fill(image)
        page.get_by_label("SHA-256 (optional; checked against the file)").fill(sha256)
        page.get_by_role("button", name="Upload").click()

    # carol reads the catalog but her role may not create Images: refused beside the file
    send("")
    refusal = page.locator("#err-file")
    refusal.wait_for()
    assert refusal.inner_text() == "Your role does not allow uploading images (creating Images)."
    grant = image_uploader(carol)
    cloud.access.kubectl("apply", "-f", "-", input=as_yaml(*grant))
    try:
        # a checksum that does not match: refused beside it, nothing left in the store
        send("0" * 64)
        page.locator("#err-sha256").wait_for()
        assert page.locator("#err-sha256").inner_text().startswith(f"The file's SHA-256 is {real}")
        bucket = cloud.dashboard.image_bucket
        assert list(cloud.s3.client.list_objects(bucket, recursive=True)) == []

        send(real)
        page.locator("#upload-result", has_text=f"Image {image} uploaded").wait_for()
        assert page.locator("#upload-progress").get_attribute("value") == "100"
        # the Images table is live: the new Image shows up Available without a reload
        page.locator(f'#images tr[data-key="{image}"]', has_text="Available").wait_for()
        shot(page, "upload")
        body = json.loads(cloud.access.kubectl("get", "image", image, "-o", "json").stdout)
        assert body["spec"]["sha256"] == real
        assert body["spec"]["format"] == "raw"
        assert body["status"] == {
            "phase": "Available",
            "sizeBytes": disk.stat().st_size,
            "observedGeneration": 1,
        }
        source = body["spec"]["source"]
        assert "credentialsSecret" not in source  # the agents' default store
        stat = cloud.s3.client.stat_object(source["bucket"], source["key"])
        assert stat.metadata["x-amz-meta-sha256"] == real
        keys = [o.object_name for o in cloud.s3.client.list_objects(bucket, recursive=True)]
        assert keys == [f"{image}/tiny.raw"]  # the staging object is gone

        # a tenant's upload is refused by impersonation too, before a byte is stored
        alice = log_in(browser, cloud, f"alice-{suffix}")
        answer = alice.evaluate(
            """async () => {
              const csrf = document.querySelector('input[name="_csrf"]').value;
              const r = await fetch('/admin/images/upload?name=sneaky', {method: 'POST',
                headers: {'X-CSRF-Token': csrf, 'Content-Type': 'application/octet-stream'},
                body: new Uint8Array(1024)});
              return [r.status, await r.json()];
            }"""
        )
        assert answer == [
            403,
            {"errors": {"file": ["Your role does not allow uploading images (creating Images)."]}},
        ]
    finally:
        cloud.access.kubectl("delete", "image", image, "--ignore-not-found")
        for doc in grant:
            apiserver_kind = str(doc["kind"]).lower()
            cloud.access.kubectl("delete", apiserver_kind, str(doc["metadata"]["name"]))  # type: ignore[index]
