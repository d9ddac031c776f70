/* rv64_insns: riscv64-only, freestanding (own _start, no libc).
 * Exercises instructions that C code rarely reaches: CSR access to
 * fcsr/frm/fflags, fence/fence.i, AMOs (.w/.d), lr/sc, explicit compressed
 * instructions, mulh/mulhu/mulhsu, division by zero and overflow (defined
 * results on RISC-V), fcvt with static and dynamic rounding modes, fmin/fmax
 * with NaNs, fclass, sign injection and NaN boxing.
 * Each check prints one line "label: 0x<16 hex digits>" via write(1, ...);
 * exits with status 0 via exit(93).
 * Build: riscv64-linux-gnu-gcc -nostdlib -static -march=rv64gc
 */
    .option arch, +c

    .equ SYS_write, 64
    .equ SYS_exit, 93

/* CHECK "label", reg: print reg. Clobbers a0-a2, a7, t0-t4 (print_check),
   so operands that must survive a CHECK live in s registers. */
    .macro CHECK name, reg
    .pushsection .rodata.str, "a"
.Lstr\@:
    .asciz "\name"
    .popsection
    mv a1, \reg
    la a0, .Lstr\@
    call print_check
    .endm

/* load a 64-bit constant into an FP register via t6 */
    .macro FLI_D freg, value
    li t6, \value
    fmv.d.x \freg, t6
    .endm
    .macro FLI_S freg, value
    li t6, \value
    fmv.w.x \freg, t6
    .endm

    .text
    .globl _start
_start:
    .option push
    .option norelax
    la gp, __global_pointer$
    .option pop
    andi sp, sp, -16

    /* ---------------- CSRs: fcsr / frm / fflags ---------------- */
    csrr s1, fcsr
    CHECK "fcsr initial", s1
    csrwi frm, 1                  /* RTZ */
    csrr s1, frm
    CHECK "frm after csrwi 1", s1
    csrr s1, fcsr
    CHECK "fcsr with frm=1", s1
    csrwi frm, 0
    FLI_D fa0, 0x3ff0000000000000 /* 1.0 */
    fmv.d.x fa1, zero             /* 0.0 */
    fdiv.d fa2, fa0, fa1          /* 1/0 -> +inf, DZ */
    csrr s1, fflags
    CHECK "fflags after 1.0/0.0", s1
    fmv.x.d s1, fa2
    CHECK "1.0/0.0 bits", s1
    csrrw s1, fflags, zero        /* swap: old flags, clear */
    CHECK "csrrw fflags old", s1
    FLI_D fa3, 0x4008000000000000 /* 3.0 */
    fdiv.d fa4, fa0, fa3          /* 1/3 inexact */
    csrr s1, fflags
    CHECK "fflags after 1.0/3.0", s1
    csrrsi s1, fflags, 0x10       /* set NV */
    CHECK "csrrsi fflags old", s1
    csrrci s1, fflags, 0x01       /* clear NX */
    CHECK "csrrci fflags old", s1
    frflags s1
    CHECK "frflags", s1
    li t0, 0x83                   /* frm=4 (RMM), flags=0x03 */
    fscsr s1, t0
    CHECK "fscsr old fcsr", s1
    frcsr s1
    CHECK "frcsr", s1
    fsflags zero
    fsrm zero

    /* ---------------- fences ---------------- */
    fence
    fence rw, rw
    fence.i
    li s1, 1
    CHECK "fence/fence.i executed", s1

    /* ---------------- AMOs (.w) ---------------- */
    la s0, amo_area
    li t0, 0x7ffffff0
    sw t0, 0(s0)
    li t1, 0x20
    amoadd.w s1, t1, (s0)
    CHECK "amoadd.w old", s1
    lw s1, 0(s0)                  /* wrapped to negative: sign-extended */
    CHECK "amoadd.w new (lw)", s1
    li t1, -1
    amoswap.w.aq s1, t1, (s0)
    CHECK "amoswap.w.aq old", s1
    li t1, 0x0f0f0f0f
    amoand.w.rl s1, t1, (s0)
    CHECK "amoand.w.rl old", s1
    li t1, 0x70000000
    amoor.w.aqrl s1, t1, (s0)
    CHECK "amoor.w.aqrl old", s1
    li t1, 0x7fffffff
    amoxor.w s1, t1, (s0)
    CHECK "amoxor.w old", s1
    lw s1, 0(s0)
    CHECK "after amoxor.w", s1
    li t1, -5
    amomax.w s1, t1, (s0)
    CHECK "amomax.w old", s1
    lw s1, 0(s0)
    CHECK "after amomax.w", s1
    li t1, -100
    amomin.w s1, t1, (s0)
    lw s1, 0(s0)
    CHECK "after amomin.w", s1
    li t1, 7
    amomaxu.w s1, t1, (s0)        /* -100 unsigned is huge: stays */
    lw s1, 0(s0)
    CHECK "after amomaxu.w", s1
    li t1, 7
    amominu.w s1, t1, (s0)
    lw s1, 0(s0)
    CHECK "after amominu.w", s1

    /* ---------------- AMOs (.d) ---------------- */
    li t0, 0x0123456789abcdef
    sd t0, 8(s0)
    addi s2, s0, 8
    li t1, 0x1111111111111111
    amoadd.d s1, t1, (s2)
    CHECK "amoadd.d old", s1
    li t1, 0xff00ff00ff00ff00
    amoand.d s1, t1, (s2)
    CHECK "amoand.d old", s1
    li t1, 0x000000000000ffff
    amoor.d s1, t1, (s2)
    CHECK "amoor.d old", s1
    li t1, -1
    amoxor.d s1, t1, (s2)
    CHECK "amoxor.d old", s1
    li t1, -2
    amomin.d s1, t1, (s2)
    CHECK "amomin.d old", s1
    li t1, 3
    amomaxu.d s1, t1, (s2)
    CHECK "amomaxu.d old", s1
    li t1, 42
    amoswap.d s1, t1, (s2)
    CHECK "amoswap.d old", s1
    ld s1, 0(s2)
    CHECK "after amoswap.d", s1

    /* ---------------- lr/sc ---------------- */
    li t0, 100
    sw t0, 16(s0)
    addi s2, s0, 16
    lr.w t1, (s2)
    addi t1, t1, 23
    sc.w s1, t1, (s2)
    CHECK "sc.w status (success)", s1
    lw s1, 0(s2)
    CHECK "value after lr/sc.w", s1
    li t0, -8
    sd t0, 24(s0)
    addi s2, s0, 24
    lr.d.aq t1, (s2)
    slli t1, t1, 4
    sc.d.rl s1, t1, (s2)
    CHECK "sc.d status (success)", s1
    ld s1, 0(s2)
    CHECK "value after lr/sc.d", s1
    /* lr/sc increment loop */
    li s3, 0
