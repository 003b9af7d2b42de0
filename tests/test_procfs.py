"""The guest's /proc/self.

The whole program against native runs: ``procself`` prints the deterministic parts of its own
/proc/self (field names and order, formats, values that are the same in every run, and checks
of the others against its own getpid/gettid/rlimits/addresses). Handlers on the fake kernel of test_fs_unit against the guest's own tables (threads,
signal dispositions and masks, VMAs, fds).
"""
from __future__ import annotations

import os
import stat
import sys

import pytest

from conftest import go119, run_goemu, run_native
from goemu import signals
from goemu.errno import EACCES, EINVAL, ENOENT, ENOTDIR, EPERM
from goemu.memory import PROT_READ, PROT_WRITE
from goemu.syscalls import meta, proc, procfs
from test_fs_unit import (AT_FDCWD, O_CLOEXEC, O_DIRECTORY, O_RDONLY, O_WRONLY, SCRATCH,
                          SCRATCH_SIZE, k, open_file, parse_dirents, read_all, sc)  # noqa: F401

MODES = {"default": (), "deterministic": ("--deterministic",)}


# ---- whole programs against native -----------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_procself_matches_native(mode, tmp_path):
    binary = go119("procself")
    native = run_native(binary, cwd=tmp_path)
    emu = run_goemu(binary, cwd=tmp_path, options=MODES[mode])
    assert native.returncode == 0, native.stderr
    assert emu.returncode == 0, emu.stderr.decode(errors="replace")[-2000:]
    assert emu.stdout == native.stdout


def _ignore_32_and_hup():
    """What some process managers (and CI runners) hand their children: real-time signal 32, which
    glibc and Python's signal module refuse to touch, ignored (a raw rt_sigaction), and SIGHUP."""
    import signal as host

    from goemu.process import raw_disposition
    raw_disposition(32, ignore=True)
    host.signal(host.SIGHUP, host.SIG_IGN)


def test_procself_inherits_ignored_realtime_signals(tmp_path):
    """Linux keeps SIG_IGN across execve for every signal, 32 and 33 included; Go leaves 32 as it
    found it, so /proc/self/status SigIgn shows it. goemu reads its parent's set from the kernel."""
    import subprocess
    from conftest import ROOT, TIMEOUT, _env
    binary = go119("procself")
    native = subprocess.run([str(binary)], capture_output=True, cwd=tmp_path, env=_env(None),
                            preexec_fn=_ignore_32_and_hup, timeout=TIMEOUT)
    e = _env(None)
    e["PYTHONPATH"] = str(ROOT)
    emu = subprocess.run([sys.executable, "-m", "goemu", "run", str(binary)], capture_output=True,
                         cwd=tmp_path, env=e, preexec_fn=_ignore_32_and_hup, timeout=TIMEOUT)
    assert b'status SigIgn: "0000000080000001"' in native.stdout   # the oracle saw both
    assert emu.returncode == 0, emu.stderr.decode(errors="replace")[-2000:]
    assert emu.stdout == native.stdout


def test_procself_checks_hold_natively(tmp_path):
    """The oracle: every check procself makes of its own values is true natively."""
    out = run_native(go119("procself"), cwd=tmp_path).stdout.decode()
    for line in out.splitlines():
        assert "false" not in line, line
    for field in ("Tgid", "Pid", "PPid", "Threads", "VmSize", "SigCgt", "Cpus_allowed_list"):
        assert f"status {field}" in out
    assert "status SigCgt has urgent I/O condition: true" in out
    assert "fd/: 0 -> " in out and "task/ entries > 1: true" in out


def test_proc_self_mem_is_not_goemus(tmp_path):
    """From a cwd of /proc, self/mem natively is the process's memory; under goemu it must not
    be the emulator's (goemu has no guest mem file: ENOENT)."""
    assert run_native(go119("procself"), "mem").stdout == b"self/mem: true <nil>\n"
    emu = run_goemu(go119("procself"), "mem")
    assert emu.stdout == b"self/mem: false open self/mem: no such file or directory\n"


# ---- handlers against the guest's own tables --------------------------------------------------
def status_of(k, path: str) -> dict[str, str]:
    text = read_all(k, open_file(k, path, O_RDONLY)).decode()
    return dict(line.split(":\t", 1) for line in text.splitlines())


