"""Live migration of Instances (InstanceMigration, issue 18): the operator's side.

`place_target` picks the target with the scheduler (the source excluded, every filter
applied, anti-affinity included) and claims it BEFORE the move, so both hosts hold the
guest's resources during it; `hand_over` gives the target claim to the Instance and frees
the source in one transaction once the guest runs on the target; `roll_back` frees the
target claim after a failure or a cancellation (the guest stays on its source); `settle`
picks one of the two from where the guest runs, after a crash mid-move.
"""

from kubenova.operator.migrations.claims import (
    MIGRATION_KIND,
    claim_target,
    hand_over,
    roll_back,
    settle,
)
from kubenova.operator.migrations.target import place_target

__all__ = ["MIGRATION_KIND", "claim_target", "hand_over", "place_target", "roll_back", "settle"]
