"""How long the webhook's serving certificates live and when they are replaced.

Apart from the certificates themselves (`admission.certificates`): the command line checks
a policy before anything starts, and an operator without a webhook never imports
cryptography (~20 ms of its start-up).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

VALIDITY = datetime.timedelta(days=90)  # of a serving certificate, by default


@dataclass(frozen=True)
class CertificatePolicy:
    """How long a serving certificate lives and how long before its end it is replaced."""

    validity: datetime.timedelta = VALIDITY
    renew_before: datetime.timedelta | None = None  # None: a third of `validity`

    def __post_init__(self) -> None:
        if self.validity <= datetime.timedelta(0):
            raise ValueError(f"webhook certificate validity must be positive, not {self.validity}")
        if self.renew_before is not None and not (
            datetime.timedelta(0) < self.renew_before < self.validity
        ):
            raise ValueError(
                f"webhook certificate renew-before ({self.renew_before}) must be positive and "
                f"shorter than its validity ({self.validity})"
            )

    @property
    def margin(self) -> datetime.timedelta:
        return self.renew_before if self.renew_before is not None else self.validity / 3

    @property
    def check_interval(self) -> float:
        """Seconds between checks: often enough to renew well inside the margin."""
        return max(0.5, min(60.0, self.margin.total_seconds() / 4))
