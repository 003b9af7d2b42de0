"""Would Linux commit this much memory? The host's overcommit policy applied to the guest's
mappings (guest pages are host MAP_NORESERVE memory, so the host never refuses them itself).

Linux (mm/util.c, __vm_enough_memory) charges private writable mappings (not MAP_NORESERVE ones
in the default heuristic mode): in mode 0 a single request larger than RAM + swap fails with
ENOMEM, in mode 1 nothing fails, in mode 2 the total may not pass CommitLimit.
"""
from __future__ import annotations

from .memory import PROT_WRITE

_MEMINFO_KEYS = ("MemTotal", "SwapTotal", "CommitLimit", "Committed_AS")


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in _MEMINFO_KEYS:
                    out[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def _mode() -> int:
    try:
        with open("/proc/sys/vm/overcommit_memory") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


def check_commit(mem, length: int, prot: int, noreserve: bool = False) -> bool:
    """True if Linux would let a private mapping of `length` bytes with `prot` be created."""
    if not prot & PROT_WRITE:
        return True
    mode = _mode()
    if mode == 1:
        return True
    info = _meminfo()
    if mode == 2:
        limit = info.get("CommitLimit")
        return limit is None or length <= limit - info.get("Committed_AS", 0)
    if noreserve:
        return True
    total = info.get("MemTotal")
    return total is None or length <= total + info.get("SwapTotal", 0)