def test_status_from_guest_tables(k):
    sigs = k.main_proc.signals
    sigs.actions[23].handler = 0x401000                  # SIGURG caught
    sigs.actions[13].handler = signals.SIG_IGN           # SIGPIPE ignored
    other = k.threads[k.pid + 1]
    other.sigmask = signals.bit(10) | signals.bit(12)
    other.pending[10] = signals.siginfo(10, 0)
    other.comm = b"worker"
    st = status_of(k, "/proc/self/status")
    host_names = [line.split(":\t")[0] for line in open("/proc/self/status")]
    assert list(st) == host_names                       # the host kernel's fields, in order
    assert st["Tgid"] == st["Pid"] == st["NStgid"] == str(k.pid)
    assert st["Threads"] == str(len(k.threads))
    inherited = sum(signals.bit(s) for s in signals.host_ignored())   # what pytest's parent ignored
    assert st["SigCgt"] == f"{signals.bit(23):016x}"
    assert st["SigIgn"] == f"{signals.bit(13) | inherited:016x}"
    assert st["SigBlk"] == f"{k.threads[k.pid].sigmask:016x}"
    assert st["Name"] == os.path.basename(k.exe_path)[:15]
    total = sum(v.end - v.start for v in k.mem.vmas) >> 10
    assert st["VmSize"] == f"{total:8d} kB"
    assert st["Cpus_allowed_list"] == f"0-{k.ncpus - 1}"
    # an open generated file looks like its /proc entry (size 0, read-only), as on Linux
    fd, buf = open_file(k, "/proc/self/status", O_RDONLY), k.alloc(144)
    assert sc(k, "fstat", fd, buf) == 0
    mode, size = (lambda f: (f[3], f[8]))(meta.STAT.unpack(k.mem.read(buf, 144)))
    host = os.stat("/proc/self/status")
    assert (mode, size) == (host.st_mode, host.st_size) == (stat.S_IFREG | 0o444, 0)
    # the other thread, by task/ and by /proc/<tid>
    for path in (f"/proc/self/task/{k.pid + 1}/status", f"/proc/{k.pid + 1}/status"):
        th = status_of(k, path)
        assert th["Pid"] == str(k.pid + 1) and th["Tgid"] == str(k.pid)
        assert th["SigBlk"] == f"{other.sigmask:016x}" and th["SigPnd"] == f"{signals.bit(10):016x}"
        assert th["Name"] == "worker"
    stat_line = read_all(k, open_file(k, f"/proc/self/task/{k.pid + 1}/stat", O_RDONLY)).decode()
    fields = stat_line.split()
    assert len(fields) == 52 and fields[0] == str(k.pid + 1) and fields[1] == "(worker)"
    assert int(fields[31]) == other.sigmask and int(fields[33]) == signals.bit(23)
    assert read_all(k, open_file(k, f"/proc/self/task/{k.pid + 1}/comm", O_RDONLY)) == b"worker\n"
    statm = read_all(k, open_file(k, "/proc/self/statm", O_RDONLY)).split()
    assert len(statm) == 7 and int(statm[0]) * 4 == total


def test_maps_is_the_vma_table(k):
    base = SCRATCH + SCRATCH_SIZE + (1 << 20)
    k.mem.map(base, 0x2000, PROT_READ | PROT_WRITE, "[anon]")          # two adjacent anonymous
    k.mem.map(base + 0x2000, 0x1000, PROT_READ | PROT_WRITE, "[anon]")  # VMAs: one line, as Linux
    lines = read_all(k, open_file(k, "/proc/self/maps", O_RDONLY)).decode().splitlines()
    assert lines[-1].endswith(" [vsyscall]")
    rows = []
    for line in lines[:-1]:
        span, perms = line.split()[:2]
        lo, hi = (int(x, 16) for x in span.split("-"))
        rows.append((lo, hi, perms))
    assert all(a[1] <= b[0] for a, b in zip(rows, rows[1:]))           # sorted, disjoint
    for v in k.mem.vmas:                                               # each VMA, in one line
        perms = "".join(c if v.prot & bit else "-" for c, bit in (("r", 1), ("w", 2), ("x", 4))) + "p"
        assert any(lo <= v.start and v.end <= hi and p == perms for lo, hi, p in rows), v
    assert (base, base + 0x3000, "rw-p") in rows
    assert sum(hi - lo for lo, hi, _ in rows) == sum(v.end - v.start for v in k.mem.vmas)
    scratch = next(line for line in lines if line.startswith(f"{SCRATCH:08x}"))
    assert scratch == f"{SCRATCH:08x}-{SCRATCH + SCRATCH_SIZE:08x} rw-p 00000000 00:00 0 ".ljust(72) \
        + " [scratch]"


