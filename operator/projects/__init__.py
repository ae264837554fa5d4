"""Projects in the operator: a tenant's namespace, RoleBindings, quota and deletion.

- `reconciler`: the level-triggered Project reconciler;
- `registration`: the kopf handlers, the ClusterRoles applied at start-up and the
  periodic membership sync.

Other domains use only the names exported here.
"""

from kubenova.operator.projects.reconciler import ProjectReconciler

__all__ = ["ProjectReconciler"]
