"""Unit tests of the fs and proc syscall handlers on a fake kernel: real guest memory (a
Unicorn instance with one RW scratch region) and a real fd table, no guest code.

The host kernel is the oracle: struct layouts are compared byte for byte with what the raw host
syscall writes (the host is x86-64 Linux, like the guest), and results with os.* calls.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import platform
import resource
import stat
import struct
import sys
import termios

import pytest

from goemu.process import Process
from goemu.clock import HostClock
from goemu.cpu import make_uc
from goemu.errno import EBADF, EFAULT, EINVAL, ENOENT, ENOTTY, EPIPE, ERANGE, ESRCH, LinuxError
from goemu.fdtable import MAX_FDS, Fd, FdTable
from goemu.itimers import ITimers
from goemu.memory import PROT_READ, PROT_WRITE, Memory
from goemu.signals import Signals
from goemu.syscalls import HANDLERS, dirs, fs, meta, proc
from goemu.syscalls.table import BY_NAME
from goemu.thread import Thread

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64" or not sys.platform.startswith("linux"),
                                reason="the host kernel is the oracle: needs x86-64 Linux")

SCRATCH = 0x10000000
SCRATCH_SIZE = 1 << 20
AT_FDCWD = -100
O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL = 0, 1, 2, 0o100, 0o200
O_NONBLOCK, O_DIRECTORY, O_CLOEXEC = 0o4000, 0o200000, 0o2000000
U64 = (1 << 64) - 1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def host_syscall(nr: int, *args) -> tuple[int, int]:
    """The raw host syscall (the oracle): (result, errno)."""
    conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    r = _libc.syscall(ctypes.c_long(nr), *conv)
    return r, (ctypes.get_errno() if r == -1 else 0)


class FakeKernel:
    def __init__(self, exe: str) -> None:
        self.uc = make_uc()
        self.mem = Memory(self.uc)
        self.mem.map(SCRATCH, SCRATCH_SIZE, PROT_READ | PROT_WRITE, "[scratch]")
        self._top = SCRATCH
        self.fds = FdTable()
        self.exe_path = exe
        self.argv = [b"prog", b"one", b"two words", b""]
        self.envp = [b"HOME=/nowhere", b"A=1"]
        self.auxv = struct.pack("<6Q", 6, 4096, 25, 0x1234, 0, 0)
        self.pid = 4242
        self.ncpus = 3
        self.deterministic = False
        self.clock = HostClock()
        self.itimers = ITimers()
        self.signals = Signals()
        self.main_proc = self.proc = Process(self.pid, self.fds, self.signals)
        self.threads = {self.pid: Thread(self.pid, proc=self.proc), self.pid + 1: Thread(self.pid + 1, proc=self.proc)}
        self.stopped: str | None = None

    def note(self, text: str) -> None:
        pass

    def stop(self, reason: str, then=None) -> None:
        self.stopped = reason

    # scratch allocation for test arguments
    def alloc(self, n: int) -> int:
        addr = self._top
        self._top += (n + 15) & ~15
        assert self._top <= SCRATCH + SCRATCH_SIZE
        return addr

    def put(self, data: bytes) -> int:
        addr = self.alloc(len(data) + 1)
        self.mem.write(addr, data + b"\0")
        return addr

    def s(self, path) -> int:
        return self.put(os.fsencode(path))


@pytest.fixture
def k(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kern = FakeKernel(os.path.realpath(sys.executable))
    yield kern
    kern.fds.close_all()


def sc(k, name: str, *args) -> int:
    """Call a handler as the dispatcher does: u64 arguments, -errno on LinuxError."""
    t = k.threads[k.pid]
    try:
        return HANDLERS[BY_NAME[name]].fn(k, t, *[a & U64 for a in args])
    except LinuxError as e:
        return -e.errno


def open_file(k, path, flags=O_RDWR | O_CREAT, mode=0o644) -> int:
    fd = sc(k, "openat", AT_FDCWD, k.s(path), flags, mode)
    assert fd >= 0, fd
    return fd


# ---- struct layouts ------------------------------------------------------------------------------
def test_struct_sizes():
    assert meta.STAT.size == 144
    assert meta.STATX.size == 256
    assert meta.STATFS.size == 120
    assert dirs.DIRENT64.size == 19
    assert fs.IOVEC.size == 16
    assert proc.UTSNAME.size == 390
    assert proc.SYSINFO.size == 112
    assert proc.RUSAGE.size == 144
    assert proc.RLIMIT.size == 16
    assert proc.TMS.size == 32


def test_stat_bytes_match_host_fstat(k, tmp_path):
    (tmp_path / "f").write_bytes(b"x" * 5000)
    fd = open_file(k, "f", O_RDONLY)
    buf = k.alloc(144)
    assert sc(k, "fstat", fd, buf) == 0
    raw = ctypes.create_string_buffer(144)
    assert host_syscall(5, k.fds.host(fd), raw) == (0, 0)
    assert k.mem.read(buf, 144) == raw.raw


def test_statx_matches_host(k, tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    buf = k.alloc(256)
    assert sc(k, "statx", AT_FDCWD, k.s("f"), 0, 0xFFF, buf) == 0
    ours = meta.STATX.unpack(k.mem.read(buf, 256))
    raw = ctypes.create_string_buffer(256)
    assert host_syscall(332, AT_FDCWD, b"f", 0, 0xFFF, raw) == (0, 0)
    host = meta.STATX.unpack(raw.raw)
    # blksize, nlink, uid, gid, mode, ino, size, blocks; atime/ctime/mtime; rdev and dev
    for i in (1, 3, 4, 5, 6, 8, 9, 10, 12, 13, 18, 19, 21, 22, 24, 25, 26, 27):
        assert ours[i] == host[i], i
    assert ours[0] & 0x7FF == 0x7FF
    assert sc(k, "statx", AT_FDCWD, k.s("f"), 0x6000, 0xFFF, buf) == -EINVAL
    assert sc(k, "statx", AT_FDCWD, k.s("missing"), 0, 0xFFF, buf) == -ENOENT


def test_statfs_matches_host(k, tmp_path):
    buf = k.alloc(120)
    assert sc(k, "statfs", k.s(str(tmp_path)), buf) == 0
    raw = ctypes.create_string_buffer(120)
    assert host_syscall(137, os.fsencode(str(tmp_path)), raw) == (0, 0)
    ours, host = meta.STATFS.unpack(k.mem.read(buf, 120)), meta.STATFS.unpack(raw.raw)
    assert ours[:2] == host[:2] and ours[7:] == host[7:]      # type, bsize; fsid, namelen, ...
    sv = os.statvfs(tmp_path)
    assert ours[1] == sv.f_bsize and ours[2] == sv.f_blocks and ours[9] == sv.f_namemax
    fd = open_file(k, ".", O_RDONLY | O_DIRECTORY)
    buf2 = k.alloc(120)
    assert sc(k, "fstatfs", fd, buf2) == 0
    assert meta.STATFS.unpack(k.mem.read(buf2, 120))[:2] == host[:2]


# ---- open / read / write / lseek / fstat ------------------------------------------------------------
def test_open_write_read_lseek_fstat(k, tmp_path):
    fd = open_file(k, "data.txt", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
    entry = k.fds.get(fd)
    assert entry.cloexec and entry.kind == "file"
    assert not os.get_inheritable(entry.host)
    assert sc(k, "fcntl", fd, 1, 0) == 1                       # F_GETFD: FD_CLOEXEC

    msg = k.put(b"hello, world")
    assert sc(k, "write", fd, msg, 12) == 12
    assert sc(k, "lseek", fd, 0, 1) == 12                       # SEEK_CUR
    assert sc(k, "lseek", fd, 0, 0) == 0
    buf = k.alloc(64)
    assert sc(k, "read", fd, buf, 5) == 5
    assert k.mem.read(buf, 5) == b"hello"
    assert sc(k, "read", fd, buf, 0) == 0
    assert sc(k, "read", fd, buf, 64) == 7
    assert sc(k, "read", fd, buf, 64) == 0                       # EOF
    assert sc(k, "lseek", fd, -1, 0) == -EINVAL

    st_buf = k.alloc(144)
    assert sc(k, "fstat", fd, st_buf) == 0
    s = meta.STAT.unpack(k.mem.read(st_buf, 144))
    host = os.stat(tmp_path / "data.txt")
    assert s[1] == host.st_ino and s[8] == 12 == host.st_size
    assert s[3] == host.st_mode and stat.S_IMODE(s[3]) == 0o640 & ~os.umask(os.umask(0))
    assert s[2] == host.st_nlink and s[4] == host.st_uid
    assert s[13] * 10**9 + s[14] == host.st_mtime_ns

    assert sc(k, "openat", AT_FDCWD, k.s("data.txt"), O_CREAT | O_EXCL | O_RDWR, 0o600) == -17
    assert sc(k, "openat", AT_FDCWD, k.s(""), O_RDONLY, 0) == -ENOENT
    assert sc(k, "openat", 77, k.s("data.txt"), O_RDONLY, 0) == -EBADF
    assert sc(k, "openat", 77, k.s(str(tmp_path / "data.txt")), O_RDONLY, 0) >= 0   # absolute: dirfd ignored
    assert sc(k, "close", fd) == 0
    assert sc(k, "close", fd) == -EBADF
    assert sc(k, "read", fd, buf, 1) == -EBADF


def test_read_into_bad_buffer(k, tmp_path):
    (tmp_path / "f").write_bytes(b"0123456789")
    fd = open_file(k, "f", O_RDONLY)
    assert sc(k, "read", fd, 0x1000, 4) == -EFAULT
    end = SCRATCH + SCRATCH_SIZE - 3                               # only 3 bytes before the hole
    assert sc(k, "read", fd, end, 10) == 3
    assert k.mem.read(end, 3) == b"012"
    assert sc(k, "lseek", fd, 0, 1) == 3                           # nothing was lost
    assert sc(k, "write", fd, 0x1000, 4) == -EFAULT


def test_pread_pwrite_readv_writev(k):
    fd = open_file(k, "v")
    iov = k.alloc(48)
    a, b, c = k.put(b"abc"), k.put(b"defg"), k.put(b"hi")
    k.mem.write(iov, struct.pack("<6Q", a, 3, b, 4, c, 2))
    assert sc(k, "writev", fd, iov, 3) == 9
    assert sc(k, "pwrite64", fd, k.put(b"XY"), 2, 1) == 2
    buf = k.alloc(16)
    assert sc(k, "pread64", fd, buf, 16, 0) == 9
    assert k.mem.read(buf, 9) == b"aXYdefghi"
    assert sc(k, "pread64", fd, buf, 1, -1) == -EINVAL
    assert sc(k, "lseek", fd, 0, 0) == 0
    o1, o2 = k.alloc(4), k.alloc(8)
    k.mem.write(iov, struct.pack("<4Q", o1, 4, o2, 8))
    assert sc(k, "readv", fd, iov, 2) == 9
    assert k.mem.read(o1, 4) == b"aXYd" and k.mem.read(o2, 5) == b"efghi"
    assert sc(k, "readv", fd, iov, 1025) == -EINVAL
    assert sc(k, "writev", fd, iov, -1) == -EINVAL


def test_write_to_closed_pipe_is_epipe_and_sigpipe(k):
    r, w = os.pipe()
    os.close(r)
    fd = k.fds.install(Fd(w, False, "pipe:[w]", "pipe"))
    assert sc(k, "write", fd, k.put(b"x"), 1) == -EPIPE
    assert 13 in k.threads[k.pid].pending and k.stopped == "signal"


# ---- stat family ------------------------------------------------------------------------------------
def test_newfstatat(k, tmp_path):
    (tmp_path / "target").write_bytes(b"12345")
    os.symlink("target", tmp_path / "link")
    buf = k.alloc(144)
    assert sc(k, "newfstatat", AT_FDCWD, k.s("missing"), buf, 0) == -ENOENT
    assert sc(k, "newfstatat", AT_FDCWD, k.s(""), buf, 0) == -ENOENT
    assert sc(k, "newfstatat", AT_FDCWD, k.s("link"), buf, 0) == 0
    s = meta.STAT.unpack(k.mem.read(buf, 144))
    assert stat.S_ISREG(s[3]) and s[8] == 5
    assert sc(k, "newfstatat", AT_FDCWD, k.s("link"), buf, 0x100) == 0    # AT_SYMLINK_NOFOLLOW
    s = meta.STAT.unpack(k.mem.read(buf, 144))
    assert stat.S_ISLNK(s[3]) and s[1] == os.lstat(tmp_path / "link").st_ino
    assert sc(k, "newfstatat", AT_FDCWD, k.s("link"), buf, 0x4) == -EINVAL
    # relative to a directory fd, and AT_EMPTY_PATH on the fd itself
    os.mkdir(tmp_path / "d")
    (tmp_path / "d" / "inner").write_bytes(b"")
    dfd = open_file(k, "d", O_RDONLY | O_DIRECTORY)
    assert k.fds.get(dfd).kind == "dir"
    assert sc(k, "newfstatat", dfd, k.s("inner"), buf, 0) == 0
    assert meta.STAT.unpack(k.mem.read(buf, 144))[1] == os.stat(tmp_path / "d" / "inner").st_ino
    assert sc(k, "newfstatat", dfd, k.s(""), buf, 0x1000) == 0
    assert meta.STAT.unpack(k.mem.read(buf, 144))[1] == os.stat(tmp_path / "d").st_ino
    assert sc(k, "newfstatat", 99, k.s("inner"), buf, 0) == -EBADF
    assert sc(k, "stat", k.s("link"), buf) == 0
    assert stat.S_ISREG(meta.STAT.unpack(k.mem.read(buf, 144))[3])
    assert sc(k, "lstat", k.s("link"), buf) == 0
    assert stat.S_ISLNK(meta.STAT.unpack(k.mem.read(buf, 144))[3])
    assert sc(k, "newfstatat", AT_FDCWD, k.s("target"), 0x1000, 0) == -EFAULT


# ---- directories -----------------------------------------------------------------------------------
def parse_dirents(data: bytes) -> list[tuple[int, int, int, bytes]]:
    out, pos = [], 0
    while pos < len(data):
        ino, off, reclen, dtype = dirs.DIRENT64.unpack_from(data, pos)
        assert reclen % 8 == 0
        name = data[pos + 19:pos + reclen].split(b"\0", 1)[0]
        out.append((ino, off, dtype, name))
        pos += reclen
    return out


def host_getdents(path) -> dict[bytes, tuple[int, int]]:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        out = {}
        buf = ctypes.create_string_buffer(65536)
        while True:
            n, err = host_syscall(217, fd, buf, 65536)
            assert err == 0
            if n == 0:
                return out
            for ino, _, dtype, name in parse_dirents(buf.raw[:n]):
                out[name] = (ino, dtype)
    finally:
        os.close(fd)


def test_getdents64(k, tmp_path):
    for name in ("alpha", "b", "a-much-longer-file-name-than-the-others"):
        (tmp_path / name).write_bytes(b"")
    os.mkdir(tmp_path / "sub")
    os.symlink("alpha", tmp_path / "ln")
    os.mkfifo(tmp_path / "fifo")
    fd = open_file(k, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    buf = k.alloc(4096)
    assert sc(k, "getdents64", fd, buf, 10) == -EINVAL             # too small for one entry
    got = []
    while True:
        n = sc(k, "getdents64", fd, buf, 64)                      # small buffer: several calls
        assert n >= 0
        if n == 0:
            break
        got += parse_dirents(k.mem.read(buf, n))
    names = [g[3] for g in got]
    assert sorted(names) == sorted([b".", b".."] + [os.fsencode(n) for n in os.listdir(tmp_path)])
    assert len(set(names)) == len(names)
    host = host_getdents(tmp_path)
    assert {g[3]: (g[0], g[2]) for g in got} == host               # same inodes and d_types
    # rewind, and resume from a d_off
    assert sc(k, "lseek", fd, 0, 0) == 0
    n = sc(k, "getdents64", fd, buf, 4096)
    again = parse_dirents(k.mem.read(buf, n))
    assert [g[3] for g in again] == names
    assert sc(k, "lseek", fd, again[2][1], 0) == again[2][1]
    n = sc(k, "getdents64", fd, buf, 4096)
    assert [g[3] for g in parse_dirents(k.mem.read(buf, n))] == names[3:]
    # a dup shares the position, as it shares the open file description
    fd2 = sc(k, "dup", fd)
    assert sc(k, "getdents64", fd2, buf, 4096) == 0
    reg = open_file(k, "alpha", O_RDONLY)
    assert sc(k, "getdents64", reg, buf, 4096) == -20                # ENOTDIR


def test_mkdir_rename_unlink_links(k, tmp_path):
    assert sc(k, "mkdirat", AT_FDCWD, k.s("d"), 0o755) == 0
    assert (tmp_path / "d").is_dir()
    assert sc(k, "mkdir", k.s("d"), 0o755) == -17
    dfd = open_file(k, "d", O_RDONLY | O_DIRECTORY)
    fd = sc(k, "openat", dfd, k.s("f"), O_CREAT | O_WRONLY, 0o600)
    assert fd >= 0 and (tmp_path / "d" / "f").exists()
    assert sc(k, "renameat", dfd, k.s("f"), AT_FDCWD, k.s("g")) == 0
    assert (tmp_path / "g").exists() and not (tmp_path / "d" / "f").exists()
    assert sc(k, "renameat2", AT_FDCWD, k.s("g"), AT_FDCWD, k.s("h"), 0) == 0
    (tmp_path / "other").write_bytes(b"")
    assert sc(k, "renameat2", AT_FDCWD, k.s("h"), AT_FDCWD, k.s("other"), 1) == -17   # NOREPLACE
    assert sc(k, "symlinkat", k.s("h"), AT_FDCWD, k.s("sym")) == 0
    assert os.readlink(tmp_path / "sym") == "h"
    assert sc(k, "linkat", AT_FDCWD, k.s("h"), AT_FDCWD, k.s("hard"), 0) == 0
    assert os.stat(tmp_path / "hard").st_ino == os.stat(tmp_path / "h").st_ino
    buf = k.alloc(64)
    assert sc(k, "readlink", k.s("sym"), buf, 64) == 1 and k.mem.read(buf, 1) == b"h"
    assert sc(k, "readlinkat", AT_FDCWD, k.s("h"), buf, 64) == -EINVAL
    assert sc(k, "unlinkat", AT_FDCWD, k.s("d"), 0) == -21             # EISDIR
    (tmp_path / "d" / "x").write_bytes(b"")
    assert sc(k, "unlinkat", AT_FDCWD, k.s("d"), 0x200) == -39         # ENOTEMPTY
    assert sc(k, "unlinkat", dfd, k.s("missing"), 0) == -ENOENT
    assert sc(k, "unlinkat", AT_FDCWD, k.s("h"), 0x1) == -EINVAL
    assert sc(k, "unlink", k.s("h")) == 0 and not (tmp_path / "h").exists()
    os.mkdir(tmp_path / "empty")
    assert sc(k, "rmdir", k.s("empty")) == 0
    assert sc(k, "rename", k.s("hard"), k.s("moved")) == 0 and (tmp_path / "moved").exists()


def test_chmod_truncate_utimensat_access(k, tmp_path):
    (tmp_path / "f").write_bytes(b"0123456789")
    assert sc(k, "fchmodat", AT_FDCWD, k.s("f"), 0o600) == 0
    assert stat.S_IMODE(os.stat(tmp_path / "f").st_mode) == 0o600
    fd = open_file(k, "f", O_RDWR)
    assert sc(k, "fchmod", fd, 0o640) == 0
    assert stat.S_IMODE(os.stat(tmp_path / "f").st_mode) == 0o640
    assert sc(k, "fchown", fd, -1, -1) == 0
    assert sc(k, "fchownat", AT_FDCWD, k.s("f"), os.getuid(), -1, 0) == 0
    assert sc(k, "ftruncate", fd, 4) == 0 and os.stat(tmp_path / "f").st_size == 4
    assert sc(k, "ftruncate", fd, -1) == -EINVAL
    assert sc(k, "truncate", k.s("f"), 2) == 0 and os.stat(tmp_path / "f").st_size == 2
    assert sc(k, "fsync", fd) == 0 and sc(k, "fdatasync", fd) == 0
    ts = k.alloc(32)
    k.mem.write(ts, struct.pack("<4q", 1_000_000_000, 5, 1_200_000_000, (1 << 30) - 2))  # mtime: UTIME_OMIT
    before = os.stat(tmp_path / "f").st_mtime_ns
    assert sc(k, "utimensat", AT_FDCWD, k.s("f"), ts, 0) == 0
    s = os.stat(tmp_path / "f")
    assert s.st_atime_ns == 1_000_000_000 * 10**9 + 5 and s.st_mtime_ns == before
    k.mem.write(ts, struct.pack("<4q", 0, (1 << 30) - 2, 7, 0))
    assert sc(k, "utimensat", fd, 0, ts, 0) == 0                          # NULL path: the fd
    assert os.stat(tmp_path / "f").st_mtime_ns == 7 * 10**9
    assert sc(k, "utimensat", AT_FDCWD, 0, ts, 0) == -EFAULT
    assert sc(k, "access", k.s("f"), 6) == 0
    assert sc(k, "access", k.s("missing"), 0) == -ENOENT
    assert sc(k, "faccessat", AT_FDCWD, k.s("f"), 8) == -EINVAL
    assert sc(k, "faccessat2", AT_FDCWD, k.s("f"), 4, 0x200) == 0
    assert sc(k, "faccessat2", fd, k.s(""), 4, 0x1000) == 0
    assert sc(k, "fadvise64", fd, 0, 0, 0) == 0
    assert sc(k, "flock", fd, 2) == 0 and sc(k, "flock", fd, 8) == 0


# ---- /proc/self ---------------------------------------------------------------------------------------
def read_all(k, fd) -> bytes:
    buf, out = k.alloc(4096), b""
    while (n := sc(k, "read", fd, buf, 4096)) > 0:
        out += k.mem.read(buf, n)
    assert n == 0
    return out


def test_readlinkat_proc_self(k, tmp_path):
    buf = k.alloc(4096)
    n = sc(k, "readlinkat", AT_FDCWD, k.s("/proc/self/exe"), buf, 4096)
    assert n == len(k.exe_path) and k.mem.read(buf, n) == os.fsencode(k.exe_path)
    assert sc(k, "readlinkat", AT_FDCWD, k.s(f"/proc/{k.pid}/exe"), buf, 4096) == n
    assert sc(k, "readlinkat", AT_FDCWD, k.s("/proc/self/exe"), buf, 3) == 3     # truncated, no NUL
    assert sc(k, "readlinkat", AT_FDCWD, k.s("/proc/self/exe"), buf, 0) == -EINVAL
    fd = open_file(k, "file.txt")
    n = sc(k, "readlinkat", AT_FDCWD, k.s(f"/proc/self/fd/{fd}"), buf, 4096)
    assert k.mem.read(buf, n) == os.fsencode(str(tmp_path / "file.txt"))
    assert sc(k, "readlinkat", AT_FDCWD, k.s("/proc/self/fd/999"), buf, 4096) == -ENOENT
    n = sc(k, "readlink", k.s("/proc/self/cwd"), buf, 4096)
    assert k.mem.read(buf, n) == os.fsencode(str(tmp_path))
    st_buf = k.alloc(144)
    assert sc(k, "newfstatat", AT_FDCWD, k.s("/proc/self/exe"), st_buf, 0) == 0
    assert meta.STAT.unpack(k.mem.read(st_buf, 144))[1] == os.stat(k.exe_path).st_ino
    assert sc(k, "access", k.s("/proc/self/exe"), 1) == 0


def test_proc_self_files(k):
    fd = open_file(k, "/proc/self/cmdline", O_RDONLY | O_CLOEXEC)
    assert read_all(k, fd) == b"prog\0one\0two words\0\0"
    fd = open_file(k, f"/proc/{k.pid}/environ", O_RDONLY)
    assert read_all(k, fd) == b"HOME=/nowhere\0A=1\0"
    fd = open_file(k, "/proc/self/auxv", O_RDONLY)
    assert read_all(k, fd) == k.auxv
    fd = open_file(k, "/proc/self/exe", O_RDONLY)
    with open(k.exe_path, "rb") as f:
        head = f.read(4096)
    assert read_all(k, fd)[:4096] == head
    again = open_file(k, f"/proc/self/fd/{fd}", O_RDONLY)           # reopens the same file
    assert os.fstat(k.fds.host(again)).st_ino == os.stat(k.exe_path).st_ino
    maps = read_all(k, open_file(k, "/proc/self/maps", O_RDONLY)).decode()
    assert f"{SCRATCH:08x}-{SCRATCH + SCRATCH_SIZE:08x} rw-p 00000000 00:00 0" in maps
    status = read_all(k, open_file(k, "/proc/self/status", O_RDONLY)).decode()
    assert f"\nTgid:\t{k.pid}\n" in status and "\nThreads:\t2\n" in status
    assert sc(k, "openat", AT_FDCWD, k.s("/proc/self/mem"), O_RDONLY, 0) == -ENOENT
    assert sc(k, "openat", AT_FDCWD, k.s("/proc/self/auxv"), O_WRONLY, 0) == -13
    assert read_all(k, open_file(k, "/proc/self/mountinfo", O_RDONLY))        # passed through


# ---- descriptors -----------------------------------------------------------------------------------
def test_fcntl(k):
    fd = open_file(k, "f")
    host = k.fds.host(fd)
    fl = sc(k, "fcntl", fd, 3, 0)                                     # F_GETFL
    assert fl == fcntl.fcntl(host, fcntl.F_GETFL) and not fl & O_NONBLOCK and fl & 3 == O_RDWR
    assert sc(k, "fcntl", fd, 4, fl | O_NONBLOCK) == 0                 # F_SETFL
    assert sc(k, "fcntl", fd, 3, 0) & O_NONBLOCK
    assert fcntl.fcntl(host, fcntl.F_GETFL) & O_NONBLOCK               # propagated to the host
    assert sc(k, "fcntl", fd, 4, fl) == 0
    assert not sc(k, "fcntl", fd, 3, 0) & O_NONBLOCK
    assert sc(k, "fcntl", fd, 1, 0) == 0
    assert sc(k, "fcntl", fd, 2, 1) == 0 and sc(k, "fcntl", fd, 1, 0) == 1
    assert not os.get_inheritable(host)
    assert sc(k, "fcntl", fd, 0, 10) == 10                              # F_DUPFD: lowest >= 10
    assert sc(k, "fcntl", fd, 1030, 10) == 11 and k.fds.get(11).cloexec
    assert not k.fds.get(10).cloexec
    assert sc(k, "fcntl", fd, 0, 5000) == -EINVAL
    assert sc(k, "fcntl", fd, 9999, 0) == -EINVAL
    assert sc(k, "fcntl", 500, 1, 0) == -EBADF
    lk = k.alloc(32)
    k.mem.write(lk, struct.pack("<hh4xqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0))
    assert sc(k, "fcntl", fd, 6, lk) == 0                              # F_SETLK
    assert sc(k, "fcntl", fd, 5, lk) == 0                              # F_GETLK: our own lock
    assert struct.unpack_from("<h", k.mem.read(lk, 2))[0] == fcntl.F_UNLCK


def test_dup2_dup3(k):
    fd = open_file(k, "f")
    other = open_file(k, "g")
    other_host = k.fds.host(other)
    assert sc(k, "dup2", fd, other) == other                           # replaces (closes) g
    with pytest.raises(OSError):
        os.fstat(other_host)
    assert sc(k, "write", other, k.put(b"abc"), 3) == 3
    assert sc(k, "lseek", fd, 0, 1) == 3                               # shared offset
    assert sc(k, "dup2", fd, fd) == fd
    assert sc(k, "dup2", 400, 5) == -EBADF
    assert sc(k, "dup2", 400, 400) == -EBADF
    assert sc(k, "dup2", fd, 5000) == -EBADF
    assert sc(k, "fcntl", fd, 2, 1) == 0
    assert sc(k, "dup2", fd, 20) == 20 and not k.fds.get(20).cloexec   # dup2 clears FD_CLOEXEC
    assert sc(k, "dup3", fd, 21, O_CLOEXEC) == 21 and k.fds.get(21).cloexec
    assert sc(k, "dup3", fd, fd, 0) == -EINVAL
    assert sc(k, "dup3", 400, 400, 0) == -EINVAL
    assert sc(k, "dup3", fd, 22, O_NONBLOCK) == -EINVAL
    lowest = min(set(range(MAX_FDS)) - set(k.fds.fds))
    assert sc(k, "dup", fd) == lowest and not k.fds.get(lowest).cloexec


def test_ioctl(k, tmp_path):
    fd = open_file(k, "f")
    buf = k.alloc(64)
    assert sc(k, "ioctl", fd, 0x5401, buf) == -ENOTTY                  # TCGETS on a file
    assert sc(k, "ioctl", fd, 0x1234, buf) == -ENOTTY
    assert sc(k, "ioctl", 333, 0x5401, buf) == -EBADF
    assert sc(k, "ioctl", fd, 0x5451, 0) == 0 and k.fds.get(fd).cloexec     # FIOCLEX
    assert sc(k, "ioctl", fd, 0x5450, 0) == 0 and not k.fds.get(fd).cloexec
    k.mem.write_u32(buf, 1)
    assert sc(k, "ioctl", fd, 0x5421, buf) == 0                         # FIONBIO
    assert sc(k, "fcntl", fd, 3, 0) & O_NONBLOCK
    master, slave = os.openpty()
    tty = k.fds.install(Fd(slave, False, "/dev/pts/x", "tty"))
    assert sc(k, "ioctl", tty, 0x5401, buf) == 0
    iflag, oflag, cflag, lflag = struct.unpack_from("<4I", k.mem.read(buf, 16))
    assert [iflag, oflag, cflag, lflag] == termios.tcgetattr(slave)[:4]
    assert k.mem.read(buf + 17, 19) == bytes(c if isinstance(c, int) else c[0]
                                             for c in termios.tcgetattr(slave)[6][:19])
    assert sc(k, "ioctl", tty, 0x5413, buf) == 0                        # TIOCGWINSZ
    assert k.mem.read(buf, 8) == fcntl.ioctl(slave, termios.TIOCGWINSZ, bytes(8))
    os.close(master)


# ---- working directory ----------------------------------------------------------------------------
def test_getcwd_chdir(k, tmp_path):
    cwd = os.fsencode(str(tmp_path))
    buf = k.alloc(4096)
    assert sc(k, "getcwd", buf, 4096) == len(cwd) + 1
    assert k.mem.read(buf, len(cwd) + 1) == cwd + b"\0"
    assert sc(k, "getcwd", buf, len(cwd)) == -ERANGE                    # no room for the NUL
    assert sc(k, "getcwd", buf, 0) == -ERANGE
    assert sc(k, "getcwd", buf, len(cwd) + 1) == len(cwd) + 1
    os.mkdir(tmp_path / "sub")
    assert sc(k, "chdir", k.s("sub")) == 0 and os.getcwd() == str(tmp_path / "sub")
    assert sc(k, "chdir", k.s("nope")) == -ENOENT
    dfd = open_file(k, str(tmp_path), O_RDONLY | O_DIRECTORY)
    assert sc(k, "fchdir", dfd) == 0 and os.getcwd() == str(tmp_path)


# ---- proc ------------------------------------------------------------------------------------------
def test_uname(k):
    buf = k.alloc(390)
    assert sc(k, "uname", buf) == 0
    fields = [f.split(b"\0", 1)[0].decode() for f in proc.UTSNAME.unpack(k.mem.read(buf, 390))]
    assert fields[0] == "Linux" and fields[4] == "x86_64" and fields[5] == "(none)"
    assert fields[1] == os.uname().nodename
    release = fields[2]
    assert release == "5.10.0-goemu"
    major, minor, patch = (int(x) for x in release.split("-")[0].split("."))
    # Go 1.14's mlock workaround triggers on 5.2.x, 5.3.0-5.3.14 and 5.4.0-5.4.1
    assert not ((major, minor) == (5, 2) or ((major, minor) == (5, 3) and patch < 15)
                or ((major, minor) == (5, 4) and patch < 2))
    k.deterministic = True
    assert sc(k, "uname", buf) == 0
    assert proc.UTSNAME.unpack(k.mem.read(buf, 390))[1].rstrip(b"\0") == b"goemu"


def test_sched_getaffinity(k):
    buf = k.alloc(8192)
    k.mem.write(buf, b"\xff" * 16)
    assert sc(k, "sched_getaffinity", 0, 8192, buf) == 8
    assert k.mem.read_u64(buf) == 0b111
    assert k.mem.read(buf + 8, 8) == b"\xff" * 8                          # only 8 bytes written
    assert sc(k, "sched_getaffinity", k.pid + 1, 8, buf) == 8           # a live tid
    assert sc(k, "sched_getaffinity", 0, 4, buf) == -EINVAL
    assert sc(k, "sched_getaffinity", 0, 12, buf) == -EINVAL
    assert sc(k, "sched_getaffinity", 99999, 8, buf) == -ESRCH
    k.ncpus = 70
    assert sc(k, "sched_getaffinity", 0, 8, buf) == -EINVAL
    assert sc(k, "sched_getaffinity", 0, 8192, buf) == 16
    assert int.from_bytes(k.mem.read(buf, 16), "little") == (1 << 70) - 1
    assert sc(k, "sched_setaffinity", 0, 8, buf) == 0


def test_ids_and_limits(k):
    assert sc(k, "getpid") == k.pid
    assert sc(k, "getppid") == os.getppid()
    assert sc(k, "getuid") == os.getuid() and sc(k, "getegid") == os.getegid()
    assert sc(k, "getpgrp") == k.pid and sc(k, "getpgid", 0) == k.pid
    assert sc(k, "getpgid", 99999) == -ESRCH
    assert sc(k, "getgroups", 0, 0) == len(os.getgroups())
    buf = k.alloc(16)
    assert sc(k, "getrlimit", 3, buf) == 0                              # RLIMIT_STACK
    soft, hard = resource_limits(3)
    assert proc.RLIMIT.unpack(k.mem.read(buf, 16)) == (soft, hard)
    assert sc(k, "getrlimit", 7, buf) == 0                              # RLIMIT_NOFILE: the host's,
    assert proc.RLIMIT.unpack(k.mem.read(buf, 16)) == resource_limits(7)  # no fixed 1024 cap
    k.mem.write(buf, proc.RLIMIT.pack(10, resource_limits(7)[1]))
    assert sc(k, "setrlimit", 7, buf) == 0 and k.fds.limit == 10        # new fds stop below it
    assert sc(k, "getrlimit", 99, buf) == -EINVAL
    host_core = resource_limits(4)
    k.mem.write(buf, proc.RLIMIT.pack(100, 200))
    assert sc(k, "setrlimit", 4, buf) == 0                              # RLIMIT_CORE
    assert resource_limits(4) == host_core                              # the host is unchanged
    old = k.alloc(16)
    assert sc(k, "prlimit64", 0, 4, 0, old) == 0
    assert proc.RLIMIT.unpack(k.mem.read(old, 16)) == (100, 200)
    k.mem.write(buf, proc.RLIMIT.pack(300, 200))
    assert sc(k, "prlimit64", 0, 4, buf, old) == -EINVAL
    assert sc(k, "prlimit64", 99999, 4, 0, old) == -ESRCH
    assert sc(k, "getpriority", 0, 0) == 20 - os.getpriority(os.PRIO_PROCESS, 0)
    assert sc(k, "sched_get_priority_max", 1) == 99 and sc(k, "sched_get_priority_min", 0) == 0
    assert sc(k, "set_robust_list", buf, 24) == 0 and sc(k, "set_robust_list", buf, 8) == -EINVAL
    assert sc(k, "rseq", 0, 32, 0, 0) == -38
    old_mask = os.umask(0o22)
    try:
        assert sc(k, "umask", 0o77) == 0o22 and sc(k, "umask", 0o22) == 0o77
    finally:
        os.umask(old_mask)


def resource_limits(res: int) -> tuple[int, int]:
    """The host's limit as the guest's struct rlimit holds it (RLIM_INFINITY is all ones)."""
    return tuple(U64 if v == resource.RLIM_INFINITY else v for v in resource.getrlimit(res))


def test_getrandom(k):
    buf = k.alloc(64)
    assert sc(k, "getrandom", buf, 64, 0) == 64
    assert sc(k, "getrandom", buf, 8, 8) == -EINVAL
    assert sc(k, "getrandom", buf, 8, 6) == -EINVAL
    assert sc(k, "getrandom", 0x1000, 8, 0) == -EFAULT
    k.deterministic = True
    assert sc(k, "getrandom", buf, 32, 1) == 32
    first = k.mem.read(buf, 32)
    k2 = FakeKernel(k.exe_path)
    k2.deterministic = True
    b2 = k2.alloc(64)
    assert sc(k2, "getrandom", b2, 32, 0) == 32 and k2.mem.read(b2, 32) == first


def test_sysinfo_rusage_times_prctl(k):
    buf = k.alloc(144)
    assert sc(k, "sysinfo", buf) == 0
    info = proc.SYSINFO.unpack(k.mem.read(buf, 112))
    raw = ctypes.create_string_buffer(112)
    assert host_syscall(99, raw) == (0, 0)
    host = proc.SYSINFO.unpack(raw.raw)
    assert info[4] == host[4] and info[-1] == host[-1]                  # totalram, mem_unit
    assert info[0] == k.clock.monotonic() // 10**9
    k.itimers.cpu_ns = 1_234_567_000          # the guest's own CPU time is its user time
    assert sc(k, "getrusage", 0, buf) == 0
    ru = proc.RUSAGE.unpack(k.mem.read(buf, 144))
    assert (ru[0], ru[1]) == (1, 234567) and ru[4] > 0                    # user time, maxrss
    assert sc(k, "getrusage", 5, buf) == -EINVAL
    assert sc(k, "times", buf) == k.clock.monotonic() // 10**7
    assert sc(k, "times", 0) >= 0
    t = k.threads[k.pid]
    name = k.alloc(16)
    assert sc(k, "prctl", 16, name, 0, 0, 0) == 0
    assert k.mem.read(name, 16).rstrip(b"\0") == os.fsencode(os.path.basename(k.exe_path))[:15]
    k.mem.write(name, b"a-very-long-thread-name\0")
    assert sc(k, "prctl", 15, name, 0, 0, 0) == 0 and t.name == "a-very-long-thr"
    out = k.alloc(16)
    assert sc(k, "prctl", 16, out, 0, 0, 0) == 0
    assert k.mem.read(out, 16) == b"a-very-long-thr\0"
    assert sc(k, "prctl", 12345, 0, 0, 0, 0) == -EINVAL
    k.deterministic = True
    assert sc(k, "getppid") == 1
    assert sc(k, "getrusage", 0, buf) == 0
    assert proc.RUSAGE.unpack(k.mem.read(buf, 144)) == (1, 234567) + (0,) * 16   # only virtual CPU time
