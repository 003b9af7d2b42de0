"""Every fixture program: stdout identical, exit status identical, and the first two stderr
lines identical (same panic text, same `[signal SIGSEGV ... pc=...]` line), against native."""
from __future__ import annotations

import re

import pytest

from conftest import exit_status, first_lines, go119, run_goemu, run_native

PROGRAMS = [
    ("hello", ()),
    ("goroutines", ()),
    ("pingpong", ()),
    ("timers", ()),
    ("mutex", ()),
    ("gcchurn", ()),
    ("recursion", ()),
    ("recovered", ()),
    ("nilderef", ()),
    ("preempt", (100_000_000,)),   # ~25 ms natively: still long enough to need async preemption
    ("deadlock", ()),
    ("fileio", ()),
    ("argsenv", ("one", "two words", "")),
    ("exit3", ()),
    ("lockosthread", ()),
    ("rawsyscalls", ()),
    ("sigusr1", ()),
    ("cpuhash", (2,)),
    ("memfault", ()),
    ("jsonsort", (2000,)),
    ("sigstorm", (2_000_000,)),
    ("cpuprof", ()),
    ("caps", ()),
    ("unsharefs", ()),
    # ReadMemStats in a loop against LockOSThread (runtime's TemplateThreadRace): without wake-up
    # preemption goemu livelocked; a round over 3 s (virtual under --deterministic) says "starved"
    ("stwloop", ("3s",)),
]


def _native_oracle(binary, args, cwd):
    native = run_native(binary, *args, cwd=cwd)
    if binary.name == "preempt":
        # Natively, sysmon preempts the ~25 ms loop 10-20 ms after it starts: in most runs, not
        # all (a busy machine can let the loop finish first). The documented behaviour is the
        # preempted order; take the first of up to 5 native runs that shows it.
        for _ in range(4):
            if native.stdout.startswith(b"main ran"):
                break
            native = run_native(binary, *args, cwd=cwd)
        assert native.stdout.startswith(b"main ran"), "natively, async preemption never happened"
    return native


@pytest.mark.parametrize("mode", ["default", "deterministic"])
@pytest.mark.parametrize("name,args", PROGRAMS, ids=[p[0] for p in PROGRAMS])
def test_program_matches_native(name, args, mode, tmp_path):
    binary = go119(name)
    native = _native_oracle(binary, args, tmp_path)
    emu = run_goemu(binary, *args, cwd=tmp_path,
                    options=("--deterministic",) if mode == "deterministic" else ())
    assert emu.stdout == native.stdout, emu.stderr.decode(errors="replace")[-2000:]
    assert exit_status(emu) == exit_status(native), emu.stderr.decode(errors="replace")[-2000:]
    assert first_lines(emu.stderr) == first_lines(native.stderr)


def test_expected_statuses_really_differ():
    """The oracle itself: these programs fail natively in the ways the tests above rely on."""
    assert run_native(go119("nilderef")).returncode == 2
    assert run_native(go119("deadlock")).returncode == 2
    assert run_native(go119("exit3")).returncode == 3


def test_environment_options_as_qemu_user():
    env = {"GOEMU_TEST_A": "from-host", "GOEMU_TEST_B": "to-be-removed"}
    emu = run_goemu(go119("argsenv"), "x", env=env,
                    options=("-E", "GOEMU_TEST_A=from-option", "-U", "GOEMU_TEST_B"))
    native = run_native(go119("argsenv"), "x", env={"GOEMU_TEST_A": "from-option"})
    assert emu.returncode == 0
    assert emu.stdout == native.stdout
    assert b"GOEMU_TEST_A=from-option\n" in emu.stdout


def test_preemption_fixture_needs_async_preemption():
    """With async preemption off the same program prints the other order natively and under
    goemu: so the ordering checked above really comes from SIGURG preemption."""
    off = {"GODEBUG": "asyncpreemptoff=1"}
    native = run_native(go119("preempt"), 100_000_000, env=off)
    emu = run_goemu(go119("preempt"), 100_000_000, env=off)
    assert native.stdout.splitlines()[0] == b"loop done"
    assert emu.stdout == native.stdout


@pytest.mark.parametrize("kind,code", [("accerr", b"code=0x2"), ("maperr", b"code=0x1")])
def test_unrecovered_fault_reports_code_and_address(kind, code):
    """A write to a read-only page (SEGV_ACCERR) and a read of an unmapped page (SEGV_MAPERR):
    Go prints the signal's code and the exact fault address (page offset 0x123 / 0x045), as
    natively. Addresses differ between runs (ASLR), so they are compared below the page."""
    native = run_native(go119("memfault"), kind)
    emu = run_goemu(go119("memfault"), kind)
    assert exit_status(emu) == exit_status(native) == 2

    def shape(err: bytes) -> list[bytes]:
        lines = err.splitlines()[:3]
        return [re.sub(rb"0x[0-9a-f]*?([0-9a-f]{3})\b", rb"0x...\1", ln) for ln in lines]
    assert shape(emu.stderr) == shape(native.stderr)
    assert code in emu.stderr.splitlines()[2]


EXEC_CASES = [((), ()), ((), ("--follow-exec",)), ((), ("--follow-exec", "--deterministic")),
              (("sh",), ()), (("sh",), ("--follow-exec",))]   # /bin/sh's own pid is never virtual


@pytest.mark.parametrize("args,options", EXEC_CASES, ids=[" ".join(a + o) or "plain" for a, o in EXEC_CASES])
def test_exec_replaces_the_emulated_program(args, options, tmp_path):
    """syscall.Exec from the emulated process: the new program has the same pid, the fds not
    marked close-on-exec, the new argv and environment; failed execs return their errno.
    Under --follow-exec --deterministic the pid is goemu's 1000 before and after, which it is
    only if the re-exec'd Go program runs under goemu too."""
    native = run_native(go119("selfexec"), *args, cwd=tmp_path)
    emu = run_goemu(go119("selfexec"), *args, cwd=tmp_path, options=options)
    assert exit_status(native) == (5 if args else 7)
    assert emu.stdout == native.stdout, emu.stderr.decode(errors="replace")[-2000:]
    assert exit_status(emu) == exit_status(native)
    assert (b"same pid: true" in native.stdout) or args
