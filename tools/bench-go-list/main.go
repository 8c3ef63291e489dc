// Command bench-go-list times one Snapshot.List through the Go binding for
// `make bench` (tools/bench.rs). The bench builds it against bindings/go
// (with a generated go.mod) and links the release library through
// pkg-config, so the Go and Rust rows measure the same engine build.
//
//	bench-go-list HOME EXPECTED
//
// prints LIST_NS=<nanoseconds of one List call after one warm-up call>.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	m "github.com/microsnap/microsnap/bindings/go"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: bench-go-list HOME EXPECTED")
		os.Exit(2)
	}
	expected, err := strconv.Atoi(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "EXPECTED:", err)
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
	start := time.Now()
	list, err := h.Snapshot.List(ctx)
	elapsed := time.Since(start)
	if err != nil {
		fmt.Fprintln(os.Stderr, "list:", err)
		os.Exit(1)
	}
	if len(list) != expected {
		fmt.Fprintf(os.Stderr, "list returned %d snapshots, expected %d\n", len(list), expected)
		os.Exit(1)
	}
	fmt.Printf("LIST_NS=%d\n", elapsed.Nanoseconds())
}
