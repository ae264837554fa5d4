"""Tokens (Fernet: sealed, expiring, revocable), microversion negotiation, Nova's faults."""

from __future__ import annotations

import json
import time

import pytest

from kubenova.errors import ApiError
from kubenova.openstack.faults import Fault, OverQuota, Service, from_api_error, render
from kubenova.openstack.microversion import MAX, MIN, Version, negotiate
from kubenova.openstack.tokens import CLOUD_ADMIN, TokenInvalid, TokenIssuer


def test_a_token_says_who_where_and_until_when() -> None:
    issuer = TokenIssuer()
    token = issuer.issue("alice", "alpha", "alpha-ns", ("member",))
    back = issuer.validate(issuer.encode(token))
    assert back == token
    assert not back.is_cloud_admin
    assert issuer.validate(
        issuer.encode(issuer.issue("root", "a", "a", (CLOUD_ADMIN,)))
    ).is_cloud_admin


def test_a_token_is_sealed_another_key_or_a_changed_byte_is_refused() -> None:
    issuer = TokenIssuer()
    text = issuer.encode(issuer.issue("alice", "alpha", "alpha", ("member",)))
    with pytest.raises(TokenInvalid):
        TokenIssuer().validate(text)
    flipped = text[:-5] + ("A" if text[-5] != "A" else "B") + text[-4:]
    with pytest.raises(TokenInvalid):
        issuer.validate(flipped)
    with pytest.raises(TokenInvalid):
        issuer.validate("")


def test_a_token_expires() -> None:
    issuer = TokenIssuer(lifetime=0.05)
    text = issuer.encode(issuer.issue("alice", "alpha", "alpha", ("member",)))
    issuer.validate(text)
    time.sleep(0.1)
    with pytest.raises(TokenInvalid, match="expired"):
        issuer.validate(text)


def test_revoking_a_token_or_a_user_voids_it() -> None:
    issuer = TokenIssuer()
    one = issuer.issue("alice", "alpha", "alpha", ("member",))
    two = issuer.issue("alice", "alpha", "alpha", ("member",))
    issuer.revoke(one)
    with pytest.raises(TokenInvalid, match="revoked"):
        issuer.validate(issuer.encode(one))
    issuer.validate(issuer.encode(two))
    issuer.revoke_user("alice")
    with pytest.raises(TokenInvalid, match="revoked"):
        issuer.validate(issuer.encode(two))


def test_the_compute_microversion_is_negotiated() -> None:
    assert negotiate({}) == MIN
    assert negotiate({"OpenStack-API-Version": "compute 2.60"}) == Version(2, 60)
    assert negotiate({"OpenStack-API-Version": "volume 3.1, compute latest"}) == MAX
    assert negotiate({"X-OpenStack-Nova-API-Version": "2.47"}) == Version(2, 47)
    with pytest.raises(Fault) as too_new:
        negotiate({"OpenStack-API-Version": "compute 2.80"})
    assert too_new.value.status == 406
    with pytest.raises(Fault) as garbage:
        negotiate({"OpenStack-API-Version": "compute two"})
    assert garbage.value.status == 400


def test_a_quota_refusal_reads_as_nova_writes_it() -> None:
    text = "admission webhook denied: quota exceeded in project alpha: instances 2 + 1 > 2"
    fault = from_api_error(ApiError(403, "Forbidden", text))
    assert (fault.status, fault.message) == (
        403,
        "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances",
    )
    assert fault.quota == OverQuota("instances", 2, 1, 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "quota exceeded in project alpha: volumes 3 + 1 > 3",
            "Maximum number of volumes allowed (3) exceeded for quota 'volumes'.",
        ),
        (
            "quota exceeded in project alpha: volumeGiB 8 + 5 > 10",
            "Requested volume or snapshot exceeds allowed gigabytes quota. Requested 5G, "
            "quota is 10G and 8G has been consumed.",
        ),
    ],
)
def test_block_storage_answers_a_quota_refusal_with_cinders_413(text: str, message: str) -> None:
    fault = from_api_error(ApiError(403, "Forbidden", text))
    answer = render(Service.VOLUME, fault)
    assert answer.status == 413
    assert answer.headers["Retry-After"] == "0"
    assert json.loads(answer.text or "") == {
        "overLimit": {"code": 413, "message": message, "retryAfter": "0"}
    }
    assert render(Service.COMPUTE, fault).status == 403  # Nova's answer stays 403


@pytest.mark.parametrize(
    ("status", "expected"), [(403, 403), (404, 404), (409, 409), (422, 400), (500, 503)]
)
def test_refusals_of_the_apiserver_keep_their_meaning(status: int, expected: int) -> None:
    assert from_api_error(ApiError(status, "X", "words")).status == expected
