"""The agent's volume service: block devices exported over iSCSI (tgt) or AoE (vblade).

- `driver`: the export contract (`ExportDriver`) with `tgt` (and its helpers `tgtadm`,
  `tgt_ipc`), `vblade` and `fake` behind it, and `backing` (the volumes' sparse files);
- `service` (watch + queue) runs `reconciler` (export, access list) and `status`; the
  compute host's half, plugging volumes into guests, is kubenova.agents.compute.attacher.
"""

from kubenova.agents.volume.driver import (
    AoeTarget,
    ChapCredentials,
    Export,
    ExportDaemonUnavailable,
    ExportDriver,
    ExportFailure,
    ExportSpec,
    Initiator,
    IscsiTarget,
    Target,
)

__all__ = [
    "AoeTarget",
    "ChapCredentials",
    "Export",
    "ExportDaemonUnavailable",
    "ExportDriver",
    "ExportFailure",
    "ExportSpec",
    "Initiator",
    "IscsiTarget",
    "Target",
]
