/* aotc's test environment for riscv-tests' user-level ISA suites
 * (tests/riscv_tests.py): each test becomes a static Linux user-mode
 * program.  Written for aotc; it provides the macro names the suites'
 * sources and their test_macros.h expect, with no privileged setup:
 *
 *   _start      zeroes the integer registers except sp (which keeps the
 *               stack Linux gave the process), clears fcsr for the FP
 *               suites, and falls into the test;
 *   pass        exit(0)                        (ecall 93, exit);
 *   fail        exit(TESTNUM), TESTNUM is gp, the number of the case that
 *               failed (1..255; a failure before the first case, gp == 0,
 *               exits 255 -- no suite numbers a case 255).
 *
 * A fault (illegal instruction, bad access) is the process's signal, as on
 * Linux: the runner reports it as such.
 */
#ifndef AOTC_RISCV_TEST_H
#define AOTC_RISCV_TEST_H

#define TESTNUM gp

/* Per-suite init hooks: nothing to enable in user mode except a known fcsr. */
#define RVTEST_RV64U   .macro init; .endm
#define RVTEST_RV32U   .macro init; .endm
#define RVTEST_RV64UF  .macro init; csrwi fcsr, 0; .endm
#define RVTEST_RV32UF  .macro init; csrwi fcsr, 0; .endm

#define RVTEST_CODE_BEGIN                                               \
        .text;                                                          \
        .balign 4;                                                      \
        .globl _start;                                                  \
        .type _start, @function;                                        \
_start:                                                                 \
        .irp r, 1,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31; \
        li x\r, 0;                                                      \
        .endr;                                                          \
        init;

#define RVTEST_CODE_END                                                 \
        unimp

#define RVTEST_PASS                                                     \
        fence;                                                          \
        li a7, 93;                                                      \
        li a0, 0;                                                       \
        ecall

#define RVTEST_FAIL                                                     \
        fence;                                                          \
        mv a0, TESTNUM;                                                 \
        bnez a0, 99f;                                                   \
        li a0, 255;                                                     \
99:     li a7, 93;                                                      \
        ecall

#define EXTRA_DATA

#define RVTEST_DATA_BEGIN                                               \
        EXTRA_DATA                                                      \
        .balign 16;                                                     \
        .globl begin_signature;                                         \
begin_signature:

#define RVTEST_DATA_END                                                 \
        .balign 16;                                                     \
        .globl end_signature;                                           \
end_signature:

#endif
