package microsnap_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	m "github.com/microsnap/microsnap/bindings/go"
)

const archiveAvailable = true

// archiveSentinelCase gives TestEverySentinelFromARealCall its
// ErrInvalidArchive case: importing a file that is no archive.
func archiveSentinelCase(t *testing.T, h *m.Home) []struct {
	want *m.Error
	call func() error
} {
	garbage := filepath.Join(t.TempDir(), "garbage.tar.zst")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not an archive "), 100), 0o644); err != nil {
		t.Fatal(err)
	}
	return []struct {
		want *m.Error
		call func() error
	}{{m.ErrInvalidArchive, func() error { _, err := h.Snapshot.Import(context.Background(), garbage, ""); return err }}}
}

func fileHead(t *testing.T, path string, n int) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < n {
		t.Fatalf("%s: %d bytes", path, len(b))
	}
	return b[:n]
}

func TestExportImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := newHome(t)
	stoppedSandbox(t, src, "baseline", 1)
	parent := must(src.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: "parent", RecordIntegrity: true}))(t)
	sb := must(src.CreateSandbox(ctx, "worker", m.WithSnapshot("parent")))(t)
	writeUpper(t, sb.UpperPath(), 2, 4096)
	_ = sb.Stop(ctx)
	_ = sb.Close()
	child := must(src.Snapshot.Create(ctx, "worker", m.SnapshotCreateOptions{
		Name: "child", RecordIntegrity: true, Labels: map[string]string{"k": "v"},
	}))(t)

	out := t.TempDir()
	zst := filepath.Join(out, "snap.tar.zst")
	if err := src.Snapshot.Export(ctx, "child", zst, m.SnapshotExportOptions{WithParents: true, WithImage: true}); err != nil {
		t.Fatal(err)
	}
	if head := fileHead(t, zst, 4); !bytes.Equal(head, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Errorf("default export is not zstd: % x", head)
	}
	plain := filepath.Join(out, "snap.tar")
	if err := src.Snapshot.Export(ctx, child.Path(), plain, m.SnapshotExportOptions{PlainTar: true, Dense: true}); err != nil {
		t.Fatal(err)
	}
	if magic := fileHead(t, plain, 262)[257:262]; string(magic) != "ustar" {
		t.Errorf("PlainTar export is not a tar: %q", magic)
	}
	tuned := filepath.Join(out, "tuned.tar.zst")
	if err := src.Snapshot.Export(ctx, child.Digest(), tuned, m.SnapshotExportOptions{Level: 19, Threads: 2}); err != nil {
		t.Fatal(err)
	}

	// Into a fresh home with no image: WithImage brought it along.
	dst := must(m.OpenHome(t.TempDir()))(t)
	defer dst.Close()
	h, err := dst.Snapshot.Import(ctx, zst, "")
	if err != nil {
		t.Fatal(err)
	}
	if h.Digest() != child.Digest() || filepath.Dir(h.Path()) != filepath.Join(dst.Path(), "snapshots") {
		t.Errorf("imported head %s at %s", h.Digest(), h.Path())
	}
	if p := h.ParentDigest(); p == nil || *p != parent.Digest() {
		t.Errorf("imported head parent %v", p)
	}
	if h.Labels()["k"] != "v" {
		t.Errorf("labels %v", h.Labels())
	}
	list := must(dst.Snapshot.List(ctx))(t)
	if len(list) != 2 {
		t.Errorf("import with parents indexed %d snapshots", len(list))
	}
	art := must(h.Open(ctx))(t)
	if r, err := art.Verify(ctx); err != nil || r.Upper.Kind != "verified" {
		t.Errorf("imported snapshot verify: %+v %v", r, err)
	}
	booted := must(dst.CreateSandbox(ctx, "again", m.WithSnapshot(h.Digest())))(t)
	data, err := os.ReadFile(booted.UpperPath())
	if err != nil || !bytes.Equal(data[17<<20:17<<20+4096], pattern(2, 4096)) {
		t.Errorf("sandbox from the imported snapshot lacks the data: %v", err)
	}
	_ = booted.Close()

	// An explicit destination directory, from the plain tar (no parents, so
	// its parent is only named).
	dest := filepath.Join(t.TempDir(), "imported")
	third := newHome(t)
	h2, err := third.Snapshot.Import(ctx, plain, dest)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(h2.Path()) != dest || h2.Digest() != child.Digest() {
		t.Errorf("Import to dest: %s %s", h2.Path(), h2.Digest())
	}
	h3 := must(third.Snapshot.Import(ctx, tuned, filepath.Join(t.TempDir(), "t")))(t)
	if h3.Digest() != child.Digest() {
		t.Errorf("tuned export imported as %s", h3.Digest())
	}

	if err := src.Snapshot.Export(ctx, "missing", filepath.Join(out, "x.tar.zst"), m.SnapshotExportOptions{}); !errors.Is(err, m.ErrSnapshotNotFound) {
		t.Errorf("Export(missing): %v", err)
	}
	if _, err := dst.Snapshot.Import(ctx, filepath.Join(out, "missing.tar.zst"), ""); err == nil {
		t.Error("Import of a missing file succeeded")
	}
}

