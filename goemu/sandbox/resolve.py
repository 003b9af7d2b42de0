"""Walking a guest path inside the sandbox, one component at a time.

The host kernel never resolves a guest path: each component is opened with
``openat(parent, name, O_PATH|O_NOFOLLOW)`` from the fd of the directory before it, starting at
the root's fd (or a bind's, when the guest path so far is its mount point). A symlink is read
through its own O_PATH fd and its target walked by goemu (an absolute one from the root, a
relative one from its directory), at most 40 of them per walk (ELOOP, as Linux). ``..`` pops the
guest path: at the root it stays at the root, and from a bind's top it returns to the mount
point's parent; the directory it lands on is walked again from the root (``..`` is taken from the
guest path, as ``RESOLVE_IN_ROOT`` does, never the host's ``..``).

Because every step is relative to an fd goemu holds, swapping a component for a symlink after it
was looked at cannot take a later step outside: the next ``openat`` is from the fd, not the name.
What the operation itself then gets (``paths.Target``) is race-free too: either
``/proc/self/fd/N`` of the found object (the host follows that to exactly this inode), or the
parent's fd and the last name, which the operation looks up without following (goemu adds
``O_NOFOLLOW``/``AT_SYMLINK_NOFOLLOW``; a symlink raced in there gives ELOOP, never its target).

/proc/<guest pid>, /proc/self and /proc/thread-self are goemu's (``syscalls.procfs``); their links
(``cwd``, ``root``, ``exe``, ``fd/N`` of a directory) lead back into this walk. Nothing else under
/proc exists. /dev/null, zero, full, random and urandom are the host's devices; /dev/fd and
/dev/std{in,out,err} are /proc/self/fd as on Linux.
"""
from __future__ import annotations

import os
import stat as st
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errno import ELOOP, ENOENT, ENOTDIR, LinuxError, from_oserror

if TYPE_CHECKING:
    from . import Sandbox
    from .mounts import Mount

O_PATH = 0o10000000
MAXSYMLINKS = 40
DEVICES = frozenset({b"/dev/null", b"/dev/zero", b"/dev/full", b"/dev/random", b"/dev/urandom"})
DEV_FD = {b"fd": [b"proc", b"self", b"fd"], b"stdin": [b"proc", b"self", b"fd", b"0"],
          b"stdout": [b"proc", b"self", b"fd", b"1"], b"stderr": [b"proc", b"self", b"fd", b"2"]}


@dataclass
class Found:
    """Where a guest path leads in the sandbox."""
    guest: bytes                      # its canonical guest path
    mount: "Mount | None" = None      # the mount it lies in (None: a host object, e.g. a device)
    dfd: int | None = None            # the parent's fd (name set) or the object's own (name b"")
    name: bytes = b""                 # the last component: looked up by the operation, unfollowed
    exists: bool | None = True        # None: not looked at (a last name not followed)
    node: object = None               # a virtual /proc entry of the guest (procfs.Node)
    host: bytes | None = None         # a host path meaning exactly this object
    mountpoint: bool = False          # the root or a bind's mount point
    device: bool = False              # one of the host devices in DEVICES
    must_dir: bool = False            # written with a trailing slash


def split(path: bytes) -> list[bytes]:
    return [c for c in path.split(b"/") if c and c != b"."]


def join(comps: list[bytes]) -> bytes:
    return b"/" + b"/".join(comps)


def trailing_dir(path: bytes) -> bool:
    """A path whose last component must be a directory: "a/", "a/.", "a/.."."""
    return path.endswith((b"/", b"/.", b"/..")) or path in (b".", b"..")


