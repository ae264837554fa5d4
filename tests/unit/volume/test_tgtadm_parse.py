"""Reading tgtadm's `--op show --mode target` output (captured from tgt 1.0.85)."""

from __future__ import annotations

from kubenova.agents.volume.tgtadm import TgtSession, parse_targets

SHOW = """\
Target 1: iqn.2010-10.io.kubenova:volume-a
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
        I_T nexus: 1
            Initiator: iqn.2010-10.io.kubenova:host.compute-1 alias: none
            Connection: 0
                IP Address: 127.0.0.1
    LUN information:
        LUN: 0
            Type: controller
            SCSI ID: IET     00010000
            SCSI SN: beaf10
            Size: 0 MB, Block size: 1
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: null
            Backing store path: None
            Backing store flags:
        LUN: 1
            Type: disk
            SCSI ID: IET     00010001
            SCSI SN: beaf11
            Size: 67 MB, Block size: 512
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: rdwr
            Backing store path: /var/lib/kubenova/volumes/a.raw
            Backing store flags:
    Account information:
        volume-a
        mutual-a (outgoing)
    ACL information:
        iqn.2010-10.io.kubenova:host.compute-1
        127.0.0.1
Target 2: iqn.2010-10.io.kubenova:volume-b
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
    LUN information:
        LUN: 0
            Type: controller
            Backing store path: None
    Account information:
    ACL information:
"""


def test_targets_luns_accounts_acls_and_sessions_are_read() -> None:
    first, second = parse_targets(SHOW)
    assert (first.tid, first.iqn) == (1, "iqn.2010-10.io.kubenova:volume-a")
    assert first.luns == {0: None, 1: "/var/lib/kubenova/volumes/a.raw"}
    assert first.accounts == ["volume-a"]  # outgoing (mutual CHAP) accounts are not ours
    assert first.acl == ["iqn.2010-10.io.kubenova:host.compute-1", "127.0.0.1"]
    assert first.sessions == 1
    assert first.nexuses == [
        TgtSession(1, "iqn.2010-10.io.kubenova:host.compute-1", {0: "127.0.0.1"})
    ]
    assert (second.tid, second.luns, second.accounts, second.acl, second.sessions) == (
        2,
        {0: None},
        [],
        [],
        0,
    )


def test_no_targets_is_an_empty_list() -> None:
    assert parse_targets("") == []
