"""File-system syscalls: file I/O, metadata, directories, paths, fcntl/ioctl, dup.

Guest fds are host fds (``goemu.fdtable``) and host and guest are both x86-64 Linux, so most
handlers translate arguments, call the host and copy results out: the host kernel supplies the
exact semantics (flags, errors, permissions). What goemu adds:

* ``/proc/self`` (and ``/proc/<guest pid>``) is the guest's, not the Python process's: ``exe``
  is the guest binary, ``auxv``/``cmdline``/``environ``/``maps``/``comm`` are generated (host
  memfds), ``fd/N`` names the guest's fd N; namespace-wide entries (mounts, cgroup, net, ...)
  pass through; anything else is ENOENT.
* ``getdents64`` lists the directory on first use and keeps the position per open file
  description (``Fd.obj``), because Python cannot call getdents itself.
* ``FD_CLOEXEC`` lives in the fd table, never on the host fd (host fds are always close-on-exec).

A read or write on a host fd may block the whole emulator here (blocking-I/O handling for pipes
and sockets belongs to the I/O layer).
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import stat as st
import struct

from .. import hostio
from ..errno import (EACCES, EBADF, EFAULT, EINVAL, ENOENT, ENOTDIR, ENOTTY, EPIPE, ERANGE,
                     LinuxError, from_oserror)
from ..fdtable import FD_CLOEXEC, MAX_FDS, Fd, memfd_with
from ..memory import PROT_READ, PROT_WRITE
from . import PARTIAL, syscall

# ---- Linux constants (x86-64) --------------------------------------------------------
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR, AT_EACCESS = 0x100, 0x200, 0x200
AT_SYMLINK_FOLLOW, AT_NO_AUTOMOUNT, AT_EMPTY_PATH = 0x400, 0x800, 0x1000
AT_STATX_SYNC_TYPE = 0x6000
O_ACCMODE, O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC = 0o3, 0o0, 0o1, 0o100, 0o1000
O_NONBLOCK, O_DIRECTORY, O_NOFOLLOW, O_CLOEXEC = 0o4000, 0o200000, 0o400000, 0o2000000
SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2
MAX_RW_COUNT = 0x7FFFF000          # Linux caps every read/write at this
IO_CHUNK = 64 << 20                # and goemu at this (a short read is legal)
UIO_MAXIOV = 1024
DT_UNKNOWN, DT_FIFO, DT_CHR, DT_DIR, DT_BLK, DT_REG, DT_LNK, DT_SOCK = 0, 1, 2, 4, 6, 8, 10, 12
STATX_BASIC_STATS = 0x7FF
STATX__RESERVED = 0x80000000

F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_GETLK, F_SETLK, F_SETLKW = 5, 6, 7
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
F_DUPFD_CLOEXEC = 1030
F_SETPIPE_SZ, F_GETPIPE_SZ, F_ADD_SEALS, F_GET_SEALS = 1031, 1032, 1033, 1034

TCGETS, TCSETS, TCSETSW, TCSETSF = 0x5401, 0x5402, 0x5403, 0x5404
TIOCGPGRP, TIOCGWINSZ, TIOCSWINSZ = 0x540F, 0x5413, 0x5414
FIONREAD, FIONBIO, FIONCLEX, FIOCLEX = 0x541B, 0x5421, 0x5450, 0x5451

# ---- guest structs -----------------------------------------------------------------------
# struct stat (x86-64): dev, ino, nlink, mode, uid, gid, pad, rdev, size, blksize, blocks,
# atime, atime_nsec, mtime, mtime_nsec, ctime, ctime_nsec, 3 reserved.
STAT = struct.Struct("<QQQIIIiQqqqqqqqqq24x")
# struct statx: mask, blksize, attributes, nlink, uid, gid, mode, pad, ino, size, blocks,
# attributes_mask, 4 x statx_timestamp {sec, nsec, pad} (atime, btime, ctime, mtime),
# rdev major/minor, dev major/minor, mnt_id, dio_mem_align, dio_offset_align, spare.
STATX = struct.Struct("<IIQIIIHHQQQQ" + "qIi" * 4 + "IIIIQII96x")
# linux_dirent64 header: d_ino, d_off, d_reclen, d_type; the name follows.
DIRENT64 = struct.Struct("<QqHB")
IOVEC = struct.Struct("<QQ")
# struct statfs (x86-64): type, bsize, blocks, bfree, bavail, files, ffree, fsid[2],
# namelen, frsize, flags, spare[4].
STATFS = struct.Struct("<qqQQQQQiiqqq32x")
TERMIOS_SIZE = 36                  # the kernel's struct termios (NCCS 19), not glibc's 60-byte one
WINSIZE_SIZE = 8
FLOCK_SIZE = 32                    # struct flock: type, whence, pad, start, len, pid, pad
TIMESPEC2_SIZE = 32

_libc = ctypes.CDLL(None, use_errno=True)


# ---- argument and memory helpers -----------------------------------------------------------
def _i32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _i64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >> 63 else v


def _fd(v: int) -> int:
    """An fd argument (unsigned int in the kernel: a negative value is just a bad fd)."""
    return v & 0xFFFFFFFF


def _id(v: int) -> int:
    """A uid/gid argument: (uid_t)-1 means "leave unchanged"."""
    v &= 0xFFFFFFFF
    return -1 if v == 0xFFFFFFFF else v


def _host_call(fn):
    """Run a host operation; its OSError becomes the guest's errno."""
    try:
        return fn()
    except OSError as e:
        raise from_oserror(e) from None


