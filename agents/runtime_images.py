"""The image step of the compute service: one call, `await fetch(name, image) -> LocalImage`.

The S3-backed image service (agents/images) plugs in behind this protocol. Two stand-ins
exist beside it: `HostCacheImages` serves only images already in the host cache (same
`<sha256>.<format>` layout as the image service; for hosts without object-store access),
and `PlaceholderImages` gives the fake driver, which never reads a disk, an empty file.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kubenova.agents.compute.spec import KernelBoot
from kubenova.api.v1alpha1 import Image
from kubenova.errors import NotFoundError


@dataclass(frozen=True)
class LocalImage:
    """An Image's bytes on this host: the base disk, and kernel/initrd for direct boot."""

    disk: Path
    kernel_boot: KernelBoot | None = None


class ImageFetcher(Protocol):
    """Makes an Image available on this host (downloading and verifying it if needed)."""

    async def fetch(self, name: str, image: Image) -> LocalImage:
        """The local files of Image `name`; raises kubenova errors saying what is wrong."""
        ...


def cache_file(cache_dir: Path, image: Image) -> Path:
    """The host-cache path of an image's disk: `<sha256>.<format>`."""
    return cache_dir / f"{image.spec.sha256}.{image.spec.format}"


class HostCacheImages:
    """Only images already in `cache_dir`; anything else is reported as not cached."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir

    async def fetch(self, name: str, image: Image) -> LocalImage:
        path = cache_file(self.cache_dir, image)
        if not await asyncio.to_thread(path.is_file):
            raise NotFoundError(
                f"image {name} (sha256 {image.spec.sha256[:12]}…) is not in this host's cache "
                f"{self.cache_dir} and this agent has no object-store access: start the agent "
                "with an object store (or copy the image there)",
                reason="ImageNotCached",
            )
        if image.spec.boot is not None:
            raise NotFoundError(
                f"image {name} boots a kernel from the object store, which this agent cannot "
                "reach: start the agent with an object store",
                reason="ImageNotCached",
            )
        return LocalImage(disk=path)


class PlaceholderImages:
    """An empty file per image, for the fake driver (it never reads the base image)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def fetch(self, name: str, image: Image) -> LocalImage:
        path = cache_file(self.directory, image)
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            path.touch()
        kernel_boot = None
        if image.spec.boot is not None:
            kernel_boot = KernelBoot(kernel=path, cmdline=image.spec.boot.cmdline)
        return LocalImage(disk=path, kernel_boot=kernel_boot)
