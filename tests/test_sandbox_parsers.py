"""Issue 16, sandbox hardening of the parsers and front ends: malformed guest
ELFs and images are typed one-line errors, never another exception; an odd
entry point never builds and never loops at run time; AOT translates the
bytes the segments map, not what section headers claim."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from conftest import BIN, aotc_cmd, aotrun_cmd, run_tool
from elf_craft import CODE_VADDR, EHDR, PHDR, SHDR, exit_program, tiny_elf

from aotc.build import _code_and_data
from aotc.discover import discover
from aotc.elf.guest_elf import read_guest_elf_bytes
from aotc.errors import AotcError, ElfError, ImageError

MUSL_HELLO = BIN / "hello.riscv64-musl"


def _one_line_error(proc, *needles: str) -> str:
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode != 0, err
    assert "Traceback" not in err, err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


# -- item 6: every field value of a guest ELF --------------------------------

def _shdr_offsets(raw: bytes) -> list[int]:
    shoff = struct.unpack_from("<Q", raw, 0x28)[0]
    shnum = struct.unpack_from("<H", raw, 0x3C)[0]
    return [shoff + i * SHDR.size for i in range(shnum)]


@pytest.mark.parametrize("index", range(1, 10))   # 0 is SHT_NULL: ignored
def test_huge_section_offset_is_an_elf_error(index):
    raw = bytearray(MUSL_HELLO.read_bytes())
    header = _shdr_offsets(raw)[index]
    struct.pack_into("<Q", raw, header + 24, 1 << 63)
    if struct.unpack_from("<I", raw, header + 4)[0] == 8:     # SHT_NOBITS: no file bytes
        read_guest_elf_bytes(bytes(raw), "huge")
        return
    with pytest.raises(ElfError) as ei:
        read_guest_elf_bytes(bytes(raw), "huge")
    assert "\n" not in str(ei.value)


def test_build_huge_section_offset_is_one_line(tmp_path, config_dir):
    raw = bytearray(MUSL_HELLO.read_bytes())
    struct.pack_into("<Q", raw, _shdr_offsets(raw)[8] + 24, 1 << 63)   # the symbol-table path
    guest = tmp_path / "huge.elf"
    guest.write_bytes(bytes(raw))
    proc = run_tool([*aotc_cmd(), "build", "-q", str(guest), "-o", str(tmp_path / "out.so")])
    _one_line_error(proc, "section header")
    assert not (tmp_path / "out.so").exists()


def _fields(base: int, fmt: struct.Struct) -> list[tuple[int, str]]:
    """(file offset, struct code) of every field of one header at ``base``."""
    out, pos = [], base
    for code in fmt.format[1:].replace("16s", "").replace("s", ""):
        if not code.isalpha():
            continue
        out.append((pos, code))
        pos += struct.calcsize("<" + code)
    if fmt is EHDR:   # e_ident is 16 bytes before the first field
        out = [(p + 16, c) for p, c in out]
    return out


def _extremes(code: str, size: int) -> list[int]:
    top = (1 << (8 * struct.calcsize("<" + code))) - 1
    return sorted({0, 1, 2, top, top >> 1, (top >> 1) + 1, min(size, top), min(size + 1, top)})


def _front_end(raw: bytes) -> None:
    """The build front end short of compiling: read, split, discover."""
    elf = read_guest_elf_bytes(raw, "field")
    code, data = _code_and_data(elf)
    if sum(len(c.data) for c in code) <= 4096:
        discover(code, data, {"entry": [elf.entry], "symbols": [a for a, _s, _n in elf.symbols]})


@pytest.mark.parametrize("guest", ["tiny", "musl"])
def test_every_header_field_value_is_handled(guest):
    """Each field of the ELF header, the program headers and the section
    headers, set to boundary values: the front end accepts the file or
    raises an AotcError, nothing else."""
    raw = MUSL_HELLO.read_bytes() if guest == "musl" else tiny_elf(exit_program(0), symbols=True)
    phoff = struct.unpack_from("<Q", raw, 0x20)[0]
    phnum = struct.unpack_from("<H", raw, 0x38)[0]
    fields = _fields(0, EHDR)
    for i in range(phnum):
        fields += _fields(phoff + i * PHDR.size, PHDR)
    for off in _shdr_offsets(raw):
        fields += _fields(off, SHDR)
    unexpected = []
    for pos, code in fields:
        for value in _extremes(code, len(raw)):
            mutated = bytearray(raw)
            struct.pack_into("<" + code, mutated, pos, value)
            try:
                _front_end(bytes(mutated))
            except AotcError:
                pass
            except Exception as e:  # noqa: BLE001 - the point of the test
                unexpected.append(f"offset {pos:#x} = {value:#x}: {type(e).__name__}: {e}")
    assert not unexpected, "\n".join(unexpected[:20])


def test_symbols_come_from_the_symbol_table():
    elf = read_guest_elf_bytes(tiny_elf(exit_program(0), symbols=True), "syms")
    assert elf.symbols == ((CODE_VADDR, 12, "_start"),)


# -- item 8: the entry point ---------------------------------------------------

def test_odd_entry_is_refused_at_build(tmp_path, config_dir):
    raw = tiny_elf(exit_program(0), entry=CODE_VADDR + 1)
    with pytest.raises(ElfError, match="not aligned to 2 bytes"):
        read_guest_elf_bytes(raw, "odd")
    guest = tmp_path / "odd.elf"
    guest.write_bytes(raw)
    proc = run_tool([*aotc_cmd(), "build", "-q", str(guest), "-o", str(tmp_path / "odd.so")])
    _one_line_error(proc, "entry point 0x11001", "aligned")
    assert not (tmp_path / "odd.so").exists()


def test_entry_outside_executable_segment_is_refused():
    with pytest.raises(ElfError, match="not inside an executable segment"):
        read_guest_elf_bytes(tiny_elf(exit_program(0), entry=0x50000), "outside")


@pytest.fixture(scope="module")
def tiny_image(tmp_path_factory, config_dir) -> Path:
    """A real image (translated, signed with the session key) of exit(7)."""
    from aotc.build import build_image
    from aotc.keys import load_or_create_signing_key

    d = tmp_path_factory.mktemp("tiny")
    guest = d / "exit7.elf"
    guest.write_bytes(tiny_elf(exit_program(7), symbols=True))
    out = d / "exit7.so"
    build_image(guest, out, key=load_or_create_signing_key())
    return out


def _resigned(image: Path, out: Path, *, metadata: dict | None = None, raw_meta: bytes | None = None) -> Path:
    """``image`` with other metadata, signed again with the session's (trusted) key."""
    from aotc.image.container import assemble_image, encode_metadata
    from aotc.keys import load_or_create_signing_key
    from loader import read_image_file

    parsed = read_image_file(image)
    meta = raw_meta if raw_meta is not None else encode_metadata(metadata)  # type: ignore[arg-type]
    out.write_bytes(assemble_image(parsed.contents.host_object, meta, parsed.contents.segments,
                                   load_or_create_signing_key()))
    return out


