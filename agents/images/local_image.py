"""An Image resource brought onto this host: its disk, and kernel/initrd for direct boot.

`ImageService(client, store, default).fetch(name, image)` does it in two steps, so the
agent's event loop never blocks on a download:
    refs = await image_refs(client, "cirros", image.spec, default_store)   # reads Secrets
    local = await asyncio.to_thread(fetch_local_image, store, refs)        # downloads
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kubenova.agents.images.credentials import read_secret_credentials
from kubenova.agents.images.driver import ImageStore
from kubenova.agents.images.fetcher import KernelBoot
from kubenova.agents.images.ref import ImageRef, StoreCredentials
from kubenova.api.v1alpha1.image import Image, ImageSource, ImageSpec, SecretReference
from kubenova.kube import KubeClient


@dataclass(frozen=True)
class ImageRefs:
    """What to fetch for one Image: the disk, and the boot files if it boots a kernel."""

    disk: ImageRef
    kernel: ImageRef | None = None
    initrd: ImageRef | None = None
    cmdline: str | None = None


@dataclass(frozen=True)
class LocalImage:
    """The verified cache files of one Image on this host."""

    disk: Path
    format: str  # raw or qcow2
    kernel: Path | None = None
    initrd: Path | None = None
    cmdline: str | None = None

    @property
    def kernel_boot(self) -> KernelBoot | None:
        """Direct kernel boot as the compute driver takes it, if the Image boots a kernel."""
        if self.kernel is None:
            return None
        return KernelBoot(kernel=self.kernel, initrd=self.initrd, cmdline=self.cmdline or "")


class ImageService:
    """The agent's image step: `await fetch(name, image)` gives the Image's local files."""

    def __init__(
        self, client: KubeClient, store: ImageStore, default: StoreCredentials | None = None
    ) -> None:
        self.client = client
        self.store = store
        self.default = default

    async def fetch(self, name: str, image: Image) -> LocalImage:
        """Resolve credentials (Secrets), then download and verify in a worker thread."""
        refs = await image_refs(self.client, name, image.spec, self.default)
        return await asyncio.to_thread(fetch_local_image, self.store, refs)


async def image_refs(
    client: KubeClient, name: str, spec: ImageSpec, default: StoreCredentials | None
) -> ImageRefs:
    """Resolve the credentials of each object of Image `name` (each Secret read once)."""
    secrets: dict[tuple[str, str], StoreCredentials] = {}

    async def credentials(source: ImageSource) -> StoreCredentials | None:
        ref: SecretReference | None = source.credentials_secret
        if ref is None:
            return None
        key = (ref.namespace, ref.name)
        if key not in secrets:
            secrets[key] = await read_secret_credentials(client, ref, default)
        return secrets[key]

    disk = ImageRef(
        name=name,
        bucket=spec.source.bucket,
        key=spec.source.key,
        sha256=spec.sha256,
        suffix=str(spec.format),
        credentials=await credentials(spec.source),
    )
    if spec.boot is None:
        return ImageRefs(disk)
    # The API carries no checksum for boot files: the one `kubenova image upload` stored in
    # the object's metadata is used (ImageChecksumMissing without it).
    kernel = _boot_ref(name, spec.boot.kernel, "kernel", await credentials(spec.boot.kernel))
    initrd = None
    if spec.boot.initrd is not None:
        initrd = _boot_ref(name, spec.boot.initrd, "initrd", await credentials(spec.boot.initrd))
    return ImageRefs(disk, kernel, initrd, spec.boot.cmdline)


def _boot_ref(
    name: str, source: ImageSource, suffix: str, credentials: StoreCredentials | None
) -> ImageRef:
    return ImageRef(name, source.bucket, source.key, None, suffix, credentials)


def fetch_local_image(store: ImageStore, refs: ImageRefs) -> LocalImage:
    """Fetch the disk and boot files into the host cache (blocking; run it in a thread).

    The three downloads go side by side: a guest arriving by live migration waits for the
    slowest of them, not for their sum (the store's per-file lock keeps each once-only)."""
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="image-fetch") as pool:
        disk = pool.submit(store.fetch, refs.disk)
        kernel = pool.submit(store.fetch, refs.kernel) if refs.kernel else None
        initrd = pool.submit(store.fetch, refs.initrd) if refs.initrd else None
        return LocalImage(
            disk=disk.result(),
            format=refs.disk.suffix,
            kernel=kernel.result() if kernel else None,
            initrd=initrd.result() if initrd else None,
            cmdline=refs.cmdline,
        )
