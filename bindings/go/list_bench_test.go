package microsnap_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	m "github.com/microsnap/microsnap/bindings/go"
)

// BenchmarkList10000 times Snapshot.List on a home of 10,000 indexed
// snapshots, the Go side of `make bench`'s "List of 10,000 through the Go
// binding" row, on a home built as tools/bench.rs builds its own: one
// artifact's manifest copied 10,000 times with a label each, reindexed.
// The bench links the release library; `go test` links target/debug.
//
//	go test -run '^$' -bench List10000 -benchtime 20x
func BenchmarkList10000(b *testing.B) {
	const count = 10_000
	h := homeWithSnapshots(b, count)
	ctx := context.Background()
	if _, err := h.Snapshot.List(ctx); err != nil { // a warm home, as the bench's
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		list, err := h.Snapshot.List(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(list) != count {
			b.Fatalf("listed %d of %d", len(list), count)
		}
	}
}

// homeWithSnapshots returns a home indexing count snapshots s-00000, ...:
// copies of one real artifact's manifest, each with its own "seq" label and
// a 1 MiB sparse upper.
func homeWithSnapshots(b *testing.B, count int) *m.Home {
	b.Helper()
	h := newHome(b)
	stoppedSandbox(b, h, "baseline", 1)
	art := must(h.Snapshot.Create(context.Background(), "baseline", m.SnapshotCreateOptions{Name: "template"}))(b)
	text, err := os.ReadFile(filepath.Join(art.Path(), "manifest.json"))
	if err != nil {
		b.Fatal(err)
	}
	var manifest map[string]jsontext.Value
	if err := json.Unmarshal(text, &manifest); err != nil {
		b.Fatal(err)
	}
	if err := h.Snapshot.Remove(context.Background(), "template", false); err != nil {
		b.Fatal(err)
	}
	snapshots := filepath.Join(h.Path(), "snapshots")
	for i := range count {
		manifest["labels"] = jsontext.Value(fmt.Sprintf(`{"seq":"%d"}`, i))
		out, err := json.Marshal(manifest, json.Deterministic(true))
		if err != nil {
			b.Fatal(err)
		}
		dir := filepath.Join(snapshots, fmt.Sprintf("s-%05d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "manifest.json"), out, 0o644); err != nil {
			b.Fatal(err)
		}
		f, err := os.Create(filepath.Join(dir, art.UpperFile()))
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Truncate(int64(art.SizeBytes())); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	if n, err := h.Snapshot.Reindex(context.Background(), ""); err != nil || n != uint32(count) {
		b.Fatalf("reindex: %d of %d: %v", n, count, err)
	}
	return h
}
