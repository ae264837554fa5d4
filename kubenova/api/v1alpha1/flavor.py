"""Flavor: a named size for Instances (cluster-scoped, immutable like Nova's flavors)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .meta import CRDInfo, KubeModel, PrinterColumn, Resource, age_column, immutable


class FlavorSpec(KubeModel):
    """The size a Flavor gives an Instance. Flavors are immutable: make a new one instead."""

    model_config = {"json_schema_extra": immutable("a Flavor's spec")}

    vcpus: int = Field(ge=1, le=256, description="Number of virtual CPUs.")
    memory_mib: int = Field(
        alias="memoryMiB", ge=64, le=4194304, description="Guest memory in MiB (at least 64)."
    )
    disk_gib: int = Field(alias="diskGiB", ge=1, le=65536, description="Root disk size in GiB.")
    extra_specs: dict[str, Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=dict,
        max_length=64,
        description="Free-form key/value hints for the scheduler and the hypervisor.",
    )


class Flavor(Resource):
    """A named Instance size."""

    crd = CRDInfo(
        kind="Flavor",
        plural="flavors",
        singular="flavor",
        short_names=("flv",),
        namespaced=False,
        description="A Flavor is a named size (vcpus, memory, disk) that Instances refer to "
        "by name.",
        printer_columns=(
            PrinterColumn(name="VCPUs", type="integer", json_path=".spec.vcpus"),
            PrinterColumn(name="Memory", type="integer", json_path=".spec.memoryMiB"),
            PrinterColumn(name="Disk", type="integer", json_path=".spec.diskGiB"),
            age_column(),
        ),
        has_status=False,
    )

    spec: FlavorSpec
