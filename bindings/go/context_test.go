package microsnap_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	m "github.com/microsnap/microsnap/bindings/go"
)

// snapshotEntries lists the home's snapshots directory, to prove a
// cancelled operation left nothing behind (not even a staging directory).
func snapshotEntries(t *testing.T, h *m.Home) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(h.Path(), "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func assertCancelled(t *testing.T, err error, ctxErr error) {
	t.Helper()
	if !errors.Is(err, ctxErr) || !errors.Is(err, m.ErrCancelled) {
		t.Fatalf("got %v, want an error matching both %v and ErrCancelled", err, ctxErr)
	}
}

func TestCancelBeforeStart(t *testing.T) {
	h := newHome(t)
	stoppedSandbox(t, h, "baseline", 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: "x"})
	assertCancelled(t, err, context.Canceled)
	_, err = h.Snapshot.List(ctx)
	assertCancelled(t, err, context.Canceled)

	expired, cancel2 := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel2()
	<-expired.Done()
	_, err = h.CreateSandbox(expired, "y", m.WithImage(testImage))
	assertCancelled(t, err, context.DeadlineExceeded)
	if got := snapshotEntries(t, h); len(got) != 0 {
		t.Errorf("snapshots dir after cancelled calls: %v", got)
	}
	if _, err := h.GetSandbox(context.Background(), "y"); !errors.Is(err, m.ErrSandboxNotFound) {
		t.Errorf("cancelled CreateSandbox left a sandbox: %v", err)
	}
}

// Cancelling from the progress callback stops the operation mid-way,
// deterministically: the native call notices at its next progress report.
func TestCancelMidCreateAndVerify(t *testing.T) {
	h := newHome(t)
	stoppedSandbox(t, h, "baseline", 2)
	good := must(h.Snapshot.Create(context.Background(), "baseline", m.SnapshotCreateOptions{Name: "good", RecordIntegrity: true}))(t)

	for _, phase := range []string{"copy", "hash"} {
		ctx, cancel := context.WithCancel(context.Background())
		var reports []m.Progress
		ctx = m.ContextWithProgress(ctx, func(p m.Progress) {
			reports = append(reports, p)
			if p.Phase == phase && p.Done > 0 {
				cancel()
			}
		})
		_, err := h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: "cancelled-" + phase, RecordIntegrity: true})
		cancel()
		assertCancelled(t, err, context.Canceled)
		last := reports[len(reports)-1]
		if last.Phase != phase || last.Done >= last.Total {
			t.Errorf("cancel in %s: last report %+v, want mid-%s", phase, last, phase)
		}
		if got := snapshotEntries(t, h); len(got) != 1 || got[0] != "good" {
			t.Errorf("cancelled Create (%s) left %v", phase, got)
		}
		if _, err := h.Snapshot.Get(context.Background(), "cancelled-"+phase); !errors.Is(err, m.ErrSnapshotNotFound) {
			t.Errorf("cancelled Create (%s) is indexed: %v", phase, err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	ctx = m.ContextWithProgress(ctx, func(p m.Progress) {
		if p.Done > 0 {
			cancel()
		}
	})
	_, err := good.Verify(ctx)
	assertCancelled(t, err, context.Canceled)
	// The sandbox is usable again: the cancelled Create released its hold.
	must(h.Snapshot.Create(context.Background(), "baseline", m.SnapshotCreateOptions{Name: "after"}))(t)
}

// Deadlines that expire at random points of the operation: every outcome
// is either a complete, valid snapshot (a success that raced the deadline
// is kept) or a DeadlineExceeded error with nothing left behind.
func TestDeadlineRacesKeepSuccessOrLeaveNothing(t *testing.T) {
	h := newHome(t)
	stoppedSandbox(t, h, "baseline", 3)
	start := time.Now()
	must(h.Snapshot.Create(context.Background(), "baseline", m.SnapshotCreateOptions{Name: "timing", RecordIntegrity: true}))(t)
	full := time.Since(start)

	var ok, cancelled int
	for i := 0; i < 12; i++ {
		timeout := time.Duration(rand.Int64N(int64(full) + 1))
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		name := "race-" + string(rune('a'+i))
		snap, err := h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: name, RecordIntegrity: true})
		cancel()
		switch {
		case err == nil:
			ok++
			if _, err := snap.Verify(context.Background()); err != nil {
				t.Errorf("%s: kept success does not verify: %v", name, err)
			}
		case errors.Is(err, context.DeadlineExceeded) && errors.Is(err, m.ErrCancelled):
			cancelled++
			if _, err := os.Stat(filepath.Join(h.Path(), "snapshots", name)); !os.IsNotExist(err) {
				t.Errorf("%s: cancelled but on disk: %v", name, err)
			}
		default:
			t.Fatalf("%s: unexpected error %v", name, err)
		}
	}
	t.Logf("deadline races: %d succeeded, %d cancelled (full run %v)", ok, cancelled, full)
	for _, e := range snapshotEntries(t, h) {
		if e[0] == '.' {
			t.Errorf("staging entry left behind: %s", e)
		}
	}
}

