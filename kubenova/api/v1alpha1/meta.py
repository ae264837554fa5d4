"""Shared building blocks of every kubenova resource: the base model, conditions, CRD metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from kubenova.api.group import GROUP, VERSION

API_VERSION = f"{GROUP}/{VERSION}"

# Kubernetes object names (DNS-1123 subdomain); references to other objects use it.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ResourceName = Annotated[str, Field(min_length=1, max_length=253, pattern=NAME_PATTERN)]

# A DNS-1123 label: what namespaces, availability zones and host names must look like.
LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
LabelName = Annotated[str, Field(min_length=1, max_length=63, pattern=LABEL_PATTERN)]

IPV4_PATTERN = (
    r"^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}"
    r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$"
)


def immutable(what: str) -> dict[str, Any]:
    """Schema extra making a field unchangeable after creation (a CEL transition rule)."""
    return {
        "x-kubernetes-validations": [
            {"rule": "self == oldSelf", "message": f"{what} is immutable once created"}
        ]
    }


class KubeModel(BaseModel):
    """Base of all API models: camelCase on the wire, snake_case in Python, no unknown fields."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
    )


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(KubeModel):
    """The latest observation of one aspect of a resource (Kubernetes API conventions)."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="Type of condition in CamelCase, e.g. Ready or Scheduled. Each component "
        "owns its own condition types.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        default="",
        max_length=1024,
        description="A programmatic identifier in CamelCase for the last transition, "
        "e.g. NoValidHost.",
    )
    message: str = Field(
        default="",
        max_length=32768,
        description="A human readable message about the transition: what happened and what "
        "to change.",
    )
    last_transition_time: datetime | None = Field(
        default=None, description="When the condition last changed status."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation this condition was set for."
    )


def conditions_field() -> Any:
    """A `conditions` list as a map keyed by type, so each writer owns its own entries."""
    return Field(
        default_factory=list,
        max_length=32,
        description="Current conditions of the resource, one per type.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )


@dataclass(frozen=True)
class PrinterColumn:
    """An additional column for `kubectl get`."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class CRDInfo:
    """How a model is published as a CustomResourceDefinition."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    namespaced: bool
    description: str
    printer_columns: tuple[PrinterColumn, ...] = ()
    selectable_fields: tuple[str, ...] = ()
    categories: tuple[str, ...] = ("kubenova",)
    has_status: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class Resource(KubeModel):
    """A kubenova custom resource: `spec` is desired, `status` observed."""

    crd: ClassVar[CRDInfo]
    model_config = ConfigDict(extra="ignore")  # apiVersion/kind/metadata are the apiserver's


def age_column() -> PrinterColumn:
    return PrinterColumn(name="Age", type="date", json_path=".metadata.creationTimestamp")


def ready_column() -> PrinterColumn:
    return PrinterColumn(
        name="Ready", type="string", json_path='.status.conditions[?(@.type=="Ready")].status'
    )


def phase_column() -> PrinterColumn:
    return PrinterColumn(name="Phase", type="string", json_path=".status.phase")
