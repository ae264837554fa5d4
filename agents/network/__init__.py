"""The agent's network service: bridges, VLAN/VXLAN segments, DHCP, NAT and floating IPs.

`service.NetworkService` watches the Networks labelled `wired.kubenova.io/<this host>` and
converges the host to them through small parts, one job each:

- `spec`: the frozen desired state of one network on this host (from the Network's status);
- `names`: deterministic device names that fit IFNAMSIZ;
- `namespace`: where it all happens (the agent's own netns, or a named one in tests);
- `driver`: the `NetworkDriver` contract;
- `linuxbridge`: the real driver (a Linux bridge per network) with its flat and 802.1Q
  uplinks; more uplinks in `ovs` (VLAN tags on Open vSwitch) and `vxlan`; `links`: the
  netlink look-ups they share;
- `fake`: an in-memory driver that passes the same contract tests;
- `dhcp` (dnsmasq with static hosts), `nat` (nftables router and floating IPs).
"""
