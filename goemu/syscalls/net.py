"""Sockets on real host sockets: AF_INET, AF_INET6, AF_UNIX (and whatever else the host has).

Guest and host are both Linux x86-64, so sockaddr, option values and msghdr payloads have the
same bytes on both sides: goemu copies them in and out of guest memory and hands them to the
host's libc unchanged. Host programs can therefore talk to a server running under goemu.
Blocking sockets block only the calling guest thread (goemu.hostio). Two payloads do differ:
fds passed with SCM_RIGHTS are guest fds on one side and host fds on the other (sendmsg
translates them, recvmsg enters what it receives in the guest's fd table), and SCM_CREDENTIALS
carries pids (the guest's pid is goemu's, under --deterministic too).
"""
from __future__ import annotations

import ctypes
import os
import struct

from .. import hostio
from ..errno import EACCES, EINPROGRESS, EINVAL, ENOBUFS, ENOTSOCK, LinuxError
from ..fdtable import Fd
from . import syscall

SOCK_NONBLOCK, SOCK_CLOEXEC = 0o4000, 0o2000000
_libc = hostio._libc
_MSGHDR = struct.Struct("<QI4xQQQQi4x")   # name, namelen, iov, iovlen, control, controllen, flags
_IOVEC = struct.Struct("<QQ")
_CMSGHDR = struct.Struct("<Qii")          # cmsg_len, cmsg_level, cmsg_type
SOL_SOCKET, SCM_RIGHTS, SCM_CREDENTIALS = 1, 1, 2
MSG_CMSG_CLOEXEC = 0x40000000


BIND, CONNECT = "bind", "connect"     # what a sockaddr is for (goemu.sandbox.netpolicy's names)


def _netpolicy():
    """The sandbox's network rules, imported only under --root (start-up stays short)."""
    from ..sandbox import netpolicy
    return netpolicy


def _check(r: int) -> int:
    if r < 0:
        raise LinuxError(ctypes.get_errno())
    return r


def _i32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def _sock(k, fd: int) -> Fd:
    entry = k.fds.get(_i32(fd))
    if hostio.fd_kind(entry.host) != "socket":
        raise LinuxError(ENOTSOCK)
    entry.host_kind = "socket"
    return entry


def _install(k, host: int, flags: int) -> int:
    if flags & SOCK_NONBLOCK:
        os.set_blocking(host, False)
    return k.fds.install(Fd(host, bool(flags & SOCK_CLOEXEC), "socket", "socket"))


def _inbuf(k, addr: int, n: int):
    data = k.mem.read(addr, n) if addr and n else b""
    return ctypes.create_string_buffer(data, max(n, 1))


def _addr_in(k, addr: int, n: int, purpose: str):
    """A sockaddr the guest names, as the host takes it: (buffer, length). Under a sandbox
    its rules apply (``goemu.sandbox.netpolicy``)."""
    sb = getattr(k, "sandbox", None)
    if sb is None or not addr or not n:
        return _inbuf(k, addr, n), n
    data = _netpolicy().guest_addr(k, sb, k.mem.read(addr, n), purpose)
    return ctypes.create_string_buffer(data, max(len(data), 1)), len(data)


def _family_allowed(k, domain: int) -> None:
    sb = getattr(k, "sandbox", None)
    if sb is not None:
        _netpolicy().check_family(sb, _i32(domain))


@syscall("socket", "int", "hex", "int", ret="fd")
def socket(k, t, domain, type_, protocol):
    _family_allowed(k, domain)
    host = _check(_libc.socket(_i32(domain), ctypes.c_int((type_ & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) | SOCK_CLOEXEC),
                               _i32(protocol)))
    return _install(k, host, type_)


@syscall("socketpair", "int", "hex", "int", "ptr")
def socketpair(k, t, domain, type_, protocol, sv):
    _family_allowed(k, domain)
    pair = (ctypes.c_int * 2)()
    _check(_libc.socketpair(_i32(domain), ctypes.c_int((type_ & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) | SOCK_CLOEXEC),
                            _i32(protocol), pair))
    a, b = _install(k, pair[0], type_), _install(k, pair[1], type_)
    k.mem.write(sv, struct.pack("<ii", a, b))
    return 0


@syscall("bind", "fd", "ptr", "int")
def bind(k, t, fd, addr, addrlen):
    entry = _sock(k, fd)
    buf, n = _addr_in(k, addr, addrlen & 0xFFFFFFFF, BIND)
    sb = getattr(k, "sandbox", None)
    if sb is not None and sb.net == "loopback" and _netpolicy().is_wildcard(buf.raw[:n]):
        raise LinuxError(EACCES)           # every interface: not only the loopback
    return _check(_libc.bind(entry.host, buf, n))


