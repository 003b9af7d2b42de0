"""Process identity and resources: ids, uname, limits, randomness, affinity, usage, prctl.

The guest is one process (pid ``k.pid``, its own process group and session). Identity that
belongs to the host (uid, groups, rlimits, usage) is the host's; under ``--deterministic``,
everything that would differ between runs (parent pid, host name, usage, random bytes, memory
figures) is fixed. Limits the guest sets are remembered, never applied to the host.
"""
from __future__ import annotations

import ctypes
import os
import random
import resource
import struct

from ..errno import EACCES, EFAULT, EINVAL, ENOSYS, EPERM, ESRCH, LinuxError, from_oserror
from ..memory import PROT_READ, PROT_WRITE
from ..process import Creds
from . import PARTIAL, caps, syscall

# ---- guest structs ------------------------------------------------------------------------------
UTS_FIELD = 65
UTSNAME = struct.Struct("<" + f"{UTS_FIELD}s" * 6)          # struct new_utsname: 390 bytes
# struct sysinfo (x86-64): uptime, loads[3], totalram, freeram, sharedram, bufferram, totalswap,
# freeswap, procs, pad, totalhigh, freehigh, mem_unit, padding to 112.
SYSINFO = struct.Struct("<q3Q6QHH4xQQI4x")
RLIMIT = struct.Struct("<QQ")
# struct rusage: ru_utime, ru_stime (timeval: sec, usec), then 14 longs.
RUSAGE = struct.Struct("<qqqq14q")
TMS = struct.Struct("<qqqq")

RELEASE = "5.10.0-goemu"     # not 5.2.x/5.3.0-14/5.4.0-1: Go 1.14 would mlock its signal stacks
RLIM_INFINITY = 0xFFFFFFFFFFFFFFFF
RLIMIT_NOFILE = 7
RLIM_NLIMITS = 16
GRND_NONBLOCK, GRND_RANDOM, GRND_INSECURE = 1, 2, 4
GETRANDOM_MAX = (1 << 25) - 1        # Linux returns at most this much per call
DET_SEED = 0x676F656D75              # "goemu": the --deterministic random stream
CLK_TCK = 100
PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE = 1, 2, 3, 4
PR_SET_NAME, PR_GET_NAME = 15, 16
PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS = 38, 39
TASK_COMM_LEN = 16
SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE = 0, 1, 2, 3, 5, 6
PRIO_PROCESS, PRIO_PGRP, PRIO_USER = 0, 1, 2
RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD = 0, -1, 1
ROBUST_LIST_HEAD_SIZE = 24


def _i32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _is_self(k, pid: int) -> bool:
    """pid 0, the guest's pid, or one of its live thread ids."""
    if pid == 0 or pid == k.pid:
        return True
    t = getattr(k, "threads", {}).get(pid)
    return t is not None and t.state != "dead"


def _check_self(k, pid: int) -> None:
    if not _is_self(k, _i32(pid)):
        raise LinuxError(ESRCH)


# ---- ids ------------------------------------------------------------------------------------------
# A vfork child (before execve) has its own credentials, session and process group, recorded on
# its Process and applied by the host process it becomes (goemu.process); the main process's
# credentials are goemu's own, so its set*id calls are the host's.
CAP_SETGID, CAP_SETUID = 6, 7
NGROUPS_MAX = 65536
NO_ID = 0xFFFFFFFF     # (uid_t)-1: "unchanged" for setre*/setres*, invalid for setuid/setgid


def _child(t):
    """The vfork child's Process, or None in the main process."""
    proc = t.proc
    return proc if proc is not None and proc.vfork_parent is not None else None


def _creds(t) -> Creds:
    proc = _child(t)
    if proc is not None and proc.creds is not None:
        return proc.creds
    return Creds.of_host()


def _host_cap(bit: int) -> bool:
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"CapEff:"):
                    return bool(int(line.split()[1], 16) >> bit & 1)
    except (OSError, ValueError):
        pass
    return os.geteuid() == 0


