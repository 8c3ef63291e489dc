package microsnap_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	m "github.com/microsnap/microsnap/bindings/go"
)

var allSentinels = []*m.Error{
	m.ErrSnapshotNotFound, m.ErrSandboxNotFound, m.ErrImageNotFound, m.ErrAlreadyExists,
	m.ErrSandboxRunning, m.ErrHasChildren, m.ErrIntegrityMismatch, m.ErrInvalidArgument,
	m.ErrInvalidManifest, m.ErrInvalidArchive, m.ErrUnsupported, m.ErrIO, m.ErrCancelled,
	m.ErrInternal, m.ErrUnauthorized, m.ErrRegistryError,
}

// needRegistry are the sentinels only a registry produces: they come from
// real calls in TestRegistryErrorsFromRealCalls.
var needRegistry = []*m.Error{m.ErrUnauthorized, m.ErrRegistryError}

// Each sentinel is produced by a real failing call (ErrInternal, which only
// a library bug produces, is covered by the decoder test in
// internal_test.go), and matches that error and no other sentinel.
func TestEverySentinelFromARealCall(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	stoppedSandbox(t, h, "base", 1)
	snap := must(h.Snapshot.Create(ctx, "base", m.SnapshotCreateOptions{Name: "s", RecordIntegrity: true}))(t)
	sb := must(h.CreateSandbox(ctx, "child", m.WithSnapshot("s")))(t)
	must(struct{}{}, sb.Stop(ctx))(t)
	must(h.Snapshot.Create(ctx, "child", m.SnapshotCreateOptions{Name: "c"}))(t)
	_ = sb.Close()
	running := must(h.CreateSandbox(ctx, "running", m.WithImage(testImage), m.WithUpperSize(smallUpper)))(t)
	defer running.Close()

	broken := filepath.Join(t.TempDir(), "broken")
	must(h.Snapshot.Create(ctx, "base", m.SnapshotCreateOptions{Path: broken}))(t)
	if err := os.WriteFile(filepath.Join(broken, "manifest.json"), []byte(`{"schema":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	corrupt := must(h.Snapshot.Create(ctx, "base", m.SnapshotCreateOptions{Name: "corrupt", RecordIntegrity: true}))(t)
	writeUpper(t, filepath.Join(corrupt.Path(), corrupt.UpperFile()), 42, 512)
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()

	cases := []struct {
		want *m.Error
		call func() error
	}{
		{m.ErrSnapshotNotFound, func() error { _, err := h.Snapshot.Open(ctx, "missing"); return err }},
		{m.ErrSandboxNotFound, func() error { _, err := h.GetSandbox(ctx, "missing"); return err }},
		{m.ErrImageNotFound, func() error { _, err := h.CreateSandbox(ctx, "x", m.WithImage("missing:0")); return err }},
		{m.ErrAlreadyExists, func() error {
			_, err := h.Snapshot.Create(ctx, "base", m.SnapshotCreateOptions{Name: "s"})
			return err
		}},
		{m.ErrSandboxRunning, func() error { return h.RemoveSandbox(ctx, "running") }},
		{m.ErrHasChildren, func() error { return h.Snapshot.Remove(ctx, snap.Digest(), false) }},
		{m.ErrIntegrityMismatch, func() error { _, err := corrupt.Verify(ctx); return err }},
		{m.ErrInvalidArgument, func() error { _, err := h.Snapshot.Create(ctx, "base", m.SnapshotCreateOptions{}); return err }},
		{m.ErrInvalidManifest, func() error { _, err := h.Snapshot.Open(ctx, broken); return err }},
		{m.ErrUnsupported, func() error {
			q := filepath.Join(t.TempDir(), "v1.qcow2")
			if err := os.WriteFile(q, append([]byte("QFI\xfb\x00\x00\x00\x01"), make([]byte, 100)...), 0o644); err != nil {
				return err
			}
			_, err := h.CreateSandbox(ctx, "q", m.WithImage(testImage), m.WithUpperFile(q, "ext4"))
			return err
		}},
		{m.ErrIO, func() error { _, err := m.OpenHome(filepath.Join(notADir, "home")); return err }},
		{m.ErrCancelled, func() error { _, err := snap.Verify(cancelled); return err }},
	}
	cases = append(cases, archiveSentinelCase(t, h)...)
	seen := map[m.Code]bool{}
	for _, c := range cases {
		err := c.call()
		var me *m.Error
		if !errors.As(err, &me) {
			t.Errorf("%v: got %v (%T), want an *m.Error", c.want, err, err)
			continue
		}
		seen[c.want.Code] = true
		if !errors.Is(err, c.want) || me.Code != c.want.Code || me.Name != c.want.Code.String() || me.Message == "" {
			t.Errorf("want %v, got code %v name %q message %q", c.want.Code, me.Code, me.Name, me.Message)
		}
		for _, other := range allSentinels {
			if other != c.want && errors.Is(err, other) {
				t.Errorf("%v also matches %v", err, other)
			}
		}
	}
	for _, s := range allSentinels {
		if !seen[s.Code] && s != m.ErrInternal && !(s == m.ErrInvalidArchive && !archiveAvailable) && !slices.Contains(needRegistry, s) {
			t.Errorf("no call produced %v", s.Code)
		}
	}
}

func TestErrorFormattingAndIs(t *testing.T) {
	e := &m.Error{Code: m.CodeSnapshotNotFound, Name: "snapshot_not_found", Message: "snapshot not found: x"}
	if e.Error() != "microsnap: snapshot_not_found: snapshot not found: x" {
		t.Errorf("Error() = %q", e.Error())
	}
	if !errors.Is(e, m.ErrSnapshotNotFound) || errors.Is(e, m.ErrSandboxNotFound) || errors.Is(e, context.Canceled) {
		t.Error("Is maps codes wrong")
	}
	if m.ErrHasChildren.Error() != "microsnap: has_children" {
		t.Errorf("sentinel Error() = %q", m.ErrHasChildren.Error())
	}
	if m.Code(99).String() != "code(99)" || m.CodeIO.String() != "io" {
		t.Error("Code.String")
	}
	// Codes are distinct, numbered as the header says.
	seen := map[m.Code]bool{}
	for i, s := range allSentinels {
		if int(s.Code) != i+1 || seen[s.Code] {
			t.Errorf("sentinel %d has code %d", i, s.Code)
		}
		seen[s.Code] = true
	}
}