@syscall("listen", "fd", "int")
def listen(k, t, fd, backlog):
    entry = _sock(k, fd)
    sb = getattr(k, "sandbox", None)
    if sb is not None and sb.net == "loopback":
        # an unbound socket would listen on every interface (the implicit bind)
        buf = ctypes.create_string_buffer(128)
        n = ctypes.c_uint32(128)
        _check(_libc.getsockname(entry.host, buf, ctypes.byref(n)))
        if _netpolicy().is_wildcard(buf.raw[:n.value]):
            raise LinuxError(EACCES)
    return _check(_libc.listen(entry.host, _i32(backlog)))


def _out_addr(k, addr: int, lenp: int, fn) -> int:
    """Call fn(buf, &len) and copy a sockaddr result out, truncated as the kernel does."""
    if addr and lenp:
        cap = k.mem.read_u32(lenp)
        buf = ctypes.create_string_buffer(max(cap, 128))
        n = ctypes.c_uint32(max(cap, 128))
        r = fn(buf, ctypes.byref(n))
        if r >= 0:
            raw = buf.raw[:n.value]
            sb = getattr(k, "sandbox", None)
            if sb is not None:
                raw = _netpolicy().shown_addr(sb, raw)
            k.mem.write(addr, raw[:cap])
            k.mem.write_u32(lenp, len(raw))
        return r
    return fn(None, None)


@syscall("accept4", "fd", "ptr", "ptr", "hex", ret="fd")
def accept4(k, t, fd, addr, lenp, flags):
    entry = _sock(k, fd)

    def op() -> int:
        host = _check(_out_addr(k, addr, lenp,
                                lambda b, n: _libc.accept4(entry.host, b, n, SOCK_CLOEXEC | SOCK_NONBLOCK)))
        if not flags & SOCK_NONBLOCK:
            os.set_blocking(host, True)
        return k.fds.install(Fd(host, bool(flags & SOCK_CLOEXEC), "socket", "socket"))
    return hostio.io(k, t, entry, False, op, 288, "accept4")


@syscall("accept", "fd", "ptr", "ptr", ret="fd")
def accept(k, t, fd, addr, lenp):
    return accept4(k, t, fd, addr, lenp, 0)


@syscall("connect", "fd", "ptr", "int")
def connect(k, t, fd, addr, addrlen):
    entry = _sock(k, fd)
    buf, addrlen = _addr_in(k, addr, addrlen & 0xFFFFFFFF, CONNECT)
    if hostio.is_nonblocking(entry.host):
        return _check(_libc.connect(entry.host, buf, addrlen & 0xFFFFFFFF))
    # A blocking connect blocks only this guest thread: connect without blocking, then wait
    # for writability and report SO_ERROR, as the kernel's blocking connect would.
    os.set_blocking(entry.host, False)
    try:
        r = _libc.connect(entry.host, buf, addrlen & 0xFFFFFFFF)
        err = ctypes.get_errno()
    finally:
        os.set_blocking(entry.host, True)
    if r == 0:
        return 0
    if err != EINPROGRESS:
        raise LinuxError(err)

    def op() -> int:
        val = ctypes.c_int(0)
        n = ctypes.c_uint32(4)
        _check(_libc.getsockopt(entry.host, 1, 4, ctypes.byref(val), ctypes.byref(n)))   # SO_ERROR
        return -val.value if val.value else 0
    return hostio.io(k, t, entry, True, op, 42, "connect")


@syscall("getsockname", "fd", "ptr", "ptr")
def getsockname(k, t, fd, addr, lenp):
    entry = _sock(k, fd)
    return _check(_out_addr(k, addr, lenp, lambda b, n: _libc.getsockname(entry.host, b, n)))


@syscall("getpeername", "fd", "ptr", "ptr")
def getpeername(k, t, fd, addr, lenp):
    entry = _sock(k, fd)
    return _check(_out_addr(k, addr, lenp, lambda b, n: _libc.getpeername(entry.host, b, n)))


@syscall("setsockopt", "fd", "int", "int", "ptr", "int")
def setsockopt(k, t, fd, level, name, val, vallen):
    entry = _sock(k, fd)
    return _check(_libc.setsockopt(entry.host, _i32(level), _i32(name), _inbuf(k, val, vallen & 0xFFFFFFFF),
                                   vallen & 0xFFFFFFFF))


