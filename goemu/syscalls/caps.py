"""Capabilities: capget/capset (the host's answer for goemu's own process, which the guest is)
and the per-thread PR_*KEEPCAPS / capability-bounding prctl options (proc.prctl delegates)."""
from __future__ import annotations

import ctypes

from ..errno import EFAULT, EINVAL, LinuxError
from . import syscall

PR_GET_KEEPCAPS, PR_SET_KEEPCAPS, PR_CAPBSET_READ = 7, 8, 23
CAPS_OPTIONS = (PR_GET_KEEPCAPS, PR_SET_KEEPCAPS, PR_CAPBSET_READ)
_V1, _V2, _V3 = 0x19980330, 0x20071026, 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _host_pid(k, pid: int) -> int:
    pid = ctypes.c_int32(pid).value
    return 0 if pid in (0, k.pid) or any(pid == tid for tid in k.threads) else pid


def _cap_call(nr: int, k, hdrp: int, datap: int, write: bool) -> int:
    """Run capget (125) or capset (126) on the host with guest memory copied in and out."""
    if not hdrp:
        raise LinuxError(EFAULT)
    raw = k.mem.read(hdrp, 8)
    version, pid = int.from_bytes(raw[:4], "little"), int.from_bytes(raw[4:], "little")
    hdr = (ctypes.c_uint32 * 2)(version, _host_pid(k, pid) & 0xFFFFFFFF)
    words = 3 if version == _V1 else 6
    data = (ctypes.c_uint32 * words)()
    if write and datap:
        ctypes.memmove(data, k.mem.read(datap, 4 * words), 4 * words)
    elif write:
        raise LinuxError(EFAULT)
    rc = _libc.syscall(nr, hdr, data if datap else None)
    err = ctypes.get_errno()
    if rc < 0 and err == EINVAL and version not in (_V1, _V2, _V3):
        k.mem.write_u32(hdrp, hdr[0])           # the kernel tells the version it prefers
    if rc < 0:
        raise LinuxError(err)
    if not write and datap:
        k.mem.write(datap, bytes(data))
    return 0


@syscall("capget", "ptr", "ptr")
def capget(k, t, hdrp, datap):
    return _cap_call(125, k, hdrp, datap, False)


@syscall("capset", "ptr", "ptr")
def capset(k, t, hdrp, datap):
    return _cap_call(126, k, hdrp, datap, True)


def prctl_caps(k, t, option: int, arg2: int, arg3: int, arg4: int, arg5: int) -> int:
    """PR_SET/GET_KEEPCAPS (per thread, as Linux keeps it in the thread's credentials) and
    PR_CAPBSET_READ (the host's bounding set)."""
    if option == PR_SET_KEEPCAPS:
        if arg2 > 1 or arg3 or arg4 or arg5:
            raise LinuxError(EINVAL)
        t.keepcaps = arg2
        return 0
    if option == PR_GET_KEEPCAPS:
        if arg2 or arg3 or arg4 or arg5:
            raise LinuxError(EINVAL)
        return t.keepcaps
    rc = _libc.prctl(PR_CAPBSET_READ, ctypes.c_ulong(arg2), 0, 0, 0)
    if rc < 0:
        raise LinuxError(ctypes.get_errno())
    return rc
