"""Node failure on the local multi-node farm: how long until each site answers again.

    FARM_VAR_DIR=var/bench .venv/bin/python -u -m benchmarks.failover \
        --sites 10 --heartbeats 5,2 --modes kill,partition --trials 1

Brings up (or reuses) the 3-node local farm (``manage.py farm_up --nodes 3``),
provisions ``--sites`` sites on it, then for each dispatcher heartbeat and fault
mode stops the worker that runs the most site tasks (never node-1, which holds
the singletons):

- ``kill``: ``docker kill`` of the node's engine container: its processes die and
  its peers see connections end;
- ``partition``: the node's traffic is dropped in its network namespace: silent, like
  a power cut or a network split, so only missed heartbeats tell. (``docker pause``
  cannot be used: runc's freezer refuses a node whose tasks' cgroups are beside it.)

One thread per site GETs ``/wp-admin/install.php`` through Traefik on node-1 every
250 ms (2 s timeout); a site is back at the first of 3 answers in a row after its
first failure. Per trial it reports when Swarm marked the node down, when every
moved task ran elsewhere, and per site the unreachable window and the RTO
(fault -> back). Before each heartbeat's trials the farm idles ``--idle-check``
seconds and any node that Swarm marks down meanwhile is a false down. The victim
is started again after each trial. Figures go to stdout (a Markdown table) and to
``<FARM_VAR_DIR>/failover-<run>.json``. The sites are removed at the end.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The benchmark's panel database is the multi-node farm's own (local_farm.panel_settings),
# chosen before Django is set up by the benchmarks package.
_VAR = Path(
    os.environ.setdefault(
        "FARM_VAR_DIR", str(Path(__file__).resolve().parents[1] / "var" / "bench")
    )
)
os.environ.setdefault("DATABASE_URL", f"sqlite:///{_VAR / 'farm-nodes' / 'panel.sqlite3'}")

import argparse  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402

import requests  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

import benchmarks  # noqa: E402, F401  (sets Django up)
from benchmarks.common import bench_people, remove_site  # noqa: E402
from farm.runner import run_operation  # noqa: E402
from nodes import local_farm  # noqa: E402
from nodes.inventory import sync_nodes  # noqa: E402
from nodes.local_nodes import engines  # noqa: E402
from nodes.local_nodes import swarm as node_swarm  # noqa: E402
from nodes.local_nodes.plan import plan_roles  # noqa: E402
from nodes.swarm import SwarmError, client  # noqa: E402
from sites import services  # noqa: E402

PROBE_EVERY_S = 0.25
PROBE_TIMEOUT_S = 2.0
BACK_AFTER = 3  # answers in a row
TRIAL_LIMIT_S = 180.0


@dataclass
class SiteOutcome:
    domain: str
    on_victim: bool
    unreachable_s: float | None  # None: it never failed
    rto_s: float | None  # fault -> back; None: it never failed


@dataclass
class Trial:
    heartbeat_s: float
    mode: str
    victim: str
    detected_s: float | None  # fault -> Swarm says the node is down
    rescheduled_s: float | None  # fault -> every moved task runs elsewhere
    sites: list[SiteOutcome] = field(default_factory=list)

    def rtos(self) -> list[float]:
        return [s.rto_s for s in self.sites if s.rto_s is not None]


class Prober(threading.Thread):
    """GETs one site every PROBE_EVERY_S; keeps (time, answered) pairs."""

    def __init__(self, domain: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.domain, self.stop, self.samples = domain, stop, []  # type: ignore[var-annotated]
        self.session = requests.Session()

    def run(self) -> None:
        url = f"{settings.FARM_EDGE_URL}/wp-admin/install.php"
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                ok = (
                    self.session.get(
                        url,
                        headers={"Host": self.domain},
                        timeout=PROBE_TIMEOUT_S,
                        allow_redirects=False,
                    ).status_code
                    == 200
                )
            except requests.RequestException:
                ok = False
            self.samples.append((started, ok))
            self.stop.wait(max(0.0, PROBE_EVERY_S - (time.monotonic() - started)))

    def outcome(self, fault_at: float, on_victim: bool) -> SiteOutcome:
        after = [(t, ok) for t, ok in self.samples if t >= fault_at]
        first_fail = next((t for t, ok in after if not ok), None)
        if first_fail is None:
            return SiteOutcome(self.domain, on_victim, None, None)
        run, back = 0, None
        for t, ok in after:
            if t < first_fail:
                continue
            run = run + 1 if ok else 0
            if ok and run == 1:
                back = t
            if run >= BACK_AFTER:
                break
        else:
            back = None
        if back is None:
            return SiteOutcome(self.domain, on_victim, float("inf"), float("inf"))
        return SiteOutcome(self.domain, on_victim, back - first_fail, back - fault_at)


def node_names() -> dict[str, str]:
    return {n["ID"]: n["Description"]["Hostname"] for n in client().api.nodes()}


def services_of(stacks: set[str]) -> dict[str, str]:
    """Service id -> stack, for the sites' services."""
    out = {}
    for svc in client().api.services():
        stack = (svc["Spec"].get("Labels") or {}).get("com.docker.stack.namespace")
        if stack in stacks:
            out[svc["ID"]] = stack
    return out


