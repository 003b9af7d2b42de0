"""Paths: path arguments and dirfds, open/close, readlink, the working directory.

A path means to the guest what it means on the host (guest fds are host fds), except where it
lands in /proc (or /dev/fd, /dev/std*): ``resolve`` works out the guest's absolute path (from
the cwd or the dirfd when relative) and hands those to ``procfs``, so /proc/self is the guest's
whether reached as "/proc/self/status", as "self/status" from a cwd of /proc or as "status"
from a dirfd of /proc/self. Limits: "." and ".." are taken lexically there, and a symlink of
the guest's own that points into /proc is followed by the host (an open that lands in goemu's
own /proc/<pid> that way is redone with what the path means to the guest; stat and readlink
are not).

Under a sandbox (``goemu run --root``) none of that applies: ``resolve`` hands every path to
``confined``, which walks it inside the root itself (docs/sandbox.md).

A blocking open of a FIFO waits for the other end in a helper host thread, so that only the
opening guest thread waits (its peer is usually another goroutine of the same guest).
"""
from __future__ import annotations

import os
import stat as st
import threading

from .. import hostio
from ..errno import (EACCES, EBADF, EINVAL, EISDIR, ELOOP, ENOENT, ENOTDIR, EPERM, ERANGE, EROFS, LinuxError,
                     from_oserror)
from ..fdtable import Fd, memfd_with
from ..thread import Restart, Wait
from . import BLOCK, PARTIAL, confined, procfs, proctext, syscall
from .confined import Target
from .fsbase import (AT_FDCWD, O_ACCMODE, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_NONBLOCK,
                     O_PATH, O_RDONLY, O_TRUNC, O_WRONLY, fdarg, host_call, i32)

_DEV_ALIASES = {b"/dev/stdin": b"/proc/self/fd/0", b"/dev/stdout": b"/proc/self/fd/1",
                b"/dev/stderr": b"/proc/self/fd/2", b"/dev/fd": b"/proc/self/fd"}


# ---- path arguments ------------------------------------------------------------------------
def path_arg(k, addr: int) -> bytes:
    """A path argument; empty paths are ENOENT (callers with AT_EMPTY_PATH read it themselves)."""
    p = k.mem.read_cstr(addr)
    if not p:
        raise LinuxError(ENOENT)
    return p


def dir_entry(k, dirfd: int) -> Fd | None:
    """The dirfd's table entry (None for AT_FDCWD)."""
    d = i32(dirfd)
    if d == AT_FDCWD:
        return None
    if d < 0:
        raise LinuxError(EBADF)
    return k.fds.get(d)


def _base(k, entry: Fd | None) -> bytes | None:
    """The guest's absolute path of a relative path's starting directory, where it matters
    (in /proc); None where the host resolves relative paths correctly by itself."""
    if entry is None:
        try:
            return procfs.guest_cwd(k)
        except LinuxError:
            return None                              # a removed cwd: the host says ENOENT
    if isinstance(entry.obj, procfs.ProcDir):
        return entry.obj.path
    if entry.kind != "dir":
        return None
    try:
        return procfs.guest_path_of_host(k, os.readlink(b"/proc/self/fd/%d" % entry.host))
    except OSError:
        return None


def _in_proc(p: bytes) -> bool:
    """In /proc or /dev (where /dev/fd and /dev/std* lead to /proc/self/fd)."""
    return p in (b"/proc", b"/dev") or p.startswith(b"/proc/") or p.startswith(b"/dev/")


def _own_cwd(k) -> bytes | None:
    """The running thread's own working directory (after unshare(CLONE_FS)), else None."""
    t = getattr(k, "current", None)
    fs = getattr(t, "fs", None) if t is not None else None
    return fs.cwd if fs is not None else None


