"""The image service of the host agent: images from the S3 object store into the host cache.

Use `ImageStore` (store.py) as the type; `S3ImageStore(image_cache_dir(state_dir), default)`
on real hosts, `FakeImageStore(cache_dir)` in unit and scale tests. `fetch(ImageRef)` returns
the verified `<cache>/<sha256>.<suffix>`; `ImageService(client, store).fetch(name, image)`
does a whole Image resource (disk, kernel, initrd: a `LocalImage`), reading its Secrets;
`overlay` makes an instance disk on a cached base.
"""

from kubenova.agents.images.credentials import (
    credentials_from_secret_data,
    default_store_from_env,
    read_secret_credentials,
)
from kubenova.agents.images.errors import (
    ImageChecksumMismatch,
    ImageChecksumMissing,
    ImageNotFound,
    ImageStoreAccessDenied,
    ImageStoreUnavailable,
)
from kubenova.agents.images.fake_store import FAKE_CREDENTIALS, FakeImageStore, FakeObjects
from kubenova.agents.images.local_image import (
    ImageRefs,
    ImageService,
    LocalImage,
    fetch_local_image,
    image_refs,
)
from kubenova.agents.images.overlay import overlay
from kubenova.agents.images.ref import ImageRef, StoreCredentials
from kubenova.agents.images.s3_store import S3ImageStore
from kubenova.agents.images.store import SHA256_METADATA, ImageStore, image_cache_dir

__all__ = [
    "FAKE_CREDENTIALS",
    "SHA256_METADATA",
    "FakeImageStore",
    "FakeObjects",
    "ImageChecksumMismatch",
    "ImageChecksumMissing",
    "ImageNotFound",
    "ImageRef",
    "ImageRefs",
    "ImageService",
    "ImageStore",
    "ImageStoreAccessDenied",
    "ImageStoreUnavailable",
    "LocalImage",
    "S3ImageStore",
    "StoreCredentials",
    "credentials_from_secret_data",
    "default_store_from_env",
    "fetch_local_image",
    "image_cache_dir",
    "image_refs",
    "overlay",
    "read_secret_credentials",
]
