package main

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

// preempt: with one P (GOMAXPROCS=1) a goroutine spins in a loop with no
// function calls (so no cooperative preemption point) while main sleeps
// on a timer. main runs again only if the runtime preempts the spinner
// asynchronously (sysmon sends the spinning thread SIGURG). A second
// round does the same with a garbage collection, which must stop the
// spinner too.
var stop int32

func spin(done chan<- uint64) {
	var n uint64
	for atomic.LoadInt32(&stop) == 0 {
		n++
	}
	done <- n
}

func preempt(args []string) int {
	runtime.GOMAXPROCS(1)
	done := make(chan uint64)
	go spin(done)
	runtime.Gosched() // let the spinner start
	time.Sleep(50 * time.Millisecond)
	fmt.Println("main ran beside the spinner")
	runtime.GC()
	fmt.Println("garbage collection finished beside the spinner")
	atomic.StoreInt32(&stop, 1)
	n := <-done
	fmt.Printf("spinner stopped, counted: %v\n", n > 0)
	return 0
}
