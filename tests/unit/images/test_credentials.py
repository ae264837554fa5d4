"""Store credentials from endpoints, Secrets and the agent's environment."""

from __future__ import annotations

import base64

import pytest

from kubenova.agents.images import (
    StoreCredentials,
    credentials_from_secret_data,
    default_store_from_env,
)
from kubenova.agents.images.credentials import decode_secret_data
from kubenova.api.v1alpha1.image import SecretReference
from kubenova.errors import UserError

REF = SecretReference(name="store-keys", namespace="tenant-a")
DEFAULT = StoreCredentials.from_endpoint("https://s3.internal:9000", "agent", "agent-secret")


@pytest.mark.parametrize(
    ("endpoint", "secure", "expected"),
    [
        ("http://127.0.0.1:9000", None, ("127.0.0.1:9000", False)),
        ("https://s3.example.org", None, ("s3.example.org", True)),
        ("s3.example.org:443", None, ("s3.example.org:443", True)),
        ("10.0.0.5:9000", False, ("10.0.0.5:9000", False)),
        ("http://10.0.0.5:9000/", None, ("10.0.0.5:9000", False)),
    ],
)
def test_endpoint_forms(endpoint: str, secure: bool | None, expected: tuple[str, bool]) -> None:
    credentials = StoreCredentials.from_endpoint(endpoint, "a", "b", secure=secure)
    assert (credentials.endpoint, credentials.secure) == expected


@pytest.mark.parametrize(
    ("endpoint", "secure", "says"),
    [
        ("ftp://host", None, "must look like"),
        ("http://host:9000/bucket", None, "has a path"),
        ("http://host:9000", True, "drop one of them"),
        ("", None, "empty endpoint"),
    ],
)
def test_bad_endpoints_say_what_to_fix(endpoint: str, secure: bool | None, says: str) -> None:
    with pytest.raises(UserError, match=says):
        StoreCredentials.from_endpoint(endpoint, "a", "b", secure=secure, origin="Secret x/y")


def test_secret_key_is_not_in_the_repr() -> None:
    assert "agent-secret" not in repr(DEFAULT)


def test_secret_with_endpoint_and_keys() -> None:
    data = {"accessKey": "ak", "secretKey": "sk", "endpoint": "10.1.1.1:9000", "secure": "false"}

    credentials = credentials_from_secret_data(data, REF, DEFAULT)

    assert credentials == StoreCredentials(
        "10.1.1.1:9000", "ak", "sk", secure=False, origin="Secret tenant-a/store-keys"
    )


def test_secret_without_endpoint_uses_the_default_store() -> None:
    credentials = credentials_from_secret_data({"accessKey": "ak", "secretKey": "sk"}, REF, DEFAULT)

    assert (credentials.url, credentials.access_key) == ("https://s3.internal:9000", "ak")
    assert credentials.origin == "Secret tenant-a/store-keys"


def test_secret_without_endpoint_and_no_default_store() -> None:
    with pytest.raises(UserError, match="tenant-a/store-keys has no endpoint"):
        credentials_from_secret_data({"accessKey": "ak", "secretKey": "sk"}, REF, None)


def test_secret_missing_keys_is_named() -> None:
    with pytest.raises(UserError) as caught:
        credentials_from_secret_data({"accessKey": "ak"}, REF, DEFAULT)
    assert "Secret tenant-a/store-keys has no secretKey" in caught.value.message
    assert caught.value.reason == "InvalidImageStoreSecret"


def test_secret_with_a_bad_secure_flag() -> None:
    data = {"accessKey": "ak", "secretKey": "sk", "secure": "maybe"}
    with pytest.raises(UserError, match="secure must be true or false"):
        credentials_from_secret_data(data, REF, DEFAULT)


def test_secret_data_is_decoded_from_base64() -> None:
    body = {"data": {"accessKey": base64.b64encode(b"ak").decode()}}
    assert decode_secret_data(body, REF) == {"accessKey": "ak"}
    with pytest.raises(UserError, match="not base64"):
        decode_secret_data({"data": {"accessKey": "%%%"}}, REF)


def test_default_store_from_environment() -> None:
    environ = {
        "KUBENOVA_S3_ENDPOINT": "http://127.0.0.1:9000",
        "KUBENOVA_S3_ACCESS_KEY": "ak",
        "KUBENOVA_S3_SECRET_KEY": "sk",
    }
    credentials = default_store_from_env(environ)
    assert credentials is not None
    assert (credentials.url, credentials.access_key, credentials.secret_key) == (
        "http://127.0.0.1:9000",
        "ak",
        "sk",
    )
    assert default_store_from_env({}) is None
    with pytest.raises(UserError, match="KUBENOVA_S3_SECRET_KEY is not"):
        default_store_from_env({**environ, "KUBENOVA_S3_SECRET_KEY": ""})
