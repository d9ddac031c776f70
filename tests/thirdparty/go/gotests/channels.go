package main

import (
	"fmt"
	"runtime"
	"sync"
)

// channels: a pipeline of stages joined by unbuffered and buffered
// channels, fan-out/fan-in, select with a quit channel, close and range.
func channels(args []string) int {
	runtime.GOMAXPROCS(2)
	gen := make(chan int)
	go func() {
		for i := 1; i <= 1000; i++ {
			gen <- i
		}
		close(gen)
	}()
	squares := make(chan int, 16)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := range gen {
				squares <- v * v
			}
		}()
	}
	go func() { wg.Wait(); close(squares) }()
	sum, count := 0, 0
	for v := range squares {
		sum += v
		count++
	}
	fmt.Printf("pipeline: %d values, sum of squares %d\n", count, sum)

	// ping-pong between two goroutines, 10000 round trips
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
		close(pong)
	}()
	v := 0
	for i := 0; i < 10000; i++ {
		ping <- v
		v = <-pong
	}
	close(ping)
	_, open := <-pong
	fmt.Printf("ping-pong: %d, pong open after close: %v\n", v, open)

	// select: a producer stops when quit is closed
	data, quit, done := make(chan int), make(chan struct{}), make(chan int)
	go func() {
		n := 0
		for {
			select {
			case data <- n:
				n++
			case <-quit:
				done <- n
				return
			}
		}
	}()
	got := 0
	for i := 0; i < 100; i++ {
		got += <-data
	}
	close(quit)
	fmt.Printf("select: received sum %d, producer sent %d\n", got, <-done)
	return 0
}
