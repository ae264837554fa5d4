"""The real image store: objects read from an S3 server via the minio SDK."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from kubenova.agents.images.driver import SHA256_METADATA, ImageStore, ObjectStream
from kubenova.agents.images.errors import (
    ImageNotFound,
    ImageStoreAccessDenied,
    ImageStoreUnavailable,
)
from kubenova.agents.images.ref import ImageRef, StoreCredentials
from kubenova.errors import UserError

CHUNK_SIZE = 1024 * 1024
_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NoSuchObject"}
_REFUSED = {
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "AccessDenied",
    "InvalidToken",
    "ExpiredToken",
}


def _http_client() -> urllib3.PoolManager:
    # The SDK's default retries a refused connection for minutes; an agent would rather
    # report the store unavailable and retry the whole reconcile later.
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=10, read=60),
        maxsize=8,
        retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )


class S3ImageStore(ImageStore):
    """Reads images from S3; `default` is used for images whose spec names no Secret."""

    def __init__(self, cache_dir: Path, default: StoreCredentials | None = None) -> None:
        super().__init__(cache_dir)
        self.default = default
        self._clients: dict[StoreCredentials, Minio] = {}
        self._clients_lock = threading.Lock()

    def _credentials(self, image: ImageRef) -> StoreCredentials:
        credentials = image.credentials or self.default
        if credentials is None:
            raise UserError(
                f"Image {image.name} names no spec.source.credentialsSecret and this agent has "
                "no default object store: add a Secret with accessKey/secretKey/endpoint and "
                "name it in the Image, or configure the agent's store (KUBENOVA_S3_ENDPOINT, "
                "KUBENOVA_S3_ACCESS_KEY, KUBENOVA_S3_SECRET_KEY)",
                reason="ImageStoreNotConfigured",
            )
        return credentials

    def _client(self, credentials: StoreCredentials) -> Minio:
        # One client (one connection pool) per store and key pair; the SDK is thread-safe.
        with self._clients_lock:
            client = self._clients.get(credentials)
            if client is None:
                client = Minio(
                    credentials.endpoint,
                    access_key=credentials.access_key,
                    secret_key=credentials.secret_key,
                    secure=credentials.secure,
                    # Given, so the SDK does not ask the server first (one request less).
                    region=credentials.region,
                    http_client=_http_client(),
                )
                self._clients[credentials] = client
            return client

    def _stored_sha256(self, image: ImageRef) -> str | None:
        credentials = self._credentials(image)
        with _translated(image, credentials):
            stat = self._client(credentials).stat_object(image.bucket, image.key)
        value = (stat.metadata or {}).get(f"x-amz-meta-{SHA256_METADATA}")
        return str(value).lower() if value else None

    @contextlib.contextmanager
    def _open(self, image: ImageRef) -> Iterator[ObjectStream]:
        credentials = self._credentials(image)
        with _translated(image, credentials):
            response = self._client(credentials).get_object(image.bucket, image.key)
        try:
            length = response.headers.get("content-length")
            yield ObjectStream(
                size=int(length) if length else None,
                chunks=_translated_chunks(image, credentials, response.stream(CHUNK_SIZE)),
            )
        finally:
            response.close()
            response.release_conn()


def _translated_chunks(
    image: ImageRef, credentials: StoreCredentials, chunks: Iterator[bytes]
) -> Iterator[bytes]:
    with _translated(image, credentials):
        yield from chunks


@contextlib.contextmanager
def _translated(image: ImageRef, credentials: StoreCredentials) -> Iterator[None]:
    """Turn SDK and transport errors into the image service's errors."""
    try:
        yield
    except S3Error as error:
        _raise_for_s3_error(image, credentials, error)
    except (ServerError, InvalidResponseError) as error:
        raise ImageStoreUnavailable(
            f"Image {image.name}: the object store at {credentials.url} failed reading "
            f"{image.location}: {error}",
            delay=10.0,
        ) from error
    except (urllib3.exceptions.HTTPError, OSError, MinioException) as error:
        raise ImageStoreUnavailable(
            f"Image {image.name}: cannot read {image.location} from the object store at "
            f"{credentials.url} ({credentials.origin}): {error}",
            delay=10.0,
        ) from error


def _raise_for_s3_error(image: ImageRef, credentials: StoreCredentials, error: S3Error) -> NoReturn:
    detail = f"{error.code}: {error.message}"
    if error.code in _NOT_FOUND:
        what = "bucket" if error.code == "NoSuchBucket" else "object"
        raise ImageNotFound(
            f"Image {image.name}: {image.location} does not exist in the object store at "
            f"{credentials.url} (the {what} is missing; {detail}). Upload it with `kubenova "
            "image upload` or correct spec.source.",
            reason="ImageNotFound",
        ) from error
    if error.code in _REFUSED:
        raise ImageStoreAccessDenied(
            f"Image {image.name}: the object store at {credentials.url} refused the credentials "
            f"from {credentials.origin} reading {image.location} ({detail}). Put a valid "
            "accessKey/secretKey with read access to that bucket there.",
            reason="ImageStoreAccessDenied",
        ) from error
    raise ImageStoreUnavailable(
        f"Image {image.name}: the object store at {credentials.url} refused to read "
        f"{image.location} ({detail})",
        delay=10.0,
    ) from error