def _set_creds(k, t, host_call, change) -> int:
    """Main process: the host's own call. vfork child: Linux's rules on its recorded creds."""
    proc = _child(t)
    if proc is None:
        if host_call() != 0:
            raise LinuxError(ctypes.get_errno())
        return 0
    old = _creds(t)
    new = Creds(old.ruid, old.euid, old.suid, old.rgid, old.egid, old.sgid, old.groups, old.groups_set)
    change(old, new)
    proc.creds = new
    return 0


def _capable(old: Creds, bit: int) -> bool:
    return old.euid == 0 and _host_cap(bit)


def _id(v: int) -> int:
    return v & 0xFFFFFFFF


# glibc's set*id wrappers change every host thread, as the kernel's calls change the process
_idlibc = ctypes.CDLL(None, use_errno=True)


def _host(name: str, *ids: int):
    fn = getattr(_idlibc, name)
    return lambda: fn(*(ctypes.c_uint32(v) for v in ids))


@syscall("getpid")
def getpid(k, t):
    return t.proc.pid if t.proc is not None else k.pid


@syscall("getppid")
def getppid(k, t):
    if _child(t) is not None:
        return k.pid
    return 1 if k.deterministic else os.getppid()


@syscall("getuid")
def getuid(k, t):
    return _creds(t).ruid


@syscall("geteuid")
def geteuid(k, t):
    return _creds(t).euid


@syscall("getgid")
def getgid(k, t):
    return _creds(t).rgid


@syscall("getegid")
def getegid(k, t):
    return _creds(t).egid


def _write_ids(k, ptrs, ids) -> None:
    for p, v in zip(ptrs, ids):
        k.mem.write_u32(p, v)


@syscall("getresuid", "ptr", "ptr", "ptr")
def getresuid(k, t, ruid, euid, suid):
    c = _creds(t)
    _write_ids(k, (ruid, euid, suid), (c.ruid, c.euid, c.suid))
    return 0


@syscall("getresgid", "ptr", "ptr", "ptr")
def getresgid(k, t, rgid, egid, sgid):
    c = _creds(t)
    _write_ids(k, (rgid, egid, sgid), (c.rgid, c.egid, c.sgid))
    return 0


@syscall("getgroups", "int", "ptr")
def getgroups(k, t, size, lst):
    size = _i32(size)
    groups = list(_creds(t).groups)
    if size < 0:
        raise LinuxError(EINVAL)
    if size == 0:
        return len(groups)
    if size < len(groups):
        raise LinuxError(EINVAL)
    k.mem.write(lst, struct.pack(f"<{len(groups)}I", *groups))
    return len(groups)


def _setxid(kind: str):
    """setuid/setgid: with the capability, all three ids; else the effective id, if it is the
    real or saved one."""
    def change_for(value: int):
        def change(old: Creds, new: Creds) -> None:
            r, e, s_ = (old.ruid, old.euid, old.suid) if kind == "u" else (old.rgid, old.egid, old.sgid)
            if _capable(old, CAP_SETUID if kind == "u" else CAP_SETGID):
                ids = (value, value, value)
            elif value in (r, s_):
                ids = (r, value, s_)
            else:
                raise LinuxError(EPERM)
            if kind == "u":
                new.ruid, new.euid, new.suid = ids
            else:
                new.rgid, new.egid, new.sgid = ids
        return change
    return change_for


def _setrexid(kind: str, rv: int, ev: int):
    def change(old: Creds, new: Creds) -> None:
        r, e, s_ = (old.ruid, old.euid, old.suid) if kind == "u" else (old.rgid, old.egid, old.sgid)
        cap = _capable(old, CAP_SETUID if kind == "u" else CAP_SETGID)
        nr = r if rv == NO_ID else rv
        ne = e if ev == NO_ID else ev
        if not cap and (rv != NO_ID and rv not in (r, e) or ev != NO_ID and ev not in (r, e, s_)):
            raise LinuxError(EPERM)
        ns = ne if rv != NO_ID or (ev != NO_ID and ev != r) else s_
        if kind == "u":
            new.ruid, new.euid, new.suid = nr, ne, ns
        else:
            new.rgid, new.egid, new.sgid = nr, ne, ns
    return change


