"""Bad input: one line `goemu: PATH: reason`, a distinct exit status, never a traceback."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time

import pytest

from conftest import esbuild, go119, goemu_cli


def _check(path, status, reason_part):
    if status == 126 and os.path.isfile(path) and not os.access(path, os.X_OK):
        os.chmod(path, 0o755)    # these files are bad for what they contain, not their mode
    p = goemu_cli("run", path)
    err = p.stderr.decode()
    assert p.returncode == status, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"goemu: {path}: ")
    assert reason_part in lines[0]
    assert p.stdout == b""


def _elf_header(ei_class=2, machine=62, e_type=2, phnum=0):
    ident = b"\x7fELF" + bytes([ei_class, 1, 1, 0]) + b"\0" * 8
    return ident + struct.pack("<HHIQQQIHHHHHH", e_type, machine, 1, 0x401000, 64, 0, 0, 64, 56,
                               phnum, 64, 0, 0)


def test_not_found(tmp_path):
    _check(tmp_path / "nosuch", 127, "No such file or directory")


def test_directory(tmp_path):
    _check(tmp_path, 126, "Is a directory")


def test_not_elf(tmp_path):
    f = tmp_path / "script.sh"
    f.write_text("#!/bin/sh\necho hi\n")
    _check(f, 126, "not an ELF")


def test_empty(tmp_path):
    f = tmp_path / "empty"
    f.write_bytes(b"")
    _check(f, 126, "empty")


def test_32bit(tmp_path):
    f = tmp_path / "elf32"
    f.write_bytes(_elf_header(ei_class=1) + b"\0" * 64)
    _check(f, 126, "32-bit")


def test_wrong_arch(tmp_path):
    f = tmp_path / "aarch64"
    f.write_bytes(_elf_header(machine=183) + b"\0" * 64)
    _check(f, 126, "wrong architecture")


def test_dynamically_linked(tmp_path):
    # a dynamically linked host program (it has PT_INTERP)
    path = shutil.which("ls")
    with open(path, "rb") as fh:
        assert fh.read(4) == b"\x7fELF"
    _check(path, 126, "dynamically linked")


def test_pie(tmp_path):
    f = tmp_path / "pie"
    f.write_bytes(_elf_header(e_type=3, phnum=1) + b"\0" * 64)   # one PT_NULL header
    _check(f, 126, "position-independent")


@pytest.mark.parametrize("cut", [40, 2000, 100_000])
def test_truncated(tmp_path, cut):
    """Cut in the ELF header, execve refuses the file (ENOEXEC: 126). Cut later, Linux's execve
    passes its point of no return and then cannot clear the data segment's last file page
    (past the end of the file): the process dies of SIGSEGV, and so does goemu, after one line."""
    f = tmp_path / "truncated"
    f.write_bytes(esbuild("0.5.26").read_bytes()[:cut])
    f.chmod(0o755)
    native = _native_errno(f)
    if native:
        assert native == 8
        _check(f, 126, "truncated")
        return
    assert subprocess.run([str(f)], capture_output=True, timeout=10).returncode == -11
    _check(f, -11, "past the end of the file")


def test_guest_crash_status_and_message():
    """A Go program's own crash keeps Go's message and status 2 (checked against native in
    test_programs); a fault with no handler at all ends as the kernel's default action."""
    p = goemu_cli("run", go119("nilderef"))
    assert p.returncode == 2
    assert b"Traceback" not in p.stderr


def _native_errno(path) -> int:
    """What the host kernel's execve says about the file (the oracle)."""
    try:
        subprocess.run([str(path)], timeout=10, capture_output=True)
    except OSError as e:
        return e.errno
    return 0


@pytest.mark.parametrize("mode", [0o644, 0o000])
def test_not_executable_mode(tmp_path, mode):
    f = tmp_path / "hello"
    shutil.copy(go119("hello"), f)
    os.chmod(f, mode)
    assert _native_errno(f) == 13          # EACCES: no execute bit for anyone (root included)
    p = goemu_cli("run", f)
    assert p.returncode == 126 and p.stderr.decode().strip() == f"goemu: {f}: Permission denied"


def test_fifo_and_device_are_refused_at_once(tmp_path):
    """execve of a FIFO with no writer or of /dev/zero fails with EACCES at once natively;
    goemu must neither block in open() nor read without end."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o755)
    for path in (fifo, "/dev/zero"):
        assert _native_errno(path) == 13
        t0 = time.monotonic()
        p = goemu_cli("run", path)
        assert time.monotonic() - t0 < 10
        assert p.returncode == 126 and p.stderr.decode().strip() == f"goemu: {path}: Permission denied"