// Cancellation mid-export (and mid-import): the call returns a cancelled
// error once the library has stopped, and no partial archive or artifact
// is left behind.
func TestCancelMidExportAndImport(t *testing.T) {
	h := newHome(t)
	stoppedSandbox(t, h, "baseline", 3)
	must(h.Snapshot.Create(context.Background(), "baseline", m.SnapshotCreateOptions{Name: "s", RecordIntegrity: true}))(t)
	out := filepath.Join(t.TempDir(), "s.tar.zst")

	ctx, cancel := context.WithCancel(context.Background())
	var phases []string
	ctx = m.ContextWithProgress(ctx, func(p m.Progress) {
		phases = append(phases, p.Phase)
		if p.Done > 0 {
			cancel()
		}
	})
	err := h.Snapshot.Export(ctx, "s", out, m.SnapshotExportOptions{})
	cancel()
	assertCancelled(t, err, context.Canceled)
	if len(phases) == 0 {
		t.Error("no progress reported before the cancel")
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 0 {
		t.Errorf("cancelled export left %v", entries)
	}

	// A real archive, then a cancelled import of it.
	if err := h.Snapshot.Export(context.Background(), "s", out, m.SnapshotExportOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := newHome(t)
	ctx, cancel = context.WithCancel(context.Background())
	ctx = m.ContextWithProgress(ctx, func(p m.Progress) {
		if p.Done > 0 {
			cancel()
		}
	})
	_, err = dst.Snapshot.Import(ctx, out, "")
	cancel()
	assertCancelled(t, err, context.Canceled)
	if got := snapshotEntries(t, dst); len(got) != 0 {
		t.Errorf("cancelled import left %v", got)
	}
	if l := must(dst.Snapshot.List(context.Background()))(t); len(l) != 0 {
		t.Errorf("cancelled import indexed %d snapshots", len(l))
	}
}

func TestPageExportImportSnippets(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	makeImage(t, filepath.Join(dir, "images"), testImage)
	t.Setenv("MICROSNAP_HOME", dir)
	stoppedSandbox(t, must(m.DefaultHome())(t), "baseline", 4)
	must(m.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: "after-pip-install"}))(t)
	archive := filepath.Join(t.TempDir(), "snap.tar.zst")

	// The page's snippets, with the archive path in a temp dir.
	err := m.Snapshot.Export(ctx, "after-pip-install", archive,
		m.SnapshotExportOptions{WithParents: true},
	)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Snapshot.Remove(ctx, "after-pip-install", false); err != nil {
		t.Fatal(err)
	}
	h, err := m.Snapshot.Import(ctx, archive, "")
	if err != nil {
		t.Fatal(err)
	}
	if n := h.Name(); n == nil || *n != filepath.Base(h.Path()) {
		t.Logf("imported as %s (name %v)", h.Path(), n)
	}
	if _, err := m.Snapshot.Get(ctx, h.Digest()); err != nil {
		t.Fatal(err)
	}
}
