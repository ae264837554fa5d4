"""Object store credentials: from the Secret an Image names, or the agent's default store.

A credentials Secret holds `accessKey` and `secretKey`, and optionally `endpoint`
(`http(s)://host:port` or `host:port`), `secure` (true/false, for a bare endpoint) and
`region`. Without `endpoint` the agent's default store's endpoint is used.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping

from kubenova.agents.images.ref import DEFAULT_REGION, StoreCredentials
from kubenova.api.v1alpha1.image import SecretReference
from kubenova.errors import NotFoundError, TemporaryError, UserError
from kubenova.kube import ApiError, KubeClient, NotFound
from kubenova.kube.paths import SECRETS

ENDPOINT_ENV = "KUBENOVA_S3_ENDPOINT"
ACCESS_KEY_ENV = "KUBENOVA_S3_ACCESS_KEY"
SECRET_KEY_ENV = "KUBENOVA_S3_SECRET_KEY"
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def default_store_from_env(environ: Mapping[str, str] = os.environ) -> StoreCredentials | None:
    """The agent's default store from KUBENOVA_S3_ENDPOINT/_ACCESS_KEY/_SECRET_KEY, if set."""
    endpoint = environ.get(ENDPOINT_ENV, "")
    if not endpoint:
        return None
    missing = [name for name in (ACCESS_KEY_ENV, SECRET_KEY_ENV) if not environ.get(name)]
    if missing:
        raise UserError(
            f"{ENDPOINT_ENV} is set but {' and '.join(missing)} is not: set both keys",
            reason="InvalidImageStore",
        )
    return StoreCredentials.from_endpoint(
        endpoint,
        environ[ACCESS_KEY_ENV],
        environ[SECRET_KEY_ENV],
        origin=f"the agent's default object store settings ({ENDPOINT_ENV}, ...)",
    )


def credentials_from_secret_data(
    data: Mapping[str, str], ref: SecretReference, default: StoreCredentials | None
) -> StoreCredentials:
    """Credentials from a Secret's decoded `data`; the message names the Secret on any gap."""
    origin = f"Secret {ref.namespace}/{ref.name}"
    missing = [key for key in ("accessKey", "secretKey") if not data.get(key)]
    if missing:
        raise UserError(
            f"{origin} has no {' and '.join(missing)}: it needs accessKey and secretKey "
            "(and optionally endpoint, secure, region) for the object store",
            reason="InvalidImageStoreSecret",
        )
    secure = None
    if "secure" in data:
        secure = _BOOLEANS.get(data["secure"].strip().lower())
        if secure is None:
            raise UserError(
                f"{origin}: secure must be true or false, not {data['secure']!r}",
                reason="InvalidImageStoreSecret",
            )
    endpoint = data.get("endpoint", "").strip()
    if not endpoint:
        if default is None:
            raise UserError(
                f"{origin} has no endpoint and this agent has no default object store: add "
                "an endpoint (http(s)://host:port) to the Secret",
                reason="InvalidImageStoreSecret",
            )
        endpoint, secure = default.endpoint, default.secure if secure is None else secure
    return StoreCredentials.from_endpoint(
        endpoint,
        data["accessKey"],
        data["secretKey"],
        secure=secure,
        region=data.get("region", "").strip() or DEFAULT_REGION,
        origin=origin,
    )


def decode_secret_data(body: Mapping[str, object], ref: SecretReference) -> dict[str, str]:
    """A Secret's `data` (base64; the API server never returns stringData), as text."""
    decoded: dict[str, str] = {}
    raw = body.get("data") or {}
    if not isinstance(raw, Mapping):
        raise UserError(f"Secret {ref.namespace}/{ref.name} has malformed data")
    for key, value in raw.items():
        try:
            decoded[str(key)] = base64.b64decode(str(value), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as error:
            raise UserError(
                f"Secret {ref.namespace}/{ref.name}: key {key} is not base64 UTF-8 text",
                reason="InvalidImageStoreSecret",
            ) from error
    return decoded


async def read_secret_credentials(
    client: KubeClient, ref: SecretReference, default: StoreCredentials | None
) -> StoreCredentials:
    """Read the Secret `ref` through the API server and turn it into credentials."""
    try:
        body = await client.get(SECRETS, ref.name, ref.namespace)
    except NotFound as error:
        raise NotFoundError(
            f"Secret {ref.namespace}/{ref.name}, named as the image's credentialsSecret, does "
            "not exist: create it (accessKey, secretKey, endpoint) or correct the reference",
            reason="ImageStoreSecretNotFound",
        ) from error
    except ApiError as error:
        raise TemporaryError(
            f"cannot read Secret {ref.namespace}/{ref.name}: {error}"
            + (" (the agent's RBAC role needs get on secrets)" if error.status == 403 else ""),
            delay=30.0,
        ) from error
    return credentials_from_secret_data(decode_secret_data(body, ref), ref, default)
