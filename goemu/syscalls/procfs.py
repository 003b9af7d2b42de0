"""The guest's /proc/<pid>: the guest process and its threads as Linux shows them, never the
Python process. No handlers here: ``paths`` resolves every path argument through ``lookup``.

``/proc/self``, ``/proc/thread-self``, ``/proc/<guest pid>`` and ``/proc/<guest tid>`` are
virtual directories (``ProcDir`` fds, listed by goemu): ``status``, ``stat``, ``statm``,
``cmdline``, ``environ``, ``auxv``, ``maps``, ``comm``, ``limits`` (text generated from the
guest's tables when opened, held in a host memfd), the links ``exe``, ``cwd``, ``root``, ``fd/N``, the
directories ``fd``, ``fdinfo`` (``fdinfo/N``) and ``task`` (``task/<tid>``: each guest thread,
with its own status, stat and comm). Namespace-wide entries (mounts, mountinfo, mountstats,
cgroup, net) are the host's. Anything else there (``mem``, ...) is ENOENT, and the Python
process's own /proc directory is never reachable. This module is the tree (lookup, links,
listings); ``proctext`` makes the files' text.
"""
from __future__ import annotations

import os
from typing import Callable

from ..errno import ELOOP, ENOENT, ENOTDIR, LinuxError
from ..fdtable import Fd
from .fsbase import DT_DIR, DT_LNK, DT_REG, DirStream, Listing
from ..record import record

DIR, FILE, LINK = "dir", "file", "link"
# Entries of a process directory and of a task directory, in Linux's listing order
# (tgid_base_stuff / tid_base_stuff in fs/proc/base.c).
PROCESS_ENTRIES = (b"task", b"fd", b"fdinfo", b"net", b"environ", b"auxv", b"status", b"limits",
                   b"comm", b"cmdline", b"stat", b"statm", b"maps", b"cwd", b"root", b"exe",
                   b"mounts", b"mountinfo", b"mountstats", b"cgroup")
TASK_ENTRIES = tuple(e for e in PROCESS_ENTRIES if e not in (b"task", b"mountstats"))
GENERATED = (b"status", b"stat", b"statm", b"cmdline", b"environ", b"auxv", b"maps", b"comm",
             b"limits")
LINKS = (b"exe", b"cwd", b"root")
HOST_SAME = (b"net", b"mounts", b"mountinfo", b"mountstats", b"cgroup")   # namespace-wide


@record(frozen=True)
class Node:
    """One virtual /proc entry of the guest."""
    path: bytes                 # canonical guest path, e.g. b"/proc/1000/task/1001/status"
    kind: str                   # DIR, FILE or LINK
    stand_in: bytes             # a host path with the same metadata (stat, access, statfs)
    tid: int = 0                # whose view: the thread the directory belongs to
    thread: bool = False        # a task/<tid> view (per-thread files) rather than the process's
    name: bytes = b""           # what it is: b"status", b"fd", b"fd/3", b"task", b"" (the dir)
    target: bytes = b""         # LINK: what readlink says


class Reach(bytes):
    """A path a /proc link leads to outside /proc (``cwd``, ``root``, ``exe``...): the host's
    path without a sandbox; under one, a guest path its walk goes on with."""


class HostFd(bytes):
    """``/proc/self/fd/<host fd>``: the host's link to exactly the object a guest fd holds.
    Under a sandbox: its guest path (None outside) and the mount it lies in."""
    guest: bytes | None = None
    mount: object = None


class ProcDir(DirStream):
    """An open virtual directory: its guest path and its listing (``Fd.obj``)."""

    def __init__(self, node: Node, lister: Callable[[], Listing]) -> None:
        super().__init__()
        self.node = node
        self.path = node.path
        self._lister = lister

    def list(self, host: int) -> Listing:
        return self._lister()


# ---- whose view ---------------------------------------------------------------------------------
def guest_threads(k) -> dict:
    """The guest process's live threads by tid (vfork children's contexts are not its)."""
    return {tid: t for tid, t in getattr(k, "threads", {}).items()
            if t.state != "dead" and (t.proc is None or t.proc is k.main_proc)}


def _current_tid(k) -> int:
    cur = getattr(k, "current", None)
    return cur.tid if cur is not None else k.pid


