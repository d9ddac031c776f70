// gotests: our own small Go programs for aotc's third-party tests
// (tests/test_thirdparty_go.py). One static binary, one subcommand per
// behaviour; every subcommand prints deterministic output so a run under
// aotrun can be compared byte for byte with the same binary under
// qemu-riscv64.
package main

import (
	"fmt"
	"os"
	"sort"
)

var commands = map[string]func(args []string) int{
	"goroutines": goroutines,
	"channels":   channels,
	"timers":     timers,
	"signals":    signals,
	"exec":       execParent,
	"child":      execChild,
	"preempt":    preempt,
	"numcpu":     numcpu,
}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		names := make([]string, 0, len(commands))
		for name := range commands {
			names = append(names, name)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: gotests %v\n", names)
		os.Exit(2)
	}
	os.Exit(commands[os.Args[1]](os.Args[2:]))
}
