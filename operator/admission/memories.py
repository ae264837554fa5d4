"""kopf's per-object memories, without the ones an admission review would leave behind.

kopf keeps a memory (a memo and its own bookkeeping, ~1.3 KB) for each object it is asked
about, and its watches forget one when they see the object deleted. An admission review
of an UPDATE or DELETE is remembered too (a CREATE is not), and for a kind kopf does not
watch nothing ever forgets it: Instances are read by the operator's own informer, so every
Instance whose spec was ever changed stayed in memory for the life of the process, deleted
or not. Our admission handlers keep nothing per object (what they share is the operator's
memo), so a review's memory is never kept; an object kopf watches still has the memory its
watch keeps, and a review of it is handed that one.
"""

from __future__ import annotations

from kopf._cogs.structs import bodies, ephemera
from kopf._core.reactor.inventory import ResourceMemories


class ReviewForgettingMemories(ResourceMemories):
    """kopf's `ResourceMemories`, whose admission lookups never store a new memory."""

    async def recall_memo(
        self,
        raw_body: bodies.RawBody,
        *,
        memobase: ephemera.AnyMemo | None = None,
        ephemeral: bool = False,
    ) -> ephemera.AnyMemo:
        del ephemeral  # kopf asks to keep all but a CREATE's: see the module's docstring
        return await super().recall_memo(raw_body, memobase=memobase, ephemeral=True)
