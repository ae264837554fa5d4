"""`kubenova image upload`: put a disk image (and boot files) into S3 and apply its Image.

The uploader is the one who knows the bytes are in the store under their checksum, so it
also writes the Image's status (phase Available, sizeBytes: what `kubectl get images`
shows); nothing else writes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import click
import urllib3
from minio import Minio
from minio.error import MinioException, S3Error
from pydantic import ValidationError

from kubenova.agents.images.credentials import ACCESS_KEY_ENV, ENDPOINT_ENV, SECRET_KEY_ENV
from kubenova.agents.images.driver import SHA256_METADATA
from kubenova.agents.images.ref import StoreCredentials
from kubenova.api.v1alpha1 import API_VERSION, Image, ImageSpec
from kubenova.api.v1alpha1.image import ImagePhase
from kubenova.errors import UserError
from kubenova.kube import ApiError, KubeClient, NotFound, kubenova_kind, load_config
from kubenova.kube.client import APPLY_PATCH
from kubenova.kube.meta import name_of

FIELD_MANAGER = "kubenova-cli"
DEFAULT_BUCKET = "kubenova-images"
QCOW2_MAGIC = b"QFI\xfb"
MIB = 1024 * 1024
_HASH_BLOCK = 4 * MIB
T = TypeVar("T")


@dataclass(frozen=True)
class LocalFile:
    """A file to upload, its checksum and where it goes."""

    path: Path
    key: str
    sha256: str
    size: int


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def disk_format(path: Path, declared: str | None) -> str:
    """qcow2 or raw, from the file's header; a declared format must agree with it."""
    with path.open("rb") as handle:
        is_qcow2 = handle.read(4) == QCOW2_MAGIC
    found = "qcow2" if is_qcow2 else "raw"
    if declared is not None and declared != found:
        # Booting a qcow2 file as raw (or the reverse) gives the guest garbage, or worse,
        # lets a raw image pose as qcow2 with a backing file on the host.
        raise click.UsageError(f"{path} is a {found} image, not {declared}: drop --format")
    return found


def _local_file(path: Path, key: str) -> LocalFile:
    started = time.monotonic()
    sha256 = sha256_of(path)
    size = path.stat().st_size
    elapsed = max(time.monotonic() - started, 1e-6)
    click.echo(
        f"sha256 {sha256}  {path} ({size / MIB:.1f} MiB, {size / MIB / elapsed:.0f} MiB/s)",
        err=True,
    )
    return LocalFile(path, key, sha256, size)


@contextlib.contextmanager
def _s3_errors(store: StoreCredentials) -> Iterator[None]:
    """Turn SDK and transport errors into messages that say what to fix."""
    try:
        yield
    except S3Error as error:
        if error.code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"):
            raise click.ClickException(
                f"the object store at {store.url} refused the credentials ({error.code}: "
                f"{error.message}); check --access-key/--secret-key ({ACCESS_KEY_ENV}, "
                f"{SECRET_KEY_ENV})"
            ) from error
        raise click.ClickException(f"object store at {store.url}: {error}") from error
    except (MinioException, urllib3.exceptions.HTTPError, OSError) as error:
        raise click.ClickException(
            f"cannot use the object store at {store.url}: {error}"
        ) from error


def upload(client: Minio, bucket: str, item: LocalFile) -> bool:
    """Put `item` into `bucket` with its sha256 as metadata; False if it is there already.

    An object of another checksum under that key is never overwritten: an Image already
    pointing at it would stop matching its sha256 on every new host.
    """
    if not client.bucket_exists(bucket):
        try:
            client.make_bucket(bucket)
        except S3Error as error:
            if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
    try:
        stat = client.stat_object(bucket, item.key)
    except S3Error as error:
        if error.code not in ("NoSuchKey", "NoSuchObject"):
            raise
    else:
        stored = (stat.metadata or {}).get(f"x-amz-meta-{SHA256_METADATA}")
        if stored == item.sha256 and stat.size == item.size:
            click.echo(f"s3://{bucket}/{item.key} is in the store already", err=True)
            return False
        raise click.ClickException(
            f"s3://{bucket}/{item.key} exists with "
            + (f"sha256 {stored}" if stored else "no kubenova checksum")
            + f", not {item.sha256}: an Image may use it. Upload under another --key or --name."
        )
    started = time.monotonic()
    client.fput_object(
        bucket,
        item.key,
        str(item.path),
        content_type="application/octet-stream",
        metadata={SHA256_METADATA: item.sha256},
    )
    elapsed = max(time.monotonic() - started, 1e-6)
    click.echo(
        f"uploaded s3://{bucket}/{item.key}: {item.size / MIB:.1f} MiB in {elapsed:.2f} s "
        f"({item.size / MIB / elapsed:.1f} MiB/s)",
        err=True,
    )
    return True