def _setresxid(kind: str, rv: int, ev: int, sv: int):
    def change(old: Creds, new: Creds) -> None:
        cur = (old.ruid, old.euid, old.suid) if kind == "u" else (old.rgid, old.egid, old.sgid)
        cap = _capable(old, CAP_SETUID if kind == "u" else CAP_SETGID)
        if not cap and any(v != NO_ID and v not in cur for v in (rv, ev, sv)):
            raise LinuxError(EPERM)
        ids = tuple(c if v == NO_ID else v for c, v in zip(cur, (rv, ev, sv)))
        if kind == "u":
            new.ruid, new.euid, new.suid = ids
        else:
            new.rgid, new.egid, new.sgid = ids
    return change


@syscall("setuid", "int")
def setuid(k, t, uid):
    uid = _id(uid)
    if uid == NO_ID:
        raise LinuxError(EINVAL)
    return _set_creds(k, t, _host("setuid", uid), _setxid("u")(uid))


@syscall("setgid", "int")
def setgid(k, t, gid):
    gid = _id(gid)
    if gid == NO_ID:
        raise LinuxError(EINVAL)
    return _set_creds(k, t, _host("setgid", gid), _setxid("g")(gid))


@syscall("setreuid", "int", "int")
def setreuid(k, t, ruid, euid):
    ruid, euid = _id(ruid), _id(euid)
    return _set_creds(k, t, _host("setreuid", ruid, euid), _setrexid("u", ruid, euid))


@syscall("setregid", "int", "int")
def setregid(k, t, rgid, egid):
    rgid, egid = _id(rgid), _id(egid)
    return _set_creds(k, t, _host("setregid", rgid, egid), _setrexid("g", rgid, egid))


@syscall("setresuid", "int", "int", "int")
def setresuid(k, t, ruid, euid, suid):
    ids = _id(ruid), _id(euid), _id(suid)
    return _set_creds(k, t, _host("setresuid", *ids), _setresxid("u", *ids))


@syscall("setresgid", "int", "int", "int")
def setresgid(k, t, rgid, egid, sgid):
    ids = _id(rgid), _id(egid), _id(sgid)
    return _set_creds(k, t, _host("setresgid", *ids), _setresxid("g", *ids))


@syscall("setgroups", "int", "ptr")
def setgroups(k, t, size, lst):
    size = _i32(size)
    if not _capable(_creds(t), CAP_SETGID):
        raise LinuxError(EPERM)
    if size < 0 or size > NGROUPS_MAX:
        raise LinuxError(EINVAL)
    groups = struct.unpack(f"<{size}I", k.mem.read(lst, 4 * size)) if size else ()
    if NO_ID in groups:
        raise LinuxError(EINVAL)

    def change(old: Creds, new: Creds) -> None:
        new.groups, new.groups_set = tuple(groups), True

    def host_call() -> int:
        return _idlibc.setgroups(ctypes.c_size_t(size), (ctypes.c_uint32 * max(size, 1))(*groups))
    return _set_creds(k, t, host_call, change)


# ---- sessions and process groups ------------------------------------------------------------------
# The guest sees itself as its own process group and session (pid k.pid): goemu's host pgid/sid
# appear as k.pid; a child's host pid appears as its guest pid.
def _guest_id(k, host: int) -> int:
    if host in (os.getpid(), os.getpgrp(), os.getsid(0)):
        return k.pid
    for c in k.children.values():
        if c.host_pid == host:
            return c.pid
    return host


def _host_id(k, guest: int) -> int:
    if guest == k.pid:
        return os.getpgrp()
    c = k.children.get(guest)
    if c is not None and c.host_pid:
        return c.host_pid
    return guest


def _target(k, t, pid: int):
    """(kind, object) for a pid argument: ("self", proc or None), ("context", Process) for a
    vfork child before execve, ("host", Child) for a child that is a host process."""
    pid = _i32(pid)
    if pid < 0:
        raise LinuxError(ESRCH)
    if pid == 0 or (t.proc is not None and pid == t.proc.pid):
        return "self", _child(t)
    c = getattr(k, "children", {}).get(pid)
    if c is not None and not c.reaped:
        if c.host_pid:
            return "host", c
        if c.proc is not None:
            return "context", c.proc
    if _is_self(k, pid):
        return "self", None
    raise LinuxError(ESRCH)