def test_fd_directory_and_fdinfo(k, tmp_path):
    a = open_file(k, tmp_path / "a")
    (tmp_path / "b").write_bytes(b"")
    b = open_file(k, tmp_path / "b", O_RDONLY | O_CLOEXEC)
    d = open_file(k, "/proc/self/fd", O_RDONLY | O_DIRECTORY)
    buf = k.alloc(4096)
    n = sc(k, "getdents64", d, buf, 4096)
    names = [e[3] for e in parse_dirents(k.mem.read(buf, n))]
    assert names == [b".", b".."] + [b"%d" % fd for fd in sorted(k.fds.fds)]
    n = sc(k, "readlinkat", d, k.s(str(a)), buf, 4096)
    assert k.mem.read(buf, n) == os.fsencode(tmp_path / "a")
    n = sc(k, "readlinkat", d, k.s(str(d)), buf, 4096)
    assert k.mem.read(buf, n) == b"/proc/%d/fd" % k.pid
    for fd, cloexec in ((a, 0), (b, O_CLOEXEC)):
        info = read_all(k, open_file(k, f"/proc/self/fdinfo/{fd}", O_RDONLY)).decode()
        fields = dict(line.split(":", 1) for line in info.splitlines())
        assert list(fields)[:3] == ["pos", "flags", "mnt_id"]
        assert int(fields["flags"], 8) & O_CLOEXEC == cloexec
    # /dev/fd/N is the guest's fd N, not goemu's
    again = open_file(k, f"/dev/fd/{a}", O_RDONLY)
    assert os.fstat(k.fds.host(again)).st_ino == os.stat(tmp_path / "a").st_ino


def test_relative_paths_and_dirfds(k, tmp_path):
    buf = k.alloc(4096)
    self_fd = open_file(k, "/proc/self", O_RDONLY | O_DIRECTORY)
    st = dict(line.split(":\t", 1) for line in
              read_all(k, sc(k, "openat", self_fd, k.s("status"), O_RDONLY, 0)).decode().splitlines())
    assert st["Tgid"] == str(k.pid)
    n = sc(k, "readlinkat", self_fd, k.s("exe"), buf, 4096)
    assert k.mem.read(buf, n) == os.fsencode(k.exe_path)
    assert sc(k, "readlinkat", self_fd, k.s("status"), buf, 4096) == -EINVAL   # not a link
    n = sc(k, "getdents64", self_fd, buf, 4096)
    names = {e[3] for e in parse_dirents(k.mem.read(buf, n))}
    assert {b"status", b"maps", b"fd", b"task", b"exe"} <= names and b"mem" not in names
    assert sc(k, "openat", self_fd, k.s("mem"), O_RDONLY, 0) == -ENOENT
    for path in ("/proc/self/root/proc/self/mem", "//proc/self/mem", "/proc/self/root//proc/self/mem",
                 "/proc/self/cwd/../../../../proc/self/mem", "/tmp/../proc/self/mem"):
        assert sc(k, "openat", AT_FDCWD, k.s(path), O_RDONLY, 0) == -ENOENT, path
    assert b"Tgid:\t%d\n" % k.pid in read_all(k, open_file(k, "/proc/self/root/proc/self/status", O_RDONLY))
    # cwd /proc: relative paths are the guest's too
    assert sc(k, "chdir", k.s("/proc")) == 0
    assert sc(k, "openat", AT_FDCWD, k.s("self/mem"), O_RDONLY, 0) == -ENOENT
    assert sc(k, "openat", AT_FDCWD, k.s(f"{os.getpid()}/mem"), O_RDONLY, 0) == -ENOENT
    assert b"Tgid:\t%d\n" % k.pid in read_all(k, open_file(k, "self/status", O_RDONLY))
    # cwd /proc/self/task/<tid>: a virtual directory
    assert sc(k, "chdir", k.s(f"self/task/{k.pid + 1}")) == 0
    n = sc(k, "getcwd", buf, 4096)
    assert k.mem.read(buf, n) == b"/proc/%d/task/%d\0" % (k.pid, k.pid + 1)
    assert b"Pid:\t%d\n" % (k.pid + 1) in read_all(k, open_file(k, "status", O_RDONLY))
    assert sc(k, "chdir", k.s("status")) == -ENOTDIR
    assert sc(k, "fchdir", self_fd) == 0
    assert b"Pid:\t%d\n" % k.pid in read_all(k, open_file(k, "status", O_RDONLY))
    assert sc(k, "chdir", k.s(str(tmp_path))) == 0
    n = sc(k, "getcwd", buf, 4096)
    assert k.mem.read(buf, n) == os.fsencode(tmp_path) + b"\0"