1:  lr.d t1, (s2)
    addi t1, t1, 1
    sc.d t2, t1, (s2)
    bnez t2, 1b
    addi s3, s3, 1
    li t3, 10
    blt s3, t3, 1b
    ld s1, 0(s2)
    CHECK "after 10 lr/sc.d increments", s1

    /* ---------------- explicit compressed instructions ---------------- */
    li s1, 0x7fffffff
    li a5, 1
    c.addw s1, a5                 /* 32-bit wrap, sign-extended */
    CHECK "c.addw 0x7fffffff+1", s1
    li s1, 0
    li a5, 1
    c.subw s1, a5
    CHECK "c.subw 0-1", s1
    li s1, 0x80000000
    c.addiw s1, -1
    CHECK "c.addiw 0x80000000-1", s1
    c.li s1, -17
    CHECK "c.li -17", s1
    c.lui s1, 0xfffff
    CHECK "c.lui 0xfffff", s1
    li s1, 0x0000000180000001
    c.slli s1, 31
    CHECK "c.slli 31", s1
    li s1, -256
    c.srli s1, 4
    CHECK "c.srli 4 of -256", s1
    li s1, -256
    c.srai s1, 4
    CHECK "c.srai 4 of -256", s1
    li s1, 0x12345
    c.andi s1, -16
    CHECK "c.andi -16", s1
    li s1, 0x0f0f
    li a5, 0x00ff
    c.and s1, a5
    c.or s1, a5
    c.xor s1, a5
    c.sub s1, a5
    CHECK "c.and/or/xor/sub", s1
    li a4, 1000
    c.mv s1, a4
    c.add s1, a4
    c.addi s1, -7
    CHECK "c.mv/add/addi", s1
    addi sp, sp, -32
    li t0, 0x1122334455667788
    c.sdsp t0, 8(sp)
    c.ldsp s1, 8(sp)
    CHECK "c.sdsp/c.ldsp", s1
    c.lwsp s1, 12(sp)
    CHECK "c.lwsp (high word)", s1
    addi sp, sp, 32
    addi a4, s0, 32
    li a5, 0xfedcba98
    c.sw a5, 0(a4)
    c.lw s1, 0(a4)
    CHECK "c.sw/c.lw sign-extends", s1
    c.sd a5, 8(a4)
    c.ld s1, 8(a4)
    CHECK "c.sd/c.ld", s1

    /* ---------------- multiply high ---------------- */
    li s7, -3
    li s8, 0x7fffffffffffffff
    mulh s1, s7, s8
    CHECK "mulh -3*maxint", s1
    mulhu s1, s7, s8
    CHECK "mulhu -3*maxint", s1
    mulhsu s1, s7, s8
    CHECK "mulhsu -3*maxint", s1
    li s8, -1
    mulhsu s1, s7, s8             /* -3 * (2^64-1) */
    CHECK "mulhsu -3*(2^64-1)", s1
    li s7, 0x12345678
    li s8, 0x9abcdef0
    mulw s1, s7, s8
    CHECK "mulw", s1

    /* ---------------- division edge cases ---------------- */
    li s7, 12345
    div s1, s7, zero
    CHECK "div x/0", s1
    divu s1, s7, zero
    CHECK "divu x/0", s1
    rem s1, s7, zero
    CHECK "rem x%0", s1
    remu s1, s7, zero
    CHECK "remu x%0", s1
    li s7, 0x8000000000000000
    li s8, -1
    div s1, s7, s8
    CHECK "div INT64_MIN/-1", s1
    rem s1, s7, s8
    CHECK "rem INT64_MIN%-1", s1
    li s7, -7
    divw s1, s7, zero
    CHECK "divw x/0", s1
    remw s1, s7, zero
    CHECK "remw -7%0", s1
    divuw s1, s7, zero
    CHECK "divuw x/0", s1
    remuw s1, s7, zero
    CHECK "remuw -7%0", s1
    li s7, 0xffffffff80000000     /* INT32_MIN */
    divw s1, s7, s8
    CHECK "divw INT32_MIN/-1", s1
    remw s1, s7, s8
    CHECK "remw INT32_MIN%-1", s1
    li s7, 0x123456780000000a     /* divw uses low 32 bits only */
    li s8, -3
    divw s1, s7, s8
    CHECK "divw low32 10/-3", s1

    /* ---------------- fcvt with rounding modes ---------------- */
    FLI_D fa0, 0x4004000000000000 /* 2.5 */
    FLI_D fa1, 0xc004000000000000 /* -2.5 */
    fcvt.w.d s1, fa0, rne
    CHECK "fcvt.w.d 2.5 rne", s1
    fcvt.w.d s1, fa0, rmm
    CHECK "fcvt.w.d 2.5 rmm", s1
    fcvt.w.d s1, fa1, rtz
    CHECK "fcvt.w.d -2.5 rtz", s1
    fcvt.w.d s1, fa1, rdn
    CHECK "fcvt.w.d -2.5 rdn", s1
    fcvt.l.d s1, fa1, rup
    CHECK "fcvt.l.d -2.5 rup", s1
    fcvt.l.d s1, fa1, rmm
    CHECK "fcvt.l.d -2.5 rmm", s1
    fsrmi 3                       /* dynamic: RUP */
    fcvt.l.d s1, fa0              /* default rm=dyn */
    CHECK "fcvt.l.d 2.5 dyn(rup)", s1
    fsrmi 2                       /* dynamic: RDN */
    fcvt.l.d s1, fa0, dyn
    CHECK "fcvt.l.d 2.5 dyn(rdn)", s1
    FLI_D fa2, 0x3ff0000000000000
    FLI_D fa3, 0x4008000000000000
    fdiv.d fa4, fa2, fa3          /* 1/3 rounded down */
    fmv.x.d s1, fa4
    CHECK "fdiv.d 1/3 dyn(rdn) bits", s1
    fsrmi 0
    fsflags zero
    FLI_D fa2, 0x7ff8000000000000 /* qNaN */
    fcvt.w.d s1, fa2, rtz
    CHECK "fcvt.w.d NaN", s1
    frflags s2
    CHECK "fflags after fcvt NaN", s2
    FLI_D fa2, 0x43e0000000000000 /* 2^63 */
    fcvt.l.d s1, fa2, rtz
    CHECK "fcvt.l.d 2^63 (saturate)", s1
    fcvt.w.d s1, fa2, rtz
    CHECK "fcvt.w.d 2^63 (saturate)", s1
    fcvt.wu.d s1, fa1, rtz
    CHECK "fcvt.wu.d -2.5 (saturate 0)", s1
    FLI_D fa2, 0x41efffffffe00000 /* 4294967295.0 */
    fcvt.wu.d s1, fa2, rtz
    CHECK "fcvt.wu.d 2^32-1 (sign-ext)", s1
    li s7, -7
    fcvt.d.w fa3, s7
    fmv.x.d s1, fa3
    CHECK "fcvt.d.w -7 bits", s1
    fcvt.d.wu fa3, s7
    fmv.x.d s1, fa3
    CHECK "fcvt.d.wu -7 bits", s1
    fcvt.s.l fa3, s7
    fmv.x.w s1, fa3
    CHECK "fcvt.s.l -7 bits (fmv.x.w)", s1
    FLI_D fa2, 0x3fb999999999999a /* 0.1 */
    fcvt.s.d fa3, fa2, rup
    fmv.x.w s1, fa3
    CHECK "fcvt.s.d 0.1 rup", s1
    fcvt.s.d fa3, fa2, rtz
    fmv.x.w s1, fa3
    CHECK "fcvt.s.d 0.1 rtz", s1
    fmv.x.d s1, fa3               /* NaN-boxed single in a double reg */
    CHECK "fmv.x.d of single (NaN-box)", s1

    /* ---------------- fmin/fmax with NaN, signed zeros ---------------- */
    FLI_D fa0, 0x7ff8000000000000 /* qNaN */
    FLI_D fa1, 0xbff0000000000000 /* -1.0 */
    FLI_D fa2, 0x7ff4000000000000 /* sNaN */
    fsflags zero
    fmin.d fa3, fa0, fa1
    fmv.x.d s1, fa3
    CHECK "fmin.d(qNaN,-1)", s1
    fmax.d fa3, fa1, fa0
    fmv.x.d s1, fa3
    CHECK "fmax.d(-1,qNaN)", s1
    frflags s1
    CHECK "fflags after qNaN min/max", s1
    fmax.d fa3, fa2, fa1
    fmv.x.d s1, fa3
    CHECK "fmax.d(sNaN,-1)", s1
    frflags s1
    CHECK "fflags after sNaN max", s1
    fmin.d fa3, fa0, fa2
    fmv.x.d s1, fa3
    CHECK "fmin.d(qNaN,sNaN) canonical", s1
    fmv.d.x fa4, zero
    FLI_D fa5, 0x8000000000000000 /* -0.0 */
    fmin.d fa3, fa4, fa5
    fmv.x.d s1, fa3
    CHECK "fmin.d(+0,-0)", s1
    fmax.d fa3, fa5, fa4
    fmv.x.d s1, fa3
    CHECK "fmax.d(-0,+0)", s1
    FLI_S fa0, 0x7fc00000
    FLI_S fa1, 0x40490fdb         /* pi */
    fmin.s fa3, fa0, fa1
    fmv.x.w s1, fa3
    CHECK "fmin.s(qNaN,pi)", s1
    fsqrt.d fa3, fa1              /* a NaN-boxed single is a NaN as a double */
    fmv.x.d s1, fa3
    CHECK "fsqrt.d of NaN-boxed single", s1
    fsflags zero
    FLI_D fa1, 0xbff0000000000000
    fsqrt.d fa3, fa1
    fmv.x.d s1, fa3
    CHECK "fsqrt.d(-1)", s1
    frflags s1
    CHECK "fflags after fsqrt.d(-1)", s1

    /* ---------------- fclass ---------------- */
    la s4, fclass_inputs
    li s5, 10
    li s6, 0
