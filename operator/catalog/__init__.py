"""The catalog: in-memory copies of what the operator looks up but does not reconcile.

- `store`: the `Catalog` (latest bodies by kind and key, with wake-ups for waiters);
- `registration`: the kopf handlers that keep Flavors, Images and ServerGroups in it.

Other domains use only the names exported here.
"""

from kubenova.operator.catalog.store import Catalog

__all__ = ["Catalog"]
