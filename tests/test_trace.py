"""goemu trace and goemu debug on real binaries."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import sigdefault
from conftest import esbuild, go119, goemu_cli, run_native

GOLDEN = Path(__file__).parent / "golden"


def trace(*args, cwd=None):
    return goemu_cli("trace", *args, cwd=cwd)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("binary,args", [(lambda: esbuild("0.4.14"), ("--version",)),
                                         (lambda: go119("pingpong"), ())],
                         ids=["esbuild-0.4.14", "pingpong"])
def test_schedule_events_and_unchanged_output(binary, args, tmp_path):
    b = binary()
    out = tmp_path / "events.jsonl"
    p = trace("--sym", "runtime.schedule", "--format", "jsonl", "-o", out, b, *args)
    native = run_native(b, *args)
    assert p.returncode == native.returncode == 0
    assert p.stdout == native.stdout
    if b.name.startswith("esbuild"):
        assert p.stderr == native.stderr      # the version line
    events = jsonl(out)
    # schedule never returns: the goroutine it chose is reported as a "picked" event (from a
    # hidden hook on runtime.execute), on the same M, after the schedule call
    picked = [e for e in events if e.get("event") == "picked"]
    assert all(e["func"] == "runtime.schedule" and e["picked"] > 0 for e in picked)
    assert picked and picked[0]["picked"] == 1 and picked[0]["seq"] == 2
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    events = [e for e in events if e.get("event") is None]
    assert len(events) >= 3
    # without --deterministic the trace runs on time slices: events carry the guest clock (ns),
    # not an instruction count
    for key in ("seq", "ns", "tid", "m", "p", "goid", "func", "pc", "caller"):
        assert all(key in e for e in events), key
    assert not any("icount" in e for e in events)
    assert all(e["func"] == "runtime.schedule" for e in events)
    assert all(a["ns"] <= b["ns"] for a, b in zip(events, events[1:]))
    # one M id per guest thread, and several threads (clone made them)
    m_of = {}
    for e in events:
        if e["m"] is not None:
            m_of.setdefault(e["tid"], set()).add(e["m"])
    assert all(len(ms) == 1 for ms in m_of.values()), m_of
    ms = [next(iter(s)) for s in m_of.values()]
    assert len(ms) == len(set(ms))
    assert len(m_of) >= 2


def test_newosproc_stack_shows_path_from_runtime_main(tmp_path):
    out = tmp_path / "ev.jsonl"
    p = trace("--sym", "runtime.newosproc", "--stack", "8", "--format", "jsonl", "-o", out,
              esbuild("0.5.26"), "--version")
    assert p.returncode == 0
    stacks = [e["stack"] for e in jsonl(out)]
    assert stacks and all(s[0] == "runtime.newosproc" for s in stacks)
    assert any("runtime.newm" in s and ("runtime.main" in s or "runtime.main.func1" in s) for s in stacks)
    strace = goemu_cli("run", "--strace", esbuild("0.5.26"), "--version")
    clones = [l for l in strace.stderr.decode().splitlines() if " clone(" in l]
    assert clones and all("clone(CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM," in l
                          for l in clones)   # 0x50f00, decoded


def test_step_at_newstack_disassembles(tmp_path):
    out = tmp_path / "ev.jsonl"
    p = trace("--sym", "runtime.newstack", "--step", "20", "--format", "jsonl", "-o", out,
              go119("recursion"))
    assert p.returncode == 0
    assert p.stdout == run_native(go119("recursion")).stdout
    steps = [e for e in jsonl(out) if e.get("event") == "steps"]
    assert steps
    first = steps[0]["steps"]
    assert len(first) == 20
    assert first[0]["where"] == "runtime.newstack+0x0"
    assert all(s["insn"] and s["where"].startswith("runtime.") for s in first)
    assert any(s["changed"] for s in first)
    text = trace("--sym", "runtime.newstack", "--step", "5", go119("recursion")).stderr.decode()
    assert "step   1" in text and "runtime.newstack+0x0" in text


def test_deterministic_traces_with_chrome_are_identical(tmp_path):
    outs = []
    for i in range(2):
        chrome = tmp_path / f"t{i}.json"
        p = trace("--deterministic", "--sym", "runtime.schedule", "--sym", "runtime.gopark", "--ret",
                  "--sched", "-o", tmp_path / f"t{i}.txt", "--chrome", chrome, go119("pingpong"))
        assert p.returncode == 0
        outs.append(((tmp_path / f"t{i}.txt").read_bytes(), chrome.read_bytes()))
    assert outs[0] == outs[1]
    doc = json.loads(outs[0][1])
    events = doc["traceEvents"]
    assert events and all({"ph", "ts", "pid", "tid"} <= set(e) for e in events)
    assert {e["ph"] for e in events} >= {"M", "X", "C"}


def test_golden_trace(tmp_path):
    """A fixed binary path, an empty environment, default signal dispositions and the virtual
    clock: the same trace on any machine of this kind. Regenerate with `make golden` after an intended change."""
    fixed = Path("/tmp/goemu-golden")
    fixed.mkdir(exist_ok=True)
    binary = fixed / "esbuild"
    shutil.copyfile(esbuild("0.5.26"), binary)
    binary.chmod(0o755)
    p = goemu_cli("trace", "--deterministic", "--cpus", "2", "-i", "--sym", "runtime.newosproc",
                  "--stack", "6", "-o", tmp_path / "t.txt", "./esbuild", "--version", cwd=fixed,
                  preexec_fn=sigdefault.reset)   # what the parent ignores changes Go's start-up
    assert p.returncode == 0
    assert (tmp_path / "t.txt").read_text() == (GOLDEN / "newosproc-esbuild-0.5.26.txt").read_text()


def test_debug_session_on_stack_growth(tmp_path):
    script = tmp_path / "cmds"
    script.write_text("break runtime.newstack\nrun\nbt\ngoroutines\nsched\nthreads\nstepi 2\n"
                      "x/2xg $rsp\ninfo symbol runtime.main\ndelete\ncontinue\n")
    p = goemu_cli("debug", "-x", script, go119("recursion"))
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr
    assert "Breakpoint 1, tid" in out and "runtime.newstack+0x0" in out
    assert "#1 " in out and "in runtime.morestack" in out           # bt
    assert "in runtime.main at" in out                                 # bt continues on the goroutine
    assert "G1 " in out and "_Grunning" in out and "goroutines" in out  # goroutines
    assert "sched: runqsize=" in out and "P0 " in out                  # sched
    assert "tid " in out and " M0 " in out                             # threads
    assert "runtime.main+0x0" in out                                   # info symbol
    assert out.rstrip().endswith("[process exited with status 0]")
    assert "depth 100000" in out                                       # the program ran on


def test_stripped_binary_is_explained(tmp_path):
    objcopy = shutil.which("objcopy")
    assert objcopy, "binutils (objcopy) is needed: make deps"
    stripped = tmp_path / "esbuild-stripped"
    subprocess.run([objcopy, "--strip-all", str(esbuild("0.5.26")), str(stripped)], check=True)
    p = trace("--sym", "runtime.newosproc", "--stack", "4", "--sched", stripped, "--version")
    err = p.stderr.decode()
    assert p.returncode == 0
    assert "Traceback" not in err
    assert "goemu: note:" in err and ".symtab" in err
    assert "--sched needs runtime.sched" in err
    assert "runtime.newosproc() \u2190 runtime.newm1" in err     # names still come from pclntab


def test_timeline_picture(tmp_path):
    """M tracks, goroutine lanes, a time axis on the virtual clock, run queues with a y-axis,
    a legend; a window; the HTML page with zoom."""
    import xml.etree.ElementTree as ET
    svg = tmp_path / "t.svg"
    p = trace("--deterministic", "--cpus", "2", "--sym", "main.spin", "--sym", "runtime.gopark", "--sym",
              "runtime.execute", "--ret", "--args", "--sched", "-o", tmp_path / "t.txt", "--timeline", svg,
              go119("workers"))
    assert p.returncode == 0
    ns = "{http://www.w3.org/2000/svg}"
    root = ET.parse(svg).getroot()
    texts = ["".join(t.itertext()) for t in root.iter(f"{ns}text")]
    assert any(t.startswith("M0") and "tid " in t for t in texts)            # one track per M
    lanes = [t for t in texts if t.startswith("G") and t[1:].isdigit()]
    events = [l for l in (tmp_path / "t.txt").read_text().splitlines() if " main.spin(" in l]
    spin_goids = {l.split()[3] for l in events}                               # e.g. G18
    assert len(spin_goids) == 4 and spin_goids <= set(lanes)                 # a lane per goroutine
    axis = [t for t in texts if t.endswith((" µs", " ms"))]
    assert len(axis) >= 4 and axis[0] in ("0 µs", "0 ms")                    # a time axis
    assert "0" in texts and any(t.startswith("run queues") for t in texts)   # y-axis of the queues
    assert "main.spin (4)" in texts                                          # legend with counts
    spans = [r for r in root.iter(f"{ns}rect") if r.find(f"{ns}title") is not None
             and r.find(f"{ns}title").text.startswith("main.spin(")]
    assert len(spans) == 4 and all(float(r.get("width")) > 50 for r in spans)
    assert all("returned" in r.find(f"{ns}title").text for r in spans)
    # a window: from the first runtime.execute, 0.5 ms long
    win = tmp_path / "w.svg"
    p = trace("--deterministic", "--cpus", "2", "--sym", "main.spin", "--sym", "runtime.execute", "--ret",
              "-o", tmp_path / "w.txt", "--timeline", win, "--from", "main.spin", "--to", "+0.5", go119("workers"))
    assert p.returncode == 0
    wtexts = ["".join(t.itertext()) for t in ET.parse(win).getroot().iter(f"{ns}text")]
    assert any("window" in t and "of" in t for t in wtexts)
    assert "500 µs" in wtexts and not any(t.endswith(" ms") and t != "0 ms" for t in wtexts)
    html = tmp_path / "t.html"
    p = trace("--deterministic", "--sym", "runtime.schedule", "-o", tmp_path / "h.txt", "--timeline", html,
              go119("hello"))
    assert p.returncode == 0
    page = html.read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "function zoom(" in page
