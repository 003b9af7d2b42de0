"""The guest's /proc/self (and /proc/<guest pid>): the guest's, not the Python process's.

``exe`` is the guest binary, ``auxv``/``cmdline``/``environ``/``maps``/``comm`` are generated
(host memfds), ``fd/N`` names the guest's fd N; namespace-wide entries (mounts, cgroup, net, ...)
pass through; anything else is ENOENT. No handlers here: ``paths`` resolves through it.
"""
from __future__ import annotations

import os

from ..errno import ENOENT, LinuxError
from ..fdtable import Fd

GENERATED = (b"auxv", b"cmdline", b"environ", b"maps", b"comm")
_HOST_SAME = (b"", b"cwd", b"root", b"mounts", b"mountinfo", b"mountstats", b"cgroup", b"net")


def proc_self_rest(k, path: bytes) -> bytes | None:
    """For /proc/self/X, /proc/thread-self/X or /proc/<guest pid or tid>/X: X (b"" for the
    directory itself); None for any other path."""
    if not path.startswith(b"/proc/"):
        return None
    parts = [p for p in path.split(b"/") if p and p != b"."]
    if len(parts) < 2:
        return None
    who = parts[1]
    if who not in (b"self", b"thread-self"):
        if not who.isdigit():
            return None
        n = int(who)
        threads = getattr(k, "threads", {})
        if n != k.pid and not (n in threads and threads[n].state != "dead"):
            return None
    return b"/".join(parts[2:])


def fd_of_proc(k, rest: bytes) -> tuple[Fd, bytes]:
    """fd/N[/more] -> (the guest's Fd N, b"/more")."""
    num, _, more = rest[3:].partition(b"/")
    if not num.isdigit() or int(num) not in k.fds.fds:
        raise LinuxError(ENOENT)
    return k.fds.fds[int(num)], (b"/" + more if more else b"")


def host_path(k, path: bytes, follow: bool = True) -> bytes:
    """The host path that means what `path` means to the guest."""
    rest = proc_self_rest(k, path)
    if rest is None:
        return path
    if rest == b"exe":
        return os.fsencode(k.exe_path) if follow else b"/proc/self/exe"
    if rest.startswith(b"fd/"):
        entry, more = fd_of_proc(k, rest)
        return b"/proc/self/fd/%d%s" % (entry.host, more)
    top = rest.split(b"/", 1)[0]
    if rest in GENERATED or top in _HOST_SAME:
        return b"/proc/self/" + rest if rest else b"/proc/self"
    raise LinuxError(ENOENT)


def _maps(k) -> bytes:
    exe_base = os.path.basename(k.exe_path)
    lines = []
    for v in k.mem.vmas:
        perms = ("r" if v.prot & 1 else "-") + ("w" if v.prot & 2 else "-") + \
                ("x" if v.prot & 4 else "-") + "p"
        name = v.name
        if name in ("[anon]", "[file]"):
            name = ""
        elif name == exe_base:
            name = k.exe_path
        line = f"{v.start:08x}-{v.end:08x} {perms} 00000000 00:00 0"
        if name:
            line = line.ljust(72) + " " + name
        lines.append(line + "\n")
    return "".join(lines).encode()


def generated(k, rest: bytes) -> bytes:
    if rest == b"auxv":
        return k.auxv
    if rest == b"cmdline":
        return b"".join(a + b"\0" for a in k.argv)
    if rest == b"environ":
        return b"".join(e + b"\0" for e in k.envp)
    if rest == b"maps":
        return _maps(k)
    return os.fsencode(os.path.basename(k.exe_path))[:15] + b"\n"     # comm
