// Command bench-go-list times Snapshot.List through the Go binding for
// `make bench` (tools/bench.rs). The bench builds it against bindings/go
// (with a generated go.mod) and links the release library through
// pkg-config, so the Go and Rust rows measure the same engine build.
//
//	bench-go-list HOME EXPECTED CALLS
//
// prints LIST_NS=<nanoseconds>: the median of CALLS List calls, after one
// warm-up call. One call alone mostly measures where the young process's
// garbage collector happens to be; the Rust side of the row takes the
// median of as many calls.
package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	m "github.com/microsnap/microsnap/bindings/go"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: bench-go-list HOME EXPECTED CALLS")
		os.Exit(2)
	}
	expected, err := strconv.Atoi(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "EXPECTED:", err)
		os.Exit(2)
	}
	calls, err := strconv.Atoi(os.Args[3])
	if err != nil || calls < 1 {
		fmt.Fprintln(os.Stderr, "CALLS must be a positive integer")
		os.Exit(2)
	}
	h, err := m.OpenHome(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "open home:", err)
		os.Exit(1)
	}
	defer h.Close()
	ctx := context.Background()
	// The Rust side lists on an open, warm home; so does this one.
	if _, err := h.Snapshot.List(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "list:", err)
		os.Exit(1)
	}
	times := make([]time.Duration, calls)
	for i := range times {
		start := time.Now()
		list, err := h.Snapshot.List(ctx)
		times[i] = time.Since(start)
		if err != nil {
			fmt.Fprintln(os.Stderr, "list:", err)
			os.Exit(1)
		}
		if len(list) != expected {
			fmt.Fprintf(os.Stderr, "list returned %d snapshots, expected %d\n", len(list), expected)
			os.Exit(1)
		}
	}
	slices.Sort(times)
	fmt.Printf("LIST_NS=%d\n", times[len(times)/2].Nanoseconds())
}