@syscall("getsockopt", "fd", "int", "int", "ptr", "ptr")
def getsockopt(k, t, fd, level, name, val, lenp):
    entry = _sock(k, fd)
    cap = k.mem.read_u32(lenp)
    buf = ctypes.create_string_buffer(max(cap, 4))
    n = ctypes.c_uint32(cap)
    _check(_libc.getsockopt(entry.host, _i32(level), _i32(name), buf, ctypes.byref(n)))
    k.mem.write(val, buf.raw[:min(cap, n.value)])
    k.mem.write_u32(lenp, n.value)
    return 0


@syscall("shutdown", "fd", "int")
def shutdown(k, t, fd, how):
    return _check(_libc.shutdown(_sock(k, fd).host, _i32(how)))


@syscall("sendto", "fd", "buf:2", "size", "hex", "ptr", "int")
def sendto(k, t, fd, buf, length, flags, addr, addrlen):
    entry = _sock(k, fd)
    data = k.mem.read(buf, length)
    dest = None
    if addr:
        dest, addrlen = _addr_in(k, addr, addrlen & 0xFFFFFFFF, CONNECT)

    def op() -> int:
        cbuf = ctypes.create_string_buffer(data, max(len(data), 1))
        fl = _i32(flags) | (0 if hostio.is_nonblocking(entry.host) else hostio.MSG_DONTWAIT)
        r = _libc.sendto(entry.host, cbuf, len(data), fl | 0x4000, dest,   # MSG_NOSIGNAL: goemu sends SIGPIPE
                         addrlen & 0xFFFFFFFF if addr else 0)
        if r < 0 and ctypes.get_errno() == 32 and not flags & 0x4000:
            from .fs import _sigpipe
            _sigpipe(k, t)
        return _check(r)
    return hostio.io(k, t, entry, True, op, 44, "sendto")


@syscall("recvfrom", "fd", "obuf", "size", "hex", "ptr", "ptr")
def recvfrom(k, t, fd, buf, length, flags, addr, lenp):
    entry = _sock(k, fd)

    def op() -> int:
        cbuf = ctypes.create_string_buffer(max(length, 1))
        fl = _i32(flags) | (0 if hostio.is_nonblocking(entry.host) else hostio.MSG_DONTWAIT)
        n = _check(_out_addr(k, addr, lenp, lambda b, ln: _libc.recvfrom(entry.host, cbuf, length, fl, b, ln)))
        k.mem.write(buf, cbuf.raw[:min(n, length)])
        return n
    return hostio.io(k, t, entry, False, op, 45, "recvfrom")


def _read_msghdr(k, msg: int):
    name, namelen, iov, iovlen, control, controllen, mflags = _MSGHDR.unpack(k.mem.read(msg, _MSGHDR.size))
    if iovlen > 1024:
        raise LinuxError(EINVAL)
    vecs = [_IOVEC.unpack_from(k.mem.read(iov + i * 16, 16)) for i in range(iovlen)]
    return name, namelen, vecs, control, controllen, mflags


