"""Reading a Kubernetes object as the API sends it: the `Body` type and its metadata.

Reconcilers work on the JSON body (kopf hands them one, the watch kit queues them), so
one alias names it and these accessors read its metadata, instead of `body["metadata"]`
look-ups spread through the code. The accessors of fields every stored object has
(`name_of`, `uid_of`) raise KeyError on a body without them; the others answer with
the field's empty value.
"""

from __future__ import annotations

import contextlib
from typing import Any

Body = dict[str, Any]


def metadata_of(body: Body) -> dict[str, Any]:
    return body.get("metadata") or {}


def name_of(body: Body) -> str:
    return str(body["metadata"]["name"])


def namespace_of(body: Body) -> str | None:
    """None for a cluster-scoped object."""
    return metadata_of(body).get("namespace")


def uid_of(body: Body) -> str:
    return str(body["metadata"]["uid"])


def generation_of(body: Body) -> int | None:
    return metadata_of(body).get("generation")


def labels_of(body: Body) -> dict[str, str]:
    return metadata_of(body).get("labels") or {}


def annotations_of(body: Body) -> dict[str, str]:
    return metadata_of(body).get("annotations") or {}


def finalizers_of(body: Body) -> list[str]:
    return list(metadata_of(body).get("finalizers") or [])


def owners_of(body: Body) -> list[Body]:
    """The ownerReferences entries."""
    return list(metadata_of(body).get("ownerReferences") or [])


def deleting(body: Body) -> bool:
    """Has deletion been asked for (the object waits only for its finalizers)?"""
    return bool(metadata_of(body).get("deletionTimestamp"))


def resource_version(body: Body) -> int | None:
    """resourceVersion as a number (etcd revisions are), to order writes, events and lists.

    None when it is missing or not a number: callers then cannot tell which came first.
    """
    with contextlib.suppress(KeyError, TypeError, ValueError):
        return int(body["metadata"]["resourceVersion"])
    return None


def ref(body: Body) -> tuple[str | None, str]:
    """(namespace, name) of an object."""
    return namespace_of(body), name_of(body)


def key_of(body: Body) -> str:
    """`namespace/name`, or `name` for a cluster-scoped object: the work queues' key."""
    namespace, name = ref(body)
    return f"{namespace}/{name}" if namespace else name
