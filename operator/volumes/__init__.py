"""The operator's half of the volume service (choosing a volume host and claiming the disk
is `kubenova.operator.placement.place_volume`).

- `naming`: CHAP Secret names and users, initiator names of hosts;
- `chap`: the per-volume CHAP Secret;
- `chap_access`: which hosts' agents may read which CHAP Secrets (per-host Roles);
- `reconciler`: place, hand over to the host's agent, release on deletion;
- `attachments`: the Instance hook that allows, records and withdraws attachments;
- `registration`: the kopf handlers, the Instance hook's wiring and the periodic audit.
"""