def resolve(k, dirfd: int, path: bytes, follow: bool = True, create: bool = False) -> Target:
    """What (dirfd, path) names for the guest. Absolute paths ignore dirfd (even a bad one).
    Under a sandbox the walk is goemu's (``confined``); `create`: a missing last component is
    no error there (open with O_CREAT)."""
    if getattr(k, "sandbox", None) is not None:
        return confined.resolve(k, dirfd, path, follow, create)
    if not path.startswith(b"/") and path and dirfd_is_cwd(dirfd):
        own = _own_cwd(k)
        if own is not None:
            path = os.path.join(own, path)
    if path.startswith(b"/"):
        if b"/." not in path and not path.lstrip(b"/").startswith((b"proc", b"dev")):
            return Target(path)             # the common case, without normalizing
        guest = path
    else:
        entry = dir_entry(k, dirfd)
        base = _base(k, entry)
        if base is None or not _in_proc(base):
            return Target(path, entry.host if entry is not None else None)
        guest = base + b"/" + path
    norm = os.path.normpath(guest)
    norm = b"/" + norm.lstrip(b"/")
    for alias, real in _DEV_ALIASES.items():
        if norm == alias or norm.startswith(alias + b"/"):
            norm = real + norm[len(alias):]
    if not norm.startswith(b"/proc/"):
        # not the guest's /proc: the host resolves it (a relative path from a directory in /proc
        # or /dev is given absolute)
        return Target(path if path.startswith(b"/") else norm)
    found = procfs.lookup(k, norm, follow)
    if isinstance(found, procfs.Node):
        return Target(found.path, None, found)
    return Target(found)


def host_target(k, dirfd: int, path: bytes, follow: bool = True) -> tuple[int | None, bytes]:
    """(host dir_fd, host path) for an operation that reads metadata: a virtual /proc entry
    stands in as a host /proc entry of the same kind."""
    tg = resolve(k, dirfd, path, follow)
    if tg.node is not None:
        return None, tg.node.stand_in
    return tg.dfd, tg.path


def modify_target(k, dirfd: int, path: bytes, follow: bool = False) -> tuple[int | None, bytes]:
    """(host dir_fd, host path) for an operation that changes the file system: the guest's
    /proc entries cannot be changed (EPERM as root, EACCES otherwise, as Linux's /proc)."""
    tg = modify_found(k, dirfd, path, follow)
    return tg.dfd, tg.path


def modify_found(k, dirfd: int, path: bytes, follow: bool = False, check: bool = True) -> Target:
    """``modify_target``'s whole Target; `check`: the sandbox's mount rules now (rename and
    link compare the mounts first, EXDEV before EROFS, then check)."""
    tg = resolve(k, dirfd, path, follow)
    if tg.node is not None:
        raise LinuxError(EPERM if os.geteuid() == 0 else EACCES)
    if check:
        confined.check_modify(tg)
    return tg


def raw_dirfd(dfd: int | None) -> int:
    """A host dir fd for libc *at calls (AT_FDCWD for None)."""
    return AT_FDCWD if dfd is None else dfd


