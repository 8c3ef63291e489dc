package microsnap_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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

// family makes, in h, a snapshot "p" with integrity and a child "c" of it
// whose upper differs in one 4 KiB block (one 64 KiB chunk).
func family(t *testing.T, h *m.Home) (parent, child *m.SnapshotArtifact) {
	t.Helper()
	ctx := context.Background()
	stoppedSandbox(t, h, "base", 3)
	parent = must(h.Snapshot.Create(ctx, "base", m.SnapshotCreateOptions{Name: "p", RecordIntegrity: true}))(t)
	sb := must(h.CreateSandbox(ctx, "worker", m.WithSnapshot("p")))(t)
	f, err := os.OpenFile(sb.UpperPath(), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(pattern(9, 4096), 30<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	must(struct{}{}, sb.Stop(ctx))(t)
	must(struct{}{}, sb.Close())(t)
	child = must(h.Snapshot.Create(ctx, "worker", m.SnapshotCreateOptions{Name: "c", RecordIntegrity: true}))(t)
	return parent, child
}

// phases records the progress phases a context saw.
func phases(ctx context.Context) (context.Context, func() []string) {
	var mu sync.Mutex
	var seen []string
	ctx = m.ContextWithProgress(ctx, func(p m.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 || seen[len(seen)-1] != p.Phase {
			seen = append(seen, p.Phase)
		}
	})
	return ctx, func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(seen) }
}

// A family pushed into an oci: layout and pulled into another home (the
// uppers repeat one block, so even the first push reuses chunks): the
// child's push sends only its new chunk, the pulled snapshot is the same
// snapshot, a second pull is a no-op that says so, and both directions
// report their phase.
func TestPushPullThroughAnOCILayout(t *testing.T) {
	ctx := context.Background()
	src := newHome(t)
	parent, child := family(t, src)
	layout := filepath.Join(t.TempDir(), "layout")

	pctx, pushPhases := phases(ctx)
	first := must(src.Snapshot.Push(pctx, "p", "oci:"+layout+":p", m.SnapshotPushOptions{}))(t)
	if first.SnapshotDigest != parent.Digest() || first.Reference != "oci:"+layout+":p" ||
		!strings.HasPrefix(first.ManifestDigest, "sha256:") || first.ChunksUploaded == 0 ||
		first.ChunksUploaded+first.ChunksReused != first.ChunksTotal || first.BytesUploaded == 0 {
		t.Fatalf("parent's push: %+v", first)
	}
	if len(first.Snapshots) != 1 || !slices.Contains(first.Snapshots[0].Tags, "p") {
		t.Errorf("parent's push: snapshots %+v", first.Snapshots)
	}
	if got := pushPhases(); !slices.Contains(got, "push") {
		t.Errorf("push reported phases %v, want push among them", got)
	}
	second := must(src.Snapshot.Push(ctx, child.Path(), "oci:"+layout+":c", m.SnapshotPushOptions{}))(t)
	if second.SnapshotDigest != child.Digest() || second.ChunksUploaded != 1 ||
		second.ChunksReused != second.ChunksTotal-1 || second.BytesReused == 0 {
		t.Errorf("child's push into the layout holding its parent: %+v", second)
	}

	dst := newHome(t)
	qctx, pullPhases := phases(ctx)
	h, r, err := dst.Snapshot.PullWithReport(qctx, "oci:"+layout+":c", "", m.SnapshotPullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Digest() != child.Digest() || r.SnapshotDigest != child.Digest() || r.ManifestDigest != second.ManifestDigest ||
		r.AlreadyPresent || r.ChunksTotal != second.ChunksTotal || r.ChunksDownloaded == 0 ||
		r.ChunksDownloaded+r.ChunksReused != r.ChunksTotal ||
		r.BytesDownloaded == 0 || r.Path != h.Path() || filepath.Base(h.Path()) != "c" {
		t.Errorf("pull into an empty home: %s %s %+v", h.Digest(), h.Path(), r)
	}
	if got := pullPhases(); !slices.Contains(got, "pull") {
		t.Errorf("pull reported phases %v, want pull among them", got)
	}
	if _, err := dst.Snapshot.Get(ctx, child.Digest()); err != nil {
		t.Errorf("the pulled snapshot is not indexed: %v", err)
	}
	if v := must(h.Open(ctx))(t); v.IntegrityDigest() != child.IntegrityDigest() {
		t.Errorf("pulled integrity %s, pushed %s", v.IntegrityDigest(), child.IntegrityDigest())
	}
	_, again, err := dst.Snapshot.PullWithReport(ctx, "oci:"+layout+":c", "", m.SnapshotPullOptions{})
	if err != nil || !again.AlreadyPresent || again.ChunksDownloaded != 0 {
		t.Errorf("second pull: %v %+v", err, again)
	}

	// Into an explicit directory under a name of our choosing; the parent
	// is local now only as the child's chunks, which are copied.
	dest := filepath.Join(t.TempDir(), "elsewhere")
	named := must(dst.Snapshot.Pull(ctx, "oci:"+layout+":p", dest, m.SnapshotPullOptions{Name: "parent"}))(t)
	if named.Path() != filepath.Join(dest, "parent") || named.Digest() != parent.Digest() {
		t.Errorf("pull with dest and name: %s %s", named.Path(), named.Digest())
	}
}

// A pull cancelled through its context is ErrCancelled wrapping the
// context's error, and leaves the home as it was.
func TestPullCancelledLeavesNothing(t *testing.T) {
	ctx := context.Background()
	src := newHome(t)
	family(t, src)
	layout := "oci:" + filepath.Join(t.TempDir(), "layout") + ":c"
	must(src.Snapshot.Push(ctx, "c", layout, m.SnapshotPushOptions{}))(t)

	dst := newHome(t)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cctx = m.ContextWithProgress(cctx, func(p m.Progress) {
		if p.Phase == "pull" {
			cancel()
		}
	})
	if _, err := dst.Snapshot.Pull(cctx, layout, "", m.SnapshotPullOptions{}); !errors.Is(err, m.ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled pull: %v", err)
	}
	if list := must(dst.Snapshot.List(ctx))(t); len(list) != 0 {
		t.Errorf("a cancelled pull left %d snapshots indexed", len(list))
	}
	if entries, _ := os.ReadDir(filepath.Join(dst.Path(), "snapshots")); len(entries) != 0 {
		t.Errorf("a cancelled pull left %v in snapshots/", entries)
	}
}
