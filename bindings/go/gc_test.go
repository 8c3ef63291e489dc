package microsnap_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	m "github.com/microsnap/microsnap/bindings/go"
)

// GC stress: force a collection between every call, drop every handle as
// soon as possible, and let the cleanups close homes and sandboxes. A
// lifetime bug (a context or sandbox freed while still in use, a string
// used after msnap_string_free) shows up as a failed call or a crash.
func TestGCStress(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	makeImage(t, dir+"/images", testImage)
	gc := func() { runtime.GC(); runtime.GC() }

	for i := 0; i < 6; i++ {
		// A fresh Home each round, never closed: only its cleanup frees it,
		// and only once nothing (artifact, handle, sandbox) refers to it.
		h, err := m.OpenHome(dir)
		if err != nil {
			t.Fatal(err)
		}
		gc()
		name := fmt.Sprintf("gc-%d", i)
		sb, err := h.CreateSandbox(ctx, name, m.WithImage(testImage), m.WithUpperSize(2<<20))
		if err != nil {
			t.Fatal(err)
		}
		h = nil // the Sandbox alone keeps the home alive now
		gc()
		if err := sb.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		gc()
		info, err := sb.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sb = nil // closed by its cleanup
		gc()
		snap, err := info.Snapshot(ctx, "snap-"+name)
		if err != nil {
			t.Fatal(err)
		}
		info = nil
		gc()
		for j := 0; j < 3; j++ {
			if _, err := snap.Verify(ctx); err != nil {
				t.Fatal(err)
			}
			gc()
		}
		hd, err := m.OpenHome(dir)
		if err != nil {
			t.Fatal(err)
		}
		list, err := hd.Snapshot.List(ctx)
		hd = nil
		gc()
		if err != nil || len(list) != i+1 {
			t.Fatalf("round %d: %d snapshots listed (%v)", i, len(list), err)
		}
		for _, l := range list {
			gc()
			if _, err := l.Open(ctx); err != nil {
				t.Fatal(err)
			}
		}
		_ = snap.Labels()
	}

	// A running Sandbox dropped without Close is released by its cleanup:
	// the sandbox then reads as crashed, as if its process had died.
	h, err := m.OpenHome(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	func() {
		_, err := h.CreateSandbox(ctx, "dropped", m.WithImage(testImage), m.WithUpperSize(1<<20))
		if err != nil {
			t.Fatal(err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		gc()
		st := must(h.GetSandbox(ctx, "dropped"))(t).State()
		if st == "crashed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dropped sandbox still %q after GC: its cleanup never ran", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