def test_tiny_image_runs(tiny_image):
    proc = run_tool([*aotrun_cmd(), str(tiny_image)], timeout=60)
    assert proc.returncode == 7, proc.stderr


@pytest.mark.parametrize("engine", ["aot", "jit", "interp"])
def test_odd_entry_image_faults_on_every_engine(engine, tiny_image, tmp_path):
    """A (signed) image whose entry is odd: SIGSEGV at that pc on every
    engine, not a JIT that compiles an empty region forever."""
    from loader import read_image_file

    meta = dict(read_image_file(tiny_image).contents.metadata)
    meta["entry"] = CODE_VADDR + 1
    odd = _resigned(tiny_image, tmp_path / "odd-entry.so", metadata=meta)
    proc = run_tool([*aotrun_cmd(), "--engine", engine, "--timeout", "30", "--stats", str(odd)],
                    timeout=90)
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 128 + 11, err
    assert "guest SIGSEGV at pc 0x11001" in err and "misaligned" in err, err
    assert "jit compiles 0" in err, err


@pytest.mark.parametrize("engine", ["jit", "interp"])
def test_odd_entry_elf_is_refused_by_aotrun(engine, tmp_path):
    guest = tmp_path / "odd.elf"
    guest.write_bytes(tiny_elf(exit_program(0), entry=CODE_VADDR + 1))
    proc = run_tool([*aotrun_cmd(), "--engine", engine, "--timeout", "30", str(guest)], timeout=90)
    _one_line_error(proc, "not aligned")


# -- item 9: segments define what runs ----------------------------------------

def test_code_bytes_come_from_the_segment_not_the_section():
    raw = tiny_elf(exit_program(0), decoy=exit_program(5), text_from_decoy=True)
    elf = read_guest_elf_bytes(raw, "decoy")
    code, _data = _code_and_data(elf)
    assert [(c.start, c.data) for c in code] == [(CODE_VADDR, exit_program(0))]


