package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// signals: os/signal.Notify receives SIGUSR1 and SIGUSR2 that the program
// sends itself (kill of its own pid, and tgkill of its own thread), then
// signal.Ignore and signal.Reset.
func signals(args []string) int {
	c := make(chan os.Signal, 4)
	signal.Notify(c, syscall.SIGUSR1, syscall.SIGUSR2)
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		fmt.Println("kill:", err)
		return 1
	}
	select {
	case s := <-c:
		fmt.Println("received:", s)
	case <-time.After(5 * time.Second):
		fmt.Println("no signal within 5s")
		return 1
	}
	if err := syscall.Tgkill(os.Getpid(), syscall.Gettid(), syscall.SIGUSR2); err != nil {
		fmt.Println("tgkill:", err)
		return 1
	}
	select {
	case s := <-c:
		fmt.Println("received:", s)
	case <-time.After(5 * time.Second):
		fmt.Println("no signal within 5s")
		return 1
	}
	signal.Ignore(syscall.SIGUSR1)
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	time.Sleep(20 * time.Millisecond)
	select {
	case s := <-c:
		fmt.Println("received an ignored signal:", s)
	default:
		fmt.Println("ignored SIGUSR1 was not delivered")
	}
	signal.Stop(c)
	signal.Reset()
	fmt.Println("signals done")
	return 0
}
