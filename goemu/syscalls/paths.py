"""Paths: path arguments and dirfds, open/close, readlink, the working directory.

A path means to the guest what it means on the host (guest and host fds are the same files),
except under ``/proc/self``, which ``procfs`` makes the guest's.
"""
from __future__ import annotations

import os

from .. import hostio
from ..errno import EACCES, EBADF, EINVAL, ENOENT, ENOTDIR, ERANGE, LinuxError
from ..fdtable import Fd, memfd_with
from . import PARTIAL, procfs, syscall
from .fsbase import (AT_FDCWD, O_ACCMODE, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_NOFOLLOW, O_RDONLY,
                     O_TRUNC, fdarg, host_call, i32)

host_path = procfs.host_path
_kind = hostio.fd_kind


# ---- path arguments ------------------------------------------------------------------------
def path_arg(k, addr: int) -> bytes:
    """A path argument; empty paths are ENOENT (callers with AT_EMPTY_PATH read it themselves)."""
    p = k.mem.read_cstr(addr)
    if not p:
        raise LinuxError(ENOENT)
    return p


def host_dirfd(k, dirfd: int, path: bytes) -> int | None:
    """The host dir_fd for an *at call: None for AT_FDCWD, and for absolute paths (Linux
    ignores dirfd then, even an invalid one)."""
    if path.startswith(b"/"):
        return None
    d = i32(dirfd)
    if d == AT_FDCWD:
        return None
    if d < 0:
        raise LinuxError(EBADF)
    return k.fds.host(d)


def raw_dirfd(k, dirfd: int) -> int:
    """The host dirfd for libc *at calls (AT_FDCWD passes through)."""
    d = i32(dirfd)
    if d == AT_FDCWD:
        return AT_FDCWD
    if d < 0:
        raise LinuxError(EBADF)
    return k.fds.host(d)



# ---- open / close ------------------------------------------------------------------------
def _open(k, dirfd: int, path: bytes, flags: int, mode: int) -> int:
    flags &= 0xFFFFFFFF
    cloexec = bool(flags & O_CLOEXEC)
    rest = procfs.proc_self_rest(k, path)
    shown = os.fsdecode(path)
    if rest in procfs.GENERATED:
        if flags & O_ACCMODE != O_RDONLY or flags & (O_CREAT | O_TRUNC):
            raise LinuxError(EACCES)   # /proc/self files are read-only
        if flags & O_DIRECTORY:
            raise LinuxError(ENOTDIR)
        host = host_call(lambda: memfd_with(procfs.generated(k, rest), "goemu-proc"))
        kind = "memfd"
        shown = f"/proc/{k.pid}/{rest.decode()}"
    else:
        hp = host_path(k, path, follow=not flags & O_NOFOLLOW) if rest is not None else path
        dfd = host_dirfd(k, dirfd, hp)
        host = host_call(lambda: os.open(hp, flags, mode & 0o7777, dir_fd=dfd))
        try:
            kind = _kind(host)
        except OSError:
            kind = "file"
    try:
        return k.fds.install(Fd(host, cloexec, shown, kind))
    except LinuxError:
        os.close(host)
        raise


@syscall("openat", "dirfd", "str", "openflags", "oct", ret="fd", level=PARTIAL,
         note="/proc/self: exe, fd/N, auxv, cmdline, environ, maps, comm and namespace-wide "
              "entries; other /proc/self entries are ENOENT")
def openat(k, t, dirfd, path, flags, mode):
    return _open(k, dirfd, path_arg(k, path), flags, mode)


@syscall("open", "str", "openflags", "oct", ret="fd", level=PARTIAL, note="as openat")
def open_(k, t, path, flags, mode):
    return _open(k, AT_FDCWD, path_arg(k, path), flags, mode)


@syscall("close", "fd")
def close(k, t, fd):
    k.fds.close(fdarg(fd))
    return 0



# ---- links and paths ----------------------------------------------------------------------------
def _readlink(k, dirfd: int, path: bytes) -> bytes:
    rest = procfs.proc_self_rest(k, path)
    if rest == b"exe":
        return os.fsencode(k.exe_path)
    if rest is not None and rest.startswith(b"fd/") and b"/" not in rest[3:]:
        entry, _ = procfs.fd_of_proc(k, rest)
        if entry.kind == "memfd":
            return os.fsencode(entry.path)
        return host_call(lambda: os.readlink(b"/proc/self/fd/%d" % entry.host))
    hp = host_path(k, path, follow=False) if rest is not None else path
    dfd = host_dirfd(k, dirfd, hp)
    return host_call(lambda: os.readlink(hp, dir_fd=dfd))


def _readlink_out(k, dirfd, path, buf, bufsiz) -> int:
    size = i32(bufsiz)
    if size <= 0:
        raise LinuxError(EINVAL)
    target = _readlink(k, dirfd, k.mem.read_cstr(path))[:size]
    k.mem.write(buf, target)
    return len(target)


@syscall("readlinkat", "dirfd", "str", "obuf", "int")
def readlinkat(k, t, dirfd, path, buf, bufsiz):
    return _readlink_out(k, dirfd, path, buf, bufsiz)


@syscall("readlink", "str", "obuf", "int")
def readlink(k, t, path, buf, bufsiz):
    return _readlink_out(k, AT_FDCWD, path, buf, bufsiz)



# ---- working directory ----------------------------------------------------------------------
@syscall("getcwd", "obuf", "size")
def getcwd(k, t, buf, size):
    cwd = (k.proc.cwd or host_call(os.getcwdb)) + b"\0"
    if size < len(cwd):
        raise LinuxError(ERANGE)
    k.mem.write(buf, cwd)
    return len(cwd)


@syscall("chdir", "str")
def chdir(k, t, path):
    hp = host_path(k, path_arg(k, path))
    if k.proc is not k.main_proc:
        # a vfork child: its cwd is its own (goemu's cwd belongs to the main process)
        full = os.path.normpath(os.path.join(k.proc.cwd or os.getcwdb(), hp))
        if not os.path.isdir(full):
            raise LinuxError(ENOENT if not os.path.exists(full) else ENOTDIR)
        k.proc.cwd = full
        return 0
    host_call(lambda: os.chdir(hp))
    return 0


@syscall("fchdir", "fd")
def fchdir(k, t, fd):
    host = k.fds.host(fdarg(fd))
    if k.proc is not k.main_proc:
        k.proc.cwd = os.readlink(f"/proc/self/fd/{host}").encode()
        return 0
    host_call(lambda: os.fchdir(host))
    return 0

