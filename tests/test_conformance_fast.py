"""The fast tier of the conformance suite (docs/conformance.md): Go's own tests of a few quick
standard-library packages (tier `fast` in conformance/packages.tsv), run by conformance/run
natively and under goemu. No test may fail only under goemu unless it is listed in
conformance/known-failures.txt. `make test` builds these test binaries; `make conformance`
runs every package."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, TIMEOUT

RUNNER = ROOT / "conformance" / "run"
FAST = [line.split("\t")[0] for line in (ROOT / "conformance" / "packages.tsv").read_text().splitlines()
        if not line.startswith("#") and line.split("\t")[1:2] == ["fast"]]


def test_fast_tier_is_not_empty():
    assert len(FAST) >= 5


@pytest.mark.parametrize("package", FAST)
def test_no_test_fails_only_under_goemu(package, tmp_path):
    out = tmp_path / "result.json"
    p = subprocess.run([sys.executable, str(RUNNER), "--json", str(out), "--logs", str(tmp_path),
                        package], capture_output=True, timeout=TIMEOUT)
    report = p.stdout.decode(errors="replace")[-4000:] + p.stderr.decode(errors="replace")[-2000:]
    assert p.returncode in (0, 1), report        # 2: no test binary (make test builds them)
    r = json.loads(out.read_text())["packages"][0]
    # The oracle ran: the package's tests passed natively, and goemu ran them all.
    assert r["native"]["outcome"] == "ok" and r["native"]["counts"].get("PASS", 0) > 0, report
    assert r["goemu"]["counts"].get("NOTRUN", 0) == 0, report
    assert r["unknown"] == [], report
    assert p.returncode == 0, report
