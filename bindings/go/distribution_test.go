package microsnap_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	m "github.com/microsnap/microsnap/bindings/go"
)

// A reference the library cannot parse is ErrInvalidArgument, whichever
// way it goes, before anything is read or written.
func TestPushPullRefuseMalformedReferences(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	stoppedSandbox(t, h, "base", 1)
	must(h.Snapshot.Create(ctx, "base", m.SnapshotCreateOptions{Name: "s"}))(t)
	for _, ref := range []string{
		"sandboxes/s:v1",                // no registry host: microsnap never guesses one
		"docker://localhost:5000/s:v1",  // skopeo's transport prefix
		"localhost:5000/S:v1",           // repositories are lowercase
		"localhost:5000/s@sha256:short", // not a digest
		"",
	} {
		if _, err := h.Snapshot.Push(ctx, "s", ref, m.SnapshotPushOptions{}); !errors.Is(err, m.ErrInvalidArgument) {
			t.Errorf("Push to %q: got %v, want ErrInvalidArgument", ref, err)
		}
		if _, err := h.Snapshot.Pull(ctx, ref, "", m.SnapshotPullOptions{}); !errors.Is(err, m.ErrInvalidArgument) {
			t.Errorf("Pull from %q: got %v, want ErrInvalidArgument", ref, err)
		}
	}
	list := must(h.Snapshot.List(ctx))(t)
	if len(list) != 1 {
		t.Errorf("%d snapshots after refused pulls, want the 1 there was", len(list))
	}
}

// A context done before the call starts stops it there, as for every long
// operation, and names the context's error.
func TestPushPullWithADoneContext(t *testing.T) {
	h := newHome(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	layout := "oci:" + filepath.Join(t.TempDir(), "layout") + ":v1"
	if _, err := h.Snapshot.Push(ctx, "s", layout, m.SnapshotPushOptions{}); !errors.Is(err, m.ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Errorf("Push: got %v, want ErrCancelled wrapping context.Canceled", err)
	}
	if _, _, err := h.Snapshot.PullWithReport(ctx, layout, "", m.SnapshotPullOptions{}); !errors.Is(err, m.ErrCancelled) {
		t.Errorf("Pull: got %v, want ErrCancelled", err)
	}
}
