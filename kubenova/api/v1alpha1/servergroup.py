"""ServerGroup: affinity or anti-affinity between Instances."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from .meta import CRDInfo, KubeModel, PrinterColumn, Resource, age_column, immutable


class ServerGroupPolicy(StrEnum):
    AFFINITY = "affinity"
    ANTI_AFFINITY = "anti-affinity"
    SOFT_AFFINITY = "soft-affinity"
    SOFT_ANTI_AFFINITY = "soft-anti-affinity"


class ServerGroupSpec(KubeModel):
    """The placement policy of a ServerGroup."""

    policy: ServerGroupPolicy = Field(
        description="affinity / anti-affinity are hard rules (no host fits → NoValidHost); "
        "soft-affinity / soft-anti-affinity only weigh hosts. Immutable.",
        json_schema_extra=immutable("spec.policy"),
    )


class ServerGroupStatus(KubeModel):
    members: list[str] = Field(default_factory=list, description="Member Instance names.")
    hosts: list[str] = Field(default_factory=list, description="Hosts the members run on.")


class ServerGroup(Resource):
    """A placement policy shared by Instances."""

    crd = CRDInfo(
        kind="ServerGroup",
        plural="servergroups",
        singular="servergroup",
        short_names=("sg",),
        namespaced=True,
        description="A ServerGroup makes its member Instances share hosts (affinity) or "
        "avoid sharing them (anti-affinity).",
        printer_columns=(
            PrinterColumn(name="Policy", type="string", json_path=".spec.policy"),
            PrinterColumn(name="Members", type="string", json_path=".status.members"),
            age_column(),
        ),
    )

    spec: ServerGroupSpec
    status: ServerGroupStatus | None = None
