"""The sandbox's network rules, on socket families and the addresses the guest names.

``--net=host``: every family, every address (Unix socket paths are still the guest's).
``--net=loopback``: AF_UNIX, AF_INET and AF_INET6 only, and only loopback addresses: 127.0.0.0/8,
::1 and ::ffff:127.0.0.0/104 to bind, connect and send to; a bind (or the implicit bind of
``listen``) to the wildcard address is refused, since that listens on every interface.
``--net=none``: AF_UNIX only, and no abstract names (they are the host's, shared by every
process in its network namespace). Refusals are EACCES, as a Linux security module refuses.

AF_UNIX paths are guest paths: ``bind`` creates the socket file through the walk's parent fd
(``/proc/self/fd/N/name``, N held as long as goemu runs, so the name stays unique), ``connect``
and ``sendto`` reach the found socket file through ``/proc/self/fd/N``. Addresses goemu gives
back (getsockname, accept, recvfrom) show the guest's path again.
"""
from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

from ..errno import EACCES, EADDRINUSE, ECONNREFUSED, ENAMETOOLONG, LinuxError

if TYPE_CHECKING:
    from . import Sandbox

AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
SUN_PATH_MAX = 108
BIND, CONNECT = "bind", "connect"


def check_family(sb: "Sandbox", family: int) -> None:
    """socket() and socketpair(): is this family allowed?"""
    if sb.net == "host" or family == AF_UNIX:
        return
    if sb.net == "loopback" and family in (AF_INET, AF_INET6):
        return
    raise LinuxError(EACCES)


def is_loopback(addr: bytes) -> bool | None:
    """For AF_INET/AF_INET6 sockaddrs: is it loopback (None: another family)."""
    if len(addr) < 2:
        return None
    family = struct.unpack_from("<H", addr)[0]
    if family == AF_INET and len(addr) >= 8:
        return addr[4] == 127
    if family == AF_INET6 and len(addr) >= 24:
        ip = addr[8:24]
        return ip == bytes(15) + b"\1" or (ip[:12] == bytes(10) + b"\xff\xff" and ip[12] == 127)
    return None


def is_wildcard(addr: bytes) -> bool:
    family = struct.unpack_from("<H", addr)[0] if len(addr) >= 2 else 0
    if family == AF_INET and len(addr) >= 8:
        return addr[4:8] == bytes(4)
    if family == AF_INET6 and len(addr) >= 24:
        return addr[8:24] == bytes(16)
    return False


def guest_addr(k, sb: "Sandbox", addr: bytes, purpose: str) -> bytes:
    """The host sockaddr for one the guest names (bind, connect, sendto, sendmsg)."""
    if len(addr) < 2:
        return addr
    family = struct.unpack_from("<H", addr)[0]
    if family == AF_UNIX:
        return _unix(k, sb, addr, purpose)
    if sb.net == "loopback" and family in (AF_INET, AF_INET6):
        if not is_loopback(addr):
            raise LinuxError(EACCES)
    return addr


def _unix(k, sb: "Sandbox", addr: bytes, purpose: str) -> bytes:
    raw = addr[2:]
    if not raw:
        return addr                               # autobind: an abstract name the kernel picks
    if raw[0] == 0:
        if sb.net == "none":
            raise LinuxError(EACCES)              # the host's abstract names
        return addr
    path = raw.split(b"\0", 1)[0]
    from ..syscalls import confined
    from ..syscalls.fsbase import AT_FDCWD
    if purpose == BIND:
        tg = confined.resolve(k, AT_FDCWD, path, follow=False)
        confined.check_modify(tg)
        if not tg.confined:
            raise LinuxError(EADDRINUSE)          # the root, a mount point, a /proc entry
        held = os.dup(tg.dfd)                     # for as long as the name may be looked at
        host = b"/proc/self/fd/%d/%s" % (held, tg.path)
        sb.unix_names[host] = path
    else:
        tg = confined.resolve(k, AT_FDCWD, path, follow=True)
        if tg.node is not None:
            raise LinuxError(ECONNREFUSED)
        host = tg.path
        if tg.dfd is None and host.startswith(b"/proc/self/fd/") and not tg.device:
            # a send may be retried after this syscall: the walk's fd is held a while longer
            held = os.dup(int(host[len(b"/proc/self/fd/"):]))
            sb.hold(held)
            host = b"/proc/self/fd/%d" % held
    if len(host) >= SUN_PATH_MAX:
        raise LinuxError(ENAMETOOLONG)
    return struct.pack("<H", AF_UNIX) + host + b"\0"


def shown_addr(sb: "Sandbox", addr: bytes) -> bytes:
    """An address the guest is given back: a Unix socket bound by goemu shows the guest's path."""
    if len(addr) <= 2 or struct.unpack_from("<H", addr)[0] != AF_UNIX:
        return addr
    path = addr[2:].split(b"\0", 1)[0]
    guest = sb.unix_names.get(path)
    if guest is None:
        return addr
    return struct.pack("<H", AF_UNIX) + guest + b"\0"
