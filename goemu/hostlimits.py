"""Resource limits goemu must lift for itself and keep for the guest.

Under ``ulimit -v`` (RLIMIT_AS) goemu could not even start: its own address space (the
interpreter, Unicorn's code buffer, a 32 GiB sparse permission table, guest pages) is not the
guest's. So goemu raises its own soft limit as far as the hard limit allows (root may lift the
hard one too) and applies the original limit to the guest's VMAs instead (Memory.as_limit), as
Linux's may_expand_vm does. The guest sees and changes its own value (getrlimit/setrlimit).
"""
from __future__ import annotations

import os
import resource

RLIM_INFINITY = (1 << 64) - 1


def _u64(v: int) -> int:
    return RLIM_INFINITY if v == resource.RLIM_INFINITY or v < 0 else v


def take_guest_limits() -> dict[int, tuple[int, int]]:
    """Lift goemu's own RLIMIT_AS and RLIMIT_NOFILE; return the guest's limits (the original
    ones: they now differ from goemu's)."""
    out: dict[int, tuple[int, int]] = {}
    _take_nofile(out)
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    except (OSError, ValueError):
        return out
    if soft == resource.RLIM_INFINITY:
        return out
    out[resource.RLIMIT_AS] = (_u64(soft), _u64(hard))
    for new in ((resource.RLIM_INFINITY, resource.RLIM_INFINITY), (hard, hard)):
        if new[1] != hard and os.geteuid() != 0:
            continue
        try:
            resource.setrlimit(resource.RLIMIT_AS, new)
            break
        except (OSError, ValueError):
            continue
    return out


def _take_nofile(out: dict) -> None:
    """Guest fds are host fds one to one, and goemu has some of its own (pipes, epoll, memfds):
    the guest keeps the soft limit, goemu's own soft limit goes up to the hard one (so goemu
    does not run out first; if both are equal, the guest meets the host's EMFILE a few fds
    early). The guest's fd table stops at its limit (goemu/fdtable.py)."""
    from .fdtable import FdTable
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return
    out[resource.RLIMIT_NOFILE] = (_u64(soft), _u64(hard))
    FdTable.default_limit = soft if soft != resource.RLIM_INFINITY else 1 << 20
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):
            pass


GOEMU_NEEDS = 64 << 30     # address space goemu needs for itself (a 32 GiB sparse table, ...)


def own_limit_problem() -> str | None:
    """Why goemu cannot run under its own RLIMIT_AS (after take_guest_limits), or None."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft >= GOEMU_NEEDS:
        return None
    return (f"cannot run under a hard RLIMIT_AS of {hard} bytes (ulimit -v): goemu needs about "
            f"{GOEMU_NEEDS >> 30} GiB of address space for itself; limit only the soft value "
            f"(prlimit --as={hard}:unlimited) and goemu applies it to the guest")


def guest_as_limit(rlimits: dict) -> int | None:
    lim = rlimits.get(resource.RLIMIT_AS)
    if lim is None or lim[0] >= RLIM_INFINITY:
        return None
    return lim[0]