def _context_pgid(k, proc) -> int:
    if proc.pgid is None:
        return k.pid
    return proc.pid if proc.pgid == 0 else _guest_id(k, proc.pgid)


@syscall("setsid", level=PARTIAL, note="the guest is always its own session: returns its pid; "
                                       "a vfork child's setsid happens in its host process")
def setsid(k, t):
    proc = _child(t)
    if proc is None:
        return k.pid
    if proc.setsid or proc.pgid == 0:
        raise LinuxError(EPERM)   # already a process group leader
    proc.setsid = True
    return proc.pid


@syscall("getsid", "int")
def getsid(k, t, pid):
    kind, obj = _target(k, t, pid)
    if kind == "host":
        try:
            return _guest_id(k, os.getsid(obj.host_pid))
        except OSError as e:
            raise from_oserror(e) from None
    if obj is not None and obj.setsid:
        return obj.pid
    return k.pid


@syscall("getpgrp")
def getpgrp(k, t):
    proc = _child(t)
    return _context_pgid(k, proc) if proc is not None else k.pid


@syscall("getpgid", "int")
def getpgid(k, t, pid):
    kind, obj = _target(k, t, pid)
    if kind == "host":
        try:
            return _guest_id(k, os.getpgid(obj.host_pid))
        except OSError as e:
            raise from_oserror(e) from None
    if obj is not None:
        return _context_pgid(k, obj) if not obj.setsid else obj.pid
    return k.pid


@syscall("setpgid", "int", "int", level=PARTIAL,
         note="children: their host processes' groups; the guest itself stays its own group")
def setpgid(k, t, pid, pgid):
    pid, pgid = _i32(pid), _i32(pgid)
    if pgid == 0:
        pgid = pid   # Linux's order: 0 means the target's own pid, then pgid < 0 is EINVAL
    if pgid < 0:
        raise LinuxError(EINVAL)
    kind, obj = _target(k, t, pid)
    if kind == "host":
        try:
            os.setpgid(obj.host_pid, 0 if pgid in (0, obj.pid) else _host_id(k, pgid))
        except OSError as e:
            raise from_oserror(e) from None
        return 0
    if obj is None:
        return 0   # the guest itself: already its own group
    if obj.setsid:
        raise LinuxError(EPERM)   # a session leader cannot change its group
    obj.pgid = 0 if pgid in (0, obj.pid) else _host_id(k, pgid)
    return 0


# ---- system information ----------------------------------------------------------------------------
def _uts(s: str) -> bytes:
    return s.encode()[:UTS_FIELD - 1]


@syscall("uname", "ptr")
def uname(k, t, buf):
    node = "goemu" if k.deterministic else os.uname().nodename    # (socket's import: 5 ms)
    k.mem.write(buf, UTSNAME.pack(_uts("Linux"), _uts(node), _uts(RELEASE), _uts("#1 SMP"),
                                  _uts("x86_64"), _uts("(none)")))
    return 0


_libc = ctypes.CDLL(None, use_errno=True)


def _host_sysinfo() -> tuple:
    buf = ctypes.create_string_buffer(SYSINFO.size)
    if _libc.sysinfo(buf) != 0:
        raise from_oserror(OSError(ctypes.get_errno(), ""))
    return SYSINFO.unpack(buf.raw)


@syscall("sysinfo", "ptr")
def sysinfo(k, t, buf):
    uptime = k.clock.monotonic() // 1_000_000_000
    if k.deterministic:
        gib = 1 << 30
        values = (uptime, 0, 0, 0, 8 * gib, 4 * gib, 0, 0, 0, 0, 1, 0, 0, 0, 1)
    else:
        values = (uptime,) + _host_sysinfo()[1:]
    k.mem.write(buf, SYSINFO.pack(*values))
    return 0


# ---- resource limits ---------------------------------------------------------------------------------
def _rlimits(k) -> dict:
    lim = getattr(k, "rlimits", None)
    if lim is None:
        lim = k.rlimits = {}
    return lim


def _to_u64(v: int) -> int:
    return RLIM_INFINITY if v == resource.RLIM_INFINITY or v < 0 else v


