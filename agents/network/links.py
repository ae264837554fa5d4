"""Netlink link look-ups shared by the Linux-bridge driver and its uplinks (pyroute2)."""

from __future__ import annotations

from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

ENOENT, ENODEV, EEXIST = 2, 19, 17


def lookup(ipr: Any, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def delete_link(ipr: Any, ifname: str) -> None:
    index = lookup(ipr, ifname)
    if index is None:
        return
    try:
        ipr.link("del", index=index)
    except NetlinkError as exc:
        if exc.code not in (ENOENT, ENODEV):
            raise


def link_kind(link: Any) -> str | None:
    kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
    return None if kind is None else str(kind)