2:  fld fa0, 0(s4)
    fclass.d t0, fa0
    slli s6, s6, 10
    or s6, s6, t0
    addi s4, s4, 8
    addi s5, s5, -1
    li t1, 4
    bne s5, t1, 3f
    CHECK "fclass.d -inf..-0 packed", s6
    li s6, 0
3:  bnez s5, 2b
    CHECK "fclass.d +0..qNaN packed", s6
    FLI_S fa0, 0xff800000
    fclass.s s1, fa0
    CHECK "fclass.s -inf", s1
    FLI_D fa0, 0x3ff0000000000000
    fclass.s s1, fa0              /* improperly boxed single: canonical NaN */
    CHECK "fclass.s of unboxed (qNaN)", s1

    /* ---------------- sign injection, fused multiply-add ---------------- */
    FLI_D fa0, 0x4000000000000000 /* 2.0 */
    FLI_D fa1, 0x8000000000000001 /* negative, tiny */
    fsgnj.d fa2, fa0, fa1
    fmv.x.d s1, fa2
    CHECK "fsgnj.d", s1
    fsgnjn.d fa2, fa0, fa1
    fmv.x.d s1, fa2
    CHECK "fsgnjn.d", s1
    fsgnjx.d fa2, fa2, fa1
    fmv.x.d s1, fa2
    CHECK "fsgnjx.d", s1
    FLI_D fa0, 0x3ff0000000000001 /* 1+ulp */
    FLI_D fa1, 0x3feffffffffffffe /* 1-ulp */
    FLI_D fa2, 0xbff0000000000000 /* -1 */
    fmadd.d fa3, fa0, fa1, fa2
    fmv.x.d s1, fa3
    CHECK "fmadd.d exact residue", s1
    fnmsub.d fa3, fa0, fa1, fa2
    fmv.x.d s1, fa3
    CHECK "fnmsub.d", s1
    feq.d s1, fa0, fa0
    flt.d t0, fa1, fa0
    slli t0, t0, 1
    or s1, s1, t0
    FLI_D fa4, 0x7ff8000000000000
    fle.d t0, fa4, fa4
    slli t0, t0, 2
    or s1, s1, t0
    CHECK "feq/flt/fle(NaN) bits", s1

    /* ---------------- done ---------------- */
    li a0, 0
    li a7, SYS_exit
    ecall

