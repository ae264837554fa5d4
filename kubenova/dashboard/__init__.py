"""The web dashboard: a tenant's and an administrator's cloud in the browser.

    app = build_app(Dashboard(client=ImpersonatingClient(config), own=KubeClient(config),
                              backend=auth_backend))

Users log in with the auth manager's user and password; every page is fetched from the
apiserver as that user (impersonation, `identity`), so RBAC and the admission webhook
decide. Served by `kubenova dashboard` (kubenova/cli/dashboard.py).
"""

from kubenova.dashboard.app import Dashboard, build_app
from kubenova.dashboard.identity import DASHBOARD_GROUP, ImpersonatingClient, acting_as

__all__ = ["DASHBOARD_GROUP", "Dashboard", "ImpersonatingClient", "acting_as", "build_app"]
