"""`goemu trace` on a binary whose .symtab, .strtab, .gopclntab, DWARF or section headers are
truncated or corrupt: every reader bounds-checks, each thing it could not read is a
`goemu: note:` line, and tracing goes on with what could be read (main.main is still found
and traced). The program itself behaves as its native run (the oracle): these sections are not
loaded, except .gopclntab, whose corruption the Go runtime itself dies of natively."""
from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys

import pytest

from conftest import ROOT, go119

_SHDR = struct.Struct("<IIQQQQIIQQ")
LIMIT = 60.0
# sections goemu reads: damaging them must leave a note
READ_BY_GOEMU = ("symtab", "strtab", "gopclntab", "shdrs", "shoff", "shnum", "shentsize", "shstrndx")


def _sections(data: bytes) -> tuple[dict, int, int]:
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    raw = [_SHDR.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
    stroff = raw[shstrndx][4]
    out = {}
    for i, r in enumerate(raw):
        end = data.index(b"\0", stroff + r[0])
        out[data[stroff + r[0]:end].decode()] = (i, r[4], r[5])     # index, offset, size
    return out, shoff, shentsize


def variants(data: bytes) -> dict[str, bytes]:
    secs, shoff, shentsize = _sections(data)
    out = {}

    def patched(i, field, value):
        d = bytearray(data)
        struct.pack_into("<Q", d, shoff + i * shentsize + field, value)
        return bytes(d)
    for name in (".symtab", ".strtab", ".gopclntab", ".debug_info", ".debug_abbrev", ".debug_line"):
        i, off, size = secs[name]
        key = name.strip(".")
        out[f"{key}_size_past_eof"] = patched(i, 32, len(data))
        out[f"{key}_off_past_eof"] = patched(i, 24, len(data) + 4096)
        out[f"{key}_half"] = patched(i, 32, size // 2)
        out[f"{key}_tiny"] = patched(i, 32, 3)
        d = bytearray(data)
        d[off:off + size] = bytes(size)
        out[f"{key}_zeroed"] = bytes(d)
        rnd = random.Random(name)
        d = bytearray(data)
        d[off:off + size] = rnd.randbytes(size)
        out[f"{key}_random"] = bytes(d)
    out["shdrs_cut"] = data[:shoff + 100]
    for key, where, fmt, value in (("shoff_past_eof", 0x28, "<Q", len(data) + 100),
                                   ("shnum_huge", 0x3C, "<H", 0xFFFF),
                                   ("shentsize_small", 0x3A, "<H", 8),
                                   ("shstrndx_bad", 0x3E, "<H", 0xFFFF)):
        d = bytearray(data)
        struct.pack_into(fmt, d, where, value)
        out[key] = bytes(d)
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("symc")
    files = {}
    for name, data in variants(go119("hello").read_bytes()).items():
        p = d / name
        p.write_bytes(data)
        p.chmod(0o755)
        files[name] = p
    return files


def test_trace_with_corrupt_symbols(corpus, tmp_path):
    natives = {name: subprocess.run([str(p)], capture_output=True, timeout=LIMIT)
               for name, p in corpus.items()}
    template = f"trace --sym main.main --stack 2 -o {tmp_path}/{{name}}.trace {{}}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "cli_batch.py"), str(LIMIT), "--args",
                           template, *map(str, corpus.values())],
                          capture_output=True, env=env, timeout=LIMIT * len(corpus))
    assert proc.returncode == 0, proc.stderr.decode()
    failures = []
    results = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(results) == len(corpus)
    for r in results:
        name = os.path.basename(r["path"])
        native = natives[name]
        stderr = r["stderr"]
        bad = []
        if "Traceback" in stderr or "internal error" in stderr:
            bad.append(stderr[-500:])
        if r["status"] != native.returncode or r["stdout"].encode("latin-1") != native.stdout:
            bad.append(f"status {r['status']} {r['stdout']!r}, natively {native.returncode} "
                       f"{native.stdout!r}")
        notes = [ln for ln in stderr.splitlines() if ln.startswith("goemu: note: ")]
        if name.startswith(READ_BY_GOEMU) and not name.endswith(("_random", "_zeroed")) and not notes \
                and native.returncode >= 0:        # (a file execve kills never gets to symbols)
            bad.append("no note says what could not be read")
        if native.returncode == 0:
            trace = tmp_path / f"{name}.trace"
            text = trace.read_text() if trace.exists() else ""
            if "main.main" not in text:
                bad.append(f"main.main not traced: {text[:200]!r} {stderr[-300:]!r}")
        if bad:
            failures.append(f"{name}: {'; '.join(bad)}")
    assert not failures, "\n".join(failures)
