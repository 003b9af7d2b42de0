"""mknod/mknodat and FIFOs: the ``fifo`` program (Mkfifo, blocking FIFO opens from two
goroutines, EOF, mknod of each kind) against native runs; the handler on the fake kernel of
test_fs_unit against the host's view of the files it made."""
from __future__ import annotations

import os
import stat

import pytest

from conftest import go119, run_goemu, run_native
from goemu.errno import EINVAL, EPERM
from test_fs_unit import AT_FDCWD, k, sc  # noqa: F401 (k: the fake-kernel fixture)

MODES = {"default": (), "deterministic": ("--deterministic",)}


@pytest.mark.parametrize("mode", MODES)
def test_fifo_matches_native(mode, tmp_path):
    native = run_native(go119("fifo"), cwd=tmp_path)
    emu = run_goemu(go119("fifo"), cwd=tmp_path, options=MODES[mode])
    assert native.returncode == 0, native.stderr
    assert b"after writer closed: EOF: true" in native.stdout
    assert emu.returncode == 0, emu.stderr.decode(errors="replace")[-2000:]
    assert emu.stdout == native.stdout


def test_mknodat(k, tmp_path):
    assert sc(k, "mknodat", AT_FDCWD, k.s("p"), stat.S_IFIFO | 0o600, 0) == 0
    assert stat.S_ISFIFO(os.stat(tmp_path / "p").st_mode)
    assert sc(k, "mknod", k.s("r"), 0o640, 0) == 0                    # no type: a regular file
    assert stat.S_ISREG(os.stat(tmp_path / "r").st_mode)
    assert sc(k, "mknodat", AT_FDCWD, k.s("bad"), 0o170000 | 0o600, 0) == -EINVAL
    assert sc(k, "mknodat", AT_FDCWD, k.s("p"), stat.S_IFIFO | 0o600, 0) == -17    # EEXIST
    dev = sc(k, "mknodat", AT_FDCWD, k.s("null"), stat.S_IFCHR | 0o600, (1 << 8) | 3)
    if os.geteuid() == 0:
        assert dev == 0 and os.stat(tmp_path / "null").st_rdev == os.makedev(1, 3)
    else:
        assert dev == -EPERM
