package microsnap_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"

	m "github.com/microsnap/microsnap/bindings/go"
)

// 16 goroutines share one Home: each runs a full sandbox → snapshot →
// verify → boot-from-snapshot → remove cycle while the others list
// snapshots and look up, so calls overlap on the one native context.
// (Workers do not list sandboxes: see TestSandboxListDoesNotBlockWriters.)
func TestConcurrentUseFrom16Goroutines(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	const workers = 16
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := cycle(ctx, h, i); err != nil {
				errs <- fmt.Errorf("worker %d: %w", i, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if l := must(h.Snapshot.List(ctx))(t); len(l) != 0 {
		t.Errorf("%d snapshots left after every worker removed its own", len(l))
	}
	if l := must(h.ListSandboxes(ctx))(t); len(l) != 0 {
		t.Errorf("%d sandboxes left", len(l))
	}
}

func cycle(ctx context.Context, h *m.Home, i int) error {
	name := fmt.Sprintf("sb-%02d", i)
	sb, err := h.CreateSandbox(ctx, name, m.WithImage(testImage), m.WithUpperSize(4<<20))
	if err != nil {
		return err
	}
	if err := sb.Stop(ctx); err != nil {
		return err
	}
	_ = sb.Close()
	snapName := fmt.Sprintf("snap-%02d", i)
	snap, err := h.Snapshot.Create(ctx, name, m.SnapshotCreateOptions{
		Name: snapName, RecordIntegrity: true, Labels: map[string]string{"worker": fmt.Sprint(i)},
	})
	if err != nil {
		return err
	}
	if _, err := h.Snapshot.List(ctx); err != nil {
		return err
	}
	if _, err := h.GetSandbox(ctx, name); err != nil {
		return err
	}
	r, err := snap.Verify(ctx)
	if err != nil {
		return err
	}
	if r.Upper.Kind != "verified" {
		return fmt.Errorf("verify kind %q", r.Upper.Kind)
	}
	hd, err := h.Snapshot.Get(ctx, snap.Digest())
	if err != nil {
		return err
	}
	if hd.Labels()["worker"] != fmt.Sprint(i) {
		return fmt.Errorf("labels %v", hd.Labels())
	}
	child := fmt.Sprintf("child-%02d", i)
	sb2, err := h.CreateSandbox(ctx, child, m.WithSnapshot(snapName))
	if err != nil {
		return err
	}
	_ = sb2.Stop(ctx)
	_ = sb2.Close()
	for _, n := range []string{child, name} {
		if err := h.RemoveSandbox(ctx, n); err != nil {
			return err
		}
	}
	return hd.Remove(ctx, false)
}

// Concurrent Close of one Sandbox and one Home from many goroutines:
// exactly one native free happens, the rest are no-ops.
func TestConcurrentClose(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	sb := must(h.CreateSandbox(ctx, "x", m.WithImage(testImage), m.WithUpperSize(1<<20)))(t)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = sb.Stop(ctx)
			if err := sb.Close(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if st := must(h.GetSandbox(ctx, "x"))(t).State(); st != "stopped" {
		t.Errorf("state %q", st)
	}
	other := must(m.OpenHome(t.TempDir()))(t)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := other.Close(); err != nil {
				t.Error(err)
			}
			if _, err := other.Snapshot.List(ctx); !errors.Is(err, m.ErrClosed) && err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	runtime.KeepAlive(other)
}

// Listing and getting sandboxes only asks the kernel whether a running
// holder exists (it takes no lock), so a concurrent Snapshot.Create, Start
// or RemoveSandbox of a stopped sandbox never fails spuriously.
func TestSandboxListDoesNotBlockWriters(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	stoppedSandbox(t, h, "quiet", 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				_, _ = h.ListSandboxes(ctx)
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	for i := 0; i < 200; i++ {
		snap, err := h.Snapshot.Create(ctx, "quiet", m.SnapshotCreateOptions{Name: "s", Force: true})
		if err != nil {
			t.Fatalf("Create %d of a stopped sandbox while another goroutine lists: %v", i, err)
		}
		_ = snap
		sb, err := h.GetSandbox(ctx, "quiet")
		if err != nil {
			t.Fatal(err)
		}
		running, err := sb.Start(ctx)
		if err != nil {
			t.Fatalf("Start %d while another goroutine lists: %v", i, err)
		}
		if err := running.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		running.Close()
	}
	if err := h.RemoveSandbox(ctx, "quiet"); err != nil {
		t.Fatalf("RemoveSandbox while another goroutine lists: %v", err)
	}
}
