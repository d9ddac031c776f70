"""Round to nearest, ties to max magnitude (RISC-V RMM) on an x86 FPU.

SSE has no RMM rounding control.  RMM and RNE only differ on an exact tie
(the exact result lies halfway between two neighbouring floats) and RNE then
picks the even one, which is the one nearer zero half of the time.  So an RMM
operation is computed as RNE (same result otherwise, and the same IEEE flags
in every case: both modes overflow and underflow at the same magnitudes and
are inexact together) and then corrected:

    r = RNE(x); n = r with its magnitude one ulp larger (bits + 1)
    if r is finite and x == (r + n) / 2 exactly: result = n

The midpoint test runs in a wider format W in which it is exact: double for
single-precision results, IEEE binary128 (``fp128``: soft-float calls into
libgcc) for double-precision ones.  With p the result's precision, the
midpoint has at most p + 1 significant bits, so for each operation:

* mul: a*b (2p bits) is exact in W; tie iff a*b == m.
* add/sub: a + b rounded in W can only equal m if it is m: a nonzero
  distance between a sum of two p-bit floats and a (p+1)-bit midpoint is far
  above W's rounding error at that magnitude.
* div: a/b == m iff m*b == a, and m*b ((p+1) + p bits) is exact in W.
  (A tie needs a subnormal result: for normal ones m*b has more than p bits.)
* fma: a*b is exact in W; a*b + c is checked exactly with TwoSum
  (tie iff the sum is exact, error 0, and equals m).
* double -> single: m is a double; tie iff the operand == m.
* integer -> float: the integer is exact in W; tie iff it equals m.
* sqrt never ties (the square of a (p+1)-bit midpoint has more than p bits);
  float -> integer rounds half away from zero with its own rounding helper.

Everything runs as constrained (strict) operations inside the rounding helper
and the MXCSR flags are restored after the test, so only the operation's own
flags reach the guest.  The doubled comparison ``x + x == r + n`` avoids
halving (exact in W).
"""

from __future__ import annotations

_WIDE = {"float": "double", "double": "fp128"}
_BITS = {"float": 32, "double": 64}
_MANGLE = {"float": "f32", "double": "f64", "fp128": "f128"}
_STRICT = 'metadata !"fpexcept.strict"'
_NEAREST = 'metadata !"round.tonearest"'