def guest_path_of_host(k, path: bytes) -> bytes:
    """A host path under goemu's own /proc/<pid> names the guest's /proc/<pid> (reached only
    through namespace-wide entries the guest opened, e.g. /proc/self/net)."""
    own = b"/proc/%d" % os.getpid()
    if path == own or path.startswith(own + b"/"):
        return b"/proc/%d" % k.pid + path[len(own):]
    return path


def lookup(k, path: bytes, follow: bool = True, depth: int = 0) -> Node | bytes:
    """Resolve an absolute, lexically normalized path under /proc: a guest Node, or the host
    path that means the same (outside the guest's /proc directories)."""
    if depth > 40:
        raise LinuxError(ELOOP)
    comps = [c for c in path.split(b"/") if c]
    if len(comps) < 2 or comps[0] != b"proc":
        return path
    who, rest = comps[1], comps[2:]
    if who in (b"self", b"thread-self"):
        target = b"%d" % k.pid if who == b"self" else b"%d/task/%d" % (k.pid, _current_tid(k))
        if not rest and not follow:
            return Node(path, LINK, b"/proc/" + who, name=who, target=target)
        return lookup(k, b"/".join([b"/proc", target, *rest]), follow, depth + 1)
    if not who.isdigit():
        return path                                   # /proc/meminfo, /proc/sys/...: the host's
    n = int(who)
    if n not in guest_threads(k):
        if n == os.getpid() and n != k.pid:
            raise LinuxError(ENOENT)                  # goemu's own process is not the guest's
        return path                                   # another process: the host's
    base = b"/proc/%d" % n
    if not rest:
        return Node(base, DIR, _host_dir(), n, False)
    if rest[0] == b"task" and len(rest) >= 2:
        tid = int(rest[1]) if rest[1].isdigit() else -1
        if tid not in guest_threads(k):
            raise LinuxError(ENOENT)
        tbase = b"%s/task/%d" % (base, tid)
        if len(rest) == 2:
            return Node(tbase, DIR, _host_dir(True), tid, True)
        return _entry(k, tbase, tid, True, rest[2:], follow, depth)
    return _entry(k, base, n, False, rest, follow, depth)


def _entry(k, base: bytes, tid: int, thread: bool, rest: list[bytes], follow: bool,
           depth: int) -> Node | bytes:
    name, more = rest[0], rest[1:]
    if name not in (TASK_ENTRIES if thread else PROCESS_ENTRIES):
        raise LinuxError(ENOENT)
    path = base + b"/" + name
    if name in HOST_SAME:
        if getattr(k, "sandbox", None) is not None:
            raise LinuxError(ENOENT)                  # the host's mounts, net, cgroup: not shown
        return b"/".join([b"/proc/self", *rest])
    if name in GENERATED:
        if more:
            raise LinuxError(ENOTDIR)
        return Node(path, FILE, b"/proc/self/" + name, tid, thread, name)
    if name in LINKS:
        target = _link_target(k, name)
        if not more and not follow:
            return Node(path, LINK, b"/proc/self/" + name, tid, thread, name, target)
        return _follow(k, b"/".join([target, *more]), follow, depth)
    if name == b"task":
        return Node(path, DIR, b"/proc/self/task", tid, thread, name)
    # fd, fdinfo
    if not more:
        return Node(path, DIR, b"/proc/self/" + name, tid, thread, name)
    num = more[0]
    fds = k.fds.fds
    if not num.isdigit() or int(num) not in fds:
        raise LinuxError(ENOENT)
    entry = fds[int(num)]
    if name == b"fdinfo":
        if len(more) > 1:
            raise LinuxError(ENOTDIR)
        return Node(path + b"/" + num, FILE, b"/proc/self/fdinfo/%d" % entry.host, tid, thread,
                    b"fdinfo/" + num)
    sandbox = getattr(k, "sandbox", None)
    if len(more) == 1 and not follow:
        return Node(path + b"/" + num, LINK, b"/proc/self/fd/%d" % entry.host, tid, thread,
                    b"fd/" + num, fd_link_text(entry, sandbox))
    if isinstance(entry.obj, ProcDir):
        return lookup(k, b"/".join([entry.obj.path, *more[1:]]), follow, depth + 1)
    if sandbox is not None:
        return sandbox.walker.fd_target(entry, more[1:])
    if len(more) > 1 and entry.kind == "dir":
        # a host directory: if it lies in /proc, what follows must be resolved as the guest's
        try:
            where = guest_path_of_host(k, os.readlink(b"/proc/self/fd/%d" % entry.host))
        except OSError:
            where = b""
        if where.startswith(b"/proc/") or where == b"/proc":
            return _follow(k, b"/".join([where, *more[1:]]), follow, depth)
    return HostFd(b"/".join([b"/proc/self/fd/%d" % entry.host, *more[1:]]))