def running_nodes(service_ids: set[str]) -> dict[str, set[str]]:
    """Service id -> hostnames of the nodes where it has a running task now."""
    names = node_names()
    out: dict[str, set[str]] = {sid: set() for sid in service_ids}
    for task in client().api.tasks(filters={"desired-state": "running"}):
        sid = task.get("ServiceID")
        if sid in out and (task.get("Status") or {}).get("State") == "running":
            out[sid].add(names.get(task.get("NodeID", ""), "?"))
    return out


def node_state(hostname: str) -> str:
    for node in client().api.nodes():
        if node["Description"]["Hostname"] == hostname:
            return str(node["Status"]["State"])
    return "missing"


def trial(heartbeat_s: float, mode: str, domains: dict[str, str], host: object) -> Trial:
    stacks = set(domains)
    by_service = services_of(stacks)
    placed = running_nodes(set(by_service))
    counts: dict[str, int] = {}
    for nodes in placed.values():
        for node in nodes:
            counts[node] = counts.get(node, 0) + 1
    candidates = {k: v for k, v in counts.items() if k != "farm-node-1"}
    victim = max(candidates, key=lambda k: candidates[k])
    moved = {sid for sid, nodes in placed.items() if victim in nodes}
    hit_stacks = {by_service[sid] for sid in moved}
    stop = threading.Event()
    probers = {stack: Prober(domains[stack], stop) for stack in stacks}
    for p in probers.values():
        p.start()
    time.sleep(2)
    fault_at = time.monotonic()
    if mode == "kill":
        engines.kill_engine(host, victim)  # type: ignore[arg-type]
    else:
        engines.partition_engine(host, victim)  # type: ignore[arg-type]
    detected = rescheduled = None
    deadline = fault_at + TRIAL_LIMIT_S
    while time.monotonic() < deadline:
        now = time.monotonic()
        try:
            if detected is None and node_state(victim) == "down":
                detected = now - fault_at
            if rescheduled is None:
                now_placed = running_nodes(moved)
                if all(nodes and victim not in nodes for nodes in now_placed.values()):
                    rescheduled = now - fault_at
        except Exception as exc:  # a manager busy electing: ask again
            print(f"  (swarm did not answer: {exc})")
        back = all(
            p.outcome(fault_at, False).rto_s not in (float("inf"),) for p in probers.values()
        )
        if detected is not None and rescheduled is not None and back and now - fault_at > 5:
            break
        time.sleep(0.25)
    time.sleep(1)
    stop.set()
    for p in probers.values():
        p.join(timeout=5)
    result = Trial(heartbeat_s, mode, victim, detected, rescheduled)
    result.sites = [
        probers[stack].outcome(fault_at, stack in hit_stacks) for stack in sorted(stacks)
    ]
    # Bring the victim back and wait until Swarm has it ready again.
    if mode == "partition":
        engines.partition_engine(host, victim, heal=True)  # type: ignore[arg-type]
    else:
        spec = next(s for s in plan_roles(3) if s.name == victim)
        engines.start_engine(host, spec, image="unused")  # type: ignore[arg-type]
        engines.wait_until_ready(victim, host=host, timeout_s=60)  # type: ignore[arg-type]
    limit = time.monotonic() + 180
    while time.monotonic() < limit:
        try:
            if node_state(victim) == "ready":
                break
        except Exception as exc:  # a healed partition can make the managers elect again
            print(f"  (swarm did not answer: {exc})")
        time.sleep(0.5)
    return result


def wait_for_leader(timeout_s: float = 180) -> None:
    """Until the managers answer again (after a trial they may be electing a leader)."""
    limit = time.monotonic() + timeout_s
    while True:
        try:
            client().api.nodes()
            return
        except Exception:
            if time.monotonic() > limit:
                raise
            time.sleep(1)


