"""A plain `goemu run` installs no Python hook per instruction or per basic block: Python hooks
only on the syscall instruction, invalid memory accesses and CPU interrupts."""
from __future__ import annotations

import unicorn

from conftest import go119


def test_no_per_instruction_or_block_hooks(monkeypatch):
    from goemu.kernel import Kernel, Options

    from unicorn.unicorn_py3.arch.intel import UcIntel

    kinds: list[int] = []
    for cls in (unicorn.Uc, UcIntel):
        def spy(self, htype, *args, _original=cls.hook_add, **kwargs):
            kinds.append(htype)
            return _original(self, htype, *args, **kwargs)
        monkeypatch.setattr(cls, "hook_add", spy)
    k = Kernel(str(go119("hello")), ["hello"], [], Options())
    assert k.run() == 0
    assert kinds, "the spy saw no hooks at all"
    for htype in kinds:
        assert not htype & (unicorn.UC_HOOK_CODE | unicorn.UC_HOOK_BLOCK | unicorn.UC_HOOK_MEM_READ
                            | unicorn.UC_HOOK_MEM_WRITE | unicorn.UC_HOOK_MEM_FETCH), htype
    assert unicorn.UC_HOOK_INSN in kinds          # the syscall instruction
    assert k.slices >= 1
    # Time slices end through a native (machine-code) block hook, not a Python one.
    from goemu.slicer import BlockStopSlicer
    assert isinstance(k.slicer, BlockStopSlicer)
