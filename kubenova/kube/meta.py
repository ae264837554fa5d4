"""Reading a Kubernetes object as the API sends it: the `Body` type and its metadata.

Reconcilers work on the JSON body (kopf hands them one, the watch kit queues them), so
one alias names it and these accessors read its metadata, instead of `body["metadata"]`
look-ups spread through the code. The accessors of fields every stored object has
(`name_of`, `uid_of`, and `namespace_of` for a namespaced one) raise KeyError on a body
without them; the others answer with the field's empty value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

Body = dict[str, Any]
# What the accessors read: a Body, or any read-only view of one (kopf hands out those).
Object = Mapping[str, Any]


def metadata_of(body: Object) -> Mapping[str, Any]:
    return body.get("metadata") or {}


def name_of(body: Object) -> str:
    return str(body["metadata"]["name"])


def namespace_of(body: Object) -> str:
    """The namespace of a namespaced object (KeyError for a cluster-scoped one: see `ref`)."""
    return str(body["metadata"]["namespace"])


def uid_of(body: Object) -> str:
    return str(body["metadata"]["uid"])


def generation_of(body: Object) -> int | None:
    return metadata_of(body).get("generation")


def labels_of(body: Object) -> dict[str, str]:
    return metadata_of(body).get("labels") or {}


def annotations_of(body: Object) -> dict[str, str]:
    return metadata_of(body).get("annotations") or {}


def finalizers_of(body: Object) -> list[str]:
    return list(metadata_of(body).get("finalizers") or [])


def owners_of(body: Object) -> list[Body]:
    """The ownerReferences entries."""
    return list(metadata_of(body).get("ownerReferences") or [])


def deleting(body: Object) -> bool:
    """Has deletion been asked for (the object waits only for its finalizers)?"""
    return bool(metadata_of(body).get("deletionTimestamp"))


def resource_version(body: Object) -> int | None:
    """resourceVersion as a number (etcd revisions are), to order writes, events and lists.

    None when it is missing or not a number: callers then cannot tell which came first.
    """
    with contextlib.suppress(KeyError, TypeError, ValueError):
        return int(body["metadata"]["resourceVersion"])
    return None


def ref(body: Object) -> tuple[str | None, str]:
    """(namespace, name) of an object; namespace None for a cluster-scoped one."""
    return metadata_of(body).get("namespace"), name_of(body)


def key_of(body: Object) -> str:
    """`namespace/name`, or `name` for a cluster-scoped object: the work queues' key."""
    namespace, name = ref(body)
    return f"{namespace}/{name}" if namespace else name


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def slim(body: Body) -> Body:
    """`body` without what no reconciler reads but every cached copy would carry.

    managedFields (one entry per writer) and kubectl's last-applied-configuration (a
    second copy of the whole manifest) make up most of a typical object; a controller
    keeping the newest body of 10,000 objects keeps them all.
    """
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if "managedFields" not in meta and LAST_APPLIED not in annotations:
        return body
    trimmed = {k: v for k, v in meta.items() if k != "managedFields"}
    if LAST_APPLIED in annotations:
        rest = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
        if rest:
            trimmed["annotations"] = rest
        else:
            trimmed.pop("annotations", None)
    return {**body, "metadata": trimmed}