def removing(site_id: int, timeout_s: float = 180) -> None:
    """remove_site, again while the managers are electing (after a healed partition the
    Swarm answers "no leader" or "deadline exceeded" for a while)."""
    limit = time.monotonic() + timeout_s
    while True:
        try:
            remove_site(site_id)
            return
        except SwarmError as exc:
            if not exc.retryable or time.monotonic() > limit:
                raise
            print(f"  (removing site {site_id}: {exc.message}; again)")
            time.sleep(2)


def false_downs(seconds: float) -> int:
    """How many times a node was marked down while nothing was done to any."""
    seen: dict[str, str] = {}
    downs = 0
    limit = time.monotonic() + seconds
    while time.monotonic() < limit:
        for node in client().api.nodes():
            name, state = node["Description"]["Hostname"], node["Status"]["State"]
            if state == "down" and seen.get(name) != "down":
                downs += 1
            seen[name] = state
        time.sleep(0.5)
    return downs


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return "never" if v == float("inf") else f"{v:.1f}"


def report(trials: list[Trial], idle: dict[float, int]) -> str:
    lines = [
        "| heartbeat s | mode | victim | Swarm down after s | tasks run elsewhere after s "
        "| sites hit | RTO p50 s | RTO max s | unreachable max s | false downs (idle) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in trials:
        rtos = t.rtos()
        hit = sum(1 for s in t.sites if s.rto_s is not None)
        unreachable = [s.unreachable_s for s in t.sites if s.unreachable_s is not None]
        lines.append(
            f"| {t.heartbeat_s:g} | {t.mode} | {t.victim} | {fmt(t.detected_s)} | "
            f"{fmt(t.rescheduled_s)} | {hit} of {len(t.sites)} | "
            f"{fmt(statistics.median(rtos) if rtos else None)} | "
            f"{fmt(max(rtos) if rtos else None)} | "
            f"{fmt(max(unreachable) if unreachable else None)} | {idle.get(t.heartbeat_s, 0)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=10)
    parser.add_argument("--heartbeats", default="5,2", help="dispatcher heartbeats (s) to try")
    parser.add_argument("--modes", default="kill,partition")
    parser.add_argument("--trials", type=int, default=1, help="per heartbeat and mode")
    parser.add_argument("--idle-check", type=float, default=60, help="s of idle per heartbeat")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    run = uuid.uuid4().hex[:6]
    up = local_farm.up(3, progress=lambda m: None)
    print("farm up:", {k: round(v, 1) for k, v in up.timings.items()}, flush=True)
    made: list[int] = []
    trials: list[Trial] = []
    idle: dict[float, int] = {}
    host = engines.host_engine()
    with local_farm.driving(up.settings):
        call_command("migrate", verbosity=0)
        sync_nodes()
        tenant, actor = bench_people("failover")
        try:
            domains: dict[str, str] = {}
            for i in range(args.sites):
                created = services.create_site(
                    tenant=tenant,
                    domain=f"fo{i}-{run}.localhost",
                    image_choice="php8.2",
                    cache_enabled=True,
                    actor=actor,
                )
                made.append(created.site.pk)
                run_operation(created.operation.pk)
                created.site.refresh_from_db()
                domains[created.site.stack_name] = created.site.domain
                print(f"site {i + 1}: {created.site.domain} {created.site.status}", flush=True)
            leader = engines.engine_client("farm-node-1")
            for heartbeat in [float(h) for h in args.heartbeats.split(",") if h]:
                node_swarm.tune_swarm(leader, heartbeat_s=heartbeat, progress=print)
                time.sleep(max(5.0, 3 * heartbeat))
                idle[heartbeat] = false_downs(args.idle_check)
                print(f"heartbeat {heartbeat:g}s: {idle[heartbeat]} false downs", flush=True)
                for mode in [m for m in args.modes.split(",") if m]:
                    for _ in range(args.trials):
                        wait_for_leader()
                        result = trial(heartbeat, mode, domains, host)
                        trials.append(result)
                        print(report([result], idle), flush=True)
            node_swarm.tune_swarm(
                leader, heartbeat_s=settings.FARM_SWARM_HEARTBEAT_S, progress=print
            )
        finally:
            for site_id in made:
                removing(site_id)
    table = report(trials, idle)
    print("\n" + table)
    out = Path(settings.VAR_DIR) / f"failover-{run}.json"
    out.write_text(json.dumps([asdict(t) for t in trials], indent=2, default=str))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
