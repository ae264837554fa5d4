"""The kubelet cluster's pure parts: per-run names and addresses, the sandbox image archive."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

from kubenova.devcluster.node import KubeletCluster, corefile, docker_archive

REPO = Path(__file__).resolve().parents[2]


def test_each_state_directory_gets_its_own_namespace_links_and_addresses(tmp_path: Path) -> None:
    one, two = KubeletCluster(tmp_path / "a"), KubeletCluster(tmp_path / "b")

    assert one.netns != two.netns
    assert one.host_link != two.host_link
    for cluster in (one, two):
        assert len(cluster.host_link) <= 15  # IFNAMSIZ - 1
        assert len(cluster.node_link) <= 15
        assert 1 <= cluster.addresses.index <= 250
    assert KubeletCluster(tmp_path / "a").netns == one.netns  # stable across restarts


def test_the_sandbox_image_is_a_docker_archive_containerd_can_import(tmp_path: Path) -> None:
    archive = tmp_path / "pause.tar"

    docker_archive(archive, "kubenova.local/pause:v1", {"pause": (b"\x7fELF...", 0o755)}, "/pause")

    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        [entry] = manifest
        config = json.loads(tar.extractfile(entry["Config"]).read())  # type: ignore[union-attr]
        layer = tar.extractfile("layer.tar").read()  # type: ignore[union-attr]
    assert entry["RepoTags"] == ["kubenova.local/pause:v1"]
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert config["config"]["Entrypoint"] == ["/pause"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as inner:
        member = inner.getmember("pause")
        assert member.mode == 0o755


def test_the_corefile_uses_only_the_plugins_the_coredns_build_has() -> None:
    script = (REPO / "hack" / "controlplane.sh").read_text()
    built = set(re.search(r"^COREDNS_PLUGINS=\((.*)\)$", script, re.M).group(1).split())  # type: ignore[union-attr]

    text = corefile("10.231.1.2", Path("/tmp/kn/admin.kubeconfig"))
    # A directive opens a line inside a server block (depth 1); depth 2 is its own options.
    used, depth = set(), 0
    for line in text.splitlines():
        if depth == 1 and line.strip() and line.strip() != "}":
            used.add(line.split()[0])
        depth += line.count("{") - line.count("}")

    assert used == {"bind", "kubernetes", "errors"}
    assert used <= built
