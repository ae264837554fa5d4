"""The catalog: in-memory copies of what the operator looks up but does not reconcile.

- `store`: the `Catalog` (latest bodies by kind and key, with wake-ups for waiters);
- `watches`: the list+watch of Flavors, Images and ServerGroups that keeps them in it
  (Networks and Volumes are filed by their own domains).

Other domains use only the names exported here.
"""

from kubenova.operator.catalog.store import Catalog
from kubenova.operator.catalog.watches import FILED_BY_DOMAINS, CatalogWatches

__all__ = ["FILED_BY_DOMAINS", "Catalog", "CatalogWatches"]
