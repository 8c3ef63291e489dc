package microsnap_test

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	m "github.com/microsnap/microsnap/bindings/go"
)

func TestSandboxLifecycle(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	sb, err := h.CreateSandbox(ctx, "baseline", m.WithImage(testImage), m.WithUpperSize(smallUpper))
	if err != nil {
		t.Fatal(err)
	}
	if sb.Name() != "baseline" {
		t.Errorf("Name() = %q", sb.Name())
	}
	fi, err := os.Stat(sb.UpperPath())
	if err != nil || fi.Size() != smallUpper {
		t.Fatalf("upper %s: %v size %v", sb.UpperPath(), err, fi)
	}
	info, err := sb.Info(ctx)
	if err != nil || info.State() != "running" {
		t.Fatalf("Info while running: %v %v", info, err)
	}

	hd := must(h.GetSandbox(ctx, "baseline"))(t)
	if hd.Name() != "baseline" || hd.State() != "running" || hd.ImageRef() != testImage ||
		hd.UpperPath() != sb.UpperPath() || hd.Format() != "raw" || hd.Fstype() != "ext4" ||
		hd.SizeBytes() != smallUpper || hd.FromSnapshot() != nil || hd.CreatedAt() == "" ||
		hd.ImageManifestDigest() == "" {
		t.Errorf("GetSandbox = %+v", hd)
	}
	if _, err := hd.Snapshot(ctx, "too-early"); !errors.Is(err, m.ErrSandboxRunning) {
		t.Errorf("Snapshot of a running sandbox: %v", err)
	}
	if err := h.RemoveSandbox(ctx, "baseline"); !errors.Is(err, m.ErrSandboxRunning) {
		t.Errorf("RemoveSandbox of a running sandbox: %v", err)
	}
	if _, err := hd.Start(ctx); !errors.Is(err, m.ErrSandboxRunning) {
		t.Errorf("Start of a running sandbox: %v", err)
	}

	if err := sb.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sb.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if info, err := sb.Info(ctx); err != nil || info.State() != "stopped" {
		t.Errorf("Info after Stop: %v %v", info, err)
	}
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sb.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := sb.Stop(ctx); !errors.Is(err, m.ErrClosed) {
		t.Errorf("Stop after Close: %v, want ErrClosed", err)
	}

	hd = must(h.GetSandbox(ctx, "baseline"))(t)
	if hd.State() != "stopped" {
		t.Errorf("state after Stop = %q", hd.State())
	}
	snap, err := hd.Snapshot(ctx, "after-pip-install")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Path() != filepath.Join(h.Path(), "snapshots", "after-pip-install") {
		t.Errorf("Snapshot path %q", snap.Path())
	}
	to := filepath.Join(t.TempDir(), "baseline")
	snapTo, err := hd.SnapshotTo(ctx, to)
	if err != nil || snapTo.Path() != to {
		t.Fatalf("SnapshotTo: %v %v", snapTo, err)
	}

	// A sandbox from the snapshot records where it came from.
	sb2 := must(h.CreateSandbox(ctx, "worker", m.WithSnapshot("after-pip-install")))(t)
	w := must(sb2.Info(ctx))(t)
	if fs := w.FromSnapshot(); fs == nil || *fs != snap.Digest() {
		t.Errorf("FromSnapshot() = %v, want %s", fs, snap.Digest())
	}
	// Closing without Stop reads as crashed; MarkStopped clears it.
	_ = sb2.Close()
	w = must(h.GetSandbox(ctx, "worker"))(t)
	if w.State() != "crashed" {
		t.Errorf("state after Close without Stop = %q, want crashed", w.State())
	}
	if err := w.MarkStopped(ctx); err != nil {
		t.Fatal(err)
	}
	if st := must(h.GetSandbox(ctx, "worker"))(t).State(); st != "stopped" {
		t.Errorf("state after MarkStopped = %q", st)
	}
	// Start again, then stop through the new handle.
	sb3 := must(w.Start(ctx))(t)
	if st := must(h.GetSandbox(ctx, "worker"))(t).State(); st != "running" {
		t.Errorf("state after Start = %q", st)
	}
	_ = sb3.Stop(ctx)
	_ = sb3.Close()

	list := must(h.ListSandboxes(ctx))(t)
	if len(list) != 2 || list[0].Name() != "baseline" || list[1].Name() != "worker" {
		t.Errorf("ListSandboxes = %v", list)
	}
	if err := w.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.GetSandbox(ctx, "worker"); !errors.Is(err, m.ErrSandboxNotFound) {
		t.Errorf("GetSandbox after Remove: %v", err)
	}
	if err := h.RemoveSandbox(ctx, "worker"); !errors.Is(err, m.ErrSandboxNotFound) {
		t.Errorf("second RemoveSandbox: %v", err)
	}
}