// Cancelling from another goroutine while the call runs.
func TestCancelFromAnotherGoroutine(t *testing.T) {
	h := newHome(t)
	stoppedSandbox(t, h, "baseline", 4)
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	started := make(chan struct{})
	ctx = m.ContextWithProgress(ctx, func(p m.Progress) {
		once.Do(func() { close(started) })
		if p.Done > 0 {
			<-ctx.Done() // hold the operation until the other goroutine cancels
		}
	})
	go func() {
		<-started
		cancel()
	}()
	_, err := h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: "x", RecordIntegrity: true})
	assertCancelled(t, err, context.Canceled)
}

func TestProgressReportsAndPanics(t *testing.T) {
	h := newHome(t)
	stoppedSandbox(t, h, "baseline", 5)
	var reports []m.Progress
	ctx := m.ContextWithProgress(context.Background(), func(p m.Progress) { reports = append(reports, p) })
	must(h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: "p", RecordIntegrity: true}))(t)
	phases := map[string]m.Progress{}
	for _, r := range reports {
		if r.Done > r.Total {
			t.Errorf("report %+v: done > total", r)
		}
		if prev, ok := phases[r.Phase]; ok && r.Done < prev.Done {
			t.Errorf("progress went backwards in %s: %d after %d", r.Phase, r.Done, prev.Done)
		}
		phases[r.Phase] = r
	}
	for _, want := range []string{"copy", "hash"} {
		p, ok := phases[want]
		if !ok || p.Done != p.Total || p.Total == 0 {
			t.Errorf("phase %s: last report %+v (seen %v)", want, p, ok)
		}
	}

	// A panicking callback cancels the operation and re-panics in the caller.
	ctx = m.ContextWithProgress(context.Background(), func(p m.Progress) {
		if p.Done > 0 {
			panic("progress boom")
		}
	})
	func() {
		defer func() {
			if r := recover(); r != "progress boom" {
				t.Errorf("recovered %v, want the callback's panic", r)
			}
		}()
		_, _ = h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: "boom", RecordIntegrity: true})
		t.Error("Create returned instead of re-panicking")
	}()
	if _, err := os.Stat(filepath.Join(h.Path(), "snapshots", "boom")); !os.IsNotExist(err) {
		t.Errorf("panicked Create left its artifact: %v", err)
	}
}

// Done never goes backwards within a phase, in every long operation, with
// the parallel workers of hashing and compression at work. The library
// guarantees it (docs/abi.md) and the binding passes each report on as it
// comes, so this observes the library's guarantee through Go.
func TestProgressNeverGoesBackwards(t *testing.T) {
	h := newHome(t)
	stoppedSandbox(t, h, "baseline", 7)
	archive := filepath.Join(t.TempDir(), "p.tar.zst")
	var art *m.SnapshotArtifact
	for _, op := range []struct {
		name   string
		phases []string
		run    func(ctx context.Context) error
	}{
		{"create", []string{"copy", "hash"}, func(ctx context.Context) (err error) {
			art, err = h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: "p", RecordIntegrity: true})
			return err
		}},
		{"verify", []string{"hash"}, func(ctx context.Context) error { _, err := art.Verify(ctx); return err }},
		{"export", []string{"export"}, func(ctx context.Context) error {
			return h.Snapshot.Export(ctx, "p", archive, m.SnapshotExportOptions{Threads: 2})
		}},
		{"import", []string{"import"}, func(ctx context.Context) error {
			_, err := h.Snapshot.Import(ctx, archive, t.TempDir())
			return err
		}},
	} {
		var reports []m.Progress
		ctx := m.ContextWithProgress(context.Background(), func(p m.Progress) { reports = append(reports, p) })
		if err := op.run(ctx); err != nil {
			t.Fatalf("%s: %v", op.name, err)
		}
		last := map[string]uint64{}
		for i, r := range reports {
			if r.Done > r.Total {
				t.Errorf("%s report %d %+v: done > total", op.name, i, r)
			}
			if prev, ok := last[r.Phase]; ok && r.Done < prev {
				t.Errorf("%s report %d: %s went back from %d to %d of %d", op.name, i, r.Phase, prev, r.Done, r.Total)
			}
			last[r.Phase] = r.Done
		}
		for _, want := range op.phases {
			if _, ok := last[want]; !ok {
				t.Errorf("%s: no %s report among %v", op.name, want, reports)
			}
		}
	}
}
