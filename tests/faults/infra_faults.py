"""Faults of the infrastructure itself, for tests/faults/test_infra_faults.py.

- `sigkill_postgres`: every process of the local PostgreSQL cluster gets SIGKILL at once (the
  postmaster and its backends, as the OOM killer of a container or a lost machine would leave it),
  then the cluster is started again and recovers from its WAL.
- `SmallDisk`: the run's tables and indexes on a tablespace on a small tmpfs, which can be filled to
  the last byte (a filler file) and freed again: the store answers writes with ENOSPC meanwhile.
- `Storm`: extra instances of every service started and stopped every few seconds (half SIGKILL,
  half SIGTERM), so every consumer group rebalances over and over while the stream drains.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from attune_cli.stack import ROOT, SERVICES, ServiceProcess
from tests.faults.harness import StackRun, infra

INFRA = str(ROOT / "deploy" / "infra.sh")


def _infra_out(*args: str) -> str:
    done = subprocess.run([INFRA, *args], check=True, timeout=120, capture_output=True, text=True)
    return done.stdout


def _pid_of(component: str) -> int | None:
    """The pid `deploy/infra.sh status` gives for a running component."""
    for line in _infra_out("status").splitlines():
        if line.startswith(f"[infra] {component}: running (pid "):
            return int(line.split("(pid ", 1)[1].split(",", 1)[0].rstrip(")"))
    return None


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            out.append(int(entry.name))
    return out


def sigkill_postgres() -> int:
    """SIGKILL the postmaster and every backend at once; return how many processes were killed.

    `deploy/infra.sh kill postgres` is PostgreSQL's immediate shutdown (SIGQUIT, the postmaster ends
    its backends itself); this is the harder case: nobody gets to clean up, the next start finds a
    stale postmaster.pid and recovers from the WAL.
    """
    postmaster = _pid_of("postgres")
    assert postmaster is not None, "postgres is not running"
    victims = [postmaster, *_children(postmaster)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in victims) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in victims), "postgres processes survived SIGKILL"
    return len(victims)


@contextlib.contextmanager
def synchronous_commit_on() -> Iterator[None]:
    """synchronous_commit on for every session while inside (ALTER SYSTEM, read after the cluster's
    own settings file, so it also holds across a restart), back to the cluster's setting after."""
    _psql("ALTER SYSTEM SET synchronous_commit = on")
    _psql("SELECT pg_reload_conf()")
    try:
        yield
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _psql("ALTER SYSTEM RESET synchronous_commit")
            _psql("SELECT pg_reload_conf()")


def restart_postgres() -> None:
    """Start the cluster again (pg_ctl waits until it accepts connections, after crash recovery)."""
    infra("start", "postgres")


# ---------------------------------------------------------------------- a store disk that fills up


def _psql(sql: str) -> str:
    return _infra_out("psql", "-Atc", sql).strip()


@dataclass
class SmallDisk:
    """A tablespace on a tmpfs of `size_mb`, the default for every table created while it is in place."""

    size_mb: int
    name: str = field(default_factory=lambda: f"attune_fault_{uuid.uuid4().hex[:8]}")
    path: Path = field(init=False)
    filler: Path = field(init=False)

    def __post_init__(self) -> None:
        self.path = Path("/var/tmp") / self.name
        self.filler = self.path / "filler"

    @staticmethod
    def unavailable() -> str | None:
        """Why a tmpfs cannot be mounted here (None when it can)."""
        if os.geteuid() != 0:
            return "mounting a tmpfs for the store's tablespace needs root (mount -t tmpfs)"
        return None

    def mount(self) -> None:
        self.path.mkdir(mode=0o700)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0700", "tmpfs", str(self.path)],
            check=True,
            timeout=30,
        )
        # owned by whoever runs the cluster (the postgres user when run as root)
        postmaster = _pid_of("postgres")
        assert postmaster is not None, "postgres is not running"
        uid = os.stat(f"/proc/{postmaster}").st_uid
        os.chown(self.path, uid, pwd.getpwuid(uid).pw_gid)
        _psql(f"CREATE TABLESPACE {self.name} LOCATION '{self.path}'")
        # every session (FerretDB's pooled ones too, at their next statement) creates tables there
        _psql(f"ALTER SYSTEM SET default_tablespace = '{self.name}'")
        _psql("SELECT pg_reload_conf()")

    def tables(self) -> int:
        """How many tables and indexes live on the small disk."""
        return int(
            _psql(
                "SELECT count(*) FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace "
                f"WHERE t.spcname = '{self.name}'"
            )
        )

    def used_mb(self) -> float:
        st = os.statvfs(self.path)
        return round((st.f_blocks - st.f_bfree) * st.f_frsize / 2**20, 1)

    def fill(self) -> int:
        """Write a filler file until the disk has no byte left; return its size in MiB."""
        chunk = b"\0" * 2**20
        written = 0
        with self.filler.open("wb", buffering=0) as f:
            try:
                while True:
                    written += f.write(chunk)
            except OSError as exc:
                if exc.errno != 28:  # ENOSPC is the point
                    raise
        # the last partial pages too
        with self.filler.open("ab", buffering=0) as f, contextlib.suppress(OSError):
            while f.write(b"\0" * 4096):
                written += 4096
        return written // 2**20

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        """Undo everything: default tablespace reset, tablespace dropped, tmpfs unmounted."""
        self.free()
        with contextlib.suppress(subprocess.CalledProcessError):
            _psql("ALTER SYSTEM RESET default_tablespace")
            _psql("SELECT pg_reload_conf()")
        # Whatever still has files on the tmpfs goes with it: the run's databases are dropped by
        # StackRun.stop, but anything else created while the tablespace was the default (or a drop
        # that failed) would stay in the catalog with its files gone, and FerretDB, which reads every
        # database's metadata table when it starts, would fail on it at its next start (seen: a
        # probe database left by an interrupted run broke the FerretDB SIGKILL scenario after it).
        with contextlib.suppress(subprocess.CalledProcessError):
            schemas = _psql(
                "SELECT DISTINCT n.nspname FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace "
                f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE t.spcname = '{self.name}'"
            ).split()
            for schema in schemas:
                _psql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        dropped = True
        try:
            _psql(f"DROP TABLESPACE IF EXISTS {self.name}")
        except subprocess.CalledProcessError:
            dropped = False
        subprocess.run(["umount", "-l", str(self.path)], check=False, timeout=30)
        with contextlib.suppress(OSError):
            self.path.rmdir()
        assert dropped, (
            f"tablespace {self.name} could not be dropped: the local cluster needs `make clean-data`"
        )


