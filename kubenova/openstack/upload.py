"""Image v2 upload: `POST /v2/images` queues an image, `PUT /v2/images/{id}/file` streams
its bytes into the object store and only then creates the Image.

An Image's spec is immutable and needs the bytes' sha256, so no Image exists while an
upload is queued: the queued image is a record of this process (kubenova.openstack.image
`Queued`; lost with the process, as Glance kills an unfinished upload). Its id is a fresh
UUID; once the bytes are in, the Image is created and `GET /v2/images/{that id}` shows it
(with the Image's UID as its id from then on, as every other Image).

Who may upload is whoever RBAC lets create Images: asked with a SubjectAccessReview as the
user when the upload is queued and again before a byte is read, so a refused user never
fills the store; the Image itself is created as the user (impersonation), so the admission
webhook decides too. Its status (Available, sizeBytes) is written with the API's own
identity, as `kubenova image upload` writes it: the uploader is the one who knows the bytes
are in the store, and tenants write spec only.

The body goes to the store part by part (one part in memory at a time, `part_size`; multipart
beyond one part) through the minio SDK in a thread, and sha256 (the spec's) and md5
(Glance's `checksum`) are computed as it passes. A body over the size limit gets 413: before
a byte is read when its length is declared, else as soon as it grows past the limit (the
multipart upload is aborted). Its first bytes must agree with the declared disk format, as
`kubenova image upload` checks: a raw file posing as qcow2 could name a backing file on
the host. Objects are `openstack/<upload id>` in the bucket; the sha256 is in the spec.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, cast

from aiohttp import StreamReader, web
from minio import Minio
from minio.error import MinioException

from kubenova.api.v1alpha1 import Image
from kubenova.errors import ApiError
from kubenova.kube import kubenova_kind
from kubenova.kube.client import MERGE_PATCH
from kubenova.kube.meta import name_of, uid_of
from kubenova.openstack.cloud import CLOUD_KEY, TOKEN_KEY, Cloud
from kubenova.openstack.faults import Fault
from kubenova.openstack.image import (
    MD5_ANNOTATION,
    PREFIX,
    UPLOADS_KEY,
    Queued,
    find,
    queued_view,
)
from kubenova.openstack.tokens import Token

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

MIB = 1024 * 1024
MIN_PART = 8 * MIB
MAX_PARTS = 10_000  # S3's
QCOW2_MAGIC = b"QFI\xfb"
FORMATS = ("qcow2", "raw")
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
QUEUED_PER_USER = 8  # uploads a user may have waiting for bytes at once
QUEUED_LIFETIME = 3600.0  # seconds a record is kept (the lifetime of a token)
KEY_PREFIX = "openstack"


@dataclass(frozen=True)
class UploadStore:
    """Where uploaded bytes go: the object store the hosts read Images from by default."""

    endpoint: str  # host:port, the minio SDK's form
    access_key: str
    secret_key: str
    secure: bool
    bucket: str
    max_bytes: int

    @property
    def part_size(self) -> int:
        """The smallest part (memory per upload) with which the largest image fits S3's
        10,000 parts, in whole MiB."""
        return max(MIN_PART, -(-self.max_bytes // (MAX_PARTS - 1) // MIB) * MIB + MIB)

    def client(self) -> Minio:
        return Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=self.secure,
        )


STORE_KEY: web.AppKey[UploadStore | None] = web.AppKey("osapi.image-store")


class TooLarge(Exception):
    pass


class WrongFormat(Exception):
    pass


class BodyReader:
    """The request body as the blocking file the minio SDK reads, from its thread; hashes,
    counts and checks the bytes on the way."""

    def __init__(
        self,
        content: StreamReader,
        loop: asyncio.AbstractEventLoop,
        store: UploadStore,
        declared: str,
    ) -> None:
        self.content, self.loop, self.declared = content, loop, declared
        self.limit, self.part_size = store.max_bytes, store.part_size
        self.sha256, self.md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        self.size = 0
        self.head = b""

    def read(self, size: int = -1) -> bytes:
        wanted = self.part_size if size < 0 else min(size, self.part_size)
        chunk = asyncio.run_coroutine_threadsafe(self._gather(wanted), self.loop).result()
        self.size += len(chunk)
        if self.size > self.limit:
            raise TooLarge
        if len(self.head) < len(QCOW2_MAGIC):
            self.head += chunk[: len(QCOW2_MAGIC) - len(self.head)]
            if len(self.head) == len(QCOW2_MAGIC) or not chunk:
                self.check_format()
        self.sha256.update(chunk)
        self.md5.update(chunk)
        return chunk

    async def _gather(self, wanted: int) -> bytes:
        """`wanted` bytes, fewer only at the end: the SDK asks for a whole part and would
        otherwise concatenate it from the socket's small chunks, copying it over and over."""
        chunks, got = [], 0
        while got < wanted:
            chunk = await self.content.read(min(wanted - got, self.limit + 1 - self.size - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
            if self.size + got > self.limit:
                break  # read() refuses it; read no more of an oversized body
        return b"".join(chunks)

    def check_format(self) -> None:
        found = "qcow2" if self.head == QCOW2_MAGIC else "raw"
        if found != self.declared:
            raise WrongFormat(f"the data is a {found} image, not {self.declared}")


def ctx(request: web.Request) -> tuple[Cloud, Token]:
    return request.app[CLOUD_KEY], request[TOKEN_KEY]


async def check_may_create(cloud: Cloud, token: Token) -> None:
    if token.user.startswith("system:") or not await cloud.may(token.user, "create", "images"):
        raise Fault(
            403,
            f"You are not authorized to create images: RBAC does not let {token.user} create "
            "Images (cluster-wide; a cloud administrator's)",
        )


def small_int(doc: dict[str, Any], key: str, floor: int) -> int:
    value = doc.get(key) or 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2**31:
        raise Fault(400, f"Invalid value {value!r} for {key}: a whole number >= 0")
    return max(value, floor)


@routes.post(f"{PREFIX}/images")
async def create(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    try:
        doc = await request.json()
    except ValueError as exc:
        raise Fault(400, "the body must be a JSON object") from exc
    if not isinstance(doc, dict):
        raise Fault(400, "the body must be a JSON object")
    name = doc.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise Fault(
            400,
            f"Invalid image name {name!r}: a Kubernetes name is needed "
            "(lowercase letters, digits and '-', at most 63)",
        )
    disk_format = doc.get("disk_format")
    if disk_format is not None and disk_format not in FORMATS:
        raise Fault(400, f"Invalid disk_format {disk_format!r}: kubenova boots qcow2 and raw")
    if doc.get("container_format") not in (None, "bare"):
        raise Fault(400, f"Invalid container_format {doc['container_format']!r}: only bare")
    uploads = request.app[UPLOADS_KEY]
    prune(uploads)
    if cloud.cache[Image].named(name) is not None or any(
        q.name == name and q.image is None for q in uploads.values()
    ):
        raise Fault(409, f"Image name {name} is taken: an Image's name is its identity here")
    waiting = [q for q in uploads.values() if q.user == token.user and q.image is None]
    if len(waiting) >= QUEUED_PER_USER:
        raise Fault(
            413,
            f"Maximum number of queued images exceeded: {len(waiting)} of {QUEUED_PER_USER} "
            "wait for their data; upload or delete one first",
        )
    await check_may_create(cloud, token)
    record = Queued(
        id=str(uuid.uuid4()),
        name=name,
        user=token.user,
        disk_format=disk_format,
        min_disk=small_int(doc, "min_disk", 1),
        min_ram=small_int(doc, "min_ram", 64),
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    uploads[record.id] = record
    return web.json_response(queued_view(record), status=201)


def prune(uploads: dict[str, Queued]) -> None:
    now = time.monotonic()
    for ident in [i for i, q in uploads.items() if now - q.made > QUEUED_LIFETIME]:
        del uploads[ident]


@routes.put(f"{PREFIX}/images/{{id}}/file")
async def upload_file(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    found = find(request)
    if not isinstance(found, Queued):
        raise Fault(409, f"Image {name_of(found)} has its data already: an Image is immutable")
    record = found
    if record.state != "queued":
        raise Fault(409, f"Image status transition from {record.state} to saving is not allowed")
    if record.disk_format is None:
        raise Fault(
            400, "Properties disk_format, container_format must be set prior to saving data."
        )
    store = request.app[STORE_KEY]
    if store is None:
        raise Fault(
            503,
            "this cloud takes no image uploads: kubenova api runs without an object store "
            "(KUBENOVA_S3_ENDPOINT, KUBENOVA_S3_ACCESS_KEY, KUBENOVA_S3_SECRET_KEY)",
        )
    declared = request.content_length
    if declared is not None and declared > store.max_bytes:
        raise Fault(413, f"Image exceeds the size limit: {declared} > {store.max_bytes} bytes")
    record.state = "saving"  # before any await: a second PUT meanwhile gets 409
    try:
        await check_may_create(cloud, token)
        reader, key = await stream(request, store, record)
        body = await make_image(cloud, token, store, record, reader=reader, key=key)
    except BaseException:
        record.state = "queued"  # as Glance: a failed upload may be tried again
        raise
    record.state, record.image = "active", uid_of(body)
    return web.Response(status=204)


async def stream(
    request: web.Request, store: UploadStore, record: Queued
) -> tuple[BodyReader, str]:
    """Put the request body into the store; the reader (hashes, size) and the object key."""
    assert record.disk_format is not None
    reader = BodyReader(request.content, asyncio.get_running_loop(), store, record.disk_format)
    key = f"{KEY_PREFIX}/{record.id}"
    client = store.client()

    def put() -> None:
        if not client.bucket_exists(store.bucket):
            client.make_bucket(store.bucket)
        # One part in memory at a time: no parallel parts.
        client.put_object(
            store.bucket,
            key,
            cast(BinaryIO, reader),  # the SDK only calls read()
            length=-1,
            part_size=store.part_size,
            num_parallel_uploads=1,
        )

    try:
        await asyncio.to_thread(put)
    except TooLarge as exc:
        raise Fault(413, f"Image exceeds the size limit of {store.max_bytes} bytes") from exc
    except WrongFormat as exc:
        raise Fault(400, f"{exc}: create the image with the disk_format of its data") from exc
    except (MinioException, OSError) as exc:
        raise Fault(503, f"the object store did not take the image: {exc}") from exc
    if reader.size == 0:
        await asyncio.to_thread(client.remove_object, store.bucket, key)
        raise Fault(400, "the image data is empty")
    return reader, key


async def make_image(
    cloud: Cloud, token: Token, store: UploadStore, record: Queued, *, reader: BodyReader, key: str
) -> dict[str, Any]:
    """Create the Image as the user (the object is removed if refused), then mark it
    Available with the API's own identity."""
    manifest = {
        "apiVersion": kubenova_kind(Image).api_version,
        "kind": Image.crd.kind,
        "metadata": {
            "name": record.name,
            "annotations": {MD5_ANNOTATION: reader.md5.hexdigest()},
        },
        "spec": {
            "source": {"bucket": store.bucket, "key": key},
            "format": record.disk_format,
            "sha256": reader.sha256.hexdigest(),
            "minDiskGiB": record.min_disk,
            "minMemoryMiB": record.min_ram,
        },
    }
    try:
        body = await cloud.as_user(token, "POST", Image, body=manifest)
    except Fault:
        await asyncio.to_thread(store.client().remove_object, store.bucket, key)
        raise
    status = {"phase": "Available", "sizeBytes": reader.size}
    generation = (body.get("metadata") or {}).get("generation")
    if generation is not None:
        status["observedGeneration"] = generation
    try:
        body = await cloud.client.patch(
            kubenova_kind(Image),
            record.name,
            {"status": status},
            subresource="status",
            patch_type=MERGE_PATCH,
        )
    except ApiError as exc:
        # The Image is usable without it; only its phase and size are not shown.
        log.warning("Image %s: its status was refused: %s", record.name, exc.message or exc)
    else:
        body.setdefault("apiVersion", kubenova_kind(Image).api_version)
        body.setdefault("kind", Image.crd.kind)
        cloud.cache[Image].remember(body)
    log.info(
        "Image %s uploaded by %s: %d bytes, sha256 %s",
        record.name, token.user, reader.size, reader.sha256.hexdigest(),
    )  # fmt: skip
    return body


@routes.delete(f"{PREFIX}/images/{{id}}")
async def delete(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    found = find(request)
    if isinstance(found, Queued):
        if found.state == "saving":
            raise Fault(409, f"Image {found.id} is receiving its data now")
        del request.app[UPLOADS_KEY][found.id]
    else:
        await cloud.as_user(token, "DELETE", Image, name_of(found))
    return web.Response(status=204)
