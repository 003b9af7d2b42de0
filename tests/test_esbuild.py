"""Real Go 1.14 binaries (esbuild 0.4.14 and 0.5.26, go1.14.2) against native runs."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT, esbuild, exit_status, run_goemu, run_native

VERSIONS = ["0.5.26", "0.4.14"]


def test_fixtures_are_go114():
    for v in VERSIONS:
        data = esbuild(v).read_bytes()
        assert b"go1.14.2" in data


@pytest.mark.parametrize("version", VERSIONS)
def test_version(version):
    native = run_native(esbuild(version), "--version")
    emu = run_goemu(esbuild(version), "--version")
    # esbuild prints its version on stderr
    assert native.stderr == f"{version}\n".encode()
    assert emu.stdout == native.stdout
    assert emu.stderr == native.stderr
    assert emu.returncode == native.returncode == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_bundle_is_byte_identical(version, tmp_path):
    for side in ("native", "emu"):
        subprocess.run([sys.executable, str(ROOT / "fixtures" / "gen_bundle_project.py"),
                        str(tmp_path / side), "40"], check=True)
    args = ("entry.js", "--bundle", "--outfile=out.js")
    native = run_native(esbuild(version), *args, cwd=tmp_path / "native")
    emu = run_goemu(esbuild(version), *args, cwd=tmp_path / "emu")
    assert native.returncode == 0
    assert emu.returncode == 0, emu.stderr.decode(errors="replace")[-2000:]
    out = (tmp_path / "emu" / "out.js").read_bytes()
    assert len(out) > 1000
    assert out == (tmp_path / "native" / "out.js").read_bytes()


@pytest.mark.parametrize("version", VERSIONS)
def test_missing_entry_file(version, tmp_path):
    native = run_native(esbuild(version), "nosuch.js", "--bundle", "--outfile=out.js", cwd=tmp_path)
    emu = run_goemu(esbuild(version), "nosuch.js", "--bundle", "--outfile=out.js", cwd=tmp_path)
    assert exit_status(native) != 0
    assert exit_status(emu) == exit_status(native)
    assert emu.stdout == native.stdout
    # 0.4.14 prints a timing line after the error; the error lines themselves are identical
    assert [l for l in emu.stderr.splitlines() if b"error" in l] == \
        [l for l in native.stderr.splitlines() if b"error" in l]
    assert b"error" in native.stderr