def test_aot_agrees_with_interp_when_sections_lie(tmp_path, config_dir):
    guest = tmp_path / "decoy.elf"
    guest.write_bytes(tiny_elf(exit_program(0), decoy=exit_program(5), text_from_decoy=True))
    image = tmp_path / "decoy.so"
    proc = run_tool([*aotc_cmd(), "build", "-q", "--no-cache", str(guest), "-o", str(image)])
    assert proc.returncode == 0, proc.stderr
    results = {}
    for engine, target in (("aot", image), ("jit", guest), ("interp", guest)):
        proc = run_tool([*aotrun_cmd(), "--engine", engine, "--timeout", "30", str(target)], timeout=90)
        results[engine] = proc.returncode
    assert results == {"aot": 0, "jit": 0, "interp": 0}


def test_sections_outside_executable_segments_are_not_code():
    """An executable section whose address no executable segment maps is no code."""
    raw = bytearray(tiny_elf(exit_program(0)))
    text_hdr = _shdr_offsets(bytes(raw))[1]
    struct.pack_into("<Q", raw, text_hdr + 16, 0x90000)       # sh_addr outside the segment
    elf = read_guest_elf_bytes(bytes(raw), "elsewhere")
    code, _data = _code_and_data(elf)
    # No usable hint: the executable segment itself is the code.
    assert [(c.start, len(c.data)) for c in code] == [(0x10000, 0x1000 + 12)]


# -- item 7: image metadata -------------------------------------------------------

DEEP = b'{"stats":' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def test_deep_metadata_is_an_image_error(tiny_image):
    from aotc.image import parse_image
    from aotc.image.container import assemble_image
    from loader import read_image_file

    parsed = read_image_file(tiny_image)
    data = assemble_image(parsed.contents.host_object, DEEP, parsed.contents.segments, None)
    with pytest.raises(ImageError, match="nests deeper than"):
        parse_image(data)


def test_metadata_as_deep_as_allowed_still_parses(tiny_image):
    from aotc.image import parse_image
    from aotc.image.container import MAX_METADATA_DEPTH
    from loader import read_image_file

    parsed = read_image_file(tiny_image)
    meta = dict(parsed.contents.metadata)
    nested: object = 1
    for _ in range(MAX_METADATA_DEPTH - 2):     # the object and "stats" are two levels
        nested = [nested]
    meta["stats"] = {"deep": nested}
    from aotc.image.container import assemble_image, encode_metadata

    data = assemble_image(parsed.contents.host_object, encode_metadata(meta),
                          parsed.contents.segments, None)
    assert parse_image(data).contents.metadata["stats"] == {"deep": nested}


@pytest.mark.parametrize("tool", ["aotrun", "verify", "inspect"])
def test_deep_metadata_is_one_line_in_every_cli(tool, tiny_image, tmp_path):
    deep = _resigned(tiny_image, tmp_path / "deep.so", raw_meta=DEEP)
    cmd = {"aotrun": [*aotrun_cmd(), str(deep)],
           "verify": [*aotc_cmd(), "verify", str(deep)],
           "inspect": [*aotc_cmd(), "inspect", str(deep)]}[tool]
    _one_line_error(run_tool(cmd), "nests deeper than")


@pytest.mark.parametrize("untranslated", [5, {"a": 1}, "text", None])
def test_inspect_survives_odd_stats(untranslated, tiny_image, tmp_path):
    from loader import read_image_file

    meta = dict(read_image_file(tiny_image).contents.metadata)
    meta["stats"] = {**meta["stats"], "untranslated": untranslated}
    odd = _resigned(tiny_image, tmp_path / "odd-stats.so", metadata=meta)
    for extra in ([], ["--json"]):
        proc = run_tool([*aotc_cmd(), "inspect", *extra, str(odd)])
        assert proc.returncode == 0, proc.stderr
        assert b"Traceback" not in proc.stderr
    info = json.loads(run_tool([*aotc_cmd(), "inspect", "--json", str(odd)]).stdout)
    assert info["untranslated_count"] == 0


def test_aotrun_unwritable_stats_file_is_one_line(tiny_image, tmp_path):
    proc = run_tool([*aotrun_cmd(), "--stats-json", str(tmp_path / "no" / "such" / "dir.json"),
                     str(tiny_image)], timeout=60)
    _one_line_error(proc, "cannot write")