class _HostMsg(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.c_void_p),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class _HostIov(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


@syscall("sendmsg", "fd", "ptr", "hex")
def sendmsg(k, t, fd, msg, flags):
    entry = _sock(k, fd)
    name, namelen, vecs, control, controllen, _ = _read_msghdr(k, msg)
    data = b"".join(k.mem.read(b, n) for b, n in vecs)
    namebuf = None
    if name:
        namebuf, namelen = _addr_in(k, name, namelen, CONNECT)
    ctrl = None
    if control and controllen:
        if controllen > 1 << 20:
            raise LinuxError(ENOBUFS)
        raw = _control_out(k, k.mem.read(control, controllen))
        ctrl = ctypes.create_string_buffer(raw, max(len(raw), 1))

    def op() -> int:
        dbuf = ctypes.create_string_buffer(data, max(len(data), 1))
        iov = _HostIov(ctypes.cast(dbuf, ctypes.c_void_p), len(data))
        hm = _HostMsg(ctypes.cast(namebuf, ctypes.c_void_p) if namebuf else None, namelen if name else 0,
                      ctypes.cast(ctypes.pointer(iov), ctypes.c_void_p), 1,
                      ctypes.cast(ctrl, ctypes.c_void_p) if ctrl else None, controllen if control else 0, 0)
        fl = _i32(flags) | 0x4000 | (0 if hostio.is_nonblocking(entry.host) else hostio.MSG_DONTWAIT)
        return _check(_libc.sendmsg(entry.host, ctypes.byref(hm), fl))
    return hostio.io(k, t, entry, True, op, 46, "sendmsg")


def _cmsgs(raw: bytes):
    """(offset, level, type, data offset, data length) of each control message (CMSG_NXTHDR)."""
    pos = 0
    while pos + _CMSGHDR.size <= len(raw):
        ln, level, type_ = _CMSGHDR.unpack_from(raw, pos)
        if ln < _CMSGHDR.size or pos + ln > len(raw):
            return
        yield pos, level, type_, pos + _CMSGHDR.size, ln - _CMSGHDR.size
        pos += (ln + 7) & ~7


def _control_out(k, raw: bytes) -> bytes:
    """sendmsg: guest fds -> host fds in SCM_RIGHTS, the guest's pid -> goemu's in
    SCM_CREDENTIALS."""
    out = bytearray(raw)
    for _, level, type_, start, n in _cmsgs(raw):
        if level != SOL_SOCKET:
            continue
        if type_ == SCM_RIGHTS:
            for i in range(n // 4):
                fd = struct.unpack_from("<i", raw, start + 4 * i)[0]
                struct.pack_into("<i", out, start + 4 * i, k.fds.host(fd) if fd >= 0 else fd)
        elif type_ == SCM_CREDENTIALS and n >= 12:
            pid = struct.unpack_from("<i", raw, start)[0]
            if pid == k.pid:
                struct.pack_into("<i", out, start, os.getpid())
    return bytes(out)


def _control_in(k, raw: bytes, cloexec: bool) -> bytes:
    """recvmsg: host fds received (close-on-exec on the host) enter the guest's fd table."""
    out = bytearray(raw)
    for _, level, type_, start, n in _cmsgs(raw):
        if level != SOL_SOCKET:
            continue
        if type_ == SCM_RIGHTS:
            for i in range(n // 4):
                host = struct.unpack_from("<i", raw, start + 4 * i)[0]
                try:
                    fd = k.fds.install(Fd(host, cloexec, "scm_rights", hostio.fd_kind(host)))
                except LinuxError:
                    os.close(host)
                    fd = -1
                struct.pack_into("<i", out, start + 4 * i, fd)
        elif type_ == SCM_CREDENTIALS and n >= 12:
            pid = struct.unpack_from("<i", raw, start)[0]
            if pid == os.getpid():
                struct.pack_into("<i", out, start, k.pid)
    return bytes(out)


@syscall("recvmsg", "fd", "ptr", "hex")
def recvmsg(k, t, fd, msg, flags):
    entry = _sock(k, fd)
    name, namelen, vecs, control, controllen, _ = _read_msghdr(k, msg)
    total = sum(n for _, n in vecs)

    def op() -> int:
        dbuf = ctypes.create_string_buffer(max(total, 1))
        namebuf = ctypes.create_string_buffer(max(namelen, 1)) if name else None
        ctrl = ctypes.create_string_buffer(max(controllen, 1)) if control else None
        iov = _HostIov(ctypes.cast(dbuf, ctypes.c_void_p), total)
        hm = _HostMsg(ctypes.cast(namebuf, ctypes.c_void_p) if namebuf else None, namelen if name else 0,
                      ctypes.cast(ctypes.pointer(iov), ctypes.c_void_p), 1,
                      ctypes.cast(ctrl, ctypes.c_void_p) if ctrl else None, controllen if control else 0, 0)
        fl = _i32(flags) | (0 if hostio.is_nonblocking(entry.host) else hostio.MSG_DONTWAIT)
        n = _check(_libc.recvmsg(entry.host, ctypes.byref(hm), fl | MSG_CMSG_CLOEXEC))
        if control and hm.controllen:
            ctrl.raw = _control_in(k, ctrl.raw[:hm.controllen], bool(flags & MSG_CMSG_CLOEXEC)) \
                + ctrl.raw[hm.controllen:]
        pos = 0
        for base, ln in vecs:
            if pos >= n:
                break
            k.mem.write(base, dbuf.raw[pos:min(n, pos + ln)])
            pos += ln
        if name:
            k.mem.write(name, namebuf.raw[:min(namelen, hm.namelen)])
        if control and hm.controllen:
            k.mem.write(control, ctrl.raw[:hm.controllen])
        k.mem.write(msg + 8, struct.pack("<I", hm.namelen))
        k.mem.write(msg + 40, struct.pack("<Q", hm.controllen))
        k.mem.write(msg + 48, struct.pack("<i", hm.flags))
        return n
    return hostio.io(k, t, entry, False, op, 47, "recvmsg")