@contextlib.contextmanager
def small_disk(size_mb: int) -> Iterator[SmallDisk]:
    disk = SmallDisk(size_mb)
    try:
        disk.mount()
        yield disk
    finally:
        disk.unmount()


# PostgreSQL's disk_full: what an ENOSPC of a table or index file becomes (FerretDB passes the
# PostgreSQL error's text on, "... (SQLSTATE 53100)", in an OperationFailure).
DISK_FULL_SQLSTATE = "53100"


@dataclass(frozen=True)
class Refusal:
    """A write the store refused: the wire error code, whether ENOSPC was behind it, and its text."""

    code: int | None
    disk_full: bool
    text: str

    @classmethod
    def of(cls, exc: PyMongoError) -> Refusal:
        text = str(exc)
        code = exc.code if isinstance(exc, OperationFailure) else None
        disk_full = isinstance(exc, OperationFailure) and f"(SQLSTATE {DISK_FULL_SQLSTATE})" in text
        return cls(code, disk_full, f"{type(exc).__name__} {code}: {text[-240:]}")


class StoreProbe:
    """One collection of the run on the small disk, created while the disk has room: its writes never
    create anything (FerretDB 1.24 can leave its catalog without a collection whose create failed
    mid-way, and every later create of it fails), and each needs new pages, so a full disk refuses it.
    """

    def __init__(self, run: StackRun) -> None:
        self.uri = run.settings.mongodb_uri.get_secret_value()
        self.db = f"{run.prefix}attune_probe"  # dropped with the run's databases by StackRun.stop
        self.writes = 0
        with self._client() as client:
            client[self.db].create_collection("probe")
            client[self.db]["probe"].insert_one({"_id": "created"})

    def _client(self) -> MongoClient[dict[str, Any]]:
        return MongoClient(self.uri, serverSelectionTimeoutMS=5000, socketTimeoutMS=15000)

    def write(self) -> Refusal | None:
        """Insert one document the store cannot fit in pages it has (96 KiB of random bytes as hex,
        which TOAST cannot compress); the refusal, or None when the store took it."""
        self.writes += 1
        doc = {"_id": f"w{self.writes}", "blob": os.urandom(96 * 1024).hex()}
        with self._client() as client:
            try:
                client[self.db]["probe"].insert_one(doc)
            except PyMongoError as exc:
                return Refusal.of(exc)
        return None

    def write_until_accepted(self, timeout_s: float = 10.0) -> tuple[bool, list[Refusal]]:
        """Write until the store takes it (PostgreSQL may need a moment after the disk was freed):
        whether it did within `timeout_s`, and the refusals before."""
        refusals: list[Refusal] = []
        deadline = time.monotonic() + timeout_s
        while True:
            refused = self.write()
            if refused is None:
                return True, refusals
            refusals.append(refused)
            if time.monotonic() >= deadline:
                return False, refusals
            time.sleep(0.5)


# ---------------------------------------------------------------------- rebalance storm


class Storm:
    """Start one extra instance of every service, let it join its groups, stop it (SIGKILL or
    SIGTERM, in turn), and again, until stopped: every group rebalances twice per round."""

    def __init__(self, run: StackRun, up_s: float = 3.0) -> None:
        self.run = run
        self.up_s = up_s
        self.rounds = 0
        self.exits: list[int | None] = []
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rebalance-storm", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> Storm:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        self._thread.join(timeout=120)
        self.run.note(f"storm: {self.rounds} rounds, extra instances' exits {self.exits}")

    def _loop(self) -> None:
        try:
            while not self._halt.is_set():
                self._round()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _round(self) -> None:
        run = self.run
        sig = signal.SIGKILL if self.rounds % 2 == 0 else signal.SIGTERM
        extra = []
        for name in SERVICES:
            n = len(run.procs[name])
            proc = ServiceProcess(name, run.env, run.logs / f"{name}-{n}.log").start()
            run.procs[name].append(proc)
            extra.append(proc)
        for proc in extra:  # ready: started, its store and broker answer; its consumer joins meanwhile
            with contextlib.suppress(TimeoutError, RuntimeError):
                proc.wait_ready(timeout=60)
        self._halt.wait(self.up_s)
        for proc in extra:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.proc.send_signal(sig)
        exits = [proc.wait_exit() for proc in extra]
        self.exits.extend(exits)
        self.rounds += 1
        run.note(
            f"storm round {self.rounds}: {len(extra)} extra instances stopped by {sig.name}, exits {exits}"
        )
        self._halt.wait(self.up_s / 2)
