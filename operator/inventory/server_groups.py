"""Reading server-group membership (written only by `claims.claim`, with the claim)."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, bindparam, func, select

from kubenova.operator.inventory.engine import connected
from kubenova.operator.inventory.models import HostRow, ServerGroupMember

_MEMBERS_PER_HOST = (
    select(HostRow.name, func.count())
    .join(ServerGroupMember, ServerGroupMember.host_id == HostRow.id)
    .where(ServerGroupMember.group_uid == bindparam("group_uid"))
    .group_by(HostRow.name)
)


def member_hosts(bind: Engine | Connection, group_uid: str) -> dict[str, int]:
    """Host name -> how many members of the group are placed there (as `bind` sees it)."""
    with connected(bind) as connection:
        rows = connection.execute(_MEMBERS_PER_HOST, {"group_uid": group_uid})
        return {name: int(members) for name, members in rows}
