"""The idle probe of the density benchmark: how busy the whole machine is, by whom,
and how much memory the sites' containers hold.

CPU is read from /proc/stat (every process, short-lived ones too) over a window;
per process from /proc/<pid>/stat, summed by name; "unattributed" is what
processes that came and went inside the window used (health-check execs were
most of it before issue 11). Memory: MemTotal - MemAvailable, and per role
(php-fpm, nginx, Redis) the resident memory of the containers' cgroups.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.db.models import Q
from django.utils import timezone

from backups.models import BackupPolicy
from farm.models import Operation
from farm.models.operations import UNFINISHED
from nodes.swarm import client as docker_client
from sites.services.backups import SCHEDULED

BUSY_TOOLS = ("restic", "mariadb-dump", "mariadb", "mariabackup")
# Process names worth a column; the rest is "other" (and short-lived processes,
# which /proc/<pid> no longer shows at the end of a window, are "unattributed").
WATCHED = (
    "dockerd",
    "containerd",
    "containerd-shim",
    "traefik",
    "php-fpm8.2",
    "nginx",
    "redis-server",
    "prometheus",
    "blackbox_export",
    "alertmanager",
    "mariadbd",
    "python",
    # Not the farm's: this VM kind's kernel runs DAMON (Data Access MONitor) over
    # physical memory; its thread's CPU grows with the memory in use (~1.4 % of the
    # machine per GB measured here). Shown apart so a reader can tell it from ours.
    "kdamond.0",
)


def _cpu_times() -> tuple[int, int, int]:
    """(busy jiffies, total jiffies, forks so far) of the whole machine."""
    busy = total = forks = 0
    for line in Path("/proc/stat").read_text().splitlines():
        parts = line.split()
        if parts[0] == "cpu":
            values = [int(v) for v in parts[1:]]
            idle = values[3] + values[4]  # idle + iowait
            total = sum(values[:8])  # guest time is already in user/nice
            busy = total - idle
        elif parts[0] == "processes":
            forks = int(parts[1])
    return busy, total, forks


def _per_process() -> dict[int, tuple[str, int, int]]:
    """pid → (name, utime + stime jiffies, session id) of every process now."""
    out: dict[int, tuple[str, int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        out[int(entry.name)] = (name, int(fields[11]) + int(fields[12]), int(fields[3]))
    return out


# Processes of the farm outside the containers' cgroups (the containers' own, their
# health-check execs included, are read from the cgroup).
ENGINE = ("dockerd", "containerd")


def _containers_cpu_ns() -> int:
    """CPU every container has used (cgroup v1 cpuacct, or v2 docker-*.scope)."""
    v1 = Path("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage")
    if v1.exists():
        return int(v1.read_text())
    total = 0
    for stat in Path("/sys/fs/cgroup/system.slice").glob("docker-*.scope/cpu.stat"):
        for line in stat.read_text().splitlines():
            if line.startswith("usage_usec "):
                total += int(line.split()[1]) * 1000
    return total


def _memory_used_mb() -> float:
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        info[key] = int(value.split()[0])
    return (info["MemTotal"] - info["MemAvailable"]) / 1024


@dataclass
class IdleSample:
    seconds: float
    busy_pct: float  # of the whole machine (all cores)
    # The farm's own share: every container, the engine, the panel (web and workers).
    # Other work on the machine (another test run, an editor) is in busy_pct only.
    farm_busy_pct: float
    forks_per_s: float
    memory_mb: float
    by_process: dict[str, float]  # % of the whole machine
    # The busiest 60-s slice of the window (sampled every 5 s); the window itself if shorter.
    worst_60s_pct: float = 0.0


def idle_probe(seconds: float, panel_sessions: tuple[int, ...] = ()) -> IdleSample:
    ncpu = os.cpu_count() or 1
    busy0, total0, forks0 = _cpu_times()
    procs0 = _per_process()
    containers0 = _containers_cpu_ns()
    started = time.monotonic()
    samples = [(busy0, total0)]
    while (left := seconds - (time.monotonic() - started)) > 0:
        time.sleep(min(SLICE_STEP_S, left))
        busy, total, _ = _cpu_times()
        samples.append((busy, total))
    elapsed = time.monotonic() - started
    busy1, total1, forks1 = _cpu_times()
    procs1 = _per_process()
    containers_s = (_containers_cpu_ns() - containers0) / 1e9
    hz = os.sysconf("SC_CLK_TCK")
    by_name: dict[str, float] = defaultdict(float)
    farm_jiffies = 0
    for pid, (name, jiffies, session) in procs1.items():
        before = procs0.get(pid)
        used = jiffies - (before[1] if before and before[0] == name else 0)
        key = name if name in WATCHED else ("containerd-shim" if "shim" in name else "other")
        by_name[key] += used
        if name in ENGINE or "shim" in name or session in panel_sessions:
            farm_jiffies += used
    attributed = sum(by_name.values())
    total_jiffies = total1 - total0
    by_process = {k: 100 * v / (elapsed * hz * ncpu) for k, v in by_name.items()}
    by_process["unattributed"] = max(
        0.0, 100 * ((busy1 - busy0) - attributed) / max(total_jiffies, 1)
    )
    return IdleSample(
        seconds=elapsed,
        busy_pct=100 * (busy1 - busy0) / max(total_jiffies, 1),
        farm_busy_pct=100 * (farm_jiffies / hz + containers_s) / (elapsed * ncpu),
        forks_per_s=(forks1 - forks0) / elapsed,
        memory_mb=_memory_used_mb(),
        by_process=dict(by_process),
        worst_60s_pct=_worst_slice(samples, int(60 / SLICE_STEP_S)),
    )


SLICE_STEP_S = 5.0


def _worst_slice(samples: list[tuple[int, int]], width: int) -> float:
    """Busiest % over ``width`` consecutive steps of (busy, total) jiffy samples."""
    width = min(width, len(samples) - 1)
    worst = 0.0
    for i in range(len(samples) - width):
        busy = samples[i + width][0] - samples[i][0]
        total = samples[i + width][1] - samples[i][1]
        worst = max(worst, 100 * busy / max(total, 1))
    return worst


def busy_tools_running() -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in BUSY_TOOLS:
                    return True
            except OSError:
                continue
    return False


def backups_due_before(deadline: datetime) -> int:
    """Scheduled backups (database or files) that the tick will claim before ``deadline``."""
    return (
        BackupPolicy.objects.filter(enabled=True, site__status__in=SCHEDULED)
        .filter(Q(next_db_at__lte=deadline) | Q(next_files_at__lte=deadline))
        .count()
    )


def wait_quiet(window_s: float = 60, limit_s: float = 600) -> float:
    """Until no operation is unfinished, no backup tool runs and no scheduled backup
    falls due inside the coming window (a new site's first database backup is due
    two minutes after it was made: that is backup work, reported by the backup
    benchmark, not idle cost); then 10 s to settle."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        deadline = timezone.now() + timedelta(seconds=window_s + 20)
        if (
            not Operation.objects.filter(status__in=UNFINISHED).exists()
            and not busy_tools_running()
            and not backups_due_before(deadline)
        ):
            break
        time.sleep(1)
    time.sleep(10)
    return time.monotonic() - started


ROLES = ("php", "nginx", "redis")


def _cgroup_rss(container_id: str) -> int | None:
    """Resident memory of a container (cgroup v1 or v2), bytes; None when not found."""
    candidates = [
        (Path(f"/sys/fs/cgroup/memory/docker/{container_id}/memory.stat"), "total_rss"),
        (Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/memory.stat"), "anon"),
        (Path(f"/sys/fs/cgroup/docker/{container_id}/memory.stat"), "anon"),
    ]
    for path, key in candidates:
        try:
            for line in path.read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
        except OSError:
            continue
    return None


def site_memory_by_role() -> dict[str, tuple[int, float]]:
    """role -> (containers, mean resident MB) over every site's running containers."""
    sizes: dict[str, list[int]] = defaultdict(list)
    for container in docker_client().api.containers():
        service = container.get("Labels", {}).get("com.docker.swarm.service.name", "")
        role = service.rpartition("_")[2]
        if not service.startswith("wp-") or role not in ROLES:
            continue
        rss = _cgroup_rss(container["Id"])
        if rss is not None:
            sizes[role].append(rss)
    return {
        role: (len(values), sum(values) / len(values) / 1024**2)
        for role, values in sizes.items()
        if values
    }
