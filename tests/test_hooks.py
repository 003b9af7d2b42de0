"""A plain `goemu run` installs no hook per instruction, per basic block or per memory access:
Python hooks only on the syscall instruction and CPU interrupts; page permissions are a native
TLB fill hook, and time slices end without any hook (goemu/slicer.py)."""
from __future__ import annotations

import unicorn

from conftest import go119

MEM_HOOKS = (unicorn.UC_HOOK_MEM_READ_UNMAPPED | unicorn.UC_HOOK_MEM_WRITE_UNMAPPED
             | unicorn.UC_HOOK_MEM_FETCH_UNMAPPED | unicorn.UC_HOOK_MEM_READ_PROT
             | unicorn.UC_HOOK_MEM_WRITE_PROT | unicorn.UC_HOOK_MEM_FETCH_PROT
             | unicorn.UC_HOOK_MEM_READ | unicorn.UC_HOOK_MEM_WRITE | unicorn.UC_HOOK_MEM_FETCH
             | unicorn.UC_HOOK_MEM_READ_AFTER)


def test_no_per_instruction_block_or_memory_hooks(monkeypatch):
    from unicorn.unicorn_py3.arch.intel import UcIntel

    from goemu import memory, native, slicer
    from goemu.kernel import Kernel, Options

    # the offset finders experiment on scratch engines with hooks of their own: run them first
    assert memory.invalid_addr_offset() is not None
    assert slicer.no_exit_request_offset() is not None
    kinds: list[int] = []
    for cls in (unicorn.Uc, UcIntel):
        def spy(self, htype, *args, _original=cls.hook_add, **kwargs):
            kinds.append(htype)
            return _original(self, htype, *args, **kwargs)
        monkeypatch.setattr(cls, "hook_add", spy)
    native_kinds: list[int] = []

    def native_spy(uc, htype, *args, _original=native.hook_add_native):
        native_kinds.append(htype)
        return _original(uc, htype, *args)
    monkeypatch.setattr(native, "hook_add_native", native_spy)
    k = Kernel(str(go119("hello")), ["hello"], [], Options())
    assert k.run() == 0
    assert kinds, "the spy saw no hooks at all"
    for htype in kinds + native_kinds:
        assert not htype & (unicorn.UC_HOOK_CODE | unicorn.UC_HOOK_BLOCK | MEM_HOOKS), htype
    assert unicorn.UC_HOOK_INSN in kinds          # the syscall instruction
    assert native_kinds == [unicorn.UC_HOOK_TLB_FILL]
    assert k.slices >= 1
    assert isinstance(k.slicer, slicer.TimeSlicer) and k.slicer.mode == "exit-check"
