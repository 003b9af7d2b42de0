"""The sandbox (goemu run --root DIR, docs/sandbox.md).

A native run inside a real chroot needs privileges these tests do not assume, so the whole
program (fixtures/src/escape) is checked two ways: its escape attempts against what a Linux
chroot gives for them (ENOENT for every path outside, "/" for getcwd after any number of "..",
and so on, plus the sandbox's own rules where chroot has none: EXDEV across binds, EROFS on
read-only ones, EACCES for the network and exec), with a secret file, a listening Unix socket
and a foreign process outside the root; and its ordinary file operations against a native run
of the same program on a plain directory (they must not differ). The resolver itself is tested
on a fake kernel, including the races a symlink swapped in after the walk would win if the
host resolved the name again.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest

from conftest import ROOT, TIMEOUT, go119, run_native
from goemu.errno import EBUSY, EEXIST, ELOOP, ENOENT, ENOTDIR, EPERM, EROFS, EXDEV, LinuxError
from goemu.sandbox import Sandbox, SandboxError
from goemu.sandbox.mounts import parse_bind
from test_fs_unit import AT_FDCWD, O_CREAT, O_RDONLY, O_WRONLY, k, sc  # noqa: F401

SECRET = b"TOPSECRET"


def goemu(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    e = dict(env if env is not None else os.environ)
    e["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "goemu", *map(str, args)], capture_output=True,
                          cwd=cwd, env=e, timeout=TIMEOUT)


def lines(out: bytes) -> dict[str, str]:
    res = {}
    for line in out.decode().splitlines():
        name, _, value = line.partition(": ")
        res[name] = value
    return res


# ---- the world outside ----------------------------------------------------------------------
@pytest.fixture
def world(tmp_path):
    """tmp/secret.txt and a listening tmp/outside.sock outside the root tmp/root, which a
    hostile host planted symlinks in; binds tmp/rodir (read-only) and tmp/rwdir."""
    (tmp_path / "secret.txt").write_bytes(SECRET + b"\n")
    root = tmp_path / "root"
    for d in ("sub", "ro", "rw", "bin"):
        (root / d).mkdir(parents=True)
    (tmp_path / "rodir").mkdir()
    (tmp_path / "rwdir").mkdir()
    (tmp_path / "rodir" / "inside.txt").write_text("inside\n")
    os.symlink(tmp_path / "secret.txt", root / "planted-abs")
    os.symlink("../secret.txt", root / "planted-rel")
    os.symlink(tmp_path, root / "planted-dir")
    (root / "mine.txt").write_text("mine\n")
    (root / "mine2.txt").write_text("mine2\n")
    shutil.copy(go119("escape"), root / "bin" / "escape")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "outside.sock"))
    listener.listen()
    listener.setblocking(False)
    yield tmp_path
    listener.close()


def binds(world) -> list[str]:
    return ["--bind", f"{world}/rodir:/ro:ro", "--bind", f"{world}/rwdir:/rw"]


# What a process chrooted into tmp/root gets for each attempt (and, where chroot has no rule,
# what the sandbox promises instead: noted).
ESCAPES = {
    "absolute": "err ENOENT",
    "dotdot-abs": "err ENOENT",
    "dotdot-rel": "err ENOENT",
    "dotdot-sibling": "err ENOENT",
    "planted-abs-symlink": "err ENOENT",
    "planted-rel-symlink": "err ENOENT",
    "planted-dir-symlink": "err ENOENT",
    "symlink-abs": "ok",
    "via-made-abs": "err ENOENT",
    "symlink-rel": "ok",
    "via-made-rel": "err ENOENT",
    "symlink-root": "ok",
    "via-made-root": "err ENOENT",
    "symlink-loop": "err ELOOP",
    "nofollow": "err ELOOP",
    "openat-root-dotdot": "err ENOENT",
    "openat-root-abs": "err ENOENT",
    "openat-sub-dotdot": "err ENOENT",
    "proc-root": "err ENOENT",
    "proc-root-link": "ok /",
    "proc-fd-dotdot": "err ENOENT",
    "proc-fd-sub-dotdot": "err ENOENT",
    "proc-fd-link": "ok /sub",
    "proc-cwd": "err ENOENT",
    "proc-mounts": "err ENOENT",              # sandbox: the host's mount table is not shown
    "proc-other-pid": "err ENOENT",           # sandbox: no other process's /proc
    "proc-1-root": "err ENOENT",
    "proc-meminfo": "err ENOENT",             # sandbox: only the guest's own /proc entries
    "proc-exe": "ok /bin/escape",
    "maps-mention-hostdir": "ok false",
    "link-secret": "err ENOENT",
    "link-dotdot": "err ENOENT",
    "link-to-ro": "err EXDEV",                # another mount: EXDEV before EROFS, as Linux
    "link-from-ro": "err EXDEV",
    "rename-out": "ok",                       # "/../../x" is "/x": it stays inside
    "rename-out-landed-outside": "err ENOENT",
    "rename-to-rw": "err EXDEV",
    "rename-from-ro": "err EXDEV",
    "write-ro": "err EROFS",
    "write-rw": "ok",
    "unlink-ro": "err EROFS",
    "chmod-ro": "err EROFS",
    "rmdir-mountpoint": "err EBUSY",
    "read-ro": "ok inside",
    "chdir-sub": "ok",
    "chdir-up": "ok",
    "getwd-after-up": "ok /",
    "cwd-relative": "err ENOENT",
    "fchdir-root": "ok",
    "chdir-dotdot": "ok",
    "getwd-after-dotdot": "ok /",
    "list-root": "bin,loop-a,loop-b,made-abs,made-rel,made-root,mine2.txt,planted-abs,planted-dir,"
                 "planted-rel,ro,rw,secret.txt.moved,sub",
    "list-dotdot": "bin,loop-a,loop-b,made-abs,made-rel,made-root,mine2.txt,planted-abs,planted-dir,"
                   "planted-rel,ro,rw,secret.txt.moved,sub",
    "mknod-dev": "err EPERM",                 # sandbox: no device nodes (even as root)
    "chmod-devnull": "err EPERM",             # sandbox: the host's devices cannot be changed
    "unix-connect-outside": "err ENOENT",     # the listener outside is alive: the path is not
    "kill-foreign": "err ESRCH",              # sandbox: only its own children
    "kill-init": "err ESRCH",
}


def test_escapes_reach_nothing_outside(world):
    root = world / "root"
    before = sorted(os.listdir(world))
    p = goemu("run", "--root", root, *binds(world), root / "bin" / "escape", "escapes",
              world / "secret.txt", world, os.getpid(), cwd=root / "sub")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert SECRET not in p.stdout
    got = lines(p.stdout)
    for name, want in ESCAPES.items():
        assert got.get(name, "").rstrip() == want, (name, got.get(name))
    assert got["readlink-made-abs"] == f"ok {world}/secret.txt"   # the text is the guest's own
    # the host is as it was: nothing moved out, nothing written outside, the read-only bind intact
    assert sorted(os.listdir(world)) == before
    assert (world / "secret.txt").read_bytes() == SECRET + b"\n"
    assert sorted(os.listdir(world / "rodir")) == ["inside.txt"]
    assert (world / "rodir" / "inside.txt").stat().st_mode & 0o777 == 0o644
    assert (world / "rwdir" / "new.txt").read_text() == "x"
    assert (root / "secret.txt.moved").read_text() == "mine\n"
    # a fresh environment
    assert got["env"].split() == ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/"] + \
        ([f"TERM={os.environ['TERM']}"] if os.environ.get("TERM") else [])


def test_escapes_when_the_binary_lies_outside(world):
    """The binary outside the root: /proc/self/exe does not exist for the guest (no host path
    is shown), everything else is confined the same."""
    root = world / "root"
    p = goemu("run", "--root", root, *binds(world), go119("escape"), "escapes",
              world / "secret.txt", world, os.getpid(), cwd=world)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    got = lines(p.stdout)
    assert got["proc-exe"] == "err ENOENT"
    assert got["maps-mention-hostdir"] == "ok false"
    assert SECRET not in p.stdout


# ---- ordinary work inside: as native --------------------------------------------------------------
@pytest.mark.parametrize("where", ["root", "subdir", "bind"])
def test_file_operations_match_native(tmp_path, where):
    native_dir = tmp_path / "native"
    native_dir.mkdir()
    native = run_native(go119("escape"), "ops", native_dir)
    root = tmp_path / "root"
    (root / "work").mkdir(parents=True)
    (tmp_path / "bound").mkdir()
    base = {"root": "/", "subdir": "/work", "bind": "/mnt"}[where]
    p = goemu("run", "--root", root, "--bind", f"{tmp_path}/bound:/mnt", go119("escape"), "ops",
              base)
    assert native.returncode == 0 and p.returncode == 0, p.stderr.decode()[-2000:]
    assert p.stdout == native.stdout
    made = {"root": root, "subdir": root / "work", "bind": tmp_path / "bound"}[where]
    assert sorted(os.listdir(made / "d")) == sorted(os.listdir(native_dir / "d"))


# ---- exec ---------------------------------------------------------------------------------------------
def test_exec_runs_under_goemu_with_the_same_confinement(world):
    root = world / "root"
    shutil.copy("/bin/true", root / "bin" / "hosttrue")     # a dynamic host program: not run
    run = ["run", "--root", root, *binds(world), "-E", "A=1", root / "bin" / "escape", "exec"]
    p = goemu(*run, "/bin/escape", cwd=root / "sub")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    # the child starts in the parent's directory, with the parent's environment, inside
    assert p.stdout.decode().startswith("exec: ok child in /sub env PATH=/usr/local/bin:/usr/bin:/bin HOME=/")
    assert "A=1" in p.stdout.decode() and "LC_CTYPE" not in p.stdout.decode()
    assert goemu(*run, "../bin/escape", cwd=root / "sub").stdout.startswith(b"exec: ok child in /sub")
    assert goemu(*run, "/bin/sh", cwd=root).stdout == b"exec: err ENOENT\n"
    assert goemu(*run, "/bin/hosttrue", cwd=root).stdout == b"exec: err ENOEXEC\n"
    assert goemu(*run, str(go119("escape")), cwd=root).stdout == b"exec: err ENOENT\n"
    no = goemu("run", "--root", root, "--no-exec", root / "bin" / "escape", "exec", "/bin/escape")
    assert no.stdout == b"exec: err EACCES\n"


def test_start_directory_and_environment(world):
    root = world / "root"
    binary = root / "bin" / "escape"
    inside = goemu("run", "--root", root, binary, "ops-child", cwd=root / "sub")
    assert inside.stdout.startswith(b"child in /sub env ")
    bound = goemu("run", "--root", root, *binds(world), binary, "ops-child", cwd=world / "rwdir")
    assert bound.stdout.startswith(b"child in /rw env ")
    outside = goemu("run", "--root", root, binary, "ops-child", cwd=world)
    assert outside.stdout.startswith(b"child in / env ")
    env = dict(os.environ, SANDBOX_TEST_VAR="kept")
    fresh = goemu("run", "--root", root, binary, "ops-child", cwd=world, env=env)
    assert b"SANDBOX_TEST_VAR" not in fresh.stdout
    kept = goemu("run", "--root", root, "--keep-env", "--env", "B=2", binary, "ops-child", cwd=world,
                 env=env)
    assert b"SANDBOX_TEST_VAR=kept" in kept.stdout and b"B=2" in kept.stdout


# ---- the network --------------------------------------------------------------------------------------
def test_network_policies(world):
    root = world / "root"
    binary = root / "bin" / "escape"
    none = lines(goemu("run", "--root", root, "--no-net", binary, "net", cwd=root).stdout)
    assert {n: none[n] for n in ("socket-inet", "socket-inet6", "socket-netlink", "listen-loopback",
                                 "dial-outside")} == dict.fromkeys(
        ("socket-inet", "socket-inet6", "socket-netlink", "listen-loopback", "dial-outside"), "err EACCES")
    # Unix sockets work, on paths inside the root, and show the guest's path
    assert (none["listen-unix"], none["unix-addr"], none["dial-unix"]) == ("ok ", "/sock", "ok ")
    assert (root / "sock").exists() is False            # removed by the listener's Close
    lo = lines(goemu("run", "--root", root, "--net", "loopback", binary, "net", cwd=root).stdout)
    assert (lo["socket-inet"], lo["listen-loopback"], lo["dial-loopback"]) == ("ok ", "ok ", "ok ")
    assert (lo["socket-netlink"], lo["listen-any"], lo["dial-outside"]) == ("err EACCES",) * 3
    host = lines(goemu("run", "--root", root, binary, "net", cwd=root).stdout)
    assert (host["socket-netlink"], host["listen-any"], host["dial-loopback"]) == ("ok ",) * 3


# ---- the command line ----------------------------------------------------------------------------
@pytest.mark.parametrize("args, status, message", [
    (["--root", "/nonexistent/dir"], 125, "goemu: --root: /nonexistent/dir: No such file or directory"),
    (["--root", "/etc/hostname"], 125, "goemu: --root: /etc/hostname: Not a directory"),
    (["--root", "/", "--bind", "nocolon"], 125, "goemu: --bind expects HOST:GUEST[:ro], got 'nocolon'"),
    (["--root", "/", "--bind", "/tmp:rel"], 125, "goemu: --bind /tmp:rel: the guest path must be absolute"),
    (["--root", "/", "--bind", "/tmp:/proc/x"], 125, "goemu: --bind /tmp:/proc/x: /proc is the guest's own"),
    (["--bind", "/tmp:/x"], 2, "goemu: --bind needs --root"),
    (["--no-net"], 2, "goemu: --no-net needs --root"),
    (["--root", "/", "--no-net", "--net", "host"], 2, "goemu: --no-net contradicts --net=host"),
])
def test_bad_sandbox_options(args, status, message):
    p = goemu("run", *args, go119("hello"))
    assert p.returncode == status
    assert p.stderr.decode() == message + "\n"
    assert p.stdout == b""


def test_help_describes_the_sandbox():
    out = goemu("run", "--help").stdout.decode()
    for option in ("--root DIR", "--bind HOST:GUEST[:ro]", "--net {host,loopback,none}", "--no-net",
                   "--no-exec", "--keep-env"):
        assert option in out


# ---- the resolver on a fake kernel ------------------------------------------------------------------
@pytest.fixture
def boxed(k, tmp_path):  # noqa: F811
    """The fake kernel confined to tmp/root, with tmp/outside/secret beside it and tmp/ro bound
    read-only at /ro."""
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(SECRET)
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "f").write_text("ro")
    (root / "f").write_text("in root")
    sb = Sandbox.create(str(root), [f"{tmp_path}/ro:/ro:ro"], "none", "goemu")
    k.sandbox = sb
    yield k, root, tmp_path
    sb.close()
    k.sandbox = None


def walk(k, path: bytes, follow=True, create=False):  # noqa: F811
    try:
        return k.sandbox.walk(k, path, follow, create)
    finally:
        k.sandbox.release()


def test_dotdot_stays_at_the_root(boxed):
    k, root, _ = boxed
    assert walk(k, b"/../../..").guest == b"/"
    assert walk(k, b"/d/../../../f").guest == b"/f"
    assert walk(k, b"/ro/..").guest == b"/"              # from a bind's top to its mount point's parent


def test_symlinks_resolve_inside(boxed):
    k, root, tmp = boxed
    os.symlink("/f", root / "abs")
    os.symlink("../f", root / "d" / "rel")
    os.symlink(str(tmp / "outside" / "secret"), root / "host")
    os.symlink("../../../../..", root / "d" / "up")
    assert walk(k, b"/abs").guest == b"/f"
    assert walk(k, b"/d/rel").guest == b"/f"
    assert walk(k, b"/d/up/f").guest == b"/f"
    with pytest.raises(LinuxError) as e:
        walk(k, b"/host")
    assert e.value.errno == ENOENT
    # not followed when asked not to: the operation gets the parent and the name
    f = walk(k, b"/abs", follow=False)
    assert (f.name, f.guest) == (b"abs", b"/abs")


def test_symlink_limit_is_linuxs(boxed, tmp_path):
    """A chain of 40 symlinks resolves and 41 is ELOOP, as the host kernel (the oracle) says."""
    k, root, _ = boxed
    native = tmp_path / "native"
    native.mkdir()
    for where in (root, native):
        (where / "l0").write_text("end")
        for i in range(1, 42):
            os.symlink(f"l{i - 1}", where / f"l{i}")
    assert open(native / "l40").read() == "end"
    with pytest.raises(OSError) as host:
        open(native / "l41")
    assert host.value.errno == ELOOP
    assert walk(k, b"/l40").guest == b"/l0"
    with pytest.raises(LinuxError) as e:
        walk(k, b"/l41")
    assert e.value.errno == ELOOP


def test_trailing_slash_and_missing_parents(boxed):
    k, root, _ = boxed
    for path, errno in ((b"/f/", ENOTDIR), (b"/f/x", ENOTDIR), (b"/nothere/x", ENOENT)):
        with pytest.raises(LinuxError) as e:
            walk(k, path, create=True)
        assert e.value.errno == errno, path
    assert walk(k, b"/new", create=True).exists is False


def test_host_paths_are_shown_as_guest_paths(boxed):
    k, root, tmp = boxed
    sb = k.sandbox
    real = os.fsencode(os.path.realpath(root))
    assert sb.guest_of_host(real + b"/d/x") == b"/d/x"
    assert sb.guest_of_host(real) == b"/"
    assert sb.guest_of_host(os.fsencode(os.path.realpath(tmp / "ro")) + b"/f") == b"/ro/f"
    assert sb.guest_of_host(os.fsencode(os.path.realpath(tmp / "outside"))) is None
    assert sb.fd_text(os.fsencode(os.path.realpath(tmp / "outside" / "secret"))) == b"(unreachable)"
    assert sb.fd_text(b"pipe:[123]") == b"pipe:[123]"


def test_bind_specs():
    assert parse_bind("/a:/b") == (b"/a", b"/b", False)
    assert parse_bind("/a:/b/../c/:ro") == (b"/a", b"/c", True)
    for bad in ("/a", "/a:/", "/a:b", ":/b", "/a:/b:rx", "/a:/proc"):
        with pytest.raises(SandboxError):
            parse_bind(bad)


# ---- handlers on the fake kernel: the mounts' rules and the races ------------------------------------
def test_mount_rules(boxed):
    k, root, _ = boxed
    errs = {
        "write on ro": sc(k, "openat", AT_FDCWD, k.s(b"/ro/f"), O_WRONLY, 0),
        "create on ro": sc(k, "openat", AT_FDCWD, k.s(b"/ro/new"), O_CREAT | O_WRONLY, 0o644),
        "mkdir on ro": sc(k, "mkdir", k.s(b"/ro/x"), 0o755),
        "rename across": sc(k, "rename", k.s(b"/f"), k.s(b"/ro/f2")),
        "link across": sc(k, "link", k.s(b"/f"), k.s(b"/ro/f2")),
        "rmdir mount point": sc(k, "rmdir", k.s(b"/ro")),
        "rmdir root": sc(k, "rmdir", k.s(b"/")),
        "unlink device": sc(k, "unlink", k.s(b"/dev/null")),
    }
    assert errs == {"write on ro": -EROFS, "create on ro": -EROFS, "mkdir on ro": -EROFS,
                    "rename across": -EXDEV, "link across": -EXDEV, "rmdir mount point": -EBUSY,
                    "rmdir root": -EBUSY, "unlink device": -EPERM}
    fd = sc(k, "openat", AT_FDCWD, k.s(b"/ro/f"), O_RDONLY, 0)
    assert fd >= 0
    assert sc(k, "fchmod", fd, 0o777) == -EROFS
    assert sc(k, "openat", AT_FDCWD, k.s(b"/proc/self/fd/%d" % fd), O_WRONLY, 0) == -EROFS


def test_create_raced_by_a_symlink_is_not_followed(boxed, monkeypatch):
    """The walk finds /new missing; before the open, a symlink to a host file appears there.
    The open is of the parent's fd and the name with O_NOFOLLOW: ELOOP, the secret untouched
    (the host resolving the path again would have written through the link)."""
    k, root, tmp = boxed
    secret = tmp / "outside" / "secret"
    real_walk = k.sandbox.walk

    def racing_walk(kk, path, follow, create=False):
        found = real_walk(kk, path, follow, create)
        if path == b"/new":
            os.symlink(secret, root / "new")
        return found
    monkeypatch.setattr(k.sandbox, "walk", racing_walk)
    r = sc(k, "openat", AT_FDCWD, k.s(b"/new"), O_CREAT | O_WRONLY | 0o1000, 0o644)
    assert r == -ELOOP
    assert secret.read_bytes() == SECRET


def test_open_raced_by_a_swap_opens_what_was_found(boxed, monkeypatch):
    """The walk finds /f; then /f is replaced by a symlink to a host file. The open follows
    /proc/self/fd/N of what the walk found: the old file, never the secret."""
    k, root, tmp = boxed
    secret = tmp / "outside" / "secret"
    real_walk = k.sandbox.walk

    def racing_walk(kk, path, follow, create=False):
        found = real_walk(kk, path, follow, create)
        if path == b"/f":
            os.rename(root / "f", root / "old")
            os.symlink(secret, root / "f")
        return found
    monkeypatch.setattr(k.sandbox, "walk", racing_walk)
    fd = sc(k, "openat", AT_FDCWD, k.s(b"/f"), O_RDONLY, 0)
    assert fd >= 0
    assert os.read(k.fds.host(fd), 100) == b"in root"


def test_mknod_and_exclusive_create(boxed):
    k, root, _ = boxed
    assert sc(k, "mknod", k.s(b"/blk"), 0o60600, 0x801) == -EPERM
    assert sc(k, "mknod", k.s(b"/fifo"), 0o10600, 0) == 0
    os.symlink("/d/target", root / "dangling")
    assert sc(k, "openat", AT_FDCWD, k.s(b"/dangling"), O_CREAT | 0o200 | O_WRONLY, 0o600) == -EEXIST
    assert not (root / "d" / "target").exists()


def test_metadata_calls_and_cwd_stay_inside(boxed):
    k, root, tmp = boxed
    (root / "d" / "g").write_text("123456")
    assert sc(k, "chdir", k.s(b"d")) == 0
    buf = k.alloc(256)
    n = sc(k, "getcwd", buf, 256)
    assert k.mem.read(buf, n) == b"/d\0"
    assert sc(k, "truncate", k.s(b"g"), 2) == 0
    assert (root / "d" / "g").read_text() == "12"
    assert sc(k, "truncate", k.s(b"../../ro/f"), 0) == -EROFS
    assert sc(k, "access", k.s(b"/ro/f"), 2) == -EROFS
    assert sc(k, "access", k.s(b"/ro/f"), 4) == 0
    assert sc(k, "statfs", k.s(b"../.."), k.alloc(120)) == 0
    fd = sc(k, "openat", AT_FDCWD, k.s(b"/ro"), O_RDONLY | 0o200000, 0)
    assert sc(k, "fchdir", fd) == 0
    n = sc(k, "getcwd", buf, 256)
    assert k.mem.read(buf, n) == b"/ro\0"
    n = sc(k, "readlink", k.s(b"/proc/self/fd/%d" % fd), buf, 256)
    assert k.mem.read(buf, n) == b"/ro"
    assert sc(k, "chdir", k.s(b"../../..")) == 0
    n = sc(k, "getcwd", buf, 256)
    assert k.mem.read(buf, n) == b"/\0"
    assert sc(k, "chdir", k.s(b"/f")) == -ENOTDIR