def _libc_check(r: int) -> int:
    if r == -1:
        raise from_oserror(OSError(ctypes.get_errno(), ""))
    return r


def _accessible_len(k, addr: int, n: int, write: bool) -> int:
    """How many bytes from addr (up to n) the guest can read (or write): a buffer that runs into
    a hole gives a short transfer, as Linux's copy_to_user/copy_from_user do."""
    done = 0
    while done < n:
        v = k.mem.find(addr + done)
        if v is None or not v.prot & PROT_READ or (write and not v.prot & PROT_WRITE):
            break
        done = min(n, v.end - addr)
    return done


def _out_len(k, buf: int, count: int, cap: int = IO_CHUNK) -> int:
    """The number of bytes to produce into a guest buffer: EFAULT if not even one fits."""
    count = min(count, cap)
    if count == 0:
        return 0
    n = _accessible_len(k, buf, count, write=True)
    if n == 0:
        raise LinuxError(EFAULT)
    return n


def _in_bytes(k, buf: int, count: int, cap: int = IO_CHUNK) -> bytes:
    count = min(count, cap)
    if count == 0:
        return b""
    n = _accessible_len(k, buf, count, write=False)
    if n == 0:
        raise LinuxError(EFAULT)
    return k.mem.read(buf, n)


def _path(k, addr: int) -> bytes:
    """A path argument; empty paths are ENOENT (callers with AT_EMPTY_PATH read it themselves)."""
    p = k.mem.read_cstr(addr)
    if not p:
        raise LinuxError(ENOENT)
    return p


def _dirfd(k, dirfd: int, path: bytes) -> int | None:
    """The host dir_fd for an *at call: None for AT_FDCWD, and for absolute paths (Linux
    ignores dirfd then, even an invalid one)."""
    if path.startswith(b"/"):
        return None
    d = _i32(dirfd)
    if d == AT_FDCWD:
        return None
    if d < 0:
        raise LinuxError(EBADF)
    return k.fds.host(d)


def _raw_dirfd(k, dirfd: int) -> int:
    """The host dirfd for libc *at calls (AT_FDCWD passes through)."""
    d = _i32(dirfd)
    if d == AT_FDCWD:
        return AT_FDCWD
    if d < 0:
        raise LinuxError(EBADF)
    return k.fds.host(d)


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


# ---- /proc/self ------------------------------------------------------------------------------
_GENERATED = (b"auxv", b"cmdline", b"environ", b"maps", b"comm")
_HOST_SAME = (b"", b"cwd", b"root", b"mounts", b"mountinfo", b"mountstats", b"cgroup", b"net")


def _proc_self_rest(k, path: bytes) -> bytes | None:
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


def _fd_of_proc(k, rest: bytes) -> tuple[Fd, bytes]:
    """fd/N[/more] -> (the guest's Fd N, b"/more")."""
    num, _, more = rest[3:].partition(b"/")
    if not num.isdigit() or int(num) not in k.fds.fds:
        raise LinuxError(ENOENT)
    return k.fds.fds[int(num)], (b"/" + more if more else b"")


def _host_path(k, path: bytes, follow: bool = True) -> bytes:
    """The host path that means what `path` means to the guest."""
    rest = _proc_self_rest(k, path)
    if rest is None:
        return path
    if rest == b"exe":
        return os.fsencode(k.exe_path) if follow else b"/proc/self/exe"
    if rest.startswith(b"fd/"):
        entry, more = _fd_of_proc(k, rest)
        return b"/proc/self/fd/%d%s" % (entry.host, more)
    top = rest.split(b"/", 1)[0]
    if rest in _GENERATED or top in _HOST_SAME:
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


def _generated(k, rest: bytes) -> bytes:
    if rest == b"auxv":
        return k.auxv
    if rest == b"cmdline":
        return b"".join(a + b"\0" for a in k.argv)
    if rest == b"environ":
        return b"".join(e + b"\0" for e in k.envp)
    if rest == b"maps":
        return _maps(k)
    return os.fsencode(os.path.basename(k.exe_path))[:15] + b"\n"     # comm


_kind = hostio.fd_kind


# ---- open / close ------------------------------------------------------------------------
def _open(k, dirfd: int, path: bytes, flags: int, mode: int) -> int:
    flags &= 0xFFFFFFFF
    cloexec = bool(flags & O_CLOEXEC)
    rest = _proc_self_rest(k, path)
    shown = os.fsdecode(path)
    if rest in _GENERATED:
        if flags & O_ACCMODE != O_RDONLY or flags & (O_CREAT | O_TRUNC):
            raise LinuxError(EACCES)   # /proc/self files are read-only
        if flags & O_DIRECTORY:
            raise LinuxError(ENOTDIR)
        host = _host_call(lambda: memfd_with(_generated(k, rest), "goemu-proc"))
        kind = "memfd"
        shown = f"/proc/{k.pid}/{rest.decode()}"
    else:
        hp = _host_path(k, path, follow=not flags & O_NOFOLLOW) if rest is not None else path
        dfd = _dirfd(k, dirfd, hp)
        host = _host_call(lambda: os.open(hp, flags, mode & 0o7777, dir_fd=dfd))
        try:
            kind = _kind(host)
        except OSError:
            kind = "file"
    try:
        return k.fds.install(Fd(host, cloexec, shown, kind))
    except LinuxError:
        os.close(host)
        raise


