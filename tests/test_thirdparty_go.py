"""Go programs (ours, tests/thirdparty/go/gotests, built static for riscv64
with Debian's golang-go: GOOS=linux GOARCH=riscv64 CGO_ENABLED=0) behave on
every engine as under qemu-riscv64.

Go's runtime needs what C programs rarely do all at once: threads (clone),
futexes, signals for goroutine preemption (SIGURG sent by the sysmon thread
to a thread in a loop without calls), os/signal, fork+exec from a
multithreaded process (os/exec), timers through futex and epoll/nanosleep.
"""

from __future__ import annotations

import os

import pytest

from thirdparty.fixtures import engines_for, need_reference, program, target
from thirdparty.harness import assert_same, reference, under_engine

pytestmark = pytest.mark.thirdparty

CASES = {
    "goroutines": (
        "worker 0: steps 1834634 longest 278\nworker 1: steps 2097959 longest 323\n"
        "worker 2: steps 2202502 longest 339\nworker 3: steps 2284636 longest 350\n"
        "worker 4: steps 2334109 longest 332\nworker 5: steps 2365565 longest 353\n"
        "worker 6: steps 2421640 longest 343\nworker 7: steps 2435539 longest 382\n"
        "total 17976584 shared 28 gomaxprocs 2\n"),
    "channels": (
        "pipeline: 1000 values, sum of squares 333833500\n"
        "ping-pong: 10000, pong open after close: false\n"
        "select: received sum 4950, producer sent 100\n"),
    "timers": (
        "sleep 20ms: elapsed >= 20ms: true\nafter: 10ms fired before 10s\n"
        "timer: stopped before firing: true\ntimer: reset to 5ms and fired\n"
        "ticker: 5 ticks, elapsed >= 45ms: true\ncontext: context deadline exceeded\nafterfunc ran\n"),
    "signals": (
        "received: user defined signal 1\nreceived: user defined signal 2\n"
        "ignored SIGUSR1 was not delivered\nsignals done\n"),
    "exec": (
        "child exit status 3\nchild args [\"alpha\" \"beta gamma\"] env GOTESTS_CHILD=yes\n"
        "child stdin 1: line one\nchild stdin 2: line two\nsecond child: \"child ok\\n\" err=<nil>\n"
        "missing program: fork/exec /nonexistent/program: no such file or directory\n"),
    "preempt": (
        "main ran beside the spinner\ngarbage collection finished beside the spinner\n"
        "spinner stopped, counted: true\n"),
    # GOMAXPROCS's default is the CPU count from sched_getaffinity: the
    # guest sees every CPU aotrun may run on, as it does under qemu.
    "numcpu": "numcpu {n} gomaxprocs {n}\n".format(n=len(os.sched_getaffinity(0))),
}


@pytest.mark.parametrize("engine", engines_for("gotests"))
@pytest.mark.parametrize("case", list(CASES))
def test_go(case, engine, tmp_path, request):
    need_reference()
    go = program("gotests")
    image = target(engine, go, request)
    env = {"LC_ALL": "C"}
    (tmp_path / "ref").mkdir()
    (tmp_path / "got").mkdir()
    ref = reference(go.binary, [case], env, tmp_path / "ref")
    assert (ref.stdout.decode(), ref.returncode) == (CASES[case], 0), ref.describe()
    # exec starts three Go processes; under the JIT each compiles the Go
    # runtime's start-up afresh (~13 s of a quiet machine's time apiece)
    timeout = 300 if case == "exec" else 120
    got = under_engine(engine, go.binary, [case], env, tmp_path / "got", image=image, timeout=timeout)
    assert_same(ref, got)
