"""Threads and the process: clone (threads), exit, exit_group, gettid, set_tid_address,
arch_prctl (FS base), sched_yield."""
from __future__ import annotations

import sys

from ..cpu import FS_BASE, GS_BASE, RAX, RIP, RSP
from ..errno import EINVAL, ENOSYS, EPERM, LinuxError
from . import NORESULT, PARTIAL, syscall

CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_VFORK, CLONE_THREAD, CLONE_SYSVSEM, CLONE_SETTLS = 0x4000, 0x10000, 0x40000, 0x80000
CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID = 0x100000, 0x200000, 0x1000000
THREAD_FLAGS = CLONE_VM | CLONE_SIGHAND | CLONE_THREAD
ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004


@syscall("clone", "cloneflags", "ptr", "ptr", "ptr", "hex", level=PARTIAL,
         note="threads (CLONE_VM|CLONE_SIGHAND|CLONE_THREAD, as the Go runtime's 0x50f00) and "
              "vfork-style processes (CLONE_VM|CLONE_VFORK, as os/exec); not plain fork")
def clone(k, t, flags, stack, ptid, ctid, tls):
    if flags & THREAD_FLAGS != THREAD_FLAGS:
        if flags & (CLONE_VM | CLONE_VFORK) == CLONE_VM | CLONE_VFORK:
            from .process import vfork
            return vfork(k, t, flags, stack)
        if not getattr(k, "_warned_fork", False):
            k._warned_fork = True
            print(f"goemu: clone with flags {flags:#x} (a fork without CLONE_VM|CLONE_VFORK) is not "
                  "supported; the guest got ENOSYS", file=sys.stderr)
        raise LinuxError(ENOSYS)
    uc = k.uc
    child = k.new_thread()
    ctx = uc.context_save()          # the parent's registers at the syscall instruction
    ctx.reg_write(RIP, uc.reg_read(RIP) + 2)
    ctx.reg_write(RAX, 0)
    if stack:
        ctx.reg_write(RSP, stack)
    if flags & CLONE_SETTLS:
        ctx.reg_write(FS_BASE, tls)
    child.ctx = ctx
    child.sigmask = t.sigmask
    child.vruntime = t.vruntime          # a new thread starts level with its creator
    child.keepcaps = t.keepcaps          # part of the credentials a new thread inherits
    child.fs = t.fs                      # Go always clones with CLONE_FS: the same fs state
    if flags & CLONE_PARENT_SETTID:
        k.mem.write_u32(ptid, child.tid)
    if flags & CLONE_CHILD_SETTID:
        k.mem.write_u32(ctid, child.tid)
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = ctid
    k.sched.add(child)
    return child.tid


def _thread_gone(k, t) -> None:
    if t.clear_child_tid:
        try:
            k.mem.write_u32(t.clear_child_tid, 0)
        except LinuxError:
            pass
        from .futex import wake
        wake(k, t.clear_child_tid, 1, 0xFFFFFFFF)
    k.sched.exit(t)


def _in_child(k, t) -> bool:
    return t.proc is not None and t.proc is not k.main_proc


@syscall("exit", "int")
def exit_(k, t, code):
    if _in_child(k, t):
        from .process import end_child
        end_child(k, t, (code & 0xFF) << 8)
        return NORESULT
    _thread_gone(k, t)
    if not k.live_threads():
        k.exit_group(code)
    else:
        k.stop("exit")
    return NORESULT


@syscall("exit_group", "int")
def exit_group(k, t, code):
    if _in_child(k, t):
        from .process import end_child
        end_child(k, t, (code & 0xFF) << 8)
        return NORESULT
    k.exit_group(code)
    return NORESULT


@syscall("gettid")
def gettid(k, t):
    return t.tid


@syscall("set_tid_address", "ptr")
def set_tid_address(k, t, ptr):
    t.clear_child_tid = ptr
    return t.tid


@syscall("arch_prctl", "archprctl", "hex")
def arch_prctl(k, t, code, addr):
    if code == ARCH_SET_FS:
        k.uc.reg_write(FS_BASE, addr)
    elif code == ARCH_SET_GS:
        k.uc.reg_write(GS_BASE, addr)
    elif code == ARCH_GET_FS:
        k.mem.write_u64(addr, k.uc.reg_read(FS_BASE))
    elif code == ARCH_GET_GS:
        k.mem.write_u64(addr, k.uc.reg_read(GS_BASE))
    else:
        raise LinuxError(EINVAL)
    return 0


@syscall("sched_yield")
def sched_yield(k, t):
    if len(k.sched.runq):
        k.stop("yield")
    return 0


CLONE_FS_FLAG, CLONE_FILES_FLAG, CLONE_SYSVSEM_FLAG = 0x200, 0x400, 0x40000
_UNSHARE_TASK = 0x100 | 0x800 | 0x10000          # CLONE_VM, CLONE_SIGHAND, CLONE_THREAD
_UNSHARE_NS = 0x80 | 0x20000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000


@syscall("unshare", "hex", level=PARTIAL,
         note="CLONE_FS gives the thread its own working directory; CLONE_FILES/SYSVSEM are "
              "accepted (one process, one fd table); namespaces are EPERM")
def unshare(k, t, flags):
    from ..thread import FsState
    from .procfs import guest_cwd
    flags &= 0xFFFFFFFF
    if flags & ~(_UNSHARE_TASK | _UNSHARE_NS | CLONE_FS_FLAG | CLONE_FILES_FLAG | CLONE_SYSVSEM_FLAG):
        raise LinuxError(EINVAL)             # not an unshare flag
    if flags & _UNSHARE_TASK and len(k.live_threads()) > 1:
        raise LinuxError(EINVAL)             # Linux: only a single-threaded process may
    if flags & _UNSHARE_NS:
        raise LinuxError(EPERM)              # namespaces: not for a guest of goemu
    if flags & CLONE_FS_FLAG:
        t.fs = FsState(t.fs.cwd if t.fs is not None else guest_cwd(k))
    return 0
