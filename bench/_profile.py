"""Where the operator's time goes: a py-spy collapsed-stack file summed by thread and layer.

`bench.placements --profile FILE` writes FILE with `py-spy record --format raw --threads`
(one line per distinct stack: frames root→leaf separated by `;`, then the sample count)
and prints this summary. py-spy leaves out samples it judges idle, but a thread blocked in
a system call that released the GIL (SQLite's fsync in COMMIT, a queue wait) still counts,
so the summary first splits off the known waits, then attributes the rest.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

RATE_HZ = 200
# Leaf frames that are a thread waiting for work, not doing it.
WAITING = re.compile(
    r"^(EpollSelector\.select|_worker \(concurrent/futures/thread\.py:8[01]\)"
    r"|Condition\.wait|Event\.wait|SimpleQueue\.get|select \(selectors)"
)
# Innermost frame wins: a sample in json.dumps called by aiohttp called by kopf is "json".
SELF_LAYERS: tuple[tuple[str, str], ...] = (
    ("import", r"<frozen importlib"),
    ("json", r"[(/]json/"),
    ("SQL: COMMIT (fsync)", r"^DefaultDialect\.do_commit "),
    ("SQL: statements", r"sqlalchemy/|sqlite3/"),
    ("pydantic", r"pydantic"),
    ("HTTP + TLS (aiohttp, yarl, multidict, ssl, sslproto)", r"aiohttp/|yarl/|multidict/|ssl"),
    ("logging", r"[(/]logging/"),
    ("kopf", r"kopf/"),
    ("asyncio event loop", r"[(/]asyncio/|selectors\.py"),
    ("kubenova: placement + scheduler", r"kubenova/operator/(scheduler|placement)/"),
    ("kubenova: other", r"kubenova/"),
)
# A sample counts for every one of these with a matching frame on its stack.
ON_STACK: tuple[tuple[str, str], ...] = (
    ("kopf (any kopf frame)", r"kopf/"),
    (
        "kubenova handlers (operator domains below kopf or the work queue)",
        r"kubenova/operator/(?!main)",
    ),
    # `place` on a caller's thread, `_drain` for the event loop's `place_soon`.
    ("placement: Placer.place (decision + claim)", r"^Placer\.(place|_drain) "),
    ("inventory transaction (claim)", r"kubenova/operator/inventory/"),
    ("API requests (KubeClient.request, aiohttp)", r"^KubeClient\.request |aiohttp/"),
    ("Events (kubenova.kube.events)", r"kubenova/kube/events\.py"),
    (
        "watch streams (kopf and KubeClient.watch)",
        r"kopf/_cogs/clients/watching|^KubeClient\.watch ",
    ),
    ("json", r"[(/]json/"),
    ("logging", r"[(/]logging/"),
    ("malloc_trim (kubenova.memory)", r"kubenova/memory\.py"),
)


def _thread(frames: list[str]) -> str:
    if any(f.startswith("BaseEventLoop.run_forever ") for f in frames):
        return "event loop"
    if any("concurrent/futures/thread.py" in f for f in frames):
        return "executor threads"
    return "other threads"


def summarize(path: Path, rate_hz: int = RATE_HZ) -> dict[str, object]:
    """Seconds per thread kind (busy, waiting) and busy shares by layer and by code."""
    busy: Counter[str] = Counter()
    waiting: Counter[str] = Counter()
    own: dict[str, Counter[str]] = {}
    on_stack: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("thread (", "process "))]
        thread = _thread(frames)
        if not frames or WAITING.search(frames[-1]):
            waiting[thread] += count
            continue
        busy[thread] += count
        layer = "other"
        for frame in reversed(frames):
            found = next((name for name, rx in SELF_LAYERS if re.search(rx, frame)), None)
            if found:
                layer = found
                break
        own.setdefault(thread, Counter())[layer] += count
        for name, rx in ON_STACK:
            if any(re.search(rx, f) for f in frames):
                on_stack[name] += count
    total = sum(busy.values())
    if not total:
        return {"busy_samples": 0}

    def pct(counter: Counter[str]) -> dict[str, float]:
        return {k: round(100 * v / total, 1) for k, v in counter.most_common() if v}

    return {
        "rate_hz": rate_hz,
        "threads": {
            kind: {
                "busy_s": round(busy[kind] / rate_hz, 1),
                "waiting_s": round(waiting[kind] / rate_hz, 1),
                "busy_pct_by_innermost_layer": pct(own.get(kind, Counter())),
            }
            for kind in sorted(busy | waiting)
        },
        "busy_pct_on_stack": pct(on_stack),
        "how": "% of all busy samples; innermost layer: the deepest frame's library wins",
    }
