"""The image service of the host agent: images from the S3 object store into the host cache.

Consumers (compute, volume) type against `ImageFetcher` (fetcher.py, the contract they
import). Use `ImageStore` (driver.py) as the store's type; `s3.S3ImageStore(image_cache_dir(
state_dir), default)` on real hosts (imported from its module, so minio loads only where it
is used), `FakeImageStore(cache_dir)` in unit and scale tests. `fetch(ImageRef)` returns
the verified `<cache>/<sha256>.<suffix>`; `ImageService(client, store).fetch(name, image)`
does a whole Image resource (disk, kernel, initrd: a `LocalImage`), reading its Secrets;
`PlaceholderImages` stands in for it beside the fake compute driver.
"""

from kubenova.agents.images.credentials import (
    credentials_from_secret_data,
    default_store_from_env,
    read_secret_credentials,
)
from kubenova.agents.images.driver import SHA256_METADATA, ImageStore, image_cache_dir
from kubenova.agents.images.errors import (
    ImageChecksumMismatch,
    ImageChecksumMissing,
    ImageNotFound,
    ImageStoreAccessDenied,
    ImageStoreUnavailable,
)
from kubenova.agents.images.fake import (
    FAKE_CREDENTIALS,
    FakeImageStore,
    FakeObjects,
    PlaceholderImages,
)
from kubenova.agents.images.fetcher import FetchedImage, ImageFetcher, KernelBoot
from kubenova.agents.images.local_image import (
    ImageRefs,
    ImageService,
    LocalImage,
    fetch_local_image,
    image_refs,
)
from kubenova.agents.images.ref import ImageRef, StoreCredentials

__all__ = [
    "FAKE_CREDENTIALS",
    "SHA256_METADATA",
    "FakeImageStore",
    "FakeObjects",
    "FetchedImage",
    "ImageChecksumMismatch",
    "ImageChecksumMissing",
    "ImageFetcher",
    "ImageNotFound",
    "ImageRef",
    "ImageRefs",
    "ImageService",
    "ImageStore",
    "ImageStoreAccessDenied",
    "ImageStoreUnavailable",
    "KernelBoot",
    "LocalImage",
    "PlaceholderImages",
    "StoreCredentials",
    "credentials_from_secret_data",
    "default_store_from_env",
    "fetch_local_image",
    "image_cache_dir",
    "image_refs",
    "read_secret_credentials",
]
