"""What network allocation refuses, as user errors whose message says what to change.

UserError (kubenova.errors)
├── InvalidCidr              spec.cidr / spec.gateway cannot be used as written
├── CidrOverlap              another Network of the project (namespace) overlaps spec.cidr
├── AddressUnavailable       a requested spec.networks[].ip is outside or reserved
│   └── AddressInUse         ... or held by another Instance: retried when one is released
├── PoolExhausted            no fixed IP (or floating IP) is left
└── SegmentRangeExhausted    every VLAN id / VNI of the configured ranges is in use
"""

from __future__ import annotations

from kubenova.errors import UserError


class InvalidCidr(UserError):
    reason = "InvalidCIDR"


class CidrOverlap(UserError):
    reason = "CIDROverlap"


class AddressUnavailable(UserError):
    reason = "AddressUnavailable"


class AddressInUse(AddressUnavailable):
    retry_on_release = True


class PoolExhausted(UserError):
    reason = "PoolExhausted"


class SegmentRangeExhausted(UserError):
    reason = "SegmentRangeExhausted"