class Walker:
    def __init__(self, sb: "Sandbox") -> None:
        self.sb = sb

    def walk(self, k, path: bytes, follow: bool, create: bool = False) -> Found:
        """Resolve the absolute guest path `path`. `follow`: follow a symlink in the last
        component; `create`: a missing last component is no error (the caller creates it)."""
        sb = self.sb
        must_dir = trailing_dir(path)
        follow = follow or must_dir
        todo = deque(split(path))
        stack: list[bytes] = []
        fd = sb.root.fd
        links = 0
        while todo:
            c = todo.popleft()
            if c == b"..":
                if stack:
                    stack.pop()
                    fd = self._dir_at(k, stack)
                continue
            last = not todo
            guest = join(stack + [c])
            if not stack and c == b"proc" and todo:
                res = self._proc(k, todo, follow, must_dir)
                if isinstance(res, Found):
                    return res
                links += 1
                if links > MAXSYMLINKS:
                    raise LinuxError(ELOOP)
                todo, stack, fd = deque(split(res)), [], sb.root.fd
                if trailing_dir(res):
                    must_dir = follow = True
                continue
            if not stack and c == b"dev" and todo:
                # /dev/fd, /dev/std*, and the host's harmless devices, whatever the root has
                nxt = todo[0]
                if nxt in DEV_FD:
                    todo.popleft()
                    todo.extendleft(reversed(DEV_FD[nxt]))
                    continue
                if len(todo) == 1 and b"/dev/" + nxt in DEVICES:
                    return Found(b"/dev/" + nxt, None, host=b"/dev/" + nxt, device=True)
            m = sb.mounts.get(guest)
            if m is not None:
                stack.append(c)
                fd = m.fd
                continue
            if last and not follow:
                return Found(guest, sb.mount_of(join(stack)), fd, c, exists=None)
            try:
                nfd = sb.keep(os.open(c, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd))
                mode = os.fstat(nfd).st_mode
            except OSError as e:
                if e.errno == ENOENT and last and create:
                    return Found(guest, sb.mount_of(join(stack)), fd, c, exists=False,
                                 must_dir=must_dir)
                raise from_oserror(e) from None
            if st.S_ISLNK(mode):
                links += 1
                if links > MAXSYMLINKS:
                    raise LinuxError(ELOOP)
                target = _readlink(nfd)
                if target.startswith(b"/"):
                    stack, fd = [], sb.root.fd
                if last and trailing_dir(target):
                    must_dir = True
                todo.extendleft(reversed(split(target)))
                continue
            if (not last or must_dir) and not st.S_ISDIR(mode):
                raise LinuxError(ENOTDIR)
            stack.append(c)
            fd = nfd
        where = join(stack)
        return Found(where, sb.mount_of(where), fd, b"",
                     mountpoint=not stack or where in sb.mounts)

    def _dir_at(self, k, stack: list[bytes]) -> int:
        """The fd of the directory at a canonical guest path (the target of a `..`)."""
        found = self.walk(k, join(stack), follow=True)
        if found.dfd is None or found.name:
            raise LinuxError(ENOTDIR)
        return found.dfd

    def _proc(self, k, rest: deque, follow: bool, must_dir: bool):
        """/proc/<rest>: a Found (a /proc entry, or a host object the guest holds) or a guest
        path to walk again (a link out of /proc)."""
        from ..syscalls import procfs
        tail = b"/".join(rest)
        norm = os.path.normpath(b"/proc/" + tail)
        norm = b"/" + norm.lstrip(b"/")
        rest.clear()
        if not norm.startswith(b"/proc/"):
            return procfs.Reach(norm + (b"/" if must_dir else b""))
        res = procfs.lookup(k, norm, follow)
        if isinstance(res, procfs.Node):
            if must_dir and res.kind != procfs.DIR:
                raise LinuxError(ENOTDIR)
            return Found(res.path, None, node=res)
        if isinstance(res, procfs.HostFd):
            return Found(res.guest or bytes(res), res.mount, host=bytes(res))
        if isinstance(res, procfs.Reach):
            return res
        raise LinuxError(ENOENT)          # the host's /proc is not the guest's

    # ---- fds the guest holds ----------------------------------------------------------------------
    def fd_target(self, entry, rest: list[bytes]):
        """Following /proc/self/fd/N (then `rest`) for a host fd: a directory in the sandbox is
        its guest path (walked again, so `..` and binds apply); any other object the host's
        own link to it (exactly the file the guest holds), with its mount's rules."""
        from ..syscalls import procfs
        sb = self.sb
        try:
            text = os.readlink(b"/proc/self/fd/%d" % entry.host)
            is_dir = st.S_ISDIR(os.fstat(entry.host).st_mode)
        except OSError:
            raise LinuxError(ENOENT) from None
        guest = sb.guest_of_host(text) if text.startswith(b"/") else None
        if is_dir:
            if guest is None or guest.endswith(b" (deleted)"):
                raise LinuxError(ENOENT)
            return procfs.Reach(b"/".join([guest.rstrip(b"/") or b"", *rest]) or b"/")
        if rest:
            raise LinuxError(ENOTDIR)
        out = procfs.HostFd(b"/proc/self/fd/%d" % entry.host)
        out.guest = guest
        out.mount = sb.mount_of(guest) if guest is not None else None
        return out


def _readlink(fd: int) -> bytes:
    try:
        target = os.readlink(b"", dir_fd=fd)
    except OSError as e:
        raise from_oserror(e) from None
    if not target:
        raise LinuxError(ENOENT)
    return target