@syscall("openat", "dirfd", "str", "openflags", "oct", ret="fd", level=PARTIAL,
         note="/proc/self: exe, fd/N, auxv, cmdline, environ, maps, comm and namespace-wide "
              "entries; other /proc/self entries are ENOENT")
def openat(k, t, dirfd, path, flags, mode):
    return _open(k, dirfd, _path(k, path), flags, mode)


@syscall("open", "str", "openflags", "oct", ret="fd", level=PARTIAL, note="as openat")
def open_(k, t, path, flags, mode):
    return _open(k, AT_FDCWD, _path(k, path), flags, mode)


@syscall("close", "fd")
def close(k, t, fd):
    k.fds.close(_fd(fd))
    return 0


# ---- read / write ----------------------------------------------------------------------------
@syscall("read", "fd", "obuf", "size")
def read(k, t, fd, buf, count):
    entry = k.fds.get(_fd(fd))
    n = _out_len(k, buf, count)

    def op() -> int:
        data = _host_call(lambda: os.read(entry.host, n))
        k.mem.write(buf, data)
        return len(data)
    return hostio.io(k, t, entry, False, op, 0, "read")


@syscall("write", "fd", "buf:2", "size")
def write(k, t, fd, buf, count):
    entry = k.fds.get(_fd(fd))
    data = _in_bytes(k, buf, count)
    return hostio.io(k, t, entry, True, lambda: _write_host(k, t, lambda: hostio.write_some(entry, data)),
                     1, "write")


@syscall("pread64", "fd", "obuf", "size", "long")
def pread64(k, t, fd, buf, count, offset):
    host = k.fds.host(_fd(fd))
    offset = _i64(offset)
    if offset < 0:
        raise LinuxError(EINVAL)
    n = _out_len(k, buf, count)
    data = _host_call(lambda: os.pread(host, n, offset))
    k.mem.write(buf, data)
    return len(data)


@syscall("pwrite64", "fd", "buf:2", "size", "long")
def pwrite64(k, t, fd, buf, count, offset):
    host = k.fds.host(_fd(fd))
    offset = _i64(offset)
    if offset < 0:
        raise LinuxError(EINVAL)
    data = _in_bytes(k, buf, count)
    return _write_host(k, t, lambda: os.pwrite(host, data, offset))


def _iovecs(k, iov: int, iovcnt: int) -> list[tuple[int, int]]:
    iovcnt = _i32(iovcnt)
    if iovcnt < 0 or iovcnt > UIO_MAXIOV:
        raise LinuxError(EINVAL)
    raw = k.mem.read(iov, IOVEC.size * iovcnt)
    vecs = [IOVEC.unpack_from(raw, i * IOVEC.size) for i in range(iovcnt)]
    if any(length >> 63 for _, length in vecs):
        raise LinuxError(EINVAL)
    return vecs


@syscall("readv", "fd", "ptr", "int")
def readv(k, t, fd, iov, iovcnt):
    entry = k.fds.get(_fd(fd))
    vecs = _iovecs(k, iov, iovcnt)
    plan: list[tuple[int, int]] = []     # the accessible prefix of the buffers, in order
    total = 0
    for base, length in vecs:
        length = min(length, IO_CHUNK - total)
        n = _accessible_len(k, base, length, write=True)
        if n:
            plan.append((base, n))
            total += n
        if n < length or total >= IO_CHUNK:
            break
    if total == 0 and sum(length for _, length in vecs):
        raise LinuxError(EFAULT)
    def op() -> int:
        data = _host_call(lambda: os.read(entry.host, total))
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
    entry = k.fds.get(_fd(fd))
    vecs = _iovecs(k, iov, iovcnt)
    chunks = []
    total = 0
    for base, length in vecs:
        length = min(length, IO_CHUNK - total)
        n = _accessible_len(k, base, length, write=False)
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


