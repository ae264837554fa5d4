"""Admission checks of a Volume: its image exists and fits, and the project has room."""

from __future__ import annotations

from kubenova.kube.meta import Body
from kubenova.operator.admission.errors import AdmissionRefused
from kubenova.operator.admission.references import References
from kubenova.operator.inventory.quotas import QuotaAmounts


async def check_volume(body: Body, old: Body | None, refs: References) -> QuotaAmounts | None:
    """Refuse, or return the Volume's quota charge when it is new (else None).

    spec.sizeGiB is immutable (a CEL rule), so an update charges nothing more.
    """
    spec = body.get("spec") or {}
    size = spec["sizeGiB"]
    image_name = spec.get("image")
    if old is None and image_name:
        image = await refs.image(image_name)
        if image is None:
            raise AdmissionRefused(
                "spec.image",
                f"Image {image_name} does not exist (kubectl get images shows what there is)",
            )
        min_disk = image["spec"].get("minDiskGiB", 1)
        if size < min_disk:
            raise AdmissionRefused(
                "spec.sizeGiB",
                f"image {image_name} needs at least {min_disk} GiB, the volume has {size} GiB",
            )
    if old is not None:
        return None
    return QuotaAmounts.for_volume(size)
