"""Path arguments under a sandbox (``goemu run --root``): what ``paths.resolve`` hands to the
file-system handlers when ``k.sandbox`` is set, and the sandbox's rules on them.

A guest path becomes a ``Target`` the handlers use unchanged (host path, host dir fd): the
walk (``goemu.sandbox.resolve``) has found the object, so the target is either
``/proc/self/fd/N`` of its O_PATH fd (followed by the host to exactly that inode) or its parent's
fd and last name, marked ``confined``: the handler must not follow that name (``open`` adds
O_NOFOLLOW). Relative paths start at the guest's working directory (a guest path: the main
process's in ``Sandbox.cwd``, a vfork child's in its ``Process.cwd``, an unshared thread's in
``t.fs.cwd``) or at the dirfd's guest path. Mount rules: EROFS on a read-only bind, EBUSY for a
mount point, EXDEV between mounts, EPERM for the host devices and for device nodes.
"""
from __future__ import annotations

import os
import stat as st

from ..errno import EACCES, EBADF, EBUSY, ENOENT, ENOTDIR, EPERM, EROFS, EXDEV, LinuxError
from ..fdtable import Fd
from . import procfs
from .fsbase import AT_FDCWD, host_call, i32
from ..record import record


@record
class Target:
    """Where a guest path leads: a host path (relative to the host dir fd `dfd`, or to the cwd
    when None), or one of the guest's virtual /proc entries. Under a sandbox also its mount,
    whether it exists (None: not looked at), and whether `path` is a last name the handler must
    not follow (`confined`)."""
    path: bytes
    dfd: int | None = None
    node: procfs.Node | None = None
    mount: object = None
    exists: bool | None = True
    confined: bool = False
    mountpoint: bool = False
    device: bool = False
    must_dir: bool = False
    guest: bytes = b""

    def standalone(self) -> bytes:
        """One host path for calls without a dir fd (truncate, statfs)."""
        if self.dfd is None:
            return self.path
        return b"/proc/self/fd/%d/%s" % (self.dfd, self.path)


def _own_cwd(k) -> bytes | None:
    t = getattr(k, "current", None)
    fs = getattr(t, "fs", None) if t is not None else None
    return fs.cwd if fs is not None else None


def base(k, dirfd: int) -> bytes:
    """The guest path a relative path starts from."""
    d = i32(dirfd)
    if d == AT_FDCWD:
        own = _own_cwd(k)
        return own if own is not None else procfs.guest_cwd(k)
    if d < 0:
        raise LinuxError(EBADF)
    return fd_guest_dir(k, k.fds.get(d))


def fd_guest_dir(k, entry: Fd) -> bytes:
    """The guest path of a directory fd (ENOTDIR for other fds)."""
    if isinstance(entry.obj, procfs.ProcDir):
        return entry.obj.path
    try:
        if not st.S_ISDIR(os.fstat(entry.host).st_mode):
            raise LinuxError(ENOTDIR)
        text = os.readlink(b"/proc/self/fd/%d" % entry.host)
    except OSError:
        raise LinuxError(ENOTDIR) from None
    guest = k.sandbox.guest_of_host(text)
    if guest is None or guest.endswith(b" (deleted)"):
        raise LinuxError(ENOENT)
    return guest


def absolute(k, dirfd: int, path: bytes) -> bytes:
    if path.startswith(b"/"):
        return path
    return base(k, dirfd).rstrip(b"/") + b"/" + path


def resolve(k, dirfd: int, path: bytes, follow: bool, create: bool = False) -> Target:
    f = k.sandbox.walk(k, absolute(k, dirfd, path), follow, create)
    if f.node is not None:
        return Target(f.node.path, None, f.node, guest=f.guest)
    common = dict(mount=f.mount, guest=f.guest, mountpoint=f.mountpoint, device=f.device)
    if f.host is not None:
        return Target(f.host, None, **common)
    if f.name:
        return Target(f.name, f.dfd, exists=f.exists, confined=True, must_dir=f.must_dir, **common)
    if follow:
        return Target(b"/proc/self/fd/%d" % f.dfd, None, **common)
    return Target(b".", f.dfd, **common)


# ---- the mounts' rules -----------------------------------------------------------------------------
def check_modify(tg: Target) -> None:
    """A change to what `tg` names: not a mount point, not a host device, not read-only."""
    if tg.device:
        raise LinuxError(EPERM)
    if tg.mountpoint:
        raise LinuxError(EBUSY)
    if tg.mount is not None and tg.mount.ro:
        raise LinuxError(EROFS)


def check_same_mount(a: Target, b: Target) -> None:
    """rename and link stay within one mount (Linux: EXDEV, even on one host file system)."""
    if getattr(a, "mount", None) is not getattr(b, "mount", None) and a.node is None and b.node is None:
        raise LinuxError(EXDEV)


def exists(tg: Target) -> bool:
    if tg.exists is not None:
        return tg.exists
    try:
        os.stat(tg.path, dir_fd=tg.dfd, follow_symlinks=False)
        return True
    except OSError:
        return False


def check_fd_write(k, host: int) -> None:
    """fchmod, fchown, futimens on an fd: EROFS for a file on a read-only bind."""
    sb = getattr(k, "sandbox", None)
    if sb is None:
        return
    try:
        text = os.readlink(b"/proc/self/fd/%d" % host)
    except OSError:
        return
    guest = sb.guest_of_host(text) if text.startswith(b"/") else None
    if guest is not None and sb.mount_of(guest).ro:
        raise LinuxError(EROFS)


# ---- the working directory ------------------------------------------------------------------------
def chdir(k, t, path: bytes) -> int:
    """chdir under a sandbox: the guest path is remembered (getcwd shows it); goemu's own cwd
    follows the main process's (the host's permission check on the way)."""
    f = k.sandbox.walk(k, absolute(k, AT_FDCWD, path), follow=True)
    fd = None
    if f.node is not None:
        if f.node.kind != procfs.DIR:
            raise LinuxError(ENOTDIR)
        guest = f.node.path
    elif f.host is not None or f.name:
        raise LinuxError(ENOTDIR if f.host is not None else ENOENT)
    else:
        if not st.S_ISDIR(host_call(lambda: os.fstat(f.dfd)).st_mode):
            raise LinuxError(ENOTDIR)
        if not os.access(b"/proc/self/fd/%d" % f.dfd, os.X_OK):
            raise LinuxError(EACCES)
        guest, fd = f.guest, f.dfd
    own = getattr(t, "fs", None)
    if own is not None:
        own.cwd = guest
    elif k.proc is not k.main_proc:
        k.proc.cwd = guest                      # a vfork child's (its exec starts there)
    else:
        if fd is not None:
            host_call(lambda: os.fchdir(fd))
        k.sandbox.cwd = guest
    return 0


def fchdir(k, t, entry: Fd) -> int:
    return chdir(k, t, fd_guest_dir(k, entry))