def get_rlimit(k, res: int) -> tuple[int, int]:
    if res < 0 or res >= RLIM_NLIMITS:
        raise LinuxError(EINVAL)
    stored = _rlimits(k).get(res)
    if stored is not None:
        return stored
    try:
        soft, hard = resource.getrlimit(res)
    except (ValueError, OSError):
        raise LinuxError(EINVAL) from None
    return _to_u64(soft), _to_u64(hard)


def _nr_open() -> int:
    """fs.nr_open: RLIMIT_NOFILE's hard value may not go above it (EPERM)."""
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1 << 20


def set_rlimit(k, res: int, soft: int, hard: int) -> None:
    _, cur_hard = get_rlimit(k, res)
    if soft > hard:
        raise LinuxError(EINVAL)
    if hard > cur_hard and os.geteuid() != 0:
        raise LinuxError(EPERM)
    if res == RLIMIT_NOFILE and hard > _nr_open():
        raise LinuxError(EPERM)
    _rlimits(k)[res] = (soft, hard)
    if res == RLIMIT_NOFILE:            # new fds stop below it (open fds above it stay)
        k.fds.limit = min(soft, _nr_open())
    if res == resource.RLIMIT_AS:       # bounds the guest's VMAs from now on (may_expand_vm)
        k.mem.as_limit = None if soft >= RLIM_INFINITY else soft


@syscall("getrlimit", "rlimit", "ptr")
def getrlimit(k, t, res, rlim):
    k.mem.write(rlim, RLIMIT.pack(*get_rlimit(k, _i32(res))))
    return 0


@syscall("setrlimit", "rlimit", "ptr", level=PARTIAL,
         note="remembered; RLIMIT_AS bounds the guest's mappings; the host is unchanged")
def setrlimit(k, t, res, rlim):
    soft, hard = RLIMIT.unpack(k.mem.read(rlim, RLIMIT.size))
    set_rlimit(k, _i32(res), soft, hard)
    return 0


@syscall("prlimit64", "int", "rlimit", "ptr", "ptr", level=PARTIAL,
         note="own process only; new limits are remembered, the host is unchanged")
def prlimit64(k, t, pid, res, new, old):
    _check_self(k, pid)
    res = _i32(res)
    new_lim = RLIMIT.unpack(k.mem.read(new, RLIMIT.size)) if new else None
    cur = get_rlimit(k, res)
    if new_lim is not None:
        set_rlimit(k, res, *new_lim)
    if old:
        k.mem.write(old, RLIMIT.pack(*cur))
    return 0


# ---- randomness ------------------------------------------------------------------------------------
def random_bytes(k, n: int) -> bytes:
    if not k.deterministic:
        return os.urandom(n)
    rng = getattr(k, "_det_rng", None)
    if rng is None:
        rng = k._det_rng = random.Random(DET_SEED)
    return rng.randbytes(n)


@syscall("getrandom", "obuf", "size", "grndflags")
def getrandom(k, t, buf, count, flags):
    flags &= 0xFFFFFFFF
    if flags & ~(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) or \
            flags & (GRND_RANDOM | GRND_INSECURE) == GRND_RANDOM | GRND_INSECURE:
        raise LinuxError(EINVAL)
    count = min(count, GETRANDOM_MAX)
    if count == 0:
        return 0
    n = _writable_prefix(k, buf, count)      # a buffer running into a hole: a short result
    if n == 0:
        raise LinuxError(EFAULT)
    k.mem.write(buf, random_bytes(k, n))
    return n


def _writable_prefix(k, addr: int, n: int) -> int:
    done = 0
    while done < n:
        v = k.mem.find(addr + done)
        if v is None or not v.prot & PROT_READ or not v.prot & PROT_WRITE:
            break
        done = min(n, v.end - addr)
    return done