def _host_dir(task: bool = False) -> bytes:
    """goemu's own /proc directory (or its main task's): the stand-in for the guest's."""
    pid = os.getpid()
    return b"/proc/%d/task/%d" % (pid, pid) if task else b"/proc/%d" % pid


def _follow(k, path: bytes, follow: bool, depth: int) -> Node | bytes:
    """A link's target and what follows it: the guest's /proc again (e.g. root/proc/self/...;
    normpath keeps a leading "//", so it is folded first), or a host path."""
    norm = b"/" + os.path.normpath(path).lstrip(b"/")
    if norm.startswith(b"/proc/"):
        return lookup(k, norm, follow, depth + 1)
    return Reach(path)


def guest_cwd(k) -> bytes:
    """The guest's working directory as getcwd reports it."""
    if k.proc is not k.main_proc and k.proc.cwd:
        return k.proc.cwd
    sandbox = getattr(k, "sandbox", None)
    if sandbox is not None:
        return sandbox.cwd
    virtual = getattr(k, "proc_cwd", None)
    if virtual:
        return virtual
    try:
        return guest_path_of_host(k, os.getcwdb())
    except OSError:
        raise LinuxError(ENOENT) from None          # the cwd was removed


def _link_target(k, name: bytes) -> bytes:
    sandbox = getattr(k, "sandbox", None)
    if name == b"exe":
        if sandbox is not None:
            if sandbox.exe is None:
                raise LinuxError(ENOENT)              # the binary lies outside the sandbox
            return sandbox.exe
        return os.fsencode(k.exe_path)
    if name == b"cwd":
        if k.proc is k.main_proc and not getattr(k, "proc_cwd", None) and sandbox is None:
            try:   # the kernel's text for goemu's cwd, which is the guest's (even "(deleted)")
                return guest_path_of_host(k, os.readlink(b"/proc/self/cwd"))
            except OSError:
                pass
        return guest_cwd(k)
    return b"/"


def fd_link_text(entry: Fd, sandbox=None) -> bytes:
    """readlink of /proc/self/fd/N: the host's text for host files, pipes and sockets; the
    guest's path for goemu's virtual files and directories (under a sandbox: for every file)."""
    if entry.kind == "memfd" or isinstance(entry.obj, ProcDir):
        return os.fsencode(entry.path)
    try:
        text = os.readlink(b"/proc/self/fd/%d" % entry.host)
    except OSError:
        return os.fsencode(entry.path)
    return sandbox.fd_text(text) if sandbox is not None else text


# ---- listings ----------------------------------------------------------------------------------
def _ino(host_path: bytes) -> int:
    try:
        return os.lstat(host_path).st_ino
    except OSError:
        return 1


def listing(k, node: Node) -> Listing:
    """getdents64 entries of a virtual directory ("." and ".." first, as Linux lists them)."""
    out: Listing = [(_ino(node.stand_in), DT_DIR, b"."), (_ino(b"/proc"), DT_DIR, b"..")]
    if node.name == b"":
        for e in (TASK_ENTRIES if node.thread else PROCESS_ENTRIES):
            kind = DT_DIR if e in (b"task", b"fd", b"fdinfo", b"net") else \
                DT_LNK if e in LINKS else DT_REG
            out.append((_ino(b"/proc/self/" + e), kind, e))
    elif node.name == b"task":
        for tid in sorted(guest_threads(k)):
            out.append((_ino(_host_dir(True)), DT_DIR, b"%d" % tid))
    else:   # fd, fdinfo
        link = node.name == b"fd"
        for n, entry in sorted(k.fds.fds.items()):
            out.append((_ino(b"/proc/self/%s/%d" % (node.name, entry.host)),
                        DT_LNK if link else DT_REG, b"%d" % n))
    return out