def image_manifest(name: str, spec: ImageSpec) -> dict[str, Any]:
    """The Image as server-side apply wants it (only the fields we set)."""
    return {
        "apiVersion": API_VERSION,
        "kind": Image.crd.kind,
        "metadata": {"name": name},
        "spec": spec.model_dump(by_alias=True, exclude_none=True, mode="json"),
    }


async def existing_sha256(kubeconfig: Path | None, name: str) -> str | None:
    """The sha256 of Image `name` if it exists."""
    async with KubeClient(load_config(kubeconfig), user_agent=FIELD_MANAGER) as client:
        try:
            existing = await client.get(kubenova_kind(Image), name)
        except NotFound:
            return None
    sha256: str | None = existing.get("spec", {}).get("sha256")
    return sha256


async def apply_image(kubeconfig: Path | None, manifest: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply the Image as the `kubenova-cli` field manager."""
    name = name_of(manifest)
    async with KubeClient(load_config(kubeconfig), user_agent=FIELD_MANAGER) as client:
        return await client.patch(
            kubenova_kind(Image),
            name,
            manifest,
            patch_type=APPLY_PATCH,
            field_manager=FIELD_MANAGER,
        )


async def apply_image_status(
    kubeconfig: Path | None, name: str, size: int, generation: int | None
) -> None:
    """Mark Image `name` Available with the size of its disk object (server-side apply)."""
    status: dict[str, Any] = {"phase": ImagePhase.AVAILABLE.value, "sizeBytes": size}
    if generation is not None:
        status["observedGeneration"] = generation
    manifest = {"apiVersion": API_VERSION, "kind": Image.crd.kind, "metadata": {"name": name}}
    async with KubeClient(load_config(kubeconfig), user_agent=FIELD_MANAGER) as client:
        await client.patch(
            kubenova_kind(Image),
            name,
            {**manifest, "status": status},
            subresource="status",
            patch_type=APPLY_PATCH,
            field_manager=FIELD_MANAGER,
        )


def _talk_to_api(call: Coroutine[Any, Any, T]) -> T:
    """Run one API call; errors become messages (the API server's own say what to change)."""
    try:
        return asyncio.run(call)
    except ApiError as error:
        raise click.ClickException(f"the API server refused: {error.message or error}") from error
    except (aiohttp.ClientError, OSError, ValueError) as error:
        raise click.ClickException(
            f"cannot reach the Kubernetes API server ({error}); pass --kubeconfig or set KUBECONFIG"
        ) from error


def _secret_reference(value: str | None) -> dict[str, str] | None:
    if value is None:
        return None
    namespace, _, name = value.partition("/")
    if not namespace or not name:
        raise click.BadParameter("use NAMESPACE/NAME", param_hint="--credentials-secret")
    return {"namespace": namespace, "name": name}


@click.group()
def image() -> None:
    """Disk images in the S3 object store, and their Image resources."""


@image.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="The Image resource's name.")
@click.option(
    "--bucket", default=DEFAULT_BUCKET, show_default=True, help="S3 bucket (created if missing)."
)
@click.option(
    "--key", default=None, help="Object key of the disk image [default: NAME/FILE's name]."
)
@click.option(
    "--format",
    "declared_format",
    type=click.Choice(["qcow2", "raw"]),
    default=None,
    help="Checked against the file's header [default: detected].",
)
@click.option(
    "--min-disk", type=int, default=1, show_default=True, help="Smallest root disk (GiB) it fits."
)
@click.option(
    "--min-memory",
    type=int,
    default=64,
    show_default=True,
    help="Smallest memory (MiB) it boots with.",
)
@click.option(
    "--kernel",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Kernel for direct boot.",
)
@click.option(
    "--initrd",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Initramfs for direct boot (needs --kernel).",
)
@click.option(
    "--cmdline", default=None, help="Kernel command line (needs --kernel) [default: console=ttyS0]."
)
@click.option(
    "--credentials-secret",
    default=None,
    metavar="NAMESPACE/NAME",
    help="Secret the hosts read the store's keys from [default: the agents' default store].",
)
@click.option(
    "--endpoint",
    envvar=ENDPOINT_ENV,
    show_envvar=True,
    required=True,
    help="S3 endpoint, http(s)://host:port.",
)
@click.option(
    "--access-key", envvar=ACCESS_KEY_ENV, show_envvar=True, required=True, help="S3 access key."
)
@click.option(
    "--secret-key", envvar=SECRET_KEY_ENV, show_envvar=True, required=True, help="S3 secret key."
)
@click.option("--region", default=None, help="S3 region [default: asked from the store].")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="[default: $KUBECONFIG, in-cluster, ~/.kube/config]",
)
def upload_command(
    file: Path,
    *,
    name: str,
    bucket: str,
    key: str | None,
    declared_format: str | None,
    min_disk: int,
    min_memory: int,
    kernel: Path | None,
    initrd: Path | None,
    cmdline: str | None,
    credentials_secret: str | None,
    endpoint: str,
    access_key: str,
    secret_key: str,
    region: str | None,
    kubeconfig: Path | None,
) -> None:
    """Hash FILE, put it into the object store and create (or keep) Image NAME for it."""
    if (initrd or cmdline) and not kernel:
        raise click.UsageError("--initrd and --cmdline need --kernel")
    try:
        store = StoreCredentials.from_endpoint(
            endpoint, access_key, secret_key, origin="--endpoint"
        )
    except UserError as error:
        raise click.BadParameter(error.message, param_hint="--endpoint") from error
    fmt = disk_format(file, declared_format)
    secret_ref = _secret_reference(credentials_secret)

    def source(item: LocalFile) -> dict[str, Any]:
        return {"bucket": bucket, "key": item.key, "credentialsSecret": secret_ref}

    disk = _local_file(file, key or f"{name}/{file.name}")
    boot_files = [
        _local_file(path, f"{name}/{role}-{path.name}")
        for role, path in (("kernel", kernel), ("initrd", initrd))
        if path is not None
    ]
    spec_fields: dict[str, Any] = {
        "source": source(disk),
        "format": fmt,
        "sha256": disk.sha256,
        "minDiskGiB": min_disk,
        "minMemoryMiB": min_memory,
    }
    if kernel is not None:
        boot: dict[str, Any] = {"kernel": source(boot_files[0])}
        if initrd is not None:
            boot["initrd"] = source(boot_files[1])
        if cmdline is not None:
            boot["cmdline"] = cmdline
        spec_fields["boot"] = boot
    try:
        spec = ImageSpec.model_validate(spec_fields)
    except ValidationError as error:
        raise click.UsageError(f"the Image would be invalid: {error}") from error

    existing = _talk_to_api(existing_sha256(kubeconfig, name))
    if existing is not None and existing != disk.sha256:
        raise click.ClickException(
            f"Image {name} exists with sha256 {existing}, and an Image's spec is immutable: "
            "upload under a new --name (or delete that Image first)"
        )
    client = Minio(
        store.endpoint,
        access_key=access_key,
        secret_key=secret_key,
        secure=store.secure,
        region=region,
    )
    with _s3_errors(store):
        for item in (disk, *boot_files):
            upload(client, bucket, item)
    applied = _talk_to_api(apply_image(kubeconfig, image_manifest(name, spec)))
    generation = applied.get("metadata", {}).get("generation")
    click.echo(f"image.kubenova.io/{name} applied (sha256 {disk.sha256}, generation {generation})")
    try:
        asyncio.run(apply_image_status(kubeconfig, name, disk.size, generation))
    except ApiError as error:
        if error.status != 403:
            raise click.ClickException(
                f"the API server refused the Image's status: {error.message or error}"
            ) from error
        # The Image is usable without it; only `kubectl get images` shows less.
        click.echo(
            f"warning: Image {name} has no status (phase, size): you may not patch "
            f"images/status ({error.message})",
            err=True,
        )
    else:
        click.echo(f"image.kubenova.io/{name} Available ({disk.size} bytes)")
