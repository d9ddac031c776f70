package main

import (
	"fmt"
	"runtime"
	"sync"
)

// collatzSteps is pure computation (no calls into the runtime in the loop).
func collatzSteps(lo, hi uint64) (total uint64, longest uint64) {
	for n := lo; n < hi; n++ {
		x, steps := n, uint64(0)
		for x != 1 {
			if x&1 == 0 {
				x >>= 1
			} else {
				x = 3*x + 1
			}
			steps++
		}
		total += steps
		if steps > longest {
			longest = steps
		}
	}
	return
}

// goroutines: 8 workers on GOMAXPROCS=2 (so on two OS threads at once)
// each compute a slice of a sum; results are gathered in order. A garbage
// collection in the middle needs every running goroutine to stop.
func goroutines(args []string) int {
	runtime.GOMAXPROCS(2)
	const workers = 8
	const per = 20000
	type result struct {
		id             int
		total, longest uint64
	}
	results := make([]result, workers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	shared := 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			lo := uint64(1 + id*per)
			t, l := collatzSteps(lo, lo+per)
			garbage := make([][]byte, 0, 64)
			for i := 0; i < 64; i++ {
				garbage = append(garbage, make([]byte, 4096))
			}
			_ = garbage
			mu.Lock()
			shared += id
			mu.Unlock()
			results[id] = result{id, t, l}
		}(w)
	}
	runtime.GC()
	wg.Wait()
	var sum uint64
	for _, r := range results {
		fmt.Printf("worker %d: steps %d longest %d\n", r.id, r.total, r.longest)
		sum += r.total
	}
	fmt.Printf("total %d shared %d gomaxprocs %d\n", sum, shared, runtime.GOMAXPROCS(0))
	return 0
}