func TestSandboxOptions(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)

	// Adopt an existing raw upper file.
	upper := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(upper)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(8 << 20); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(pattern(5, 4096), 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sb, err := h.CreateSandbox(ctx, "adopted", m.WithImage(testImage), m.WithUpperFile(upper, "xfs"))
	if err != nil {
		t.Fatal(err)
	}
	info := must(sb.Info(ctx))(t)
	if info.Fstype() != "xfs" || info.SizeBytes() != 8<<20 || info.UpperPath() == upper {
		t.Errorf("adopted sandbox %+v", info)
	}
	data, err := os.ReadFile(info.UpperPath())
	if err != nil || string(data[1<<20:1<<20+4096]) != string(pattern(5, 4096)) {
		t.Errorf("adopted upper content not copied: %v", err)
	}
	_ = sb.Stop(ctx)
	_ = sb.Close()

	sb, err = h.CreateSandbox(ctx, "fresh", m.WithImage(testImage), m.WithUpperSize(1<<20), m.WithFstype("btrfs"))
	if err != nil {
		t.Fatal(err)
	}
	info = must(sb.Info(ctx))(t)
	if info.Fstype() != "btrfs" || info.SizeBytes() != 1<<20 {
		t.Errorf("fresh sandbox %+v", info)
	}
	_ = sb.Close()

	bad := []struct {
		name string
		opts []m.SandboxOption
		want error
	}{
		{"none", nil, m.ErrInvalidArgument},
		{"upper-without-image", []m.SandboxOption{m.WithUpperFile(upper, "ext4")}, m.ErrInvalidArgument},
		{"snapshot-and-image", []m.SandboxOption{m.WithSnapshot("x"), m.WithImage(testImage)}, m.ErrInvalidArgument},
		{"missing-image", []m.SandboxOption{m.WithImage("nope:1")}, m.ErrImageNotFound},
		{"missing-snapshot", []m.SandboxOption{m.WithSnapshot("nope")}, m.ErrSnapshotNotFound},
		{"zero-size", []m.SandboxOption{m.WithImage(testImage), m.WithUpperSize(0)}, m.ErrInvalidArgument},
		{"fresh", []m.SandboxOption{m.WithImage(testImage)}, m.ErrAlreadyExists},
		{"bad/name", []m.SandboxOption{m.WithImage(testImage)}, m.ErrInvalidArgument},
	}
	for _, c := range bad {
		if sb, err := h.CreateSandbox(ctx, c.name, c.opts...); !errors.Is(err, c.want) {
			if sb != nil {
				_ = sb.Close()
			}
			t.Errorf("CreateSandbox(%s): %v, want %v", c.name, err, c.want)
		}
	}
}

// A qcow2 upper with a backing file would make a snapshot read a host
// file: adopting one is unsupported.
func TestSandboxRefusesQcow2WithBackingFile(t *testing.T) {
	h := newHome(t)
	upper := filepath.Join(t.TempDir(), "disk.qcow2")
	hdr := make([]byte, 104)
	copy(hdr, "QFI\xfb")
	binary.BigEndian.PutUint32(hdr[4:], 3)      // version
	binary.BigEndian.PutUint64(hdr[8:], 104)    // backing_file_offset
	binary.BigEndian.PutUint32(hdr[16:], 8)     // backing_file_size
	binary.BigEndian.PutUint64(hdr[24:], 1<<20) // virtual size
	hdr = append(hdr, "base.img"...)
	if err := os.WriteFile(upper, hdr, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := h.CreateSandbox(context.Background(), "q", m.WithImage(testImage), m.WithUpperFile(upper, "ext4"))
	if !errors.Is(err, m.ErrUnsupported) {
		t.Fatalf("adopting a qcow2 with a backing file: %v, want ErrUnsupported", err)
	}
}

func TestNewSandboxIsCreatedNotRunning(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	sb, err := h.NewSandbox(ctx, "idle", m.WithImage(testImage), m.WithUpperSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if sb.State() != "created" {
		t.Fatalf("state %q, want created", sb.State())
	}
	// Not running, so it can be snapshotted and started right away.
	if _, err := sb.Snapshot(ctx, "idle-snap"); err != nil {
		t.Fatal(err)
	}
	running, err := sb.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer running.Close()
	if err := running.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}
