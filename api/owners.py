"""Server identity for job leases (``host/pid-namespace:pid:start-time:nonce``), and whether an owner is gone.

A lease is the general rule (another host's server is judged by its lease alone); on the same host
a server can do better and see at once that an owner process no longer exists, so a restart after
a crash re-queues the dead server's jobs without waiting for their leases to lapse.
"""
from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path


def _start_time(pid: int) -> str | None:
    """Return the kernel's start time of ``pid`` (clock ticks since boot), None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid").partition("[")[2].rstrip("]") or None
    except OSError:
        return None


def _host() -> str:
    """Return where pids mean the same thing: the host name and the pid namespace.

    Two containers on one host with the same name still differ; without a readable namespace the
    id ends in ``?``.
    """
    name = socket.gethostname().replace(":", "_")[:20]
    return f"{name}/{_pid_namespace() or '?'}"


def new_owner_id() -> str:
    """Return a new server id, ``host/pid-namespace:pid:start-time:nonce`` (unique even when a pid is reused)."""
    pid = os.getpid()
    return f"{_host()}:{pid}:{_start_time(pid) or 0}:{uuid.uuid4().hex[:6]}"[:64]


def owner_gone(owner: str | None) -> bool:
    """Tell whether ``owner`` names a process on this host that no longer exists (so its lease is void).

    An owner on another host, or one this process cannot judge, is never declared gone: its lease
    decides.
    """
    if not owner:
        return True
    parts = owner.split(":")
    here = _host()
    if len(parts) != 4 or parts[0] != here or here.endswith("/?"):
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    return _start_time(pid) != parts[2]
