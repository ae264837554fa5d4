"""The reconciler kit: metadata accessors, resource versions, the last-write check, errors."""

from __future__ import annotations

import pytest

from kubenova.errors import ApiError, Conflict, KubenovaError, NotFound, TemporaryError, UserError
from kubenova.kube.meta import (
    Body,
    deleting,
    finalizers_of,
    key_of,
    labels_of,
    name_of,
    namespace_of,
    ref,
    resource_version,
    uid_of,
)
from kubenova.kube.objects import LastWrites


def a_volume(version: str = "7", **meta: object) -> Body:
    return {
        "metadata": {"name": "data", "namespace": "team", "uid": "u1", "resourceVersion": version}
        | meta,
        "status": {"phase": "Pending"},
    }


def test_accessors_read_metadata_and_default_what_may_be_absent() -> None:
    body = a_volume(labels={"example.com/owner": "h1"})
    assert (name_of(body), namespace_of(body), uid_of(body)) == ("data", "team", "u1")
    assert key_of(body) == "team/data"
    assert labels_of(body) == {"example.com/owner": "h1"}
    assert finalizers_of(body) == []
    assert not deleting(body)
    assert deleting(a_volume(deletionTimestamp="2026-01-01T00:00:00Z"))


def test_cluster_scoped_objects_have_no_namespace() -> None:
    flavor: Body = {"metadata": {"name": "m1.small"}}
    assert ref(flavor) == (None, "m1.small")
    assert key_of(flavor) == "m1.small"
    with pytest.raises(KeyError):
        namespace_of(flavor)


def test_resource_version_is_a_number_or_none() -> None:
    assert resource_version(a_volume("42")) == 42
    assert resource_version(a_volume("not-a-number")) is None
    assert resource_version({"metadata": {}}) is None


def test_last_writes_trust_our_write_over_an_older_body() -> None:
    writes = LastWrites()
    written = {"phase": "Available"}
    writes.remember("u1", a_volume("10"), written)
    assert writes.newest_status(a_volume("9")) == written  # the event predates our write
    assert writes.newest_status(a_volume("11")) == {"phase": "Pending"}  # newer: the body wins
    assert writes.last("u1") == written
    writes.forget("u1")
    assert writes.newest_status(a_volume("9")) == {"phase": "Pending"}


@pytest.mark.parametrize(
    ("error", "temporary"),
    [
        (ApiError(500, "InternalError", "etcd"), True),
        (ApiError(429, "TooManyRequests", "slow down"), True),
        (ApiError(403, "Forbidden", "no"), False),
        (NotFound(404, "NotFound", "gone"), False),
        (Conflict(409, "Conflict", "stale"), False),
        (TemporaryError("later"), True),
        (UserError("fix it"), False),
    ],
)
def test_api_errors_are_kubenova_errors_and_say_when_they_are_temporary(
    error: KubenovaError, *, temporary: bool
) -> None:
    assert isinstance(error, KubenovaError)
    assert error.temporary is temporary


def test_api_error_keeps_the_servers_words() -> None:
    error = ApiError(503, "", "unavailable")
    assert (error.status, error.message, str(error)) == (503, "unavailable", "503 : unavailable")
    assert error.reason == "ApiError"  # a condition reason is never empty