# ---- open / close ------------------------------------------------------------------------
def _open_node(k, node: procfs.Node, flags: int) -> tuple[int, str, object]:
    if node.kind == procfs.LINK:
        raise LinuxError(ELOOP)                   # O_NOFOLLOW on a link
    if flags & O_ACCMODE != O_RDONLY or flags & (O_CREAT | O_TRUNC):
        raise LinuxError(EISDIR if node.kind == procfs.DIR else EACCES)
    if node.kind == procfs.DIR:
        host = host_call(lambda: os.open(node.stand_in, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        return host, "dir", procfs.ProcDir(node, lambda: procfs.listing(k, node))
    if flags & O_DIRECTORY:
        raise LinuxError(ENOTDIR)
    return host_call(lambda: memfd_with(proctext.content(k, node), "goemu-proc")), "memfd", None


def _install(k, host: int, cloexec: bool, shown: str, kind: str, obj=None) -> int:
    try:
        return k.fds.install(Fd(host, cloexec, shown, kind, obj))
    except LinuxError:
        os.close(host)
        raise


class _FifoOpen:
    """A blocking FIFO open running in a host thread; the guest thread waits on `rfd`."""

    def __init__(self, path: bytes, flags: int, mode: int, dfd: int | None,
                 owned: list[int] | None = None) -> None:
        self.rfd, self.wfd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.result: int | OSError | None = None
        self.taken = self.closed = False
        self.lock = threading.Lock()
        self.owned = owned or []           # fds of the path, closed once opened
        threading.Thread(target=self._run, args=(path, flags, mode, dfd), daemon=True).start()

    def _run(self, path, flags, mode, dfd) -> None:
        try:
            res: int | OSError = os.open(path, flags, mode, dir_fd=dfd)
        except OSError as e:
            res = e
        for fd in self.owned:
            os.close(fd)
        with self.lock:
            self.result = res
            if self.closed:                 # the guest gave up (a signal): nobody wants it
                if isinstance(res, int):
                    os.close(res)
                return
            os.write(self.wfd, b"x")

    def take(self) -> int | OSError | None:
        with self.lock:
            if self.result is not None:
                self.taken = True
            return self.result

    def cancel(self) -> None:
        """The wait ended (with the result taken, or by a signal)."""
        with self.lock:
            if not self.taken and isinstance(self.result, int):
                os.close(self.result)
            self.closed = True
            os.close(self.rfd)
            os.close(self.wfd)


def _open_fifo(k, t, path: bytes, dfd: int | None, flags: int, mode: int, cloexec: bool,
               shown: str, owned: list[int] | None = None):
    op = host_call(lambda: _FifoOpen(path, flags, mode, dfd, owned))

    def poll() -> int | None:
        res = op.take()
        if res is None:
            return None
        if isinstance(res, OSError):
            return -from_oserror(res).errno
        try:
            return _install(k, res, cloexec, shown, "pipe")
        except LinuxError as e:
            return -e.errno
    k.sched.block(t, Wait("open", None, Restart.IF_SA_RESTART, 257, cancel=op.cancel, poll=poll,
                          host_fd=op.rfd))
    return BLOCK


def _is_blocking_fifo(path: bytes, dfd: int | None, flags: int) -> bool:
    if flags & (O_NONBLOCK | O_PATH) or flags & O_ACCMODE not in (O_RDONLY, O_WRONLY):
        return False
    try:
        return st.S_ISFIFO(os.stat(path, dir_fd=dfd, follow_symlinks=not flags & O_NOFOLLOW).st_mode)
    except OSError:
        return False


def _open(k, t, dirfd: int, path: bytes, flags: int, mode: int):
    flags &= 0xFFFFFFFF
    cloexec = bool(flags & O_CLOEXEC)
    sandboxed = getattr(k, "sandbox", None) is not None
    follow = not flags & O_NOFOLLOW
    if sandboxed:
        # O_CREAT|O_EXCL never follows a last symlink (EEXIST), as Linux
        follow = follow and flags & (O_CREAT | O_EXCL) != O_CREAT | O_EXCL
        tg = resolve(k, dirfd, path, follow, create=bool(flags & O_CREAT))
    else:
        tg = resolve(k, dirfd, path, follow=follow)
    if tg.node is not None:
        host, kind, obj = _open_node(k, tg.node, flags)
        return _install(k, host, cloexec, os.fsdecode(tg.node.path), kind, obj)
    shown = os.fsdecode(path)
    if sandboxed:
        flags = _confined_flags(tg, flags)
    if t is not None and _is_blocking_fifo(tg.path, tg.dfd, flags):
        owned: list[int] = []
        if sandboxed:                   # the walk's fds close when this syscall returns
            tg, owned = _own_fds(tg)
        return _open_fifo(k, t, tg.path, tg.dfd, flags, mode & 0o7777, cloexec, shown, owned)
    host = host_call(lambda: os.open(tg.path, flags, mode & 0o7777, dir_fd=tg.dfd))
    own = _own_proc_entry(k, host)
    if own is not None:
        # the host reached goemu's own /proc/<pid> (through a symlink of the guest's): open
        # what that path means to the guest instead
        os.close(host)
        found = procfs.lookup(k, own, follow=not flags & O_NOFOLLOW)
        if isinstance(found, procfs.Node):
            h, kind, obj = _open_node(k, found, flags)
            return _install(k, h, cloexec, os.fsdecode(found.path), kind, obj)
        host = host_call(lambda: os.open(found, flags, mode & 0o7777))
    try:
        kind = hostio.fd_kind(host)
    except OSError:
        kind = "file"
    return _install(k, host, cloexec, shown, kind)


def _confined_flags(tg: Target, flags: int) -> int:
    """A sandboxed open: the mount's rules, and a last name opened without following."""
    write = flags & O_ACCMODE != O_RDONLY or flags & O_TRUNC
    creating = flags & O_CREAT and not confined.exists(tg)
    if tg.device and creating:
        raise LinuxError(EPERM)
    if tg.mount is not None and tg.mount.ro and (write or creating):
        raise LinuxError(EROFS)
    if tg.must_dir and creating:
        raise LinuxError(EISDIR)
    return flags | O_NOFOLLOW if tg.confined else flags


def _own_fds(tg: Target) -> tuple[Target, list[int]]:
    """The same target on fds of its own (for an open that outlives the syscall), and those
    fds, which the FIFO open closes when done."""
    if tg.dfd is not None:
        dup = os.dup(tg.dfd)
        return Target(tg.path, dup), [dup]
    if tg.path.startswith(b"/proc/self/fd/"):
        num, _, rest = tg.path[len(b"/proc/self/fd/"):].partition(b"/")
        dup = os.dup(int(num))
        return Target(b"/proc/self/fd/%d" % dup + (b"/" + rest if rest else b"")), [dup]
    return tg, []


_PROC_DEV: list[int] = []


def _own_proc_entry(k, host: int) -> bytes | None:
    """If host fd `host` is an entry of goemu's own /proc/<pid>: the guest's path for it."""
    try:
        if not _PROC_DEV:
            _PROC_DEV.append(os.stat(b"/proc").st_dev)
        if os.fstat(host).st_dev != _PROC_DEV[0]:
            return None
        where = os.readlink(b"/proc/self/fd/%d" % host)
    except OSError:
        return None
    own = b"/proc/%d" % os.getpid()
    if where != own and not where.startswith(own + b"/"):
        return None
    return procfs.guest_path_of_host(k, where)


@syscall("openat", "dirfd", "str", "openflags", "oct", ret="fd", level=PARTIAL,
         note="/proc/self, /proc/<pid>/task/<tid>: status, stat, statm, cmdline, environ, auxv, "
              "maps, comm, exe, cwd, root, fd/, fdinfo/, task/ are the guest's; mounts, cgroup, "
              "net are the host's; other entries are ENOENT. Under --root: paths resolved inside the "
              "root by goemu, only the guest's /proc entries (docs/sandbox.md)")
def openat(k, t, dirfd, path, flags, mode):
    return _open(k, t, dirfd, path_arg(k, path), flags, mode)


@syscall("open", "str", "openflags", "oct", ret="fd", level=PARTIAL, note="as openat")
def open_(k, t, path, flags, mode):
    return _open(k, t, AT_FDCWD, path_arg(k, path), flags, mode)


@syscall("creat", "str", "oct", ret="fd")
def creat(k, t, path, mode):
    return _open(k, t, AT_FDCWD, path_arg(k, path), O_CREAT | O_WRONLY | O_TRUNC, mode)


@syscall("close", "fd")
def close(k, t, fd):
    k.fds.close(fdarg(fd))
    return 0


# ---- links -------------------------------------------------------------------------------------
def _readlink(k, dirfd: int, path: bytes) -> bytes:
    tg = resolve(k, dirfd, path, follow=False)
    if tg.node is not None:
        if tg.node.kind != procfs.LINK:
            raise LinuxError(EINVAL)
        return tg.node.target
    return host_call(lambda: os.readlink(tg.path, dir_fd=tg.dfd))


def _readlink_out(k, dirfd, path, buf, bufsiz) -> int:
    size = i32(bufsiz)
    if size <= 0:
        raise LinuxError(EINVAL)
    target = _readlink(k, dirfd, path_arg(k, path))[:size]
    k.mem.write(buf, target)
    return len(target)


@syscall("readlinkat", "dirfd", "str", "obuf", "int")
def readlinkat(k, t, dirfd, path, buf, bufsiz):
    return _readlink_out(k, dirfd, path, buf, bufsiz)


@syscall("readlink", "str", "obuf", "int")
def readlink(k, t, path, buf, bufsiz):
    return _readlink_out(k, AT_FDCWD, path, buf, bufsiz)


# ---- working directory ----------------------------------------------------------------------
def dirfd_is_cwd(dirfd: int) -> bool:
    return (dirfd & 0xFFFFFFFF) == (AT_FDCWD & 0xFFFFFFFF)


@syscall("getcwd", "obuf", "size")
def getcwd(k, t, buf, size):
    own = getattr(t, "fs", None)
    cwd = (own.cwd if own is not None else procfs.guest_cwd(k)) + b"\0"
    if size < len(cwd):
        raise LinuxError(ERANGE)
    k.mem.write(buf, cwd)
    return len(cwd)


def _chdir_node(k, node: procfs.Node) -> int:
    """Into a virtual /proc directory: the guest's cwd is its path; goemu's is /proc."""
    if node.kind != procfs.DIR:
        raise LinuxError(ENOTDIR)
    if k.proc is not k.main_proc:
        k.proc.cwd = node.path
        return 0
    host_call(lambda: os.chdir(b"/proc"))
    k.proc_cwd = node.path
    return 0


def _own_chdir(t, full: bytes) -> int:
    """chdir of a thread with its own fs state (unshare(CLONE_FS)): only its cwd moves."""
    full = os.path.normpath(full)
    if not os.path.isdir(full):
        raise LinuxError(ENOENT if not os.path.exists(full) else ENOTDIR)
    if not os.access(full, os.X_OK):
        raise LinuxError(EACCES)
    t.fs.cwd = full
    return 0


@syscall("chdir", "str")
def chdir(k, t, path):
    if getattr(k, "sandbox", None) is not None:
        return confined.chdir(k, t, path_arg(k, path))
    tg = resolve(k, AT_FDCWD, path_arg(k, path))
    own = getattr(t, "fs", None)
    if tg.node is not None:
        if own is not None:
            own.cwd = tg.node.path
            return 0
        return _chdir_node(k, tg.node)
    hp = tg.path
    if own is not None:
        return _own_chdir(t, hp)
    if k.proc is not k.main_proc:
        # a vfork child: its cwd is its own (goemu's cwd belongs to the main process)
        full = os.path.normpath(os.path.join(procfs.guest_cwd(k), hp))
        if not os.path.isdir(full):
            raise LinuxError(ENOENT if not os.path.exists(full) else ENOTDIR)
        k.proc.cwd = full
        return 0
    host_call(lambda: os.chdir(hp))
    k.proc_cwd = None
    return 0


@syscall("fchdir", "fd")
def fchdir(k, t, fd):
    entry = k.fds.get(fdarg(fd))
    if getattr(k, "sandbox", None) is not None:
        return confined.fchdir(k, t, entry)
    if getattr(t, "fs", None) is not None:
        if isinstance(entry.obj, procfs.ProcDir):
            t.fs.cwd = entry.obj.node.path
            return 0
        return _own_chdir(t, host_call(lambda: os.readlink(f"/proc/self/fd/{entry.host}").encode()))
    if isinstance(entry.obj, procfs.ProcDir):
        return _chdir_node(k, entry.obj.node)
    if k.proc is not k.main_proc:
        k.proc.cwd = host_call(lambda: os.readlink(f"/proc/self/fd/{entry.host}").encode())
        return 0
    host_call(lambda: os.fchdir(entry.host))
    k.proc_cwd = None
    return 0
