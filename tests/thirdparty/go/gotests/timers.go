package main

import (
	"context"
	"fmt"
	"time"
)

// timers: time.Sleep, time.After, Timer.Stop/Reset, a Ticker and a
// context deadline. Only orderings and lower bounds are printed, never
// measured durations, so the output is deterministic.
func timers(args []string) int {
	start := time.Now()
	time.Sleep(20 * time.Millisecond)
	fmt.Printf("sleep 20ms: elapsed >= 20ms: %v\n", time.Since(start) >= 20*time.Millisecond)

	// the slow ones are far apart so that a loaded machine never sees both
	// ready at once (select would then pick either)
	fast, slow := time.After(10*time.Millisecond), time.After(10*time.Second)
	select {
	case <-fast:
		fmt.Println("after: 10ms fired before 10s")
	case <-slow:
		fmt.Println("after: 10s fired first (wrong)")
	}

	t := time.NewTimer(time.Hour)
	fmt.Printf("timer: stopped before firing: %v\n", t.Stop())
	t.Reset(5 * time.Millisecond)
	<-t.C
	fmt.Println("timer: reset to 5ms and fired")

	tick := time.NewTicker(5 * time.Millisecond)
	n := 0
	for range tick.C {
		n++
		if n == 5 {
			break
		}
	}
	tick.Stop()
	fmt.Printf("ticker: %d ticks, elapsed >= 45ms: %v\n", n, time.Since(start) >= 45*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	results := make(chan string, 1)
	go func() {
		time.Sleep(20 * time.Second)
		results <- "slow work finished"
	}()
	select {
	case r := <-results:
		fmt.Println("context:", r, "(wrong)")
	case <-ctx.Done():
		fmt.Println("context:", ctx.Err())
	}

	// AfterFunc runs on another goroutine
	fired := make(chan string)
	time.AfterFunc(time.Millisecond, func() { fired <- "afterfunc ran" })
	fmt.Println(<-fired)
	return 0
}
