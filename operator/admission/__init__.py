"""The validating admission webhook: what the CRD schema cannot check, checked at the door.

kopf serves the endpoint (`kubenova.operator.admission.registration` wires it up); the
checks here decide. An Instance or Volume is refused when a reference does not resolve
in its own namespace (Flavor, Image, Network, Volume, ServerGroup, Host), when its sizing
contradicts its Image, or when it would exceed its Project's quota — each message names
the field to change. The webhook writes nothing (a forged AdmissionReview must not change
state): quota is read (`admission.usage`: what claims hold plus what waits for a claim)
and charged only by the claim, which re-checks it under a lock. A Project is refused a
namespace that is reserved or another Project's, and its deletion is refused while its
namespace still holds Instances or Volumes. Admin-only
fields (`spec.placement.host`, a Network's provider fields) need a privilege the apiserver's
authorizer grants the requesting user (`privileges`: a SubjectAccessReview).
"""

from kubenova.operator.admission.errors import AdmissionRefused

__all__ = ["AdmissionRefused"]