/* print_check(a0 = NUL-terminated label, a1 = value):
   writes "label: 0x%016lx\n" with one write(2) call. */
print_check:
    addi sp, sp, -160
    mv t0, sp                     /* output cursor */
1:  lbu t1, 0(a0)
    beqz t1, 2f
    sb t1, 0(t0)
    addi a0, a0, 1
    addi t0, t0, 1
    j 1b
2:  li t1, ':'
    sb t1, 0(t0)
    li t1, ' '
    sb t1, 1(t0)
    li t1, '0'
    sb t1, 2(t0)
    li t1, 'x'
    sb t1, 3(t0)
    addi t0, t0, 4
    li t2, 60                     /* shift amount */
3:  srl t3, a1, t2
    andi t3, t3, 15
    la t4, hexdigits
    add t4, t4, t3
    lbu t3, 0(t4)
    sb t3, 0(t0)
    addi t0, t0, 1
    addi t2, t2, -4
    bgez t2, 3b
    li t1, '\n'
    sb t1, 0(t0)
    addi t0, t0, 1
    li a0, 1
    mv a1, sp
    sub a2, t0, sp
    li a7, SYS_write
    ecall
    addi sp, sp, 160
    ret

    .section .rodata
hexdigits:
    .ascii "0123456789abcdef"
    .balign 8
fclass_inputs:
    .dword 0xfff0000000000000     /* -inf */
    .dword 0xc000000000000000     /* -2.0 */
    .dword 0x800000000000abcd     /* -subnormal */
    .dword 0x8000000000000000     /* -0 */
    .dword 0x0000000000000000     /* +0 */
    .dword 0x0000000000000001     /* +subnormal */
    .dword 0x3ff0000000000000     /* +1.0 */
    .dword 0x7ff0000000000000     /* +inf */
    .dword 0x7ff0000000000001     /* sNaN */
    .dword 0x7ff8000000000000     /* qNaN */

    .data
    .balign 16
amo_area:
    .zero 64
