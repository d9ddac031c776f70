"""Map a faulting host pc inside the image's code back to the guest pc.

Ahead-of-time code records no per-access guest pc (that would block LLVM's
loop optimisations).  Instead every translated instruction carries a DWARF
line-table location whose *line* is the guest pc it came from; this module
reads that table only when a fault actually happens.  Where the optimiser
left no location (line 0), the enclosing block function's name
(``b_<guest pc>``) gives the block's pc.
"""

from __future__ import annotations

import bisect
import ctypes
import io
import re

_BLOCK_NAME = re.compile(r"^b_([0-9a-f]+)$")


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def load_base(any_symbol_address: int) -> int:
    """The load address of the shared object that holds ``any_symbol_address``."""
    libdl = ctypes.CDLL(None)
    libdl.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    info = _DlInfo()
    if not libdl.dladdr(any_symbol_address, ctypes.byref(info)) or not info.dli_fbase:
        raise LookupError("dladdr found no object")
    return info.dli_fbase


class HostCodeMap:
    """host pc → guest pc for one loaded image."""

    def __init__(self, host_object: bytes, base: int) -> None:
        from elftools.elf.elffile import ELFFile

        self.base = base
        self._obj = host_object
        self._rows: list[tuple[int, int]] | None = None
        self._funcs: list[tuple[int, int, int]] | None = None
        elf = ELFFile(io.BytesIO(host_object))
        self.size = max((seg["p_vaddr"] + seg["p_memsz"] for seg in elf.iter_segments()
                         if seg["p_type"] == "PT_LOAD"), default=0)

    def contains(self, host_pc: int) -> bool:
        return self.base <= host_pc < self.base + self.size

    def _load(self) -> None:
        from elftools.elf.elffile import ELFFile

        elf = ELFFile(io.BytesIO(self._obj))
        rows: list[tuple[int, int]] = []
        if elf.has_dwarf_info():
            dwarf = elf.get_dwarf_info()
            for cu in dwarf.iter_CUs():
                prog = dwarf.line_program_for_CU(cu)
                if prog is None:
                    continue
                for entry in prog.get_entries():
                    st = entry.state
                    if st is not None:
                        rows.append((st.address, 0 if st.end_sequence else st.line))
        rows.sort()
        self._rows = rows
        funcs = []
        symtab = elf.get_section_by_name(".symtab")
        if symtab is not None:
            for sym in symtab.iter_symbols():
                m = _BLOCK_NAME.match(sym.name)
                if m and sym["st_info"]["type"] == "STT_FUNC":
                    funcs.append((sym["st_value"], sym["st_size"], int(m.group(1), 16)))
        funcs.sort()
        self._funcs = funcs

    def guest_pc(self, host_pc: int) -> int | None:
        """The guest pc of the instruction at ``host_pc``, or None if unknown."""
        if self._rows is None:
            self._load()
        off = host_pc - self.base
        rows = self._rows or []
        i = bisect.bisect_right(rows, (off, 1 << 62)) - 1
        if i >= 0 and rows[i][1] != 0:
            return rows[i][1]
        funcs = self._funcs or []
        j = bisect.bisect_right(funcs, (off, 1 << 62, 0)) - 1
        if j >= 0 and funcs[j][0] <= off < funcs[j][0] + max(funcs[j][1], 1):
            return funcs[j][2]
        return None
