"""`bench.placements --peer` at toy scale, so the comparison with kube-scheduler cannot rot.

The real command line, end to end: a local cloud with the operator, then a fresh apiserver
with kube-scheduler (cached by hack/controlplane.sh; `make deps` builds it), both draining
the same tiny backlog. The figures at this scale mean nothing; that both sides place every
item, and say what they wrote, does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.apiserver


@pytest.mark.parametrize("anti_affinity", [False, True], ids=["plain", "anti-affinity"])
def test_placements_against_kube_scheduler(anti_affinity: bool) -> None:
    argv = [sys.executable, "-m", "bench.placements", "--hosts", "5", "--instances", "4"]
    # Plain, two alternating pairs: the medians --repeat prints are checked too.
    argv += ["--peer", "--json", *(["--anti-affinity"] if anti_affinity else ["--repeat", "2"])]
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    done = subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=400, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout)
    if not anti_affinity:
        assert result["repeat"] == 2
        runs = result["runs"]
        ratios = sorted(r["ratio_to_peer"] for r in runs)
        assert result["medians"]["ratio_to_peer"] == {
            "median": pytest.approx(sum(ratios) / 2, abs=0.01),
            "min": ratios[0],
            "max": ratios[1],
        }
        assert result["medians"]["peer.placements_per_s"]["median"] > 0
        assert result["medians"]["all_cpu_per_placement_vs_peer"]["median"] > 0
        result = runs[0]

    assert result["anti_affinity"] is anti_affinity
    assert result["placements_per_s"] > 0
    # Every placement writes at least its status; the writes are counted, not guessed.
    assert result["operator_requests"].get("PATCH instances/status", 0) >= 4
    assert result["operator_writes_per_placement"] >= 1
    assert result["apiserver_ceiling"]["status_patch_per_s"] > 0
    # Start-up, from the operator's log and the bench's clock: nothing is placed before the
    # Hosts are listed and judged (the operator's clock starts after the bench's Popen).
    listed = result["operator_start_to_hosts_listed_s"]
    assert 0 < listed <= result["operator_start_to_first_placement_s"]

    peer = result["peer"]
    assert peer["kube_scheduler"].startswith("v1.")
    assert (peer["nodes"], peer["pods"], peer["anti_affinity"]) == (5, 4, anti_affinity)
    # One binding per Pod, read from the apiserver's own request counter.
    assert peer["writes"]["POST pods/binding"] == 4
    assert peer["apiserver_ceiling"]["status_patch_per_s"] > 0
    assert peer["start_to_first_placement_s"] > 0
    assert result["ratio_to_peer"] == pytest.approx(
        result["placements_per_s"] / peer["placements_per_s"], abs=0.01
    )
    # Where the CPU of a placement goes, both sides: the apiserver's share is what the
    # operator cannot spend less of.
    ours, theirs = result["cpu_ms_per_placement"], peer["cpu_ms_per_placement"]
    assert result["control_plane_cpu_per_placement_vs_peer"] == pytest.approx(
        ours["apiserver_and_etcd"] / theirs["apiserver_and_etcd"], abs=0.01
    )
    assert result["all_cpu_per_placement_vs_peer"] == pytest.approx(
        (ours["operator"] + ours["apiserver_and_etcd"])
        / (theirs["kube_scheduler"] + theirs["apiserver_and_etcd"]),
        abs=0.01,
    )
