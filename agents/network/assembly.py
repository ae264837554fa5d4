"""Build a host's network service from its options (what `kubenova-agent` flags set)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kubenova.agents.network.dhcp import DhcpServers
from kubenova.agents.network.linuxbridge import Dot1qUplink, FlatUplink, LinuxBridgeDriver, Uplink
from kubenova.agents.network.namespace import Namespace
from kubenova.agents.network.nat import Routers
from kubenova.agents.network.ovs import OvsSettings, OvsUplink
from kubenova.agents.network.provider import ProviderInterfaces
from kubenova.agents.network.reconciler import NetworkServiceSettings
from kubenova.agents.network.service import NetworkService
from kubenova.agents.network.spec import Mode
from kubenova.agents.network.vxlan import VxlanUplink
from kubenova.kube import KubeClient

VLAN_BACKENDS = ("linuxbridge", "ovs")


@dataclass(frozen=True)
class NetworkFlags:
    """The network service's own agent options (the rest comes from the agent's settings)."""

    physical_interface: str | None = None  # trunk for flat/vlan networks
    # The interfaces flat/vlan networks may use (--provider-interfaces); empty: none.
    provider_interfaces: ProviderInterfaces = field(default_factory=ProviderInterfaces)
    external_interface: str | None = None  # network hosts: where SNAT and floating IPs go
    vlan_backend: str = "linuxbridge"
    ovs_db: str | None = None
    ovs_datapath: str = "system"
    netns: str | None = None  # simulate a host inside this network namespace (tests, demos)
    # Remove every bridge, dnsmasq and table this agent made when it stops (a dev cloud
    # on a workstation; real hosts keep forwarding across agent restarts).
    teardown_on_exit: bool = False


@dataclass(frozen=True)
class NetworkOptions:
    host: str
    state_dir: Path
    underlay_ip: str | None = None
    physical_interface: str | None = None
    provider_interfaces: ProviderInterfaces = field(default_factory=ProviderInterfaces)
    external_interface: str | None = None
    vlan_backend: str = "linuxbridge"  # 802.1Q sub-interfaces; "ovs": tagged OVS ports
    ovs: OvsSettings = field(default_factory=OvsSettings)
    netns: str | None = None  # None: the agent's own namespace (tests: a simulated host)
    events: bool = True
    teardown_on_exit: bool = False
    resync_interval: float = 60.0


def options_for(
    host: str,
    state_dir: Path,
    underlay_ip: str | None,
    flags: NetworkFlags,
    resync_interval: float = 60.0,
) -> NetworkOptions:
    """NetworkOptions from the agent's settings and its network flags."""
    return NetworkOptions(
        host=host,
        state_dir=state_dir,
        underlay_ip=underlay_ip,
        physical_interface=flags.physical_interface,
        provider_interfaces=flags.provider_interfaces,
        external_interface=flags.external_interface,
        vlan_backend=flags.vlan_backend,
        teardown_on_exit=flags.teardown_on_exit,
        ovs=OvsSettings(
            db=flags.ovs_db,
            datapath_type=flags.ovs_datapath,
            disable_tx_offload=flags.ovs_datapath == "netdev",
        ),
        netns=flags.netns,
        resync_interval=resync_interval,
    )


def make_network_service(client: KubeClient, options: NetworkOptions) -> NetworkService:
    if options.vlan_backend not in VLAN_BACKENDS:
        raise ValueError(f"vlan backend {options.vlan_backend!r}: choose one of {VLAN_BACKENDS}")
    ns = Namespace(options.netns)
    vlan: Uplink = OvsUplink(options.ovs) if options.vlan_backend == "ovs" else Dot1qUplink()
    driver = LinuxBridgeDriver(
        ns, {Mode.FLAT: FlatUplink(), Mode.VLAN: vlan, Mode.VXLAN: VxlanUplink()}
    )
    return NetworkService(
        client,
        driver,
        DhcpServers(ns, options.state_dir / "network" / "dhcp"),
        Routers(ns, options.external_interface),
        NetworkServiceSettings(
            host=options.host,
            underlay_ip=options.underlay_ip,
            physical_interface=options.physical_interface,
            provider_interfaces=options.provider_interfaces,
            external_interface=options.external_interface,
            events=options.events,
            teardown_on_exit=options.teardown_on_exit,
            resync_interval=options.resync_interval,
        ),
    )
