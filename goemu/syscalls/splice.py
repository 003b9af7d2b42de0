"""Pipes as kernel buffers: splice, tee, vmsplice.

Guest fds are host fds, so splice and tee are the host's own (zero-copy, same errors, same
offsets semantics). Go's poller splices socket -> pipe -> socket for io.Copy between TCP
connections (net/splice_linux.go) with SPLICE_F_NONBLOCK on non-blocking sockets and counts on
EAGAIN to park in the netpoller. goemu never lets a host call block: it always calls with
SPLICE_F_NONBLOCK (and a blocking socket or terminal switched to O_NONBLOCK for the call); an
EAGAIN the guest's call would have waited through natively blocks only the calling guest
thread until the side that was not ready is, as blocking read/write do (goemu.hostio).

vmsplice copies: mapping guest memory into a host pipe would let the pipe see later guest
writes through goemu's buffer; the reader sees the same bytes either way.
"""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import struct

from .. import hostio
from ..errno import EAGAIN, EBADF, EINVAL, EPIPE, ESPIPE, LinuxError, from_oserror
from ..thread import Restart, Wait
from . import BLOCK, syscall

SPLICE_F_MOVE, SPLICE_F_NONBLOCK, SPLICE_F_MORE, SPLICE_F_GIFT = 1, 2, 4, 8
SPLICE_F_ALL = 0xF
MAX_RW_COUNT = 0x7FFFF000
UIO_MAXIOV = 1024
NR_SPLICE, NR_TEE, NR_VMSPLICE = 275, 276, 278
F_GETPIPE_SZ = 1032

_libc = hostio._libc
_splice = _libc.splice
_splice.restype = ctypes.c_ssize_t
_splice.argtypes = (ctypes.c_int, ctypes.POINTER(ctypes.c_int64), ctypes.c_int,
                    ctypes.POINTER(ctypes.c_int64), ctypes.c_size_t, ctypes.c_uint)
_tee = _libc.tee
_tee.restype = ctypes.c_ssize_t
_tee.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint)


def _i32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def _kind(entry) -> str:
    hostio.may_block(entry)        # fills entry.host_kind
    return entry.host_kind


def _side_blocks(entry, flags: int) -> bool:
    """Would the guest's call wait on this end natively (rather than fail with EAGAIN)?"""
    kind = _kind(entry)
    if kind == "pipe":
        return not flags & SPLICE_F_NONBLOCK and not hostio.is_nonblocking(entry.host)
    if kind in ("socket", "tty", "dev"):
        return not hostio.is_nonblocking(entry.host)
    return False


@contextlib.contextmanager
def _nonblocking(*entries):
    """Switch blocking sockets/terminals to O_NONBLOCK for one host call (pipes get
    SPLICE_F_NONBLOCK instead). goemu is one host thread: no other guest call sees it."""
    switched = []
    try:
        for e in entries:
            if _kind(e) in ("socket", "tty", "dev") and e.host not in switched \
                    and not hostio.is_nonblocking(e.host):
                try:
                    fl = fcntl.fcntl(e.host, fcntl.F_GETFL)
                    fcntl.fcntl(e.host, fcntl.F_SETFL, fl | os.O_NONBLOCK)
                except OSError:
                    continue   # the call itself will report what is wrong with this fd
                switched.append(e.host)
        yield
    finally:
        for host in switched:
            try:
                fcntl.fcntl(host, fcntl.F_SETFL, fcntl.fcntl(host, fcntl.F_GETFL) & ~os.O_NONBLOCK)
            except OSError:
                pass


def _blocking_call(k, t, ein, eout, flags: int, op, nr: int, what: str):
    """Run op() (never blocking on the host); on an EAGAIN the guest would have waited
    through, block t until the end that was not ready is, then try again."""
    try:
        return op()
    except LinuxError as e:
        if e.errno != EAGAIN:
            raise
    side = _waiting_side(ein, eout)
    if side is None or not _side_blocks(side[0], flags):
        raise LinuxError(EAGAIN)
    wait = Wait(what, None, Restart.IF_SA_RESTART, nr, host_fd=side[0].host, host_write=side[1])

    def poll() -> int | None:
        try:
            return op()
        except LinuxError as e:
            if e.errno != EAGAIN:
                return -e.errno
        side = _waiting_side(ein, eout)
        if side is not None:   # wait for whichever end is not ready now
            wait.host_fd, wait.host_write = side[0].host, side[1]
        return None

    wait.poll = poll
    k.sched.block(t, wait)
    return BLOCK


def _waiting_side(ein, eout):
    """(entry, for_writing) of the end that is not ready; the input end if both look ready
    (e.g. a pipe with data but no room yet for a whole page)."""
    if ein is not None and not hostio.ready(ein.host, False):
        return ein, False
    if eout is not None and not hostio.ready(eout.host, True):
        return eout, True
    if ein is not None:
        return ein, False
    return (eout, True) if eout is not None else None


def _host_result(k, t, r: int) -> int:
    if r >= 0:
        return r
    err = ctypes.get_errno()
    if err == EPIPE:
        from .fs import _sigpipe
        _sigpipe(k, t)
    raise LinuxError(err)


