"""The browser upload's request checks and its agreement with the hosts' image fetcher."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from kubenova.agents.images import driver
from kubenova.dashboard import images


def test_the_checksum_metadata_is_the_one_the_hosts_read() -> None:
    assert images.SHA256_METADATA == driver.SHA256_METADATA


def _fields(query: str, length: int | None = 10) -> dict[str, object]:
    headers = {} if length is None else {"Content-Length": str(length)}
    request = make_mocked_request("POST", f"/admin/images/upload?{query}", headers=headers)
    return images._fields(request)


def test_good_fields_pass_and_the_file_name_is_made_safe() -> None:
    values = _fields("name=cirros-0.6&format=qcow2&minDisk=2&filename=../../x y.img")
    assert values["name"] == "cirros-0.6"
    assert values["minDisk"] == 2
    assert values["minMemory"] == 64
    assert values["filename"] == "x_y.img"


@pytest.mark.parametrize(
    ("query", "length", "field"),
    [
        ("name=Bad_Name", 10, "name"),
        ("name=ok&format=vmdk", 10, "format"),
        ("name=ok&sha256=abc", 10, "sha256"),
        ("name=ok&minDisk=0", 10, "minDisk"),
        ("name=ok&minMemory=lots", 10, "minMemory"),
        ("name=ok", None, "file"),
        ("name=ok", 0, "file"),
    ],
)
def test_each_bad_field_is_refused_by_name(query: str, length: int | None, field: str) -> None:
    with pytest.raises(images.Refused) as refused:
        _fields(query, length)
    assert refused.value.status == 422
    assert list(refused.value.errors) == [field]
