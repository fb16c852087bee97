"""CPU of the local broker and store for `attune bench`, read from /proc, and which store runs.

The store is FerretDB plus a PostgreSQL cluster: a postmaster and the processes it forks (FerretDB's pooled sessions, autovacuum workers, the checkpointer ...), which come
and go. A process tree's CPU is taken from cumulative counters, so no sampling in between is needed:
its root's own time (utime + stime), the time of the children it has reaped (cutime + cstime: the
kernel adds a child's own and reaped time to its parent's when the parent waits for it, and the
postmaster waits for every child it forks), and the time of every descendant still alive. The
difference of two such readings is the tree's CPU in between, whichever processes started or ended
in between. A reading is retaken when the root reaped a child while its descendants were being read
(the child could otherwise be counted twice, or not at all).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat that CPU accounting needs (times in clock ticks)."""

    pid: int
    ppid: int
    own_ticks: int  # utime + stime
    reaped_ticks: int  # cutime + cstime: the children it has waited for
    start: int  # starttime, ticks after boot: with the pid, names one process (pids are reused)


def parse_stat(pid: int, text: str) -> ProcStat:
    """Parse /proc/<pid>/stat (the command name, in parentheses, may hold spaces and parentheses)."""
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of proc(5)); field n is fields[n - 3]
    return ProcStat(
        pid=pid,
        ppid=int(fields[1]),
        own_ticks=int(fields[11]) + int(fields[12]),
        reaped_ticks=int(fields[13]) + int(fields[14]),
        start=int(fields[19]),
    )


def read_stat(pid: int, proc: Path = PROC) -> ProcStat | None:
    """The stat of a process, None when there is no such process (or it is unreadable)."""
    try:
        return parse_stat(pid, (proc / str(pid) / "stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


def scan(proc: Path = PROC) -> dict[int, ProcStat]:
    """Every process's stat."""
    out: dict[int, ProcStat] = {}
    try:
        entries = list(proc.iterdir())
    except OSError:
        return out
    for entry in entries:
        if entry.name.isdigit():
            st = read_stat(int(entry.name), proc)
            if st is not None:
                out[st.pid] = st
    return out


def descendants(root: int, table: dict[int, ProcStat]) -> list[ProcStat]:
    """The live descendants of `root` in a process table (children, their children, ...)."""
    children: dict[int, list[ProcStat]] = defaultdict(list)
    for st in table.values():
        children[st.ppid].append(st)
    out: list[ProcStat] = []
    todo = [root]
    seen = {root}
    while todo:
        for child in children.get(todo.pop(), []):
            if child.pid not in seen:
                seen.add(child.pid)
                out.append(child)
                todo.append(child.pid)
    return out


def tree_ticks(root: ProcStat, table: dict[int, ProcStat]) -> int:
    """CPU ticks so far of a process, the children it reaped and its live descendants."""
    return (
        root.own_ticks
        + root.reaped_ticks
        + sum(d.own_ticks + d.reaped_ticks for d in descendants(root.pid, table))
    )


@dataclass(frozen=True)
class CpuReading:
    """A process tree's CPU seconds so far; `start` tells a restarted root (same pid or not) apart."""

    pid: int
    start: int
    seconds: float
    processes: int  # the root and its live descendants at the reading


def tree_cpu(pid: int, proc: Path = PROC, attempts: int = 5) -> CpuReading | None:
    """Read a process tree's CPU (None when the root is not running)."""
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    for attempt in range(attempts):
        before = read_stat(pid, proc)
        if before is None:
            return None
        table = scan(proc)
        after = read_stat(pid, proc)
        if after is None or after.start != before.start:
            return None
        if after.reaped_ticks == before.reaped_ticks or attempt == attempts - 1:
            table[pid] = after
            return CpuReading(
                pid=pid,
                start=after.start,
                seconds=tree_ticks(after, table) / ticks_per_second,
                processes=1 + len(descendants(pid, table)),
            )
    return None  # not reached: the last attempt returns


def cpu_between(before: CpuReading | None, after: CpuReading | None) -> float | None:
    """CPU seconds between two readings of one tree; None unless both are of the same running root."""
    if before is None or after is None or (before.pid, before.start) != (after.pid, after.start):
        return None
    return after.seconds - before.seconds


def run_dir(root: Path) -> Path:
    """Where `deploy/infra.sh` keeps its pid files (ATTUNE_RUN_DIR, else var/)."""
    return Path(os.environ.get("ATTUNE_RUN_DIR") or root / "var")


def _pid_in(path: Path, proc: Path) -> int | None:
    """The pid on the first line of a pid file, when that process runs."""
    try:
        pid = int(path.read_text().splitlines()[0].strip())
    except (OSError, ValueError, IndexError):
        return None
    return pid if (proc / str(pid) / "stat").exists() else None


@dataclass(frozen=True)
class LocalInfra:
    """The broker and store processes `deploy/infra.sh` started (None: not running here)."""

    store: str  # "postgresql", or "" when no local FerretDB runs (earlier results may say "sqlite")
    kafka: int | None
    ferretdb: int | None
    postgres: int | None  # the postmaster, only when FerretDB runs on PostgreSQL

    @property
    def label(self) -> str:
        """The store in words, for the header."""
        if self.ferretdb is None:
            return "no local FerretDB (store CPU not measured)"
        if self.store == "postgresql":
            pg = f"postmaster pid {self.postgres}" if self.postgres else "[red]postmaster not found[/]"
            return f"FerretDB on PostgreSQL ({pg})"
        return f"FerretDB on {self.store}"

    def pids(self) -> dict[str, int]:
        """The running processes by name: kafka, ferretdb, postgres."""
        named = {"kafka": self.kafka, "ferretdb": self.ferretdb, "postgres": self.postgres}
        return {name: pid for name, pid in named.items() if pid is not None}


def detect_infra(run: Path, proc: Path = PROC) -> LocalInfra:
    """Read `deploy/infra.sh`'s pid files as its `status` does: FerretDB's, and pg-data/postmaster.pid
    (PostgreSQL's own) or postgres.pid for the postmaster of its store."""
    ferretdb = _pid_in(run / "ferretdb.pid", proc)
    store = ""
    postgres = None
    if ferretdb is not None:
        store = "postgresql"
        postgres = _pid_in(run / "pg-data" / "postmaster.pid", proc) or _pid_in(run / "postgres.pid", proc)
    return LocalInfra(
        store=store, kafka=_pid_in(run / "kafka.pid", proc), ferretdb=ferretdb, postgres=postgres
    )


def infra_readings(infra: LocalInfra, proc: Path = PROC) -> dict[str, CpuReading | None]:
    """A CPU reading of each local broker and store process tree."""
    return {name: tree_cpu(pid, proc) for name, pid in infra.pids().items()}


def infra_cpu_between(
    before: dict[str, CpuReading | None], after: dict[str, CpuReading | None]
) -> dict[str, float]:
    """CPU seconds of each tree between two readings (a tree that stopped or restarted is left out)."""
    out: dict[str, float] = {}
    for name, first in before.items():
        spent = cpu_between(first, after.get(name))
        if spent is not None:
            out[name] = spent
    return out


def with_store(infra_cpu: dict[str, float]) -> dict[str, float]:
    """The broker's and store's CPU with `store` added: FerretDB plus PostgreSQL when it runs on it."""
    parts = [infra_cpu[n] for n in ("ferretdb", "postgres") if n in infra_cpu]
    return {**infra_cpu, "store": sum(parts)} if parts else dict(infra_cpu)
