// A Go program for tests/test_kvm_threads_signals.py (amd64, under KVM):
// goroutines on several threads, a goroutine in a loop without calls that
// only asynchronous preemption (SIGURG, whose handler rewrites the signal
// frame's context) takes off its thread, os/signal, timers.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"
)

//go:noinline
func spin() {
	for {
	}
}

func main() {
	runtime.GOMAXPROCS(2)
	var wg sync.WaitGroup
	results := make([]int, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			s := 0
			for j := 0; j < 5000000; j++ {
				s += (j * (id + 1)) % 7
			}
			results[id] = s
		}(i)
	}
	wg.Wait()
	fmt.Println("results", results)

	runtime.GOMAXPROCS(1)
	go spin()
	time.Sleep(10 * time.Millisecond)
	sum := 0
	for i := 0; i < 20; i++ {
		runtime.Gosched()
		sum += i
	}
	fmt.Println("main ran beside a spinning goroutine:", sum)

	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	select {
	case s := <-ch:
		fmt.Println("os/signal got", s)
	case <-time.After(10 * time.Second):
		fmt.Println("os/signal timeout")
	}
	<-time.NewTimer(20 * time.Millisecond).C
	fmt.Println("timer fired")
}
