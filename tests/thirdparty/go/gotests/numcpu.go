package main

import (
	"fmt"
	"runtime"
)

// numcpu: the CPUs the Go runtime found (sched_getaffinity at start-up),
// hence GOMAXPROCS's default: one P per CPU the guest may run on.
func numcpu(args []string) int {
	fmt.Printf("numcpu %d gomaxprocs %d\n", runtime.NumCPU(), runtime.GOMAXPROCS(0))
	return 0
}
