"""How clients reach a running local control plane: kubeconfigs, kubectl, a Python client."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kubenova.devcluster.errors import KubectlError
from kubenova.devcluster.kubeconfig import write_kubeconfig
from kubenova.devcluster.pki import ControlPlanePKI, user_file_stem


@dataclass(frozen=True)
class ClusterAccess:
    """The admin's view of a running control plane, plus minted credentials for other users."""

    url: str
    kubeconfig: Path
    ca_file: Path
    kubectl_binary: Path
    pki: ControlPlanePKI

    @property
    def _kubectl_cache(self) -> Path:
        # Discovery cache beside the kubeconfig, not in ~/.kube, so throwaway planes
        # leave nothing behind in the home directory.
        return self.kubeconfig.parent / "kubectl-cache"

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as the admin (or with `kubeconfig`); raise KubectlError if `check` fails."""
        argv = [
            str(self.kubectl_binary),
            f"--kubeconfig={kubeconfig or self.kubeconfig}",
            f"--cache-dir={self._kubectl_cache}",
            *args,
        ]
        env = {key: value for key, value in os.environ.items() if key != "KUBECONFIG"}
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, check=False, timeout=timeout, env=env
        )
        if check and result.returncode != 0:
            raise KubectlError(argv, result.returncode, result.stdout, result.stderr)
        return result

    def admin_token(self) -> str:
        """The bearer token of the system:masters admin."""
        return self.pki.admin_token()

    def user_kubeconfig(self, name: str, groups: tuple[str, ...] | list[str] = ()) -> Path:
        """Mint a client certificate for user `name` in `groups` and write a kubeconfig for it."""
        groups = tuple(groups)
        pair = self.pki.issue_client(name, groups)
        path = self.kubeconfig.parent / "users" / f"{user_file_stem(name, groups)}.kubeconfig"
        written = write_kubeconfig(
            path,
            server=self.url,
            ca_file=self.ca_file,
            user=name,
            client_cert=pair.cert,
            client_key=pair.key,
        )
        # The key now lives inline in the 0600 kubeconfig only; a second copy helps no one.
        pair.key.unlink(missing_ok=True)
        return written
