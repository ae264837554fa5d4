"""The dashboard's Deployment: off by default; on, it gets the default object store for
browser uploads (the same keys as the agents) and its image bucket."""

from __future__ import annotations

from tests.integration.chart.conftest import Helm, documents

ON = (
    "--set=dashboard.enabled=true",
    "--set=database.type=postgresql",
    "--set=database.postgresql.existingSecret=db",
)


def _dashboard(helm: Helm, *settings: str) -> dict[str, object] | None:
    rendered = helm.template(None, *settings, kube_version="1.33.0")
    found = [
        d
        for d in documents(rendered)
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "kubenova-dashboard"
    ]
    return found[0] if found else None


def test_the_dashboard_is_off_by_default(helm: Helm) -> None:
    assert _dashboard(helm) is None


def test_uploads_go_to_the_default_store_in_the_image_bucket(helm: Helm) -> None:
    deployment = _dashboard(
        helm,
        *ON,
        "--set=objectStore.endpoint=https://s3.example.org:9000",
        "--set=objectStore.existingSecret=s3-keys",
        "--set=dashboard.imageBucket=uploads",
    )
    assert deployment is not None
    (container,) = deployment["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    assert "--image-bucket=uploads" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["KUBENOVA_S3_ENDPOINT"]["value"] == "https://s3.example.org:9000"
    for name, key in (
        ("KUBENOVA_S3_ACCESS_KEY", "accessKey"),
        ("KUBENOVA_S3_SECRET_KEY", "secretKey"),
    ):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "s3-keys", "key": key}


def test_without_a_store_there_are_no_store_keys(helm: Helm) -> None:
    deployment = _dashboard(helm, *ON)
    assert deployment is not None
    (container,) = deployment["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    assert not [e for e in container["env"] if e["name"].startswith("KUBENOVA_S3_")]
