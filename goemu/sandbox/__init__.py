"""The sandbox (``goemu run --root DIR``): the guest's file system, network and exec confined.

One object, ``Sandbox``, holds the policy (``k.sandbox``; None without ``--root``): the root and
its ``--bind`` mounts (``mounts``), the guest's working directory, the network policy
(``netpolicy``) and the exec policy. Path resolution is ``resolve.Walker``: every guest path is
walked component by component from host ``O_PATH`` fds, never by the host kernel, so ``..``,
symlinks and /proc links stay inside (docs/sandbox.md has the threat model).

The syscall modules ask it through ``goemu.syscalls.paths`` (paths), ``net`` (addresses) and
``process`` (execve); they never see a guest path as a host path.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errno import LinuxError
from .mounts import Mount, SandboxError, parse_bind
from .resolve import Found, Walker

NET_HOST, NET_LOOPBACK, NET_NONE = "host", "loopback", "none"
EXEC_GOEMU, EXEC_NONE = "goemu", "none"
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(eq=False)
class Sandbox:
    root: Mount
    binds: list[Mount] = field(default_factory=list)
    net: str = NET_HOST
    exec: str = EXEC_GOEMU
    cwd: bytes = b"/"                 # the main process's working directory (a guest path)
    exe: bytes | None = None          # the guest's path of its executable (None: outside)
    scratch: list[int] = field(default_factory=list)   # host fds of the running syscall
    unix_names: dict[bytes, bytes] = field(default_factory=dict)   # bound host -> guest path
    held: list[int] = field(default_factory=list)      # fds kept past their syscall (``hold``)

    def __post_init__(self) -> None:
        self.mounts = {m.guest: m for m in self.binds}
        self.walker = Walker(self)

    # ---- building ---------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str, binds: list[str], net: str, exec_: str) -> "Sandbox":
        """From the command line; SandboxError for anything that cannot be set up."""
        top = Mount.open(b"/", os.fsencode(root), ro=False, what="--root")
        mounts = []
        seen = set()
        for spec in binds:
            host, guest, ro = parse_bind(spec)
            if guest in seen:
                raise SandboxError(f"--bind {spec}: {os.fsdecode(guest)} is bound twice")
            seen.add(guest)
            mounts.append(Mount.open(guest, host, ro, what=f"--bind {spec}"))
        return cls(top, mounts, net, exec_)

    def close(self) -> None:
        self.release()
        for m in [self.root, *self.binds]:
            try:
                os.close(m.fd)
            except OSError:
                pass

    # ---- per-syscall host fds ---------------------------------------------------------------------
    def keep(self, fd: int) -> int:
        """An fd the walk opened: closed when the syscall ends (``release``)."""
        self.scratch.append(fd)
        return fd

    def hold(self, fd: int) -> None:
        """Keep an fd open for a while after its syscall (a send that may be retried later):
        the last 16 are kept."""
        self.held.append(fd)
        while len(self.held) > 16:
            try:
                os.close(self.held.pop(0))
            except OSError:
                pass

    def release(self) -> None:
        while self.scratch:
            try:
                os.close(self.scratch.pop())
            except OSError:
                pass

    # ---- paths ---------------------------------------------------------------------------------
    def walk(self, k, path: bytes, follow: bool, create: bool = False) -> Found:
        """Resolve an absolute guest path (see ``resolve.Walker.walk``)."""
        return self.walker.walk(k, path, follow, create)

    def mount_of(self, guest: bytes) -> Mount:
        """The mount a canonical guest path lies in (the longest mount point above it)."""
        best = self.root
        for g, m in self.mounts.items():
            if (guest == g or guest.startswith(g + b"/")) and len(g) > len(best.guest):
                best = m
        return best

    def guest_of_host(self, host: bytes) -> bytes | None:
        """The guest's path of a host path (a kernel's text from /proc/self/fd or getcwd), or
        None when it lies outside the root and every bind."""
        deleted = host.endswith(b" (deleted)")
        bare = host[:-10] if deleted else host
        best: tuple[int, bytes] | None = None
        for m in [self.root, *self.binds]:
            if bare == m.host or bare.startswith(m.host.rstrip(b"/") + b"/"):
                rest = bare[len(m.host.rstrip(b"/")):]
                if best is None or len(m.host) > best[0]:
                    guest = (m.guest.rstrip(b"/") + rest) or b"/"
                    best = (len(m.host), guest)
        if best is None:
            return None
        return best[1] + (b" (deleted)" if deleted else b"")

    def fd_text(self, host_text: bytes) -> bytes:
        """readlink of /proc/self/fd/N for the guest: guest paths for files in the sandbox, the
        kernel's text for pipes and sockets, /dev names as they are; other host files (fds
        goemu was given) show no host path."""
        if not host_text.startswith(b"/"):
            return host_text
        guest = self.guest_of_host(host_text)
        if guest is not None:
            return guest
        if host_text.startswith(b"/dev/"):
            return host_text
        return b"(unreachable)"

    # ---- the starting directory ------------------------------------------------------------------
    def start_in(self, k, host_cwd: bytes) -> None:
        """The guest starts where goemu was started if that lies in the sandbox, else in /."""
        guest = self.guest_of_host(host_cwd)
        self.set_cwd(k, guest or b"/")

    def set_cwd(self, k, guest: bytes) -> None:
        """chdir to a guest path (falls back to / when it cannot be entered)."""
        try:
            found = self.walk(k, guest, follow=True)
            if found.node is None and found.name == b"":
                os.fchdir(found.dfd)
                self.cwd = found.guest
                return
        except (OSError, LinuxError):    # a start directory that cannot be entered: /
            pass
        finally:
            self.release()
        os.fchdir(self.root.fd)
        self.cwd = b"/"


def minimal_env(keep_term: bool = True) -> dict[str, str]:
    """The fresh environment of a sandboxed guest (then -E/--env add to it)."""
    env = {"PATH": DEFAULT_PATH, "HOME": "/"}
    term = os.environ.get("TERM")
    if keep_term and term:
        env["TERM"] = term
    return env


__all__ = ["Sandbox", "SandboxError", "Mount", "Found", "minimal_env", "NET_HOST", "NET_LOOPBACK",
           "NET_NONE", "EXEC_GOEMU", "EXEC_NONE"]
