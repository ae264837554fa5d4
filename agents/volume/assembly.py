"""Build a host's volume services from its options (what `kubenova-agent` flags set).

`volume` hosts export their Volumes: iSCSI through tgtd (always), AoE through vblade when
an AoE interface is given; files under `<state-dir>/volumes`. (`compute` hosts plug volumes
into their guests with the attacher, kubenova.agents.compute.attach_service; its one flag,
`storage_interface`, is kept here with the other volume options.)
With `fake_exports` (scale tests, demos without tgt) exports are the fake driver's table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kubenova.agents.images.fetcher import ImageFetcher
from kubenova.agents.volume.backing import BackingStore
from kubenova.agents.volume.driver import ExportDriver
from kubenova.agents.volume.fake import FakeExportDriver
from kubenova.agents.volume.service import VolumeService, VolumeServiceSettings
from kubenova.kube import KubeClient

ISCSI_PORT = 3260


@dataclass(frozen=True)
class VolumeFlags:
    """The volume service's own agent options (the rest comes from the agent's settings)."""

    iscsi_portal: str | None = None  # "address:port"; default <underlay-ip or 127.0.0.1>:3260
    tgt_control_port: int | None = None  # tgtd -C N; None: tgtd's default control socket
    iscsi_acl: str = "initiator-name"  # or "address" on storage networks with one IP per host
    aoe_interface: str | None = None  # serve AoE volumes on this interface
    aoe_netns: str | None = None  # run vblade in this network namespace (simulated hosts)
    fake_exports: bool = False  # an in-memory export table instead of tgtd/vblade
    storage_interface: str | None = None  # compute hosts: its MAC is Host.status.storageMAC


def storage_dir(state_dir: Path) -> Path:
    return state_dir / "volumes"


def export_drivers(
    state_dir: Path, underlay_ip: str | None, flags: VolumeFlags
) -> dict[str, ExportDriver]:
    """The export drivers of a volume host, by protocol."""
    portal = flags.iscsi_portal or f"{underlay_ip or '127.0.0.1'}:{ISCSI_PORT}"
    if flags.fake_exports:
        return {
            "iscsi": FakeExportDriver("iscsi", location=portal),
            "aoe": FakeExportDriver("aoe", location=flags.aoe_interface or "eth0"),
        }
    from kubenova.agents.volume.tgt import TgtDriver, TgtSettings  # noqa: PLC0415

    drivers: dict[str, ExportDriver] = {
        "iscsi": TgtDriver(
            TgtSettings(
                portal=portal,
                storage_dir=storage_dir(state_dir),
                control_port=flags.tgt_control_port,
                acl_by="address" if flags.iscsi_acl == "address" else "initiator-name",
            )
        )
    }
    if flags.aoe_interface:
        from kubenova.agents.volume.vblade import (  # noqa: PLC0415
            VbladeDriver,
            VbladeSettings,
        )

        drivers["aoe"] = VbladeDriver(
            VbladeSettings(
                interface=flags.aoe_interface,
                storage_dir=storage_dir(state_dir),
                run_dir=state_dir / "vblade",
                netns=flags.aoe_netns,
            )
        )
    return drivers


def make_volume_service(
    client: KubeClient,
    host: str,
    state_dir: Path,
    underlay_ip: str | None,
    flags: VolumeFlags,
    *,
    images: ImageFetcher | None,
    workers: int = 4,
    resync_interval: float = 60.0,
) -> VolumeService:
    """The volume host's service: its exports, files and the Volumes placed on it."""
    return VolumeService(
        client,
        export_drivers(state_dir, underlay_ip, flags),
        BackingStore(storage_dir(state_dir), check_free_space=not flags.fake_exports),
        VolumeServiceSettings(host=host, workers=workers, resync_interval=resync_interval),
        images=images,
    )
