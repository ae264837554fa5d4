"""The image fetcher contract: what compute and volume call, `await fetch(name, image)`.

On real hosts the fetcher is the image service (`local_image.ImageService`: download from
the S3 object store into the host cache, sha256 verified); with the fake compute driver it
is `fake.PlaceholderImages` (an empty file per image, the fake never reads a disk). The
services that consume images import this module; images imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kubenova.api.v1alpha1 import Image


@dataclass(frozen=True)
class KernelBoot:
    """Direct kernel boot (no bootloader in the image): kernel, optional initrd, command line."""

    kernel: Path
    initrd: Path | None = None
    cmdline: str = ""


class FetchedImage(Protocol):
    """An Image's files on this host."""

    @property
    def disk(self) -> Path:
        """The base disk the instance's overlay is made on."""
        ...

    @property
    def kernel_boot(self) -> KernelBoot | None:
        """Kernel, initrd and command line when the Image boots a kernel directly."""
        ...


class ImageFetcher(Protocol):
    """Makes an Image available on this host (downloading and verifying it if needed)."""

    async def fetch(self, name: str, image: Image) -> FetchedImage:
        """The local files of Image `name`; raises kubenova errors saying what is wrong."""
        ...
