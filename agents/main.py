"""`kubenova-agent`: the per-host agent process (one per bare-metal host, a DaemonSet in clusters).

It needs the API server (kubeconfig or in-cluster service account) and its hypervisor, and
nothing else: no database credentials exist here by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path

import click

from kubenova.agents.compute.migration import MAX_DOWNTIME_MS, MigrationTuning
from kubenova.agents.host import Capacity
from kubenova.agents.network.assembly import NetworkFlags
from kubenova.agents.network.provider import ProviderInterfaces
from kubenova.agents.process import SERVICES, Agent, AgentSettings
from kubenova.agents.volume.assembly import VolumeFlags
from kubenova.memory import size_tls_buffers


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _services(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    unknown = [name for name in names if name not in SERVICES]
    if unknown or not names:
        raise click.BadParameter(f"give a comma-separated subset of {','.join(SERVICES)}")
    return names


def _capacity(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Capacity | None:
    if value is None:
        return None
    try:
        parts = dict(item.split("=", 1) for item in value.split(","))
        return Capacity(
            vcpus=int(parts["vcpus"]),
            memory_mib=int(parts["memoryMiB"]),
            disk_gib=int(parts["diskGiB"]),
        )
    except (KeyError, ValueError) as exc:
        raise click.BadParameter("write it as vcpus=N,memoryMiB=N,diskGiB=N") from exc


@click.command(context_settings={"show_default": True, "max_content_width": 100})
@click.option("--host-name", required=True, help="This host's name (the Host resource).")
@click.option(
    "--services",
    default="compute",
    callback=_services,
    help=f"Services this host runs, comma-separated: {','.join(SERVICES)}.",
)
@click.option(
    "--libvirt-uri",
    default="qemu:///system",
    help="Hypervisor connection; a test:/// URI selects the fake driver (no QEMU).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/var/lib/kubenova"),
    help="Instance disks, console logs and the image cache.",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Default: $KUBECONFIG, the service account, then ~/.kube/config.",
)
@click.option("--availability-zone", default="nova", help="Zone of the Host when it is created.")
@click.option(
    "--domain-type",
    type=click.Choice(["kvm", "qemu", "auto"]),
    default="auto",
    help="kvm, qemu (TCG), or auto: prove KVM by booting a probe, else qemu.",
)
@click.option(
    "--hypervisor",
    type=click.Choice(["qemu", "xen-hvm", "xen-pv", "xen"]),
    default="qemu",
    help="qemu (KVM or TCG, --domain-type) or Xen through libvirt's libxl driver "
    "(xen = xen-hvm; the URI defaults to xen:///system). Xen is refused at start-up on a "
    "host that is not a Xen dom0.",
)
@click.option("--underlay-ip", default=None, help="Address for VXLAN and storage traffic.")
@click.option(
    "--physical-interface", default=None, help="network: trunk interface of flat/vlan networks."
)
@click.option(
    "--provider-interfaces",
    multiple=True,
    help="network: host interfaces flat/vlan networks may use (repeat or comma-separate); "
    "default none. An interface that carries an IP address is refused anyway.",
)
@click.option(
    "--external-interface",
    default=None,
    help="network: where a network host sends routed and floating-IP traffic.",
)
@click.option(
    "--vlan-backend",
    type=click.Choice(["linuxbridge", "ovs"]),
    default="linuxbridge",
    help="network: 802.1Q sub-interfaces, or tagged ports on Open vSwitch.",
)
@click.option("--ovs-db", default=None, help="network: OVSDB socket (default: ovs-vsctl's).")
@click.option(
    "--ovs-datapath",
    type=click.Choice(["system", "netdev"]),
    default="system",
    help="network: OVS datapath (netdev = userspace).",
)
@click.option(
    "--netns", default=None, help="network: act inside this network namespace (simulated hosts)."
)
@click.option(
    "--network-teardown-on-exit",
    is_flag=True,
    help="network: remove this agent's bridges, dnsmasq and tables when it stops (dev).",
)
@click.option(
    "--iscsi-portal",
    default=None,
    help="volume: address:port initiators reach tgtd at (default: <underlay-ip>:3260).",
)
@click.option(
    "--tgt-control-port", type=int, default=None, help="volume: tgtd's control port (tgtd -C N)."
)
@click.option(
    "--iscsi-acl",
    type=click.Choice(["initiator-name", "address"]),
    default="initiator-name",
    help="volume: admit attached hosts by iSCSI initiator name, or by storage address.",
)
@click.option("--aoe-interface", default=None, help="volume: serve AoE volumes on this interface.")
@click.option("--aoe-netns", default=None, help="volume: run vblade in this network namespace.")
@click.option(
    "--storage-interface",
    default=None,
    help="compute: the interface AoE traffic leaves by (its MAC is published on the Host).",
)
@click.option(
    "--fake-exports", is_flag=True, help="volume: in-memory exports, no tgtd/vblade (scale tests)."
)
@click.option("--workers", type=click.IntRange(1, 64), default=4, help="Concurrent reconciles.")
@click.option(
    "--capacity",
    callback=_capacity,
    default=None,
    help="Report this capacity instead of libvirt's: vcpus=N,memoryMiB=N,diskGiB=N.",
)
@click.option("--resync-interval", type=click.FloatRange(min=1.0), default=60.0, help="Seconds.")
@click.option(
    "--migration-bandwidth",
    type=click.IntRange(min=1),
    default=None,
    help="MiB/s cap on each live migration this host sends (memory and disk); "
    "default: none (libvirt's, uncapped).",
)
@click.option(
    "--migration-max-downtime",
    type=click.IntRange(min=1, max=60000),
    default=MAX_DOWNTIME_MS,
    show_default=True,
    help="Milliseconds a migrating guest may stay paused at the switch-over (QEMU's "
    "downtime limit): raise it for guests too busy to converge.",
)
@click.option(
    "--heartbeat-interval",
    type=click.FloatRange(min=0.1),
    default=10.0,
    help="Seconds between renewals of the host's Lease: well under the operator's "
    "--lease-timeout, or the host is NotReady between renewals.",
)
@click.option(
    "--metrics-port",
    type=int,
    default=8080,
    help="Port for /metrics, /healthz and /readyz; 0 disables them.",
)
@click.option("--metrics-host", default="0.0.0.0", help="Address for the metrics port.")
@click.option("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR.")
@click.option("--log-json", is_flag=True, help="One JSON object per log line.")
@click.version_option(package_name="kubenova")
def agent(  # click passes every option by keyword
    *,
    host_name: str,
    services: tuple[str, ...],
    libvirt_uri: str,
    state_dir: Path,
    kubeconfig: Path | None,
    availability_zone: str,
    domain_type: str,
    hypervisor: str,
    underlay_ip: str | None,
    physical_interface: str | None,
    provider_interfaces: tuple[str, ...],
    external_interface: str | None,
    vlan_backend: str,
    ovs_db: str | None,
    ovs_datapath: str,
    netns: str | None,
    network_teardown_on_exit: bool,
    iscsi_portal: str | None,
    tgt_control_port: int | None,
    iscsi_acl: str,
    aoe_interface: str | None,
    aoe_netns: str | None,
    fake_exports: bool,
    storage_interface: str | None,
    workers: int,
    capacity: Capacity | None,
    resync_interval: float,
    migration_bandwidth: int | None,
    migration_max_downtime: int,
    heartbeat_interval: float,
    metrics_port: int,
    metrics_host: str,
    log_level: str,
    log_json: bool,
) -> None:
    """Run the kubenova host agent: register the Host, heart-beat, run its services."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter()
        if log_json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=log_level.upper(), handlers=[handler])
    if hypervisor.startswith("xen"):
        libvirt_uri = check_xen(libvirt_uri)
    settings = AgentSettings(
        host_name=host_name,
        state_dir=state_dir,
        services=services,
        libvirt_uri=libvirt_uri,
        kubeconfig=kubeconfig,
        availability_zone=availability_zone,
        domain_type=domain_type,
        hypervisor="xen-hvm" if hypervisor == "xen" else hypervisor,
        underlay_ip=underlay_ip,
        network=NetworkFlags(
            physical_interface=physical_interface,
            provider_interfaces=ProviderInterfaces.parse(provider_interfaces),
            external_interface=external_interface,
            vlan_backend=vlan_backend,
            ovs_db=ovs_db,
            ovs_datapath=ovs_datapath,
            netns=netns,
            teardown_on_exit=network_teardown_on_exit,
        ),
        volume=VolumeFlags(
            iscsi_portal=iscsi_portal,
            tgt_control_port=tgt_control_port,
            iscsi_acl=iscsi_acl,
            aoe_interface=aoe_interface,
            aoe_netns=aoe_netns,
            fake_exports=fake_exports,
            storage_interface=storage_interface,
        ),
        workers=workers,
        capacity=capacity,
        resync_interval=resync_interval,
        heartbeat_interval=heartbeat_interval,
        migration=MigrationTuning(migration_bandwidth, migration_max_downtime),
        metrics_host=metrics_host,
        metrics_port=metrics_port or None,
    )
    size_tls_buffers()  # a few watches' connections for the agent's whole life
    asyncio.run(_run_until_signalled(Agent(settings)))


def check_xen(libvirt_uri: str) -> str:
    """The libvirt URI of a Xen agent, once this host proved to be a Xen dom0; a clear
    start-up error if it is not."""
    from kubenova.agents.compute.driver import ComputeFailure  # noqa: PLC0415
    from kubenova.agents.compute.xen import check_xen_host  # noqa: PLC0415
    from kubenova.agents.compute.xen_xml import XEN_URI  # noqa: PLC0415

    uri = XEN_URI if libvirt_uri == "qemu:///system" else libvirt_uri
    try:
        check_xen_host(uri)
    except ComputeFailure as error:
        raise click.ClickException(str(error)) from None
    return uri


async def _run_until_signalled(agent: Agent) -> None:
    """Run the agent; SIGTERM/SIGINT stop it cleanly (domains keep running, by design)."""
    task = asyncio.create_task(agent.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main() -> None:
    agent()
