package microsnap_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	m "github.com/microsnap/microsnap/bindings/go"
)

// The package-level API works on $MICROSNAP_HOME; an explicit Home works
// on its own directory whatever the environment says.
func TestPackageLevelAPIUsesMicrosnapHome(t *testing.T) {
	ctx := context.Background()
	envHome := t.TempDir()
	makeImage(t, filepath.Join(envHome, "images"), testImage)
	t.Setenv("MICROSNAP_HOME", envHome)

	def, err := m.DefaultHome()
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(envHome)
	if def.Path() != real {
		t.Fatalf("DefaultHome().Path() = %q, want %q", def.Path(), real)
	}

	sb, err := m.CreateSandbox(ctx, "baseline", m.WithImage(testImage), m.WithUpperSize(smallUpper))
	if err != nil {
		t.Fatal(err)
	}
	writeUpper(t, sb.UpperPath(), 1, 4096)
	_ = sb.Stop(ctx)
	_ = sb.Close()
	h, err := m.GetSandbox(ctx, "baseline")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := h.Snapshot(ctx, "after-pip-install")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(filepath.Dir(snap.Path())) != real {
		t.Errorf("snapshot at %s, outside $MICROSNAP_HOME", snap.Path())
	}
	list, err := m.ListSandboxes(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("ListSandboxes = %v, %v", list, err)
	}
	handles, err := m.Snapshot.List(ctx)
	if err != nil || len(handles) != 1 || handles[0].Digest() != snap.Digest() {
		t.Fatalf("Snapshot.List = %v, %v", handles, err)
	}

	// An explicit home in another directory sees none of it.
	other := newHome(t)
	if l, err := other.Snapshot.List(ctx); err != nil || len(l) != 0 {
		t.Errorf("explicit home lists %d snapshots (%v)", len(l), err)
	}
	if _, err := other.GetSandbox(ctx, "baseline"); !errors.Is(err, m.ErrSandboxNotFound) {
		t.Errorf("explicit home sees the env home's sandbox: %v", err)
	}
	if os.Getenv("MICROSNAP_HOME") != envHome {
		t.Error("OpenHome changed MICROSNAP_HOME")
	}

	if err := m.Snapshot.Remove(ctx, "after-pip-install", false); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveSandbox(ctx, "baseline"); err != nil {
		t.Fatal(err)
	}
	if l, _ := m.ListSandboxes(ctx); len(l) != 0 {
		t.Errorf("sandboxes after RemoveSandbox: %d", len(l))
	}
}

func TestHomeCloseAndErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := m.OpenHome(""); !errors.Is(err, m.ErrInvalidArgument) {
		t.Errorf("OpenHome(\"\"): %v", err)
	}
	dir := t.TempDir()
	h, err := m.OpenHome(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"sandboxes", "snapshots", "images"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err != nil || !fi.IsDir() {
			t.Errorf("home layout: %s missing: %v", sub, err)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Every call after Close says so.
	_, err = h.Snapshot.List(ctx)
	if !errors.Is(err, m.ErrClosed) || !errors.Is(err, m.ErrInvalidArgument) {
		t.Errorf("List on a closed home: %v", err)
	}
	if _, err := h.CreateSandbox(ctx, "x", m.WithImage(testImage)); !errors.Is(err, m.ErrClosed) {
		t.Errorf("CreateSandbox on a closed home: %v", err)
	}
	// Two Homes on one directory share it.
	a, b := must(m.OpenHome(dir))(t), must(m.OpenHome(dir))(t)
	defer a.Close()
	defer b.Close()
	if a.Path() != b.Path() {
		t.Errorf("paths %q %q", a.Path(), b.Path())
	}
}
