"""Image upload from the browser: streamed into the object store, hashed on the way.

The browser sends the file as the raw request body (XHR, so it can show upload progress).
The body is never held whole: it flows in parts through the sha256 into a multipart upload
under a staging key. Only once the checksum is known (and matches the one the
administrator gave, if any) is the object copied to its final key with the checksum as
metadata, as `kubenova image upload` stores it, and the Image created and marked
Available, both as the user: impersonation decides who may upload, so a user whose role
may not create Images is refused before a byte is read.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from minio import Minio
from minio.commonconfig import REPLACE, ComposeSource, CopySource
from minio.error import MinioException, S3Error

from kubenova.api.v1alpha1.image import ImagePhase
from kubenova.dashboard.context import Context, context
from kubenova.dashboard.identity import acting_as
from kubenova.dashboard.instances import IMAGES
from kubenova.dashboard.refusals import refusals
from kubenova.errors import ApiError, NotFound

QCOW2_MAGIC = b"QFI\xfb"
# The object metadata the hosts' image fetcher trusts (kubenova.agents.images.driver's
# SHA256_METADATA; the dashboard may not import an agent, a unit test keeps them equal).
SHA256_METADATA = "sha256"
PART = 8 * 1024 * 1024  # what the upload holds in memory at once (S3's minimum part is 5 MiB)
COPY_LIMIT = 5 * 1024**3  # a single S3 copy; beyond it the copy is composed of parts
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_SHA256 = re.compile(r"[a-f0-9]{64}")
_FILENAME = re.compile(r"[^A-Za-z0-9._-]")
Errors = dict[str | None, list[str]]


@dataclass(frozen=True)
class ImageStore:
    """Where uploaded images go: the agents' default store (Images without a
    credentialsSecret, so every host reads them with its own default keys)."""

    endpoint: str  # host:port
    access_key: str
    secret_key: str = field(repr=False)
    secure: bool = True
    region: str | None = None
    bucket: str = "kubenova-images"

    def client(self) -> Minio:
        return Minio(
            self.endpoint,
            self.access_key,
            self.secret_key,
            secure=self.secure,
            region=self.region,
        )


@dataclass
class _Hashing:
    """A file-like view of the request body for the (threaded) S3 client: each read()
    waits for the next bytes on the event loop and feeds them through the sha256."""

    request: web.Request
    loop: asyncio.AbstractEventLoop
    digest: Any = field(default_factory=hashlib.sha256)
    size: int = 0
    head: bytes = b""

    def read(self, n: int = -1) -> bytes:
        want = PART if n is None or n < 0 else n
        future = asyncio.run_coroutine_threadsafe(self.request.content.read(want), self.loop)
        data = future.result()
        self.digest.update(data)
        if len(self.head) < 4:
            self.head += data[: 4 - len(self.head)]
        self.size += len(data)
        return data


class Refused(Exception):
    """An upload refused: the status and the messages per form field."""

    def __init__(self, status: int, errors: Errors) -> None:
        super().__init__(errors)
        self.status, self.errors = status, errors


def _fields(request: web.Request) -> dict[str, Any]:
    q = request.query
    values: dict[str, Any] = {
        k: q.get(k, "").strip() for k in ("name", "format", "sha256", "filename")
    }
    errors: Errors = {}
    if not _NAME.fullmatch(values["name"]):
        errors["name"] = [
            "Use only lowercase letters, digits, '-' and '.', starting and ending with a "
            "letter or digit (at most 253 characters)."
        ]
    if values["format"] not in ("", "qcow2", "raw"):
        errors["format"] = ["Choose qcow2, raw or detect."]
    values["sha256"] = values["sha256"].lower()
    if values["sha256"] and not _SHA256.fullmatch(values["sha256"]):
        errors["sha256"] = ["Give the SHA-256 as 64 hex digits, or leave it empty."]
    for key, low, what in (("minDisk", 1, "GiB"), ("minMemory", 64, "MiB")):
        raw = q.get(key, str(low)).strip()
        if not raw.isdigit() or int(raw) < low:
            errors[key] = [f"Give a whole number of {what}, at least {low}."]
        else:
            values[key] = int(raw)
    size = request.content_length
    if not size:
        errors["file"] = ["Choose a non-empty file."]
    if errors:
        raise Refused(422, errors)
    values["filename"] = _FILENAME.sub("_", values["filename"].rsplit("/", 1)[-1]) or "disk"
    return values


def _store_object(
    client: Minio, bucket: str, *, staging: str, key: str, sha256: str, size: int
) -> bool:
    """Move the staged upload to `key` with its checksum; False if it was there already.

    An object of another checksum under `key` is never replaced: an Image may use it.
    """
    try:
        stat = client.stat_object(bucket, key)
    except S3Error as error:
        if error.code not in ("NoSuchKey", "NoSuchObject"):
            raise
    else:
        if (stat.metadata or {}).get(f"x-amz-meta-{SHA256_METADATA}") == sha256:
            return False
        raise Refused(
            409, {"name": [f"s3://{bucket}/{key} holds another file: choose another name."]}
        )
    metadata: dict[str, str | list[str] | tuple[str]] = {SHA256_METADATA: sha256}
    if size <= COPY_LIMIT:
        client.copy_object(
            bucket, key, CopySource(bucket, staging), metadata=metadata, metadata_directive=REPLACE
        )
    else:
        client.compose_object(bucket, key, [ComposeSource(bucket, staging)], metadata=metadata)
    return True


async def upload(request: web.Request) -> web.StreamResponse:
    ctx = await context(request, project=False)
    try:
        return web.json_response(await _upload(request, ctx))
    except Refused as refused:
        errors = {k or "": v for k, v in refused.errors.items()}
        return web.json_response({"errors": errors}, status=refused.status)


async def _upload(request: web.Request, ctx: Context) -> dict[str, Any]:
    values = _fields(request)
    if not await ctx.dash.may(ctx.user, "create", "images"):
        raise Refused(
            403,
            {"file": ["Your role does not allow uploading images (creating Images)."]},
        )
    name = values["name"]
    try:
        with acting_as(ctx.user):
            await ctx.dash.client.get(IMAGES, name)
        raise Refused(
            409, {"name": [f"Image {name} exists and Images are immutable: choose another name."]}
        )
    except NotFound:
        pass
    store = ctx.dash.image_store
    if store is None:
        raise Refused(
            503, {"file": ["This dashboard has no object store (KUBENOVA_S3_ENDPOINT...)."]}
        )
    loop = asyncio.get_running_loop()
    body = _Hashing(request, loop)
    client = store.client()
    staging = f"{name}/.upload-{secrets.token_hex(8)}"
    key = f"{name}/{values['filename']}"
    length = request.content_length or 0

    def put() -> bool:
        if not client.bucket_exists(store.bucket):
            client.make_bucket(store.bucket)
        try:
            client.put_object(store.bucket, staging, body, length, part_size=PART)  # type: ignore[arg-type]
            return _check_and_store(
                client,
                store.bucket,
                staging=staging,
                key=key,
                body=body,
                values=values,
                length=length,
            )
        finally:
            client.remove_object(store.bucket, staging)

    try:
        created = await loop.run_in_executor(None, put)
    except (S3Error, MinioException, OSError, ValueError) as error:
        raise Refused(502, {"file": [f"The object store failed: {error}"]}) from error
    sha256 = body.digest.hexdigest()
    fmt = "qcow2" if body.head == QCOW2_MAGIC else "raw"
    manifest = {
        "apiVersion": IMAGES.api_version,
        "kind": "Image",
        "metadata": {"name": name},
        "spec": {
            "source": {"bucket": store.bucket, "key": key},
            "format": fmt,
            "sha256": sha256,
            "minDiskGiB": values["minDisk"],
            "minMemoryMiB": values["minMemory"],
        },
    }
    try:
        with acting_as(ctx.user):
            applied = await ctx.dash.client.create(IMAGES, manifest)
    except ApiError as error:
        if created:  # nothing else can point at it yet
            await loop.run_in_executor(None, client.remove_object, store.bucket, key)
        errors: Errors = {}
        for refusal in refusals(error, what="images"):
            errors.setdefault(refusal.field or "file", []).append(refusal.message)
        raise Refused(error.status if 400 <= error.status < 500 else 502, errors) from error
    status = {
        "phase": ImagePhase.AVAILABLE.value,
        "sizeBytes": body.size,
        "observedGeneration": applied["metadata"].get("generation"),
    }
    warning = ""
    try:
        with acting_as(ctx.user):
            await ctx.dash.client.patch(IMAGES, name, {"status": status}, subresource="status")
    except ApiError as error:
        if error.status != 403:
            raise
        # The Image is usable without it; only the Phase and Bytes columns stay empty.
        warning = "The Image has no status (phase, size): your role may not write images/status."
    return {"image": name, "sha256": sha256, "size": body.size, "format": fmt, "warning": warning}


def _check_and_store(
    client: Minio,
    bucket: str,
    *,
    staging: str,
    key: str,
    body: _Hashing,
    values: dict[str, Any],
    length: int,
) -> bool:
    sha256 = body.digest.hexdigest()
    if body.size != length:
        raise Refused(400, {"file": [f"The upload ended after {body.size} of {length} bytes."]})
    if values["sha256"] and values["sha256"] != sha256:
        raise Refused(
            422,
            {
                "sha256": [
                    f"The file's SHA-256 is {sha256}, not the one you gave: the file is not "
                    "the one you meant, or it was damaged on the way."
                ]
            },
        )
    found = "qcow2" if body.head == QCOW2_MAGIC else "raw"
    if values["format"] and values["format"] != found:
        # Booting a qcow2 file as raw (or the reverse) gives the guest garbage.
        raise Refused(422, {"format": [f"The file is a {found} image, not {values['format']}."]})
    return _store_object(client, bucket, staging=staging, key=key, sha256=sha256, size=body.size)


def register(app: web.Application) -> None:
    app.router.add_post("/admin/images/upload", upload)
