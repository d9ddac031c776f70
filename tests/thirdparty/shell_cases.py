"""Shell scripts the shell tests run (``sh -c SCRIPT``) with their expected
stdout and exit status: the same table for busybox's ash (applets run by
the shell itself, FEATURE_SH_STANDALONE) and for dash (external commands
are busybox applets found through PATH, so they are fork + execve of a
riscv64 program). qemu-riscv64 must agree with the expected values (a check
of the harness) and each engine with qemu."""

SH_CASES = {
    "pipeline": (
        "seq 100 | sort -rn | head -3",
        "100\n99\n98\n", 0),
    "command_substitution": (
        'x=$(echo hello | tr a-z A-Z); echo "got $x"; n=$(seq 5 | wc -l); echo "lines $((n))"; '
        'echo "nested $(echo $(echo deep))"',
        "got HELLO\nlines 5\nnested deep\n", 0),
    "background_wait": (
        '(sleep 1; echo background done) & pid=$!; echo started; wait $pid; echo "wait status $?"; '
        '(exit 4) & wait $!; echo "second status $?"',
        "started\nbackground done\nwait status 0\nsecond status 4\n", 0),
    "kill_job": (
        "sleep 10 & kill $!; wait $!; echo \"killed job status $?\"; sh -c 'kill -TERM $$'; "
        'echo "self-killed shell status $?"',
        "killed job status 143\nself-killed shell status 143\n", 0),
    "trap_exit": (
        "trap 'echo exit trap ran' EXIT; echo body; exit 3",
        "body\nexit trap ran\n", 3),
    "trap_int": (
        "trap 'echo caught INT' INT; kill -INT $$; echo after kill; trap - INT; echo done",
        "caught INT\nafter kill\ndone\n", 0),
    "loops_arithmetic": (
        's=0; for i in $(seq 1 10); do s=$((s + i * i)); done; echo "sum of squares $s"; '
        "for w in a b c; do printf '%s-' \"$w\"; done; echo; "
        'i=0; while [ $i -lt 5 ]; do i=$((i + 1)); done; echo "while $i"; '
        "echo $(( (7 * 6) % 5 )) $(( 1 << 10 )) $(( -17 / 5 )) $(( 0x1f ))",
        "sum of squares 385\na-b-c-\nwhile 5\n2 1024 -3 31\n", 0),
    "file_redirection": (
        "echo hi > file; cat file; echo more >> file; wc -l < file; tr a-z A-Z < file; rm file; "
        "[ -e file ] || echo removed",
        "hi\n2\nHI\nMORE\nremoved\n", 0),
    "exit_statuses": (
        "sh -c 'exit 7'; echo $?; false; echo $?; true && echo and; false || echo or; (exit 3); echo $?; "
        "! true; echo $?; exit 5",
        "7\n1\nand\nor\n3\n1\n", 5),
    "applets": (
        "printf 'b\\na\\nc\\n' | sort; echo abc | sed s/b/X/; seq 4 | awk '{ s += $1 } END { print s }'; "
        "basename /a/b/c.txt .txt; expr 6 \\* 7; echo one two | cut -d' ' -f2",
        "a\nb\nc\naXc\n10\nc\n42\ntwo\n", 0),
}
