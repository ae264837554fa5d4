"""Admission checks of a Project: a namespace of its own, and no deletion while in use."""

from __future__ import annotations

from kubenova.kube.meta import Body, name_of
from kubenova.operator.admission.errors import FORBIDDEN, AdmissionRefused
from kubenova.operator.admission.references import References
from kubenova.operator.tenancy import project_namespace
from kubenova.wellknown import PROJECT_LABEL

RESERVED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})


async def check_project(body: Body, refs: References, system_namespace: str) -> None:
    """Refuse a Project whose namespace is reserved or belongs to another Project."""
    name, namespace = name_of(body), project_namespace(body)
    field = "spec.namespace" if (body.get("spec") or {}).get("namespace") else "metadata.name"
    if namespace in RESERVED_NAMESPACES or namespace == system_namespace:
        raise AdmissionRefused(
            field, f"namespace {namespace} is reserved for the system; choose another"
        )
    for other in await refs.projects():
        if name_of(other) != name and project_namespace(other) == namespace:
            raise AdmissionRefused(
                field, f"namespace {namespace} belongs to project {name_of(other)}"
            )
    existing = await refs.namespace(namespace)
    owner = ((existing or {}).get("metadata", {}).get("labels") or {}).get(PROJECT_LABEL)
    if owner and owner != name:
        raise AdmissionRefused(field, f"namespace {namespace} belongs to project {owner}")


async def check_project_deletion(body: Body, refs: References) -> None:
    """Refuse deleting a Project whose namespace still holds Instances or Volumes."""
    namespace = project_namespace(body)
    held = {kind: n for kind, n in (await refs.holdings(namespace)).items() if n}
    if held:
        what = " and ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in held.items())
        raise AdmissionRefused(
            "",
            f"project {name_of(body)} still holds {what} in namespace {namespace}: "
            f"delete them first (kubectl delete instances,volumes --all -n {namespace})",
            code=FORBIDDEN,
        )