class DirStream:
    """getdents64 position of one open directory description (shared by dup'ed fds).

    The listing is taken on the first getdents64 after open or a rewind; d_off cookies are
    indices into it, so lseek(fd, d_off, SEEK_SET) resumes after that entry."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, int, bytes]] | None = None
        self.pos = 0


def _dtype(entry: os.DirEntry) -> int:
    try:
        if entry.is_symlink():
            return DT_LNK
        if entry.is_dir(follow_symlinks=False):
            return DT_DIR
        if entry.is_file(follow_symlinks=False):
            return DT_REG
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError:
        return DT_UNKNOWN
    for test, dt in ((st.S_ISFIFO, DT_FIFO), (st.S_ISCHR, DT_CHR), (st.S_ISBLK, DT_BLK),
                     (st.S_ISSOCK, DT_SOCK)):
        if test(mode):
            return dt
    return DT_UNKNOWN


def _list_dir(host: int) -> list[tuple[int, int, bytes]]:
    out = []
    with os.scandir(host) as it:       # the host's readdir order
        for e in it:
            out.append((e.inode(), _dtype(e), os.fsencode(e.name)))
    dots = [(os.stat(name, dir_fd=host, follow_symlinks=False).st_ino, DT_DIR, name)
            for name in (b".", b"..")]
    return dots + out


def _dirstream(entry: Fd) -> DirStream:
    if entry.obj is None:
        entry.obj = DirStream()
    if not isinstance(entry.obj, DirStream):
        raise LinuxError(ENOTDIR)
    return entry.obj


def dirent64(ino: int, off: int, dtype: int, name: bytes) -> bytes:
    reclen = (DIRENT64.size + len(name) + 1 + 7) & ~7
    return (DIRENT64.pack(ino, off, reclen, dtype) + name).ljust(reclen, b"\0")


@syscall("getdents64", "fd", "ptr", "uint", level=PARTIAL,
         note="the listing is a snapshot taken at the first call after open or rewind")
def getdents64(k, t, fd, dirp, count):
    entry = k.fds.get(_fd(fd))
    ds = _dirstream(entry)
    if ds.entries is None:
        ds.entries = _host_call(lambda: _list_dir(entry.host))
    count &= 0xFFFFFFFF
    out = bytearray()
    pos = ds.pos
    while pos < len(ds.entries):
        ino, dtype, name = ds.entries[pos]
        rec = dirent64(ino, pos + 1, dtype, name)
        if len(out) + len(rec) > count:
            if not out:
                raise LinuxError(EINVAL)
            break
        out += rec
        pos += 1
    k.mem.write(dirp, bytes(out))
    ds.pos = pos
    return len(out)


@syscall("lseek", "fd", "long", "whence", ret="long")
def lseek(k, t, fd, offset, whence):
    entry = k.fds.get(_fd(fd))
    offset = _i64(offset)
    if isinstance(entry.obj, DirStream) or (entry.kind == "dir" and entry.obj is None):
        ds = _dirstream(entry)
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
    return _host_call(lambda: os.lseek(entry.host, offset, whence))


# ---- stat family -------------------------------------------------------------------------------
def _split_ns(ns: int) -> tuple[int, int]:
    return divmod(ns, 1_000_000_000)


def pack_stat(s: os.stat_result) -> bytes:
    a, m, c = _split_ns(s.st_atime_ns), _split_ns(s.st_mtime_ns), _split_ns(s.st_ctime_ns)
    return STAT.pack(s.st_dev, s.st_ino, s.st_nlink, s.st_mode, s.st_uid, s.st_gid, 0, s.st_rdev,
                     s.st_size, s.st_blksize, s.st_blocks, a[0], a[1], m[0], m[1], c[0], c[1])


def pack_statx(s: os.stat_result) -> bytes:
    a, m, c = _split_ns(s.st_atime_ns), _split_ns(s.st_mtime_ns), _split_ns(s.st_ctime_ns)
    return STATX.pack(STATX_BASIC_STATS, s.st_blksize, 0, s.st_nlink, s.st_uid, s.st_gid,
                      s.st_mode & 0xFFFF, 0, s.st_ino, s.st_size, s.st_blocks, 0,
                      a[0], a[1], 0, 0, 0, 0, c[0], c[1], 0, m[0], m[1], 0,
                      os.major(s.st_rdev), os.minor(s.st_rdev), os.major(s.st_dev), os.minor(s.st_dev),
                      0, 0, 0)


def _stat_at(k, dirfd: int, path: bytes, flags: int) -> os.stat_result:
    if not path:
        if not flags & AT_EMPTY_PATH:
            raise LinuxError(ENOENT)
        d = _i32(dirfd)
        if d == AT_FDCWD:
            return _host_call(lambda: os.stat("."))
        host = k.fds.host(_fd(d))
        return _host_call(lambda: os.fstat(host))
    follow = not flags & AT_SYMLINK_NOFOLLOW
    hp = _host_path(k, path, follow)
    dfd = _dirfd(k, dirfd, hp)
    return _host_call(lambda: os.stat(hp, dir_fd=dfd, follow_symlinks=follow))


@syscall("fstat", "fd", "ptr")
def fstat(k, t, fd, buf):
    host = k.fds.host(_fd(fd))
    k.mem.write(buf, pack_stat(_host_call(lambda: os.fstat(host))))
    return 0


@syscall("newfstatat", "dirfd", "str", "ptr", "atflags")
def newfstatat(k, t, dirfd, path, buf, flags):
    flags &= 0xFFFFFFFF
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT):
        raise LinuxError(EINVAL)
    s = _stat_at(k, dirfd, k.mem.read_cstr(path), flags)
    k.mem.write(buf, pack_stat(s))
    return 0


@syscall("stat", "str", "ptr")
def stat(k, t, path, buf):
    k.mem.write(buf, pack_stat(_stat_at(k, AT_FDCWD, _path(k, path), 0)))
    return 0


@syscall("lstat", "str", "ptr")
def lstat(k, t, path, buf):
    k.mem.write(buf, pack_stat(_stat_at(k, AT_FDCWD, _path(k, path), AT_SYMLINK_NOFOLLOW)))
    return 0


@syscall("statx", "dirfd", "str", "atflags", "hex", "ptr", level=PARTIAL,
         note="basic stats only (no btime, mnt_id or attributes)")
def statx(k, t, dirfd, path, flags, mask, buf):
    flags &= 0xFFFFFFFF
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE):
        raise LinuxError(EINVAL)
    if flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE or mask & STATX__RESERVED:
        raise LinuxError(EINVAL)
    if path == 0:
        if not flags & AT_EMPTY_PATH:
            raise LinuxError(EFAULT)
        p = b""
    else:
        p = k.mem.read_cstr(path)
    k.mem.write(buf, pack_statx(_stat_at(k, dirfd, p, flags)))
    return 0


def _statfs_host(fn, target) -> bytes:
    buf = ctypes.create_string_buffer(STATFS.size)
    _libc_check(fn(target, buf))
    return buf.raw


@syscall("statfs", "str", "ptr")
def statfs(k, t, path, buf):
    hp = _host_path(k, _path(k, path))
    k.mem.write(buf, _statfs_host(_libc.statfs, hp))
    return 0


@syscall("fstatfs", "fd", "ptr")
def fstatfs(k, t, fd, buf):
    host = k.fds.host(_fd(fd))
    k.mem.write(buf, _statfs_host(_libc.fstatfs, ctypes.c_int(host)))
    return 0


# ---- links and paths ----------------------------------------------------------------------------
def _readlink(k, dirfd: int, path: bytes) -> bytes:
    rest = _proc_self_rest(k, path)
    if rest == b"exe":
        return os.fsencode(k.exe_path)
    if rest is not None and rest.startswith(b"fd/") and b"/" not in rest[3:]:
        entry, _ = _fd_of_proc(k, rest)
        if entry.kind == "memfd":
            return os.fsencode(entry.path)
        return _host_call(lambda: os.readlink(b"/proc/self/fd/%d" % entry.host))
    hp = _host_path(k, path, follow=False) if rest is not None else path
    dfd = _dirfd(k, dirfd, hp)
    return _host_call(lambda: os.readlink(hp, dir_fd=dfd))


def _readlink_out(k, dirfd, path, buf, bufsiz) -> int:
    size = _i32(bufsiz)
    if size <= 0:
        raise LinuxError(EINVAL)
    target = _readlink(k, dirfd, k.mem.read_cstr(path))[:size]
    k.mem.write(buf, target)
    return len(target)


@syscall("readlinkat", "dirfd", "str", "obuf", "int")
def readlinkat(k, t, dirfd, path, buf, bufsiz):
    return _readlink_out(k, dirfd, path, buf, bufsiz)


@syscall("readlink", "str", "obuf", "int")
def readlink(k, t, path, buf, bufsiz):
    return _readlink_out(k, AT_FDCWD, path, buf, bufsiz)


def _unlink(k, dirfd: int, path: bytes, flags: int) -> int:
    flags &= 0xFFFFFFFF
    if flags & ~AT_REMOVEDIR:
        raise LinuxError(EINVAL)
    dfd = _dirfd(k, dirfd, path)
    if flags & AT_REMOVEDIR:
        _host_call(lambda: os.rmdir(path, dir_fd=dfd))
    else:
        _host_call(lambda: os.unlink(path, dir_fd=dfd))
    return 0


@syscall("unlinkat", "dirfd", "str", "atflags")
def unlinkat(k, t, dirfd, path, flags):
    return _unlink(k, dirfd, _path(k, path), flags)


@syscall("unlink", "str")
def unlink(k, t, path):
    return _unlink(k, AT_FDCWD, _path(k, path), 0)


@syscall("rmdir", "str")
def rmdir(k, t, path):
    return _unlink(k, AT_FDCWD, _path(k, path), AT_REMOVEDIR)


def _mkdir(k, dirfd: int, path: bytes, mode: int) -> int:
    dfd = _dirfd(k, dirfd, path)
    _host_call(lambda: os.mkdir(path, mode & 0o7777, dir_fd=dfd))
    return 0


@syscall("mkdirat", "dirfd", "str", "oct")
def mkdirat(k, t, dirfd, path, mode):
    return _mkdir(k, dirfd, _path(k, path), mode)


@syscall("mkdir", "str", "oct")
def mkdir(k, t, path, mode):
    return _mkdir(k, AT_FDCWD, _path(k, path), mode)


def _rename(k, olddirfd, oldpath: bytes, newdirfd, newpath: bytes, flags: int = 0) -> int:
    if flags:
        # RENAME_NOREPLACE / EXCHANGE / WHITEOUT: the host's renameat2 decides (EINVAL where unsupported)
        fn = getattr(_libc, "renameat2", None)
        if fn is None:
            raise LinuxError(EINVAL)
        _libc_check(fn(_raw_dirfd(k, olddirfd), oldpath, _raw_dirfd(k, newdirfd), newpath,
                       ctypes.c_uint(flags)))
        return 0
    sdfd, ddfd = _dirfd(k, olddirfd, oldpath), _dirfd(k, newdirfd, newpath)
    _host_call(lambda: os.rename(oldpath, newpath, src_dir_fd=sdfd, dst_dir_fd=ddfd))
    return 0


@syscall("renameat", "dirfd", "str", "dirfd", "str")
def renameat(k, t, olddirfd, oldpath, newdirfd, newpath):
    return _rename(k, olddirfd, _path(k, oldpath), newdirfd, _path(k, newpath))


@syscall("renameat2", "dirfd", "str", "dirfd", "str", "hex")
def renameat2(k, t, olddirfd, oldpath, newdirfd, newpath, flags):
    return _rename(k, olddirfd, _path(k, oldpath), newdirfd, _path(k, newpath), flags & 0xFFFFFFFF)


@syscall("rename", "str", "str")
def rename(k, t, oldpath, newpath):
    return _rename(k, AT_FDCWD, _path(k, oldpath), AT_FDCWD, _path(k, newpath))


def _symlink(k, target: bytes, dirfd: int, linkpath: bytes) -> int:
    dfd = _dirfd(k, dirfd, linkpath)
    _host_call(lambda: os.symlink(target, linkpath, dir_fd=dfd))
    return 0


@syscall("symlinkat", "str", "dirfd", "str")
def symlinkat(k, t, target, newdirfd, linkpath):
    return _symlink(k, _path(k, target), newdirfd, _path(k, linkpath))


@syscall("symlink", "str", "str")
def symlink(k, t, target, linkpath):
    return _symlink(k, _path(k, target), AT_FDCWD, _path(k, linkpath))


def _link(k, olddirfd, oldpath: bytes, newdirfd, newpath: bytes, flags: int) -> int:
    flags &= 0xFFFFFFFF
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        raise LinuxError(EINVAL)
    _libc_check(_libc.linkat(_raw_dirfd(k, olddirfd), oldpath, _raw_dirfd(k, newdirfd), newpath,
                             ctypes.c_int(flags)))
    return 0


@syscall("linkat", "dirfd", "str", "dirfd", "str", "atflags")
def linkat(k, t, olddirfd, oldpath, newdirfd, newpath, flags):
    old = k.mem.read_cstr(oldpath)
    if not old and not flags & AT_EMPTY_PATH:
        raise LinuxError(ENOENT)
    return _link(k, olddirfd, old, newdirfd, _path(k, newpath), flags)


@syscall("link", "str", "str")
def link(k, t, oldpath, newpath):
    return _link(k, AT_FDCWD, _path(k, oldpath), AT_FDCWD, _path(k, newpath), 0)


# ---- permissions, ownership, times, sizes ---------------------------------------------------------
@syscall("fchmod", "fd", "oct")
def fchmod(k, t, fd, mode):
    host = k.fds.host(_fd(fd))
    _host_call(lambda: os.fchmod(host, mode & 0o7777))
    return 0


def _chmod(k, dirfd, path: bytes, mode: int) -> int:
    dfd = _dirfd(k, dirfd, path)
    _host_call(lambda: os.chmod(path, mode & 0o7777, dir_fd=dfd))
    return 0


@syscall("fchmodat", "dirfd", "str", "oct")
def fchmodat(k, t, dirfd, path, mode):
    return _chmod(k, dirfd, _path(k, path), mode)


@syscall("chmod", "str", "oct")
def chmod(k, t, path, mode):
    return _chmod(k, AT_FDCWD, _path(k, path), mode)


@syscall("fchown", "fd", "int", "int")
def fchown(k, t, fd, uid, gid):
    host = k.fds.host(_fd(fd))
    _host_call(lambda: os.fchown(host, _id(uid), _id(gid)))
    return 0


def _chown(k, dirfd, path: bytes, uid: int, gid: int, flags: int) -> int:
    flags &= 0xFFFFFFFF
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise LinuxError(EINVAL)
    if not path:
        if not flags & AT_EMPTY_PATH:
            raise LinuxError(ENOENT)
        d = _i32(dirfd)
        if d == AT_FDCWD:
            _host_call(lambda: os.chown(".", _id(uid), _id(gid)))
        else:
            host = k.fds.host(_fd(d))
            _host_call(lambda: os.fchown(host, _id(uid), _id(gid)))
        return 0
    dfd = _dirfd(k, dirfd, path)
    follow = not flags & AT_SYMLINK_NOFOLLOW
    _host_call(lambda: os.chown(path, _id(uid), _id(gid), dir_fd=dfd, follow_symlinks=follow))
    return 0


@syscall("fchownat", "dirfd", "str", "int", "int", "atflags")
def fchownat(k, t, dirfd, path, uid, gid, flags):
    return _chown(k, dirfd, k.mem.read_cstr(path), uid, gid, flags)


@syscall("chown", "str", "int", "int")
def chown(k, t, path, uid, gid):
    return _chown(k, AT_FDCWD, _path(k, path), uid, gid, 0)


@syscall("lchown", "str", "int", "int")
def lchown(k, t, path, uid, gid):
    return _chown(k, AT_FDCWD, _path(k, path), uid, gid, AT_SYMLINK_NOFOLLOW)


@syscall("ftruncate", "fd", "long")
def ftruncate(k, t, fd, length):
    host = k.fds.host(_fd(fd))
    length = _i64(length)
    if length < 0:
        raise LinuxError(EINVAL)
    _host_call(lambda: os.ftruncate(host, length))
    return 0


@syscall("truncate", "str", "long")
def truncate(k, t, path, length):
    p = _path(k, path)
    length = _i64(length)
    if length < 0:
        raise LinuxError(EINVAL)
    _host_call(lambda: os.truncate(p, length))
    return 0


@syscall("fsync", "fd")
def fsync(k, t, fd):
    host = k.fds.host(_fd(fd))
    _host_call(lambda: os.fsync(host))
    return 0


@syscall("fdatasync", "fd")
def fdatasync(k, t, fd):
    host = k.fds.host(_fd(fd))
    _host_call(lambda: os.fdatasync(host))
    return 0


@syscall("sync")
def sync(k, t):
    os.sync()
    return 0


@syscall("syncfs", "fd")
def syncfs(k, t, fd):
    host = k.fds.host(_fd(fd))
    _libc_check(_libc.syncfs(ctypes.c_int(host)))
    return 0


@syscall("utimensat", "dirfd", "str", "ptr", "atflags")
def utimensat(k, t, dirfd, path, times, flags):
    flags &= 0xFFFFFFFF
    ts = None
    if times:
        ts = ctypes.create_string_buffer(k.mem.read(times, TIMESPEC2_SIZE), TIMESPEC2_SIZE)
    if path == 0:
        # futimens(dirfd, times): the fd itself
        d = _i32(dirfd)
        if d == AT_FDCWD:
            raise LinuxError(EFAULT)
        if flags & ~AT_EMPTY_PATH:
            raise LinuxError(EINVAL)
        host = k.fds.host(_fd(d))
        _libc_check(_libc.futimens(ctypes.c_int(host), ts))
        return 0
    p = k.mem.read_cstr(path)
    hp = _host_path(k, p, follow=not flags & AT_SYMLINK_NOFOLLOW) if p else p
    d = AT_FDCWD if hp.startswith(b"/") else _raw_dirfd(k, dirfd)
    _libc_check(_libc.utimensat(ctypes.c_int(d), hp, ts, ctypes.c_int(flags)))
    return 0


def _access(k, dirfd, path: bytes, mode: int, flags: int) -> int:
    flags &= 0xFFFFFFFF
    if mode & ~7 or flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise LinuxError(EINVAL)
    if not path and not flags & AT_EMPTY_PATH:
        raise LinuxError(ENOENT)
    hp = _host_path(k, path, follow=not flags & AT_SYMLINK_NOFOLLOW) if path else path
    d = AT_FDCWD if hp.startswith(b"/") else _raw_dirfd(k, dirfd)
    _libc_check(_libc.faccessat(ctypes.c_int(d), hp, ctypes.c_int(mode), ctypes.c_int(flags)))
    return 0


@syscall("access", "str", "accessmode")
def access(k, t, path, mode):
    return _access(k, AT_FDCWD, _path(k, path), mode, 0)


@syscall("faccessat", "dirfd", "str", "accessmode")
def faccessat(k, t, dirfd, path, mode):
    return _access(k, dirfd, _path(k, path), mode, 0)


@syscall("faccessat2", "dirfd", "str", "accessmode", "atflags")
def faccessat2(k, t, dirfd, path, mode, flags):
    return _access(k, dirfd, k.mem.read_cstr(path), mode, flags)


# ---- working directory ----------------------------------------------------------------------
@syscall("getcwd", "obuf", "size")
def getcwd(k, t, buf, size):
    cwd = (k.proc.cwd or _host_call(os.getcwdb)) + b"\0"
    if size < len(cwd):
        raise LinuxError(ERANGE)
    k.mem.write(buf, cwd)
    return len(cwd)


@syscall("chdir", "str")
def chdir(k, t, path):
    hp = _host_path(k, _path(k, path))
    if k.proc is not k.main_proc:
        # a vfork child: its cwd is its own (goemu's cwd belongs to the main process)
        full = os.path.normpath(os.path.join(k.proc.cwd or os.getcwdb(), hp))
        if not os.path.isdir(full):
            raise LinuxError(ENOENT if not os.path.exists(full) else ENOTDIR)
        k.proc.cwd = full
        return 0
    _host_call(lambda: os.chdir(hp))
    return 0


@syscall("fchdir", "fd")
def fchdir(k, t, fd):
    host = k.fds.host(_fd(fd))
    if k.proc is not k.main_proc:
        k.proc.cwd = os.readlink(f"/proc/self/fd/{host}").encode()
        return 0
    _host_call(lambda: os.fchdir(host))
    return 0


# ---- descriptors ------------------------------------------------------------------------------
@syscall("dup", "fd", ret="fd")
def dup(k, t, fd):
    return k.fds.dup(_fd(fd))


@syscall("dup2", "fd", "fd", ret="fd")
def dup2(k, t, oldfd, newfd):
    oldfd, newfd = _fd(oldfd), _fd(newfd)
    if oldfd == newfd:
        k.fds.get(oldfd)
        return newfd
    return k.fds.dup(oldfd, at=newfd)


@syscall("dup3", "fd", "fd", "openflags", ret="fd")
def dup3(k, t, oldfd, newfd, flags):
    oldfd, newfd = _fd(oldfd), _fd(newfd)
    if flags & 0xFFFFFFFF & ~O_CLOEXEC or oldfd == newfd:
        raise LinuxError(EINVAL)
    return k.fds.dup(oldfd, at=newfd, cloexec=bool(flags & O_CLOEXEC))


def _lock(entry: Fd, k, cmd: int, arg: int) -> int:
    data = k.mem.read(arg, FLOCK_SIZE)
    result = _host_call(lambda: fcntl.fcntl(entry.host, cmd, data))
    if cmd in (F_GETLK, F_OFD_GETLK):
        k.mem.write(arg, result[:FLOCK_SIZE])
    return 0


@syscall("fcntl", "fd", "fcntlcmd", "hex", level=PARTIAL,
         note="dup, fd flags, status flags, record locks (on the host), pipe size, seals; "
              "not F_SETOWN/F_SETSIG/leases/notify")
def fcntl_(k, t, fd, cmd, arg):
    fd = _fd(fd)
    entry = k.fds.get(fd)
    cmd &= 0xFFFFFFFF
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        start = _i32(arg)
        if start < 0 or start >= MAX_FDS:
            raise LinuxError(EINVAL)
        return k.fds.dup(fd, start=start, cloexec=cmd == F_DUPFD_CLOEXEC)
    if cmd == F_GETFD:
        return FD_CLOEXEC if entry.cloexec else 0
    if cmd == F_SETFD:
        entry.cloexec = bool(arg & FD_CLOEXEC)
        return 0
    if cmd == F_GETFL:
        return _host_call(lambda: fcntl.fcntl(entry.host, fcntl.F_GETFL))
    if cmd == F_SETFL:
        _host_call(lambda: fcntl.fcntl(entry.host, fcntl.F_SETFL, _i32(arg)))
        return 0
    if cmd in (F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW):
        return _lock(entry, k, cmd, arg)
    if cmd in (F_GETPIPE_SZ, F_SETPIPE_SZ, F_ADD_SEALS, F_GET_SEALS):
        return _host_call(lambda: fcntl.fcntl(entry.host, cmd, _i32(arg)))
    raise LinuxError(EINVAL)


def _set_nonblock(host: int, on: bool) -> None:
    flags = fcntl.fcntl(host, fcntl.F_GETFL)
    fcntl.fcntl(host, fcntl.F_SETFL, flags | O_NONBLOCK if on else flags & ~O_NONBLOCK)


@syscall("ioctl", "fd", "ioctlcmd", "hex", level=PARTIAL,
         note="terminal attributes and window size, FIONREAD, FIONBIO, FIOCLEX/FIONCLEX; "
              "others ENOTTY")
def ioctl(k, t, fd, request, arg):
    entry = k.fds.get(_fd(fd))
    host = entry.host
    request &= 0xFFFFFFFF
    if request == TCGETS:
        k.mem.write(arg, _host_call(lambda: fcntl.ioctl(host, TCGETS, bytes(TERMIOS_SIZE))))
        return 0
    if request in (TCSETS, TCSETSW, TCSETSF):
        data = k.mem.read(arg, TERMIOS_SIZE)
        _host_call(lambda: fcntl.ioctl(host, request, data))
        return 0
    if request == TIOCGWINSZ:
        k.mem.write(arg, _host_call(lambda: fcntl.ioctl(host, TIOCGWINSZ, bytes(WINSIZE_SIZE))))
        return 0
    if request == TIOCSWINSZ:
        data = k.mem.read(arg, WINSIZE_SIZE)
        _host_call(lambda: fcntl.ioctl(host, TIOCSWINSZ, data))
        return 0
    if request == TIOCGPGRP:
        pgrp = struct.unpack("<i", _host_call(lambda: fcntl.ioctl(host, TIOCGPGRP, bytes(4))))[0]
        k.mem.write_u32(arg, k.pid if pgrp == os.getpgrp() else pgrp)
        return 0
    if request == FIONREAD:
        k.mem.write(arg, _host_call(lambda: fcntl.ioctl(host, FIONREAD, bytes(4))))
        return 0
    if request == FIONBIO:
        on = k.mem.read_u32(arg) != 0
        _host_call(lambda: _set_nonblock(host, on))
        return 0
    if request in (FIOCLEX, FIONCLEX):
        entry.cloexec = request == FIOCLEX
        return 0
    raise LinuxError(ENOTTY)


# ---- copying ------------------------------------------------------------------------------------
@syscall("sendfile", "fd", "fd", "ptr", "size")
def sendfile(k, t, out_fd, in_fd, offset_ptr, count):
    out_host, in_host = k.fds.host(_fd(out_fd)), k.fds.host(_fd(in_fd))
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
    in_host, out_host = k.fds.host(_fd(fd_in)), k.fds.host(_fd(fd_out))
    if flags:
        raise LinuxError(EINVAL)
    src = k.mem.read_i64(off_in) if off_in else None
    dst = k.mem.read_i64(off_out) if off_out else None
    if (src is not None and src < 0) or (dst is not None and dst < 0):
        raise LinuxError(EINVAL)
    length = min(length, MAX_RW_COUNT)
    n = _host_call(lambda: os.copy_file_range(in_host, out_host, length, src, dst))
    if off_in:
        k.mem.write_u64(off_in, src + n)
    if off_out:
        k.mem.write_u64(off_out, dst + n)
    return n


@syscall("fadvise64", "fd", "long", "long", "int")
def fadvise64(k, t, fd, offset, length, advice):
    host = k.fds.host(_fd(fd))
    _host_call(lambda: os.posix_fadvise(host, _i64(offset), _i64(length), _i32(advice)))
    return 0


@syscall("flock", "fd", "flockop", level=PARTIAL,
         note="on the host: a blocking lock held through another guest fd blocks the emulator")
def flock(k, t, fd, operation):
    host = k.fds.host(_fd(fd))
    op = _i32(operation)
    _host_call(lambda: fcntl.flock(host, op))
    return 0

