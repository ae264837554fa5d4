"""An OpenStack-compatible API over kubenova's resources (`kubenova api`).

Identity v3 (password tokens against the auth manager, the catalog), Compute v2.1 (up to
microversion 2.79), Image v2, Block Storage v3 and Network v2, served by one aiohttp
process (`kubenova.openstack.app.serve`). Every object shown is a CR; ids are CR UIDs;
reads come from a watch cache and every write reaches the apiserver as the token's user
(impersonation), so RBAC, the admission webhook and quotas decide as for kubectl.
"""
