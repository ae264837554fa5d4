"""Project: a tenant, backed by one namespace, with members from the auth backend and quotas."""

from __future__ import annotations

from pydantic import Field

from .meta import (
    Condition,
    CRDInfo,
    KubeModel,
    LabelName,
    PrinterColumn,
    Resource,
    age_column,
    conditions_field,
    immutable,
    ready_column,
)


class Quota(KubeModel):
    """Upper bounds on what a project may claim; an omitted bound means unlimited."""

    instances: int | None = Field(default=None, ge=0, description="Instances.")
    vcpus: int | None = Field(default=None, ge=0, description="Virtual CPUs.")
    memory_mib: int | None = Field(default=None, ge=0, alias="memoryMiB", description="MiB.")
    volumes: int | None = Field(default=None, ge=0, description="Volumes.")
    volume_gib: int | None = Field(default=None, ge=0, alias="volumeGiB", description="GiB.")
    floating_ips: int | None = Field(
        default=None, ge=0, alias="floatingIPs", description="Floating IPs."
    )


class ProjectSpec(KubeModel):
    """A tenant's namespace, description and quota."""

    namespace: LabelName | None = Field(
        default=None,
        description="The namespace that holds the project's resources; the project's name "
        "when omitted. Immutable.",
        json_schema_extra=immutable("spec.namespace"),
    )
    description: str = Field(default="", max_length=1024, description="Free text.")
    quota: Quota = Field(
        default_factory=Quota, description="Resource limits.", json_schema_extra={"default": {}}
    )


class Usage(KubeModel):
    instances: int = 0
    vcpus: int = 0
    memory_mib: int = Field(default=0, alias="memoryMiB")
    volumes: int = 0
    volume_gib: int = Field(default=0, alias="volumeGiB")
    floating_ips: int = Field(default=0, alias="floatingIPs")


class ProjectStatus(KubeModel):
    namespace: str | None = Field(default=None, description="The namespace in use.")
    usage: Usage | None = Field(default=None, description="Claims counted from the inventory.")
    members: int | None = Field(default=None, description="Members found in the auth backend.")
    observed_generation: int | None = Field(default=None)
    conditions: list[Condition] = conditions_field()


class Project(Resource):
    """A tenant."""

    crd = CRDInfo(
        kind="Project",
        plural="projects",
        singular="project",
        short_names=("proj",),
        namespaced=False,
        description="A Project is a tenant: one namespace, members and roles from the auth "
        "backend bound with RBAC, and quotas enforced at admission.",
        printer_columns=(
            PrinterColumn(name="Namespace", type="string", json_path=".status.namespace"),
            ready_column(),
            age_column(),
        ),
    )

    spec: ProjectSpec = Field(default_factory=ProjectSpec, json_schema_extra={"default": {}})
    status: ProjectStatus | None = None
