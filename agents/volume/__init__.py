"""The agent's volume service: block devices exported over iSCSI (tgt) or AoE (vblade).

- `driver`: the export contract (`ExportDriver`) with `tgt_driver`, `vblade_driver` and
  `fake_driver` behind it, and `backing` (the volumes' sparse files);
- `service`: reconciles the Volumes placed on this host (export, access list, status);
- `attacher`: on compute hosts, plugs the volumes an Instance lists into its guest.
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
