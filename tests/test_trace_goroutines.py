"""goemu trace follows goroutines: returns matched per goroutine across Ms, the M's current
user goroutine (m.curg), arguments and results, stacks past morestack, inlined functions."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import esbuild, go119, goemu_cli, run_native


def trace_jsonl(tmp_path: Path, *args) -> tuple[list[dict], bytes]:
    out = tmp_path / "ev.jsonl"
    p = goemu_cli("trace", "--deterministic", "--format", "jsonl", "-o", out, *args)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    return [json.loads(line) for line in out.read_text().splitlines()], p.stdout


def test_returns_follow_goroutines_across_ms_with_results(tmp_path):
    b = go119("workers")
    events, stdout = trace_jsonl(tmp_path, "--cpus", "2", "--sym", "main.spin", "--ret", "--args", b)
    assert stdout == run_native(b, env={"GOMAXPROCS": "2"}).stdout
    calls = {e["seq"]: e for e in events if e.get("event") is None}
    rets = [e for e in events if e.get("event") == "return"]
    assert len(calls) == 4 and len(rets) == 4             # every call has its return
    printed = {int(l.split()[1]): int(l.split()[3]) for l in stdout.decode().splitlines()
               if l.startswith("worker")}
    for r in rets:
        call = calls[r["call_seq"]]
        assert r["goid"] == call["goid"] > 0
        worker = int(next(a["value"] for a in call["args"] if a["name"] == "id"))
        assert [x["value"] for x in r["results"]] == [str(printed[worker])]
    # each goroutine parked 3 times in between: at least one came back on another thread
    assert any(calls[r["call_seq"]]["tid"] != r["tid"] for r in rets)


def test_gopark_returns_for_every_worker_park(tmp_path):
    events, _ = trace_jsonl(tmp_path, "--cpus", "2", "--sym", "main.spin", "--sym", "runtime.gopark",
                            "--ret", go119("workers"))
    workers = {e["goid"] for e in events if e["func"] == "main.spin"}
    parks = [e for e in events if e["func"] == "runtime.gopark" and e.get("event") is None
             and e["goid"] in workers]
    returns = [e for e in events if e["func"] == "runtime.gopark" and e.get("event") == "return"
               and e["goid"] in workers]
    assert len(parks) >= 4 * 3
    assert len(returns) == len(parks)


def test_curg_and_chosen_goroutine_on_g0(tmp_path):
    events, _ = trace_jsonl(tmp_path, "--sym", "runtime.execute", "--sym", "runtime.newm", "--args",
                            esbuild("0.5.26"), "--version")
    execs = [e for e in events if e["func"] == "runtime.execute"]
    assert execs and all(e["goid"] == 0 for e in execs)           # the scheduler runs on g0
    assert execs[0]["args"][0] == {"name": "gp", "type": "*runtime.g", "value": "G1"}
    newm = [e for e in events if e["func"] == "runtime.newm"]
    assert newm[0]["curg"] == 1                                    # runtime.main's goroutine
    assert newm[0]["args"][0]["value"] == "runtime.sysmon"
    assert all("curg" in e for e in events)


def test_malg_and_copystack_arguments(tmp_path):
    events, _ = trace_jsonl(tmp_path, "--sym", "runtime.malg", "--sym", "runtime.copystack", "--args",
                            "--ret", go119("recursion"))
    malg = [e for e in events if e["func"] == "runtime.malg" and e.get("event") is None]
    sizes = {int(e["args"][0]["value"]) for e in malg}
    assert 32768 in sizes and 2048 in sizes                        # gsignal stacks, goroutines
    copies = [int(a["value"], 0) for e in events if e["func"] == "runtime.copystack" and "args" in e
              for a in e["args"] if a["name"] == "newsize"]
    assert len(copies) >= 5
    assert all(b == 2 * a for a, b in zip(copies, copies[1:]) if b > a)   # doubling


def test_stack_continues_past_morestack(tmp_path):
    events, _ = trace_jsonl(tmp_path, "--sym", "runtime.newstack", "--stack", "6", go119("recursion"))
    grown = [e for e in events if "stack_switch" in e]
    assert grown
    e = grown[-1]
    assert e["stack"][:2] == ["runtime.newstack", "runtime.morestack"]
    assert e["stack_switch"] == 2 and e["stack_goid"] == e["curg"] > 0
    assert e["stack"][2] == "main.depth"                           # the function that overflowed
    text = goemu_cli("trace", "--deterministic", "--sym", "runtime.newstack", "--stack", "4",
                     go119("recursion")).stderr.decode()
    assert "--- goroutine G1 (m.curg), from its saved context ---" in text


def test_inlined_functions_can_be_traced(tmp_path):
    events, _ = trace_jsonl(tmp_path, "--sym", "runtime.wakep", "--stack", "3", esbuild("0.5.26"), "--version")
    assert events, "runtime.wakep is inlined in go1.14.2: its inlined copies must be traced"
    assert all(e["inlined_in"] for e in events)
    assert any(e["inlined_in"] == "runtime.newproc1" for e in events)
    assert all(e["stack"][0] == "runtime.wakep" for e in events)
    for e in events:          # the next frame is the function it is inlined in
        assert e["stack"][1] == e["inlined_in"]


def test_sinks_without_icount():
    """icount is optional (without --deterministic the trace runs on time slices): the text
    line shows the guest clock in ms from the first event, and the pictures use the clock
    anyway."""
    from goemu.timeline import render_svg
    from goemu.trace import Tracer
    t = object.__new__(Tracer)
    call = {"seq": 1, "ns": 5_000_000, "tid": 1000, "m": 0, "p": 0, "goid": 0, "curg": 7,
            "func": "runtime.newstack", "pc": 1, "caller": "runtime.morestack+0x8f", "caller_pc": 2,
            "file": "asm_amd64.s", "line": 449}
    ret = {"seq": 2, "ns": 5_002_000, "tid": 1000, "m": 0, "p": 0, "goid": 0, "curg": 7,
           "func": "runtime.newstack", "pc": 3, "event": "return", "call_seq": 1, "dur_ns": 2000}
    assert t._text(call).startswith("[0.000000ms] M0 P0 G0 curg=G7 runtime.newstack() \u2190 ")
    assert t._text(ret).startswith("[0.002000ms] ")
    assert t._text(ret).endswith("runtime.newstack() returned after 2000 ns")
    svg = render_svg([call, ret], "t", True)
    assert "G7" in svg and "runtime.newstack (1)" in svg
