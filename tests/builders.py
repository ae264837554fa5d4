"""Manifest builders, so tests read like specs: `an_instance(flavor="m1.tiny")`."""

from __future__ import annotations

from typing import Any

import yaml

API = "kubenova.io/v1alpha1"
Manifest = dict[str, Any]


def manifest(kind: str, name: str, spec: dict[str, Any], namespace: str | None = None) -> Manifest:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": API, "kind": kind, "metadata": meta, "spec": spec}


def a_flavor(
    name: str = "m1.test", vcpus: int = 1, memory: int = 128, disk: int = 1, **extra: Any
) -> Manifest:
    return manifest("Flavor", name, {"vcpus": vcpus, "memoryMiB": memory, "diskGiB": disk, **extra})


def an_image(name: str = "test-image", **spec: Any) -> Manifest:
    base: dict[str, Any] = {
        "source": {"bucket": "kubenova-images", "key": f"{name}/disk.qcow2"},
        "format": "qcow2",
        "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    }
    return manifest("Image", name, base | spec)


def an_instance(
    name: str = "vm",
    namespace: str = "default",
    *,
    flavor: str | None = "m1.test",
    image: str = "test-image",
    **spec: Any,
) -> Manifest:
    body: dict[str, Any] = {"image": image}
    if flavor is not None:
        body["flavor"] = flavor
    return manifest("Instance", name, body | spec, namespace)


def a_network(name: str = "net", namespace: str = "default", **spec: Any) -> Manifest:
    return manifest("Network", name, {"mode": "vxlan", "cidr": "10.30.0.0/24"} | spec, namespace)


def a_volume(name: str = "vol", namespace: str = "default", **spec: Any) -> Manifest:
    return manifest("Volume", name, {"sizeGiB": 1} | spec, namespace)


def a_server_group(
    name: str = "sg", namespace: str = "default", policy: str = "anti-affinity"
) -> Manifest:
    return manifest("ServerGroup", name, {"policy": policy}, namespace)


def a_host(name: str, **spec: Any) -> Manifest:
    return manifest("Host", name, spec)


def a_project(name: str, **spec: Any) -> Manifest:
    return manifest("Project", name, spec)


def as_yaml(*docs: Manifest) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False)