def test_stat_of_proc_entries(k, tmp_path):
    buf = k.alloc(144)

    def mode(path: str, flags: int = 0) -> int:
        assert sc(k, "newfstatat", AT_FDCWD, k.s(path), buf, flags) == 0
        return meta.STAT.unpack(k.mem.read(buf, 144))[3]
    nofollow = 0x100
    assert stat.S_ISLNK(mode("/proc/self", nofollow)) and stat.S_ISDIR(mode("/proc/self"))
    assert stat.S_ISDIR(mode(f"/proc/self/task/{k.pid + 1}", nofollow))
    assert stat.S_ISDIR(mode(f"/proc/{k.pid}", nofollow))
    assert stat.S_ISREG(mode("/proc/self/status", nofollow))
    assert stat.S_ISLNK(mode("/proc/self/exe", nofollow))
    assert mode("/proc/self/exe") == os.stat(k.exe_path).st_mode
    # /dev/fd from a cwd of /dev: the guest's fds
    (tmp_path / "f").write_bytes(b"x")
    fd = open_file(k, tmp_path / "f", O_RDONLY)
    assert sc(k, "chdir", k.s("/dev")) == 0
    again = open_file(k, f"fd/{fd}", O_RDONLY)
    assert os.fstat(k.fds.host(again)).st_ino == os.stat(tmp_path / "f").st_ino


def test_proc_entries_are_read_only(k):
    denied = -(EPERM if os.geteuid() == 0 else EACCES)
    assert sc(k, "openat", AT_FDCWD, k.s("/proc/self/status"), O_WRONLY, 0) == -EACCES
    assert sc(k, "unlink", k.s("/proc/self/status")) == denied
    assert sc(k, "mkdir", k.s("/proc/self/x"), 0o755) == -ENOENT        # as Linux: no such name
    assert sc(k, "openat", AT_FDCWD, k.s("/proc/self/status/x"), O_RDONLY, 0) == -ENOTDIR
    assert isinstance(procfs.lookup(k, b"/proc/meminfo"), bytes)      # system-wide: the host's



def test_removed_cwd_is_enoent_not_a_crash(k, tmp_path):
    (tmp_path / "gone").mkdir()
    assert sc(k, "chdir", k.s(str(tmp_path / "gone"))) == 0
    os.rmdir(tmp_path / "gone")
    buf = k.alloc(4096)
    assert sc(k, "getcwd", buf, 4096) == -ENOENT
    assert sc(k, "openat", AT_FDCWD, k.s("x"), O_RDONLY, 0) == -ENOENT
    n = sc(k, "readlink", k.s("/proc/self/cwd"), buf, 4096)
    assert k.mem.read(buf, n) == os.readlink(b"/proc/self/cwd")        # "... (deleted)", as Linux


def test_limits_are_the_guests(k):
    """/proc/self/limits shows what the guest's getrlimit shows, including limits it set."""
    new = k.alloc(16)
    k.mem.write(new, proc.RLIMIT.pack(100, 200))
    assert sc(k, "prlimit64", 0, 7, new, 0) == 0                      # RLIMIT_NOFILE
    lines = read_all(k, open_file(k, "/proc/self/limits", O_RDONLY)).decode().splitlines()
    assert lines[0] == "Limit                     Soft Limit           Hard Limit           Units     "
    assert len(lines) == 17
    assert lines[8] == f"{'Max open files':<25} {'100':<20} {'200':<20} {'files':<10}"
    for res, line in enumerate(lines[1:]):
        soft, hard = proc.get_rlimit(k, res)
        shown = [("unlimited" if v == proc.RLIM_INFINITY else str(v)) for v in (soft, hard)]
        assert line[26:67].split() == shown


def test_symlink_into_proc_is_the_guests_proc(k, tmp_path):
    """A symlink of the guest's own into /proc: an open that lands in goemu's own /proc/<pid>
    is redone as the guest's path (its status, never goemu's mem)."""
    os.symlink("/proc", tmp_path / "p")
    os.symlink(f"/proc/{os.getpid()}", tmp_path / "me")
    status = read_all(k, open_file(k, "p/self/status", O_RDONLY))
    assert b"Tgid:\t%d\n" % k.pid in status
    assert sc(k, "openat", AT_FDCWD, k.s("p/self/mem"), O_RDONLY, 0) == -ENOENT
    assert sc(k, "openat", AT_FDCWD, k.s("me/mem"), O_RDONLY, 0) == -ENOENT
    assert read_all(k, open_file(k, "p/self/cmdline", O_RDONLY)) == b"".join(a + b"\0" for a in k.argv)
    assert read_all(k, open_file(k, "p/meminfo", O_RDONLY)).startswith(b"MemTotal:")   # the host's