class _Text:
    """Straight-line strict IR with private names (``%rmm_k<n>``)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.decls: set[str] = set()
        self._n = 0

    def emit(self, text: str) -> str:
        self._n += 1
        name = f"%rmm_k{self._n}"
        self.lines.append(f"  {name} = {text}")
        return name

    def arith(self, op: str, ty: str, *args: str) -> str:
        fn = f"llvm.experimental.constrained.{op}.{_MANGLE[ty]}"
        self.decls.add(f"declare {ty} @{fn}({', '.join([ty] * len(args))}, metadata, metadata)")
        argtext = ", ".join(f"{ty} {a}" for a in args)
        return self.emit(f"call {ty} @{fn}({argtext}, {_NEAREST}, {_STRICT}) #2")

    def widen(self, wide: str, ty: str, v: str) -> str:
        """A float value in the wider format (exact)."""
        if ty == wide:
            return v
        fn = f"llvm.experimental.constrained.fpext.{_MANGLE[wide]}.{_MANGLE[ty]}"
        self.decls.add(f"declare {wide} @{fn}({ty}, metadata)")
        return self.emit(f"call {wide} @{fn}({ty} {v}, {_STRICT}) #2")

    def from_int(self, wide: str, ity: str, v: str, signed: bool) -> str:
        """An integer in the wider format (exact: W holds every value of ity)."""
        op = "sitofp" if signed else "uitofp"
        fn = f"llvm.experimental.constrained.{op}.{_MANGLE[wide]}.{ity}"
        self.decls.add(f"declare {wide} @{fn}({ity}, metadata, metadata)")
        return self.emit(f"call {wide} @{fn}({ity} {v}, {_NEAREST}, {_STRICT}) #2")

    def equal(self, ty: str, a: str, b: str) -> str:
        fn = f"llvm.experimental.constrained.fcmp.{_MANGLE[ty]}"
        self.decls.add(f"declare i1 @{fn}({ty}, {ty}, metadata, metadata)")
        return self.emit(f'call i1 @{fn}({ty} {a}, {ty} {b}, metadata !"oeq", {_STRICT}) #2')


def wide_type(op: str, ty: str, int_bits: int = 0) -> str:
    """The format the midpoint test of ``op`` runs in."""
    if op == "fptrunc":
        return "double"
    if op in ("sitofp", "uitofp") and ty == "float" and int_bits <= 32:
        return "double"
    return _WIDE[ty]


def tie_correction(op: str, ty: str, args: list[tuple[str, str]], result: str = "%r",
                   out: str = "%rmm") -> tuple[str, set[str]]:
    """IR that sets ``out`` to the RMM result of ``op`` given its RNE result
    ``result`` (type ``ty``) and its operands ``args`` ((type, name) pairs),
    with MXCSR's flags exactly as they were before it; and the declarations
    it needs.  ``op``: fadd, fsub, fmul, fdiv, fma, fptrunc, sitofp, uitofp."""
    t = _Text()
    int_bits = int(args[0][0][1:]) if op in ("sitofp", "uitofp") else 0
    wide = wide_type(op, ty, int_bits)
    ity = f"i{_BITS[ty]}"
    mag_mask = (1 << (_BITS[ty] - 1)) - 1
    inf_bits = 0x7F800000 if ty == "float" else 0x7FF0000000000000
    t.lines.append("  %rmm_p = alloca i32")
    t.lines.append("  call void @llvm.x86.sse.stmxcsr(ptr %rmm_p) #2")
    bits = t.emit(f"bitcast {ty} {result} to {ity}")
    mag = t.emit(f"and {ity} {bits}, {mag_mask}")
    finite = t.emit(f"icmp ult {ity} {mag}, {inf_bits}")
    away_bits = t.emit(f"add {ity} {bits}, 1")
    away = t.emit(f"bitcast {ity} {away_bits} to {ty}")
    # twice the midpoint: r + n, exact in W
    two_m = t.arith("fadd", wide, t.widen(wide, ty, result), t.widen(wide, ty, away))
    w = [t.from_int(wide, a_ty, a, op == "sitofp") if op in ("sitofp", "uitofp")
         else t.widen(wide, a_ty, a) for a_ty, a in args]
    if op in ("fadd", "fsub", "fmul"):
        x = t.arith(op, wide, w[0], w[1])
        hit = t.equal(wide, t.arith("fadd", wide, x, x), two_m)
    elif op == "fdiv":
        # a / b == m  <=>  2m * b == 2a
        hit = t.equal(wide, t.arith("fmul", wide, two_m, w[1]), t.arith("fadd", wide, w[0], w[0]))
    elif op == "fma":
        p = t.arith("fmul", wide, w[0], w[1])                # exact
        s = t.arith("fadd", wide, p, w[2])
        bv = t.arith("fsub", wide, s, p)                     # TwoSum: err = (p + c) - s exactly
        av = t.arith("fsub", wide, s, bv)
        da = t.arith("fsub", wide, p, av)
        db = t.arith("fsub", wide, w[2], bv)
        err = t.arith("fadd", wide, da, db)
        exact = t.equal(wide, err, "0xL00000000000000000000000000000000" if wide == "fp128" else "0.0")
        hit = t.emit(f"and i1 {exact}, {t.equal(wide, t.arith('fadd', wide, s, s), two_m)}")
    elif op in ("fptrunc", "sitofp", "uitofp"):
        hit = t.equal(wide, t.arith("fadd", wide, w[0], w[0]), two_m)
    else:
        raise ValueError(f"no RMM tie test for {op}")
    fix = t.emit(f"and i1 {finite}, {hit}")
    t.lines.append(f"  {out} = select i1 {fix}, {ty} {away}, {ty} {result}")
    t.lines.append("  call void @llvm.x86.sse.ldmxcsr(ptr %rmm_p) #2")
    return "\n".join(t.lines) + "\n", t.decls
