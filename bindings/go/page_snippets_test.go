package microsnap_test

// The reference page's snippets, verbatim apart from the import path, each
// wrapped in a function that supplies the variables it assumes (ctx, sb,
// snap, h). They run on a temporary $MICROSNAP_HOME, except the ones that
// write to /srv, which are compiled only.

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	m "github.com/microsnap/microsnap/bindings/go"
)

func pageCreate(ctx context.Context) (*m.SnapshotArtifact, error) {
	snap, err := m.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{
		Name:            "after-pip-install",
		Labels:          map[string]string{"stage": "post-deps"},
		RecordIntegrity: true,
	})
	return snap, err
}

func pageOpen(ctx context.Context) (*m.SnapshotArtifact, error) {
	snap, err := m.Snapshot.Open(ctx, "after-pip-install")
	return snap, err
}

func pageGet(ctx context.Context) (*m.SnapshotHandle, error) {
	h, err := m.Snapshot.Get(ctx, "after-pip-install")
	return h, err
}

func pageList(ctx context.Context) error {
	handles, err := m.Snapshot.List(ctx)
	for _, h := range handles {
		fmt.Println(h.Digest(), h.ImageRef())
	}
	return err
}

func pageRemove(ctx context.Context) error {
	err := m.Snapshot.Remove(ctx, "after-pip-install", false)
	return err
}

func pageHandleRemove(ctx context.Context, h *m.SnapshotHandle) error {
	err := h.Remove(ctx, false)
	return err
}

func pageSandboxHandle(ctx context.Context, sb *m.Sandbox) (*m.SnapshotArtifact, error) {
	_ = sb.Stop(ctx)
	_ = sb.Close()
	h, err := m.GetSandbox(ctx, "baseline")
	if err != nil {
		return nil, err
	}
	snap, err := h.Snapshot(ctx, "after-pip-install")
	return snap, err
}

func pageVerify(ctx context.Context, snap *m.SnapshotArtifact) error {
	report, err := snap.Verify(ctx)
	if err != nil {
		return err
	}
	fmt.Println(report.Upper.Digest)
	return nil
}

// Compiled, not run: they write to /srv and /tmp/snap.tar.zst
// (archive_test.go runs the export/import snippets on a temporary path).
var _ = func(ctx context.Context, h *m.SandboxHandle) error {
	{
		err := m.Snapshot.Export(ctx, "after-pip-install", "/tmp/snap.tar.zst",
			m.SnapshotExportOptions{WithParents: true},
		)
		_ = err
	}
	{
		h, err := m.Snapshot.Import(ctx, "/tmp/snap.tar.zst", "")
		_, _ = h, err
	}
	n, err := m.Snapshot.Reindex(ctx, "/srv/snapshots")
	fmt.Printf("indexed %d snapshots \n ", n)
	snap, err := h.SnapshotTo(ctx, "/srv/snapshots/baseline")
	_ = snap
	return err
}

func TestReferencePageSnippets(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	makeImage(t, filepath.Join(dir, "images"), testImage)
	t.Setenv("MICROSNAP_HOME", dir)

	sb := must(m.CreateSandbox(ctx, "baseline", m.WithImage(testImage), m.WithUpperSize(smallUpper)))(t)
	first := must(pageSandboxHandle(ctx, sb))(t)
	if name := filepath.Base(first.Path()); name != "after-pip-install" {
		t.Fatalf("SandboxHandle.Snapshot wrote %s", first.Path())
	}
	if err := pageRemove(ctx); err != nil {
		t.Fatal(err)
	}
	snap := must(pageCreate(ctx))(t)
	if snap.Labels()["stage"] != "post-deps" {
		t.Errorf("labels %v", snap.Labels())
	}
	opened := must(pageOpen(ctx))(t)
	if opened.Digest() != snap.Digest() {
		t.Errorf("Open digest %s, want %s", opened.Digest(), snap.Digest())
	}
	if err := pageVerify(ctx, opened); err != nil {
		t.Fatal(err)
	}
	if err := pageList(ctx); err != nil {
		t.Fatal(err)
	}
	h := must(pageGet(ctx))(t)
	if err := pageHandleRemove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if l := must(m.Snapshot.List(ctx))(t); len(l) != 0 {
		t.Errorf("%d snapshots left", len(l))
	}
}