# ---- scheduling ----------------------------------------------------------------------------------
def _mask_size(k) -> int:
    return max(8, (k.ncpus + 63) // 64 * 8)


@syscall("sched_getaffinity", "int", "size", "ptr")
def sched_getaffinity(k, t, pid, length, mask):
    _check_self(k, pid)
    size = _mask_size(k)
    if length * 8 < k.ncpus or length & 7:
        raise LinuxError(EINVAL)
    size = min(size, length)
    bits = (1 << k.ncpus) - 1
    k.mem.write(mask, bits.to_bytes(size, "little"))
    return size


@syscall("sched_setaffinity", "int", "size", "ptr", level=PARTIAL, note="accepted and ignored")
def sched_setaffinity(k, t, pid, length, mask):
    _check_self(k, pid)
    k.mem.read(mask, min(length, _mask_size(k)))
    return 0


@syscall("sched_get_priority_max", "int")
def sched_get_priority_max(k, t, policy):
    policy = _i32(policy)
    if policy in (SCHED_FIFO, SCHED_RR):
        return 99
    if policy in (SCHED_OTHER, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE):
        return 0
    raise LinuxError(EINVAL)


@syscall("sched_get_priority_min", "int")
def sched_get_priority_min(k, t, policy):
    policy = _i32(policy)
    if policy in (SCHED_FIFO, SCHED_RR):
        return 1
    if policy in (SCHED_OTHER, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE):
        return 0
    raise LinuxError(EINVAL)


def _nice(k) -> int:
    nice = getattr(k, "nice", None)
    if nice is None:
        nice = 0 if k.deterministic else os.getpriority(os.PRIO_PROCESS, 0)
    return nice


def _check_prio_target(k, which: int, who: int) -> None:
    if which not in (PRIO_PROCESS, PRIO_PGRP, PRIO_USER):
        raise LinuxError(EINVAL)
    if which == PRIO_USER:
        if who not in (0, os.getuid()):
            raise LinuxError(ESRCH)
    elif not _is_self(k, who):
        raise LinuxError(ESRCH)


@syscall("getpriority", "int", "int")
def getpriority(k, t, which, who):
    _check_prio_target(k, _i32(which), _i32(who))
    return 20 - _nice(k)     # the raw syscall returns 20 - nice, so the result is never negative


@syscall("setpriority", "int", "int", "int", level=PARTIAL,
         note="remembered for getpriority; the host's priority is unchanged")
def setpriority(k, t, which, who, prio):
    _check_prio_target(k, _i32(which), _i32(who))
    nice = max(-20, min(19, _i32(prio)))
    if nice < _nice(k) and os.geteuid() != 0:
        raise LinuxError(EACCES)
    k.nice = nice
    return 0


@syscall("getcpu", "ptr", "ptr", "ptr")
def getcpu(k, t, cpu, node, cache):
    if cpu:
        k.mem.write_u32(cpu, 0)
    if node:
        k.mem.write_u32(node, 0)
    return 0


# ---- usage and time accounting ------------------------------------------------------------------
def _timeval(seconds: float) -> tuple[int, int]:
    us = int(seconds * 1_000_000)
    return us // 1_000_000, us % 1_000_000


@syscall("getrusage", "int", "ptr")
def getrusage(k, t, who, usage):
    who = _i32(who)
    if who not in (RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD):
        raise LinuxError(EINVAL)
    # user time is the guest's own CPU time (goemu/itimers.py: what SIGPROF counts too), not
    # the Python process's; system time and the counters are the host's
    own = {RUSAGE_SELF: k.itimers.cpu_ns, RUSAGE_THREAD: t.cpu_ns}.get(who)
    if k.deterministic:
        k.mem.write(usage, RUSAGE.pack(*_timeval((own or 0) / 1e9), *([0] * 16)))
        return 0
    host_who = {RUSAGE_SELF: resource.RUSAGE_SELF, RUSAGE_THREAD: resource.RUSAGE_SELF,
                RUSAGE_CHILDREN: resource.RUSAGE_CHILDREN}[who]
    r = resource.getrusage(host_who)
    utime = own / 1e9 if own is not None else r.ru_utime
    k.mem.write(usage, RUSAGE.pack(*_timeval(utime), *_timeval(r.ru_stime),
                                   r.ru_maxrss, r.ru_ixrss, r.ru_idrss, r.ru_isrss, r.ru_minflt,
                                   r.ru_majflt, r.ru_nswap, r.ru_inblock, r.ru_oublock,
                                   r.ru_msgsnd, r.ru_msgrcv, r.ru_nsignals, r.ru_nvcsw, r.ru_nivcsw))
    return 0


@syscall("times", "ptr", ret="long")
def times(k, t, buf):
    if buf:
        utime = k.itimers.cpu_ns * CLK_TCK // 1_000_000_000      # the guest's CPU time
        if k.deterministic:
            k.mem.write(buf, TMS.pack(utime, 0, 0, 0))
        else:
            tm = os.times()
            k.mem.write(buf, TMS.pack(utime, *(int(x * CLK_TCK) for x in tm[1:4])))
    return k.clock.monotonic() // (1_000_000_000 // CLK_TCK)


@syscall("umask", "oct", ret="oct")
def umask(k, t, mask):
    return os.umask(mask & 0o777)


# ---- prctl -------------------------------------------------------------------------------------------
def _comm(k, t) -> bytes:
    name = getattr(t, "comm", None)
    if name is None:
        name = os.fsencode(os.path.basename(k.exe_path))
    return name[:TASK_COMM_LEN - 1]


@syscall("prctl", "prctlop", "hex", "hex", "hex", "hex", level=PARTIAL,
         note="PR_SET_NAME/PR_GET_NAME, PDEATHSIG, DUMPABLE, NO_NEW_PRIVS, KEEPCAPS, CAPBSET_READ; "
              "others EINVAL")
def prctl(k, t, option, arg2, arg3, arg4, arg5):
    option = _i32(option)
    if option == PR_SET_NAME:
        name = bytearray()
        while len(name) < TASK_COMM_LEN - 1:     # byte by byte: the name may end at a page end
            b = k.mem.read(arg2 + len(name), 1)
            if b == b"\0":
                break
            name += b
        t.comm = bytes(name)
        t.name = name.decode("utf-8", "replace")
        return 0
    if option == PR_GET_NAME:
        k.mem.write(arg2, _comm(k, t).ljust(TASK_COMM_LEN, b"\0"))
        return 0
    if option == PR_SET_PDEATHSIG:
        if arg2 > 64:
            raise LinuxError(EINVAL)
        if k.proc is not k.main_proc:
            k.proc.pdeathsig = arg2          # a vfork child: its host process sets it at exec
        else:
            # the guest is goemu's process: the host kernel signals goemu, which forwards it
            import ctypes
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(arg2), 0, 0, 0)
            k.pdeathsig = arg2
        return 0
    if option == PR_GET_PDEATHSIG:
        own = k.proc.pdeathsig if k.proc is not k.main_proc else getattr(k, "pdeathsig", 0)
        k.mem.write_u32(arg2, own)
        return 0
    if option == PR_GET_DUMPABLE:
        return getattr(k, "dumpable", 1)
    if option == PR_SET_DUMPABLE:
        if arg2 not in (0, 1):
            raise LinuxError(EINVAL)
        k.dumpable = arg2
        return 0
    if option == PR_SET_NO_NEW_PRIVS:
        if arg2 != 1 or arg3 or arg4 or arg5:
            raise LinuxError(EINVAL)
        k.no_new_privs = 1
        return 0
    if option == PR_GET_NO_NEW_PRIVS:
        if arg2 or arg3 or arg4 or arg5:
            raise LinuxError(EINVAL)
        return getattr(k, "no_new_privs", 0)
    if option in caps.CAPS_OPTIONS:
        return caps.prctl_caps(k, t, option, arg2, arg3, arg4, arg5)
    raise LinuxError(EINVAL)


# ---- not supported on purpose ------------------------------------------------------------------------
@syscall("set_robust_list", "ptr", "size", level=PARTIAL,
         note="accepted; robust futexes are not cleaned up at thread exit (Go does not use them)")
def set_robust_list(k, t, head, length):
    if length != ROBUST_LIST_HEAD_SIZE:
        raise LinuxError(EINVAL)
    return 0


@syscall("rseq", "ptr", "uint", "hex", "hex", level=PARTIAL,
         note="always ENOSYS, as on kernels before 4.18 (libc and Go fall back)")
def rseq(k, t, rseq_ptr, length, flags, sig):
    raise LinuxError(ENOSYS)


@syscall("membarrier", "int", "hex", level=PARTIAL, note="always ENOSYS, as on kernels before 4.3")
def membarrier(k, t, cmd, flags):
    raise LinuxError(ENOSYS)