def _accmode(entry) -> int:
    try:
        return fcntl.fcntl(entry.host, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError as e:
        raise from_oserror(e) from None


def _read_off(k, p: int):
    if not p:
        return None
    return ctypes.c_int64(struct.unpack("<q", k.mem.read(p, 8))[0])


@syscall("splice", "fd", "ptr", "fd", "ptr", "size", "hex")
def splice(k, t, fd_in, off_in_p, fd_out, off_out_p, length, flags):
    flags &= 0xFFFFFFFF
    if length == 0:
        return 0
    if flags & ~SPLICE_F_ALL:
        raise LinuxError(EINVAL)
    ein, eout = k.fds.get(_i32(fd_in)), k.fds.get(_i32(fd_out))
    # Linux's order: access modes, offsets on pipes, then the offsets themselves
    if _accmode(ein) == os.O_WRONLY or _accmode(eout) == os.O_RDONLY:
        raise LinuxError(EBADF)
    if (off_in_p and _kind(ein) == "pipe") or (off_out_p and _kind(eout) == "pipe"):
        raise LinuxError(ESPIPE)
    off_out, off_in = _read_off(k, off_out_p), _read_off(k, off_in_p)
    length = min(length, MAX_RW_COUNT)

    def op() -> int:
        oi = ctypes.c_int64(off_in.value) if off_in is not None else None
        oo = ctypes.c_int64(off_out.value) if off_out is not None else None
        with _nonblocking(ein, eout):
            r = _splice(ein.host, ctypes.byref(oi) if oi is not None else None,
                        eout.host, ctypes.byref(oo) if oo is not None else None,
                        length, flags | SPLICE_F_NONBLOCK)
        n = _host_result(k, t, r)
        # the kernel moves the caller's offsets, never the files'
        if oi is not None:
            k.mem.write(off_in_p, struct.pack("<q", oi.value))
        if oo is not None:
            k.mem.write(off_out_p, struct.pack("<q", oo.value))
        return n

    return _blocking_call(k, t, ein, eout, flags, op, NR_SPLICE, "splice")


@syscall("tee", "fd", "fd", "size", "hex")
def tee(k, t, fd_in, fd_out, length, flags):
    flags &= 0xFFFFFFFF
    if flags & ~SPLICE_F_ALL:
        raise LinuxError(EINVAL)
    if length == 0:
        return 0
    ein, eout = k.fds.get(_i32(fd_in)), k.fds.get(_i32(fd_out))
    length = min(length, MAX_RW_COUNT)

    def op() -> int:
        return _host_result(k, t, _tee(ein.host, eout.host, length, flags | SPLICE_F_NONBLOCK))

    return _blocking_call(k, t, ein, eout, flags, op, NR_TEE, "tee")


@syscall("vmsplice", "fd", "ptr", "int", "hex")
def vmsplice(k, t, fd, iov, nr_segs, flags):
    flags &= 0xFFFFFFFF
    if flags & ~SPLICE_F_ALL:
        raise LinuxError(EINVAL)
    if nr_segs > UIO_MAXIOV:
        raise LinuxError(EINVAL)
    entry = k.fds.get(_i32(fd))
    try:
        acc = fcntl.fcntl(entry.host, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError as e:
        raise from_oserror(e) from None
    if acc not in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR):
        raise LinuxError(EBADF)
    vecs = [struct.unpack("<QQ", k.mem.read(iov + 16 * i, 16)) for i in range(nr_segs)]
    if _kind(entry) != "pipe":
        raise LinuxError(EBADF)
    try:   # a pipe never moves more than it holds: copy no more than that
        room = fcntl.fcntl(entry.host, F_GETPIPE_SZ)
    except OSError:
        room = 1 << 20
    total = 0
    for _, n in vecs:
        total += n
        if n >> 63 or total > MAX_RW_COUNT:
            raise LinuxError(EINVAL)
    if acc != os.O_RDONLY:   # opened for writing (a FIFO may be O_RDWR): into the pipe
        parts, want = [], room
        for b, n in vecs:
            if want <= 0:
                break
            if n:
                parts.append(k.mem.read(b, min(n, want)))
                want -= min(n, want)
        data = b"".join(parts)
        if not data:
            return 0

        def op() -> int:
            with _nonblocking_pipe(entry.host):
                try:
                    return os.write(entry.host, data)
                except BlockingIOError:
                    raise LinuxError(EAGAIN) from None
                except OSError as e:
                    if e.errno == EPIPE:
                        from .fs import _sigpipe
                        _sigpipe(k, t)
                    raise from_oserror(e) from None
        return _blocking_call(k, t, None, entry, flags, op, NR_VMSPLICE, "vmsplice")

    if total == 0:
        return 0

    def read_op() -> int:
        with _nonblocking_pipe(entry.host):
            try:
                data = os.read(entry.host, min(total, room))
            except BlockingIOError:
                raise LinuxError(EAGAIN) from None
            except OSError as e:
                raise from_oserror(e) from None
        pos = 0
        for base, n in vecs:
            if pos >= len(data):
                break
            k.mem.write(base, data[pos:pos + n])
            pos += n
        return len(data)
    return _blocking_call(k, t, entry, None, flags, read_op, NR_VMSPLICE, "vmsplice")


@contextlib.contextmanager
def _nonblocking_pipe(host: int):
    fl = fcntl.fcntl(host, fcntl.F_GETFL)
    if fl & os.O_NONBLOCK:
        yield
        return
    fcntl.fcntl(host, fcntl.F_SETFL, fl | os.O_NONBLOCK)
    try:
        yield
    finally:
        fcntl.fcntl(host, fcntl.F_SETFL, fl)
