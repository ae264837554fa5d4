"""The apiserver's refusals land beside the form field they name, in plain words."""

from __future__ import annotations

from kubenova.dashboard.refusals import Refusal, refusals
from kubenova.dashboard.render import e, page
from kubenova.errors import ApiError


def test_schema_causes_are_split_per_field() -> None:
    error = ApiError(
        422,
        "Invalid",
        'Instance.kubenova.io "x" is invalid: [spec.image: Required value, '
        "spec.networks[0].network: Invalid value: \"Bad\": should match '^[a-z]']",
    )
    assert refusals(error) == [
        Refusal("image", "Required value"),
        Refusal("network", "should match '^[a-z]' (you gave \"Bad\")"),
    ]


def test_a_bad_zone_is_the_zone_fields_problem() -> None:
    error = ApiError(
        422,
        "Invalid",
        'Instance.kubenova.io "x" is invalid: spec.availabilityZone: Invalid value: "Z": '
        "spec.availabilityZone in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'",
    )
    [refusal] = refusals(error)
    assert refusal.field == "availabilityZone"


def test_a_bad_name_is_the_name_fields_problem() -> None:
    error = ApiError(
        422,
        "Invalid",
        'Instance.kubenova.io "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": '
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters",
    )
    [refusal] = refusals(error)
    assert refusal.field == "name"
    assert refusal.message.startswith("Use only lowercase letters")


def test_a_webhook_denial_loses_its_prefix_and_keeps_the_field() -> None:
    error = ApiError(
        400,
        "BadRequest",
        'admission webhook "validate.kubenova.io" denied the request: spec.flavor: '
        "no Flavor named m9.huge",
    )
    assert refusals(error) == [Refusal("flavor", "spec.flavor: no Flavor named m9.huge")]


def test_a_policy_refusal_loses_its_prefix_and_keeps_the_field() -> None:
    error = ApiError(
        422,
        "Invalid",
        "instances \"x\" is invalid: : ValidatingAdmissionPolicy 'kubenova-instance-spec-rules' "
        "with binding 'kubenova-instance-spec-rules' denied request: spec.image is immutable "
        "once created",
    )
    assert refusals(error) == [Refusal("image", "spec.image is immutable once created")]


def test_rbac_refusal_says_it_is_the_role() -> None:
    error = ApiError(
        403, "Forbidden", 'instances.kubenova.io is forbidden: User "r" cannot create resource'
    )
    [refusal] = refusals(error, what="instances")
    assert refusal.field is None
    assert "role" in refusal.message


def test_api_strings_are_escaped_in_pages() -> None:
    html = page("<script>alert(1)</script>", e('<img src=x onerror="1">'))
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;" in html
