"""A forged AdmissionReview POSTed straight to the webhook changes nothing (issue 12, item 3).

Anyone who can reach the operator's webhook port can POST to it. The webhook only reads:
quota is charged by the claim alone, so a flood of forged CREATE reviews reserves nothing
and a tenant's real request afterwards still gets the room its project has.
"""

from __future__ import annotations

import pytest

from kubenova.operator import inventory as inv
from kubenova.operator.inventory import quotas
from tests.builders import a_volume, an_instance
from tests.integration.auth.conftest import Tenancy, apply, kubectl_json, unique
from tests.integration.security.webhook import forged_review, post_review, published_hook

pytestmark = [pytest.mark.apiserver, pytest.mark.ldap]


def test_forged_reviews_reserve_no_quota_and_leave_nothing_behind(tenancy: Tenancy) -> None:
    cluster, project = tenancy.cluster, unique("forged")
    tenancy.project(project, quota={"instances": 1, "volumes": 1, "volumeGiB": 5})
    instance_url, ca = published_hook(cluster, "instances")
    volume_url, _ = published_hook(cluster, "volumes")
    answers = []
    for n in range(10):  # enough to fill the quota ten times over, were anything held
        vm = an_instance(f"ghost-{n}", project, flavor="q.4")
        answers.append(post_review(instance_url, ca, forged_review("Instance", "instances", vm)))
        disk = a_volume(f"ghost-{n}", project, sizeGiB=5)
        answers.append(post_review(volume_url, ca, forged_review("Volume", "volumes", disk)))
    assert all(answer["allowed"] for answer in answers), answers  # it fits: a pure answer

    engine = inv.make_engine(tenancy.operator.database_url)
    try:
        assert quotas.list_charges(engine, project) == []
        assert quotas.usage(engine, project) == inv.QuotaAmounts()
    finally:
        engine.dispose()
    for kind in ("instances", "volumes"):
        assert kubectl_json(cluster, "get", kind, "-n", project)["items"] == []
    # The tenant's real requests still find the whole quota free...
    apply(cluster, an_instance("real", project, flavor="q.4"))
    apply(cluster, a_volume("real", project, sizeGiB=5))
    # ...and the quota still holds against the next real one.
    over = apply(cluster, an_instance("second", project, flavor="q.4"), check=False)
    assert f"quota exceeded in project {project}: instances 1 + 1 > 1" in over.stderr
    # The webhook said the same to a forger, and still wrote nothing.
    vm = an_instance("ghost-late", project, flavor="q.4")
    answer = post_review(instance_url, ca, forged_review("Instance", "instances", vm))
    assert not answer["allowed"]
    assert "instances 1 + 1 > 1" in answer["status"]["message"]
    engine = inv.make_engine(tenancy.operator.database_url)
    try:
        assert quotas.list_charges(engine, project) == []
    finally:
        engine.dispose()
