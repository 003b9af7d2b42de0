"""File I/O and descriptors: read/write (plain, positioned, vectored), lseek, dup, fcntl, ioctl,
sync, sendfile/copy_file_range, flock.

Guest fds are host fds (``goemu.fdtable``) and host and guest are both x86-64 Linux, so most
handlers translate arguments, call the host and copy results out: the host kernel supplies the
exact semantics. ``FD_CLOEXEC`` lives in the fd table, never on the host fd (host fds are always
close-on-exec). A read or write that could block (pipes, sockets, terminals) blocks only the
calling guest thread (``goemu.hostio``).
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import stat
import struct

from .. import hostio
from ..errno import EFAULT, EINVAL, ENOTTY, EPIPE, LinuxError, from_oserror
from ..fdtable import FD_CLOEXEC, Fd
from . import PARTIAL, syscall
from .fsbase import (IO_CHUNK, MAX_RW_COUNT, O_CLOEXEC, O_NONBLOCK, SEEK_CUR, SEEK_SET, DirStream,
                     accessible_len, dirstream, fdarg, host_call, i32, i64, in_bytes, libc,
                     libc_check, out_len)

UIO_MAXIOV = 1024
IOVEC = struct.Struct("<QQ")

F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_GETLK, F_SETLK, F_SETLKW = 5, 6, 7
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
F_DUPFD_CLOEXEC = 1030
F_SETPIPE_SZ, F_GETPIPE_SZ, F_ADD_SEALS, F_GET_SEALS = 1031, 1032, 1033, 1034

TCGETS, TCSETS, TCSETSW, TCSETSF = 0x5401, 0x5402, 0x5403, 0x5404
TIOCGPGRP, TIOCGWINSZ, TIOCSWINSZ = 0x540F, 0x5413, 0x5414
FIONREAD, FIONBIO, FIONCLEX, FIOCLEX = 0x541B, 0x5421, 0x5450, 0x5451
TERMIOS_SIZE = 36                  # the kernel's struct termios (NCCS 19), not glibc's 60-byte one
WINSIZE_SIZE = 8
FLOCK_SIZE = 32                    # struct flock: type, whence, pad, start, len, pid, pad


def _sigpipe(k, t) -> None:
    """A write to a pipe or socket with no reader: Linux sends SIGPIPE to the writing thread."""
    from .. import signals
    signals.send_thread(k, t, 13, signals.siginfo(13, signals.SI_USER, pid=k.pid, uid=os.getuid()))
    k.stop("signal")


def _write_host(k, t, fn):
    try:
        return fn()
    except OSError as e:
        if e.errno == EPIPE:
            _sigpipe(k, t)
        raise from_oserror(e) from None



# ---- read / write ----------------------------------------------------------------------------
@syscall("read", "fd", "obuf", "size")
def read(k, t, fd, buf, count):
    entry = k.fds.get(fdarg(fd))
    _access_ok(buf, count)
    n = out_len(k, buf, count)

    def op() -> int:
        data = host_call(lambda: os.read(entry.host, n))
        k.mem.write(buf, data)
        return len(data)
    return hostio.io(k, t, entry, False, op, 0, "read")


TASK_SIZE_MAX = (1 << 47) - 4096


def _access_ok(buf: int, count: int) -> None:
    """Linux's access_ok, checked by read and write before anything else: the whole range must
    lie in user space (write(1, buf, 1 << 62) is EFAULT, not a short write)."""
    end = buf + count
    if end > TASK_SIZE_MAX or end >= 1 << 64:
        raise LinuxError(EFAULT)


def _is_dev_null(host: int) -> bool:
    try:
        st = os.fstat(host)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)


def _write_in(k, entry, buf: int, count: int) -> bytes | int:
    """The bytes to write, or (for /dev/null, whose write never reads the buffer) the count."""
    _access_ok(buf, count)
    try:
        data = in_bytes(k, buf, count)
    except LinuxError:
        if _is_dev_null(entry.host):
            return min(count, MAX_RW_COUNT)
        raise
    if len(data) < min(count, IO_CHUNK) and _is_dev_null(entry.host):
        return min(count, MAX_RW_COUNT)
    return data


@syscall("write", "fd", "buf:2", "size")
def write(k, t, fd, buf, count):
    entry = k.fds.get(fdarg(fd))
    data = _write_in(k, entry, buf, count)
    if isinstance(data, int):
        return data
    return hostio.io(k, t, entry, True, lambda: _write_host(k, t, lambda: hostio.write_some(entry, data)),
                     1, "write")


@syscall("pread64", "fd", "obuf", "size", "long")
def pread64(k, t, fd, buf, count, offset):
    host = k.fds.host(fdarg(fd))
    offset = i64(offset)
    if offset < 0:
        raise LinuxError(EINVAL)
    _access_ok(buf, count)
    n = out_len(k, buf, count)
    data = host_call(lambda: os.pread(host, n, offset))
    k.mem.write(buf, data)
    return len(data)


@syscall("pwrite64", "fd", "buf:2", "size", "long")
def pwrite64(k, t, fd, buf, count, offset):
    host = k.fds.host(fdarg(fd))
    offset = i64(offset)
    if offset < 0:
        raise LinuxError(EINVAL)
    entry = k.fds.get(fdarg(fd))
    data = _write_in(k, entry, buf, count)
    if isinstance(data, int):
        return data
    return _write_host(k, t, lambda: os.pwrite(host, data, offset))


def _iovecs(k, iov: int, iovcnt: int) -> list[tuple[int, int]]:
    iovcnt = i32(iovcnt)
    if iovcnt < 0 or iovcnt > UIO_MAXIOV:
        raise LinuxError(EINVAL)
    raw = k.mem.read(iov, IOVEC.size * iovcnt)
    vecs = [IOVEC.unpack_from(raw, i * IOVEC.size) for i in range(iovcnt)]
    if any(length >> 63 for _, length in vecs):
        raise LinuxError(EINVAL)
    return vecs


@syscall("readv", "fd", "ptr", "int")
def readv(k, t, fd, iov, iovcnt):
    entry = k.fds.get(fdarg(fd))
    vecs = _iovecs(k, iov, iovcnt)
    plan: list[tuple[int, int]] = []     # the accessible prefix of the buffers, in order
    total = 0
    for base, length in vecs:
        length = min(length, IO_CHUNK - total)
        n = accessible_len(k, base, length, write=True)
        if n:
            plan.append((base, n))
            total += n
        if n < length or total >= IO_CHUNK:
            break
    if total == 0 and sum(length for _, length in vecs):
        raise LinuxError(EFAULT)
    def op() -> int:
        data = host_call(lambda: os.read(entry.host, total))
        pos = 0
        for base, n in plan:
            if pos >= len(data):
                break
            k.mem.write(base, data[pos:pos + n])
            pos += n
        return len(data)
    return hostio.io(k, t, entry, False, op, 19, "readv")


@syscall("writev", "fd", "ptr", "int")
def writev(k, t, fd, iov, iovcnt):
    entry = k.fds.get(fdarg(fd))
    vecs = _iovecs(k, iov, iovcnt)
    chunks = []
    total = 0
    for base, length in vecs:
        length = min(length, IO_CHUNK - total)
        n = accessible_len(k, base, length, write=False)
        if n:
            chunks.append(k.mem.read(base, n))
            total += n
        if n < length or total >= IO_CHUNK:
            break
    if total == 0 and sum(length for _, length in vecs):
        raise LinuxError(EFAULT)
    data = b"".join(chunks)
    return hostio.io(k, t, entry, True, lambda: _write_host(k, t, lambda: hostio.write_some(entry, data)),
                     20, "writev")



@syscall("lseek", "fd", "long", "whence", ret="long")
def lseek(k, t, fd, offset, whence):
    entry = k.fds.get(fdarg(fd))
    offset = i64(offset)
    if isinstance(entry.obj, DirStream) or (entry.kind == "dir" and entry.obj is None):
        ds = dirstream(entry)
        if whence == SEEK_SET:
            new = offset
        elif whence == SEEK_CUR:
            new = ds.pos + offset
        else:
            raise LinuxError(EINVAL)
        if new < 0:
            raise LinuxError(EINVAL)
        if new == 0:
            ds.entries = None           # rewinddir: the next getdents64 sees a fresh listing
        ds.pos = new
        return new
    return host_call(lambda: os.lseek(entry.host, offset, whence))



# ---- descriptors ------------------------------------------------------------------------------
@syscall("dup", "fd", ret="fd")
def dup(k, t, fd):
    return k.fds.dup(fdarg(fd))


@syscall("dup2", "fd", "fd", ret="fd")
def dup2(k, t, oldfd, newfd):
    oldfd, newfd = fdarg(oldfd), fdarg(newfd)
    if oldfd == newfd:
        k.fds.get(oldfd)
        return newfd
    return k.fds.dup(oldfd, at=newfd)


@syscall("dup3", "fd", "fd", "openflags", ret="fd")
def dup3(k, t, oldfd, newfd, flags):
    oldfd, newfd = fdarg(oldfd), fdarg(newfd)
    if flags & 0xFFFFFFFF & ~O_CLOEXEC or oldfd == newfd:
        raise LinuxError(EINVAL)
    return k.fds.dup(oldfd, at=newfd, cloexec=bool(flags & O_CLOEXEC))


def _lock(entry: Fd, k, cmd: int, arg: int) -> int:
    data = k.mem.read(arg, FLOCK_SIZE)
    result = host_call(lambda: fcntl.fcntl(entry.host, cmd, data))
    if cmd in (F_GETLK, F_OFD_GETLK):
        k.mem.write(arg, result[:FLOCK_SIZE])
    return 0


@syscall("fcntl", "fd", "fcntlcmd", "hex", level=PARTIAL,
         note="dup, fd flags, status flags, record locks (on the host), pipe size, seals; "
              "not F_SETOWN/F_SETSIG/leases/notify")
def fcntl_(k, t, fd, cmd, arg):
    fd = fdarg(fd)
    entry = k.fds.get(fd)
    cmd &= 0xFFFFFFFF
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        start = i32(arg)
        if start < 0 or start >= k.fds.limit:
            raise LinuxError(EINVAL)
        return k.fds.dup(fd, start=start, cloexec=cmd == F_DUPFD_CLOEXEC)
    if cmd == F_GETFD:
        return FD_CLOEXEC if entry.cloexec else 0
    if cmd == F_SETFD:
        entry.cloexec = bool(arg & FD_CLOEXEC)
        return 0
    if cmd == F_GETFL:
        return host_call(lambda: fcntl.fcntl(entry.host, fcntl.F_GETFL))
    if cmd == F_SETFL:
        host_call(lambda: fcntl.fcntl(entry.host, fcntl.F_SETFL, i32(arg)))
        return 0
    if cmd in (F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW):
        return _lock(entry, k, cmd, arg)
    if cmd in (F_GETPIPE_SZ, F_SETPIPE_SZ, F_ADD_SEALS, F_GET_SEALS):
        return host_call(lambda: fcntl.fcntl(entry.host, cmd, i32(arg)))
    raise LinuxError(EINVAL)


def _set_nonblock(host: int, on: bool) -> None:
    flags = fcntl.fcntl(host, fcntl.F_GETFL)
    fcntl.fcntl(host, fcntl.F_SETFL, flags | O_NONBLOCK if on else flags & ~O_NONBLOCK)


@syscall("ioctl", "fd", "ioctlcmd", "hex", level=PARTIAL,
         note="terminal attributes and window size, FIONREAD, FIONBIO, FIOCLEX/FIONCLEX; "
              "others ENOTTY")
def ioctl(k, t, fd, request, arg):
    entry = k.fds.get(fdarg(fd))
    host = entry.host
    request &= 0xFFFFFFFF
    if request == TCGETS:
        k.mem.write(arg, host_call(lambda: fcntl.ioctl(host, TCGETS, bytes(TERMIOS_SIZE))))
        return 0
    if request in (TCSETS, TCSETSW, TCSETSF):
        data = k.mem.read(arg, TERMIOS_SIZE)
        host_call(lambda: fcntl.ioctl(host, request, data))
        return 0
    if request == TIOCGWINSZ:
        k.mem.write(arg, host_call(lambda: fcntl.ioctl(host, TIOCGWINSZ, bytes(WINSIZE_SIZE))))
        return 0
    if request == TIOCSWINSZ:
        data = k.mem.read(arg, WINSIZE_SIZE)
        host_call(lambda: fcntl.ioctl(host, TIOCSWINSZ, data))
        return 0
    if request == TIOCGPGRP:
        pgrp = struct.unpack("<i", host_call(lambda: fcntl.ioctl(host, TIOCGPGRP, bytes(4))))[0]
        k.mem.write_u32(arg, k.pid if pgrp == os.getpgrp() else pgrp)
        return 0
    if request == FIONREAD:
        k.mem.write(arg, host_call(lambda: fcntl.ioctl(host, FIONREAD, bytes(4))))
        return 0
    if request == FIONBIO:
        on = k.mem.read_u32(arg) != 0
        host_call(lambda: _set_nonblock(host, on))
        return 0
    if request in (FIOCLEX, FIONCLEX):
        entry.cloexec = request == FIOCLEX
        return 0
    raise LinuxError(ENOTTY)


# ---- copying ------------------------------------------------------------------------------------
@syscall("sendfile", "fd", "fd", "ptr", "size")
def sendfile(k, t, out_fd, in_fd, offset_ptr, count):
    out_host, in_host = k.fds.host(fdarg(out_fd)), k.fds.host(fdarg(in_fd))
    count = min(count, MAX_RW_COUNT)
    if offset_ptr:
        off = k.mem.read_i64(offset_ptr)
        if off < 0:
            raise LinuxError(EINVAL)
        n = _write_host(k, t, lambda: os.sendfile(out_host, in_host, off, count))
        k.mem.write_u64(offset_ptr, off + n)
        return n
    return _write_host(k, t, lambda: os.sendfile(out_host, in_host, None, count))


@syscall("copy_file_range", "fd", "ptr", "fd", "ptr", "size", "hex")
def copy_file_range(k, t, fd_in, off_in, fd_out, off_out, length, flags):
    in_host, out_host = k.fds.host(fdarg(fd_in)), k.fds.host(fdarg(fd_out))
    if flags:
        raise LinuxError(EINVAL)
    src = k.mem.read_i64(off_in) if off_in else None
    dst = k.mem.read_i64(off_out) if off_out else None
    if (src is not None and src < 0) or (dst is not None and dst < 0):
        raise LinuxError(EINVAL)
    length = min(length, MAX_RW_COUNT)
    n = host_call(lambda: os.copy_file_range(in_host, out_host, length, src, dst))
    if off_in:
        k.mem.write_u64(off_in, src + n)
    if off_out:
        k.mem.write_u64(off_out, dst + n)
    return n


@syscall("fadvise64", "fd", "long", "long", "int")
def fadvise64(k, t, fd, offset, length, advice):
    host = k.fds.host(fdarg(fd))
    host_call(lambda: os.posix_fadvise(host, i64(offset), i64(length), i32(advice)))
    return 0


@syscall("flock", "fd", "flockop", level=PARTIAL,
         note="on the host: a blocking lock held through another guest fd blocks the emulator")
def flock(k, t, fd, operation):
    host = k.fds.host(fdarg(fd))
    op = i32(operation)
    host_call(lambda: fcntl.flock(host, op))
    return 0


@syscall("fsync", "fd")
def fsync(k, t, fd):
    host = k.fds.host(fdarg(fd))
    host_call(lambda: os.fsync(host))
    return 0


@syscall("fdatasync", "fd")
def fdatasync(k, t, fd):
    host = k.fds.host(fdarg(fd))
    host_call(lambda: os.fdatasync(host))
    return 0


@syscall("sync")
def sync(k, t):
    os.sync()
    return 0


@syscall("syncfs", "fd")
def syncfs(k, t, fd):
    host = k.fds.host(fdarg(fd))
    libc_check(libc.syncfs(ctypes.c_int(host)))
    return 0

