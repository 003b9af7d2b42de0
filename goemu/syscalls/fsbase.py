"""What the file-system syscall modules share (no handlers here): Linux constants, argument
decoding, host errors as guest errnos, guest buffers, and the directory-stream state.

The file-system family is layered, each module importing only the ones above it:
``fsbase`` -> ``procfs`` (the guest's /proc tree) -> ``proctext`` (its files' text) ->
``confined`` (paths under a sandbox) -> ``paths``
(path resolution, open, links, cwd) -> ``fs`` (read/write, descriptors), ``dirs`` (directories,
names), ``meta`` (stat and metadata).
"""
from __future__ import annotations

import ctypes
import os
import stat as st
from typing import Callable

from ..errno import EFAULT, ENOTDIR, LinuxError, from_oserror
from ..fdtable import Fd
from ..memory import PROT_READ, PROT_WRITE

# ---- Linux constants (x86-64) --------------------------------------------------------
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR, AT_EACCESS = 0x100, 0x200, 0x200
AT_SYMLINK_FOLLOW, AT_NO_AUTOMOUNT, AT_EMPTY_PATH = 0x400, 0x800, 0x1000
AT_STATX_SYNC_TYPE = 0x6000
O_ACCMODE, O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_TRUNC = 0o3, 0o0, 0o1, 0o100, 0o200, 0o1000
O_NONBLOCK, O_DIRECTORY, O_NOFOLLOW, O_CLOEXEC = 0o4000, 0o200000, 0o400000, 0o2000000
O_PATH = 0o10000000
SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2
MAX_RW_COUNT = 0x7FFFF000          # Linux caps every read/write at this
IO_CHUNK = 64 << 20                # and goemu at this (a short read is legal)
DT_UNKNOWN, DT_FIFO, DT_CHR, DT_DIR, DT_BLK, DT_REG, DT_LNK, DT_SOCK = 0, 1, 2, 4, 6, 8, 10, 12

libc = ctypes.CDLL(None, use_errno=True)


# ---- argument decoding -------------------------------------------------------------------
def i32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def i64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >> 63 else v


def fdarg(v: int) -> int:
    """An fd argument (unsigned int in the kernel: a negative value is just a bad fd)."""
    return v & 0xFFFFFFFF


def idarg(v: int) -> int:
    """A uid/gid argument: (uid_t)-1 means "leave unchanged"."""
    v &= 0xFFFFFFFF
    return -1 if v == 0xFFFFFFFF else v


# ---- host errors ------------------------------------------------------------------------------
def host_call(fn: Callable):
    """Run a host operation; its OSError becomes the guest's errno."""
    try:
        return fn()
    except OSError as e:
        raise from_oserror(e) from None


def libc_check(r: int) -> int:
    if r == -1:
        raise from_oserror(OSError(ctypes.get_errno(), ""))
    return r


# ---- guest buffers ------------------------------------------------------------------------------
def accessible_len(k, addr: int, n: int, write: bool) -> int:
    """How many bytes from addr (up to n) the guest can read (or write): a buffer that runs into
    a hole gives a short transfer, as Linux's copy_to_user/copy_from_user do."""
    done = 0
    while done < n:
        v = k.mem.find(addr + done)
        if v is None or not v.prot & PROT_READ or (write and not v.prot & PROT_WRITE):
            break
        done = min(n, v.end - addr)
    return done


def out_len(k, buf: int, count: int, cap: int = IO_CHUNK) -> int:
    """The number of bytes to produce into a guest buffer: EFAULT if not even one fits."""
    count = min(count, cap)
    if count == 0:
        return 0
    n = accessible_len(k, buf, count, write=True)
    if n == 0:
        raise LinuxError(EFAULT)
    return n


def in_bytes(k, buf: int, count: int, cap: int = IO_CHUNK) -> bytes:
    count = min(count, cap)
    if count == 0:
        return b""
    n = accessible_len(k, buf, count, write=False)
    if n == 0:
        raise LinuxError(EFAULT)
    return k.mem.read(buf, n)


# ---- directory streams ------------------------------------------------------------------------
Listing = list[tuple[int, int, bytes]]      # (d_ino, d_type, name)


class DirStream:
    """getdents64 position of one open directory description (shared by dup'ed fds).

    The listing is taken on the first getdents64 after open or a rewind; d_off cookies are
    indices into it, so lseek(fd, d_off, SEEK_SET) resumes after that entry. ``list`` makes
    the listing; a virtual directory (``procfs.ProcDir``) overrides it."""

    def __init__(self) -> None:
        self.entries: Listing | None = None
        self.pos = 0

    def list(self, host: int) -> Listing:
        out = []
        with os.scandir(host) as it:       # the host's readdir order
            for e in it:
                out.append((e.inode(), dtype_of(e), os.fsencode(e.name)))
        dots = [(os.stat(name, dir_fd=host, follow_symlinks=False).st_ino, DT_DIR, name)
                for name in (b".", b"..")]
        return dots + out


def dtype_of(entry: os.DirEntry) -> int:
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


def dirstream(entry: Fd) -> DirStream:
    """The fd's directory stream (made on first use); ENOTDIR for other kinds of fd."""
    if entry.obj is None:
        entry.obj = DirStream()
    if not isinstance(entry.obj, DirStream):
        raise LinuxError(ENOTDIR)
    return entry.obj
