"""An Instance, its sizing and its fetched image, made into the driver's frozen DomainSpec."""

from __future__ import annotations

from kubenova.agents.compute.references import Sizing
from kubenova.agents.compute.spec import CloudInitSeed, DiskFormat, DomainSpec, Nic, RootDisk
from kubenova.agents.images.fetcher import FetchedImage
from kubenova.api.v1alpha1 import Image, Instance
from kubenova.errors import UserError
from kubenova.kube.meta import Body, name_of, namespace_of, uid_of


def domain_spec(  # noqa: PLR0917 - one positional per input it combines
    body: Body,
    instance: Instance,
    sizing: Sizing,
    image: Image,
    local: FetchedImage,
    nics: tuple[Nic, ...] = (),
) -> DomainSpec:
    """The driver's frozen view of an Instance (volumes are plugged later by the attacher)."""
    uid, namespace, name = uid_of(body), namespace_of(body), name_of(body)
    spec = instance.spec
    seed = None
    if spec.user_data or spec.ssh_keys:
        seed = CloudInitSeed(
            instance_id=uid,
            hostname=name,
            user_data=spec.user_data,
            ssh_authorized_keys=tuple(spec.ssh_keys),
        )
    if image.spec.boot is not None and local.kernel_boot is None:
        raise UserError(
            f"image {spec.image} asks for direct kernel boot but no kernel was fetched",
            reason="UnsupportedImage",
        )
    try:
        return DomainSpec(
            uid=uid,
            namespace=namespace,
            name=name,
            vcpus=sizing.vcpus,
            memory_mib=sizing.memory_mib,
            root_disk=RootDisk(
                base_image=local.disk,
                base_format=DiskFormat(str(image.spec.format)),
                size_gib=sizing.disk_gib,
            ),
            kernel_boot=local.kernel_boot,
            nics=nics,
            seed=seed,
            labels=(("namespace", namespace), ("name", name)),
        )
    except ValueError as exc:
        raise UserError(f"the Instance cannot be built: {exc}", reason="InvalidSpec") from exc
