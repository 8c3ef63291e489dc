package microsnap_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	m "github.com/microsnap/microsnap/bindings/go"
)

func TestSnapshotCreateByNameRecordsEverything(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	stoppedSandbox(t, h, "baseline", 1)
	before := time.Now().Add(-time.Second)

	snap, err := h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{
		Name:            "after-pip-install",
		Labels:          map[string]string{"stage": "post-deps"},
		RecordIntegrity: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(h.Path(), "snapshots", "after-pip-install"); snap.Path() != want {
		t.Errorf("Path() = %q, want %q", snap.Path(), want)
	}
	if !strings.HasPrefix(snap.Digest(), "sha256:") || len(snap.Digest()) != 71 {
		t.Errorf("Digest() = %q", snap.Digest())
	}
	if snap.SizeBytes() != smallUpper {
		t.Errorf("SizeBytes() = %d, want %d", snap.SizeBytes(), smallUpper)
	}
	if snap.ImageRef() != testImage {
		t.Errorf("ImageRef() = %q", snap.ImageRef())
	}
	if !strings.HasPrefix(snap.ImageManifestDigest(), "sha256:") {
		t.Errorf("ImageManifestDigest() = %q", snap.ImageManifestDigest())
	}
	if snap.Format() != "raw" || snap.Fstype() != "ext4" {
		t.Errorf("Format/Fstype = %q/%q", snap.Format(), snap.Fstype())
	}
	if snap.Parent() != nil {
		t.Errorf("Parent() = %v, want nil", *snap.Parent())
	}
	created, err := time.Parse(time.RFC3339Nano, snap.CreatedAt())
	if err != nil || created.Before(before) || created.After(time.Now().Add(time.Second)) {
		t.Errorf("CreatedAt() = %q (%v)", snap.CreatedAt(), err)
	}
	if got := snap.Labels(); len(got) != 1 || got["stage"] != "post-deps" {
		t.Errorf("Labels() = %v", got)
	}
	if src := snap.SourceSandbox(); src == nil || *src != "baseline" {
		t.Errorf("SourceSandbox() = %v", src)
	}
	if snap.IntegrityAlgorithm() != "microsnap-merkle-sha256-v1" || !strings.HasPrefix(snap.IntegrityDigest(), "sha256:") {
		t.Errorf("integrity = %q %q", snap.IntegrityAlgorithm(), snap.IntegrityDigest())
	}
	if snap.UpperFile() != "upper.ext4" {
		t.Errorf("UpperFile() = %q", snap.UpperFile())
	}
	// The upper was copied with its content.
	data, err := os.ReadFile(filepath.Join(snap.Path(), snap.UpperFile()))
	if err != nil {
		t.Fatal(err)
	}
	if string(data[17<<20:17<<20+4096]) != string(pattern(1, 4096)) {
		t.Error("snapshot upper does not hold the sandbox's data")
	}
}

func TestSnapshotAccessorsReturnDefensiveCopies(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	stoppedSandbox(t, h, "base", 1)
	parent := must(h.Snapshot.Create(ctx, "base", m.SnapshotCreateOptions{Name: "p"}))(t)
	sb := must(h.CreateSandbox(ctx, "child-sb", m.WithSnapshot("p")))(t)
	_ = sb.Stop(ctx)
	_ = sb.Close()
	snap := must(h.Snapshot.Create(ctx, "child-sb", m.SnapshotCreateOptions{
		Name: "c", Labels: map[string]string{"k": "v"},
	}))(t)

	labels := snap.Labels()
	labels["k"] = "changed"
	labels["new"] = "x"
	if got := snap.Labels(); len(got) != 1 || got["k"] != "v" {
		t.Errorf("Labels() changed through a returned map: %v", got)
	}
	p := snap.Parent()
	if p == nil || *p != parent.Digest() {
		t.Fatalf("Parent() = %v, want %s", p, parent.Digest())
	}
	*p = "mutated"
	if *snap.Parent() != parent.Digest() {
		t.Error("Parent() changed through a returned pointer")
	}
	src := snap.SourceSandbox()
	*src = "mutated"
	if *snap.SourceSandbox() != "child-sb" {
		t.Error("SourceSandbox() changed through a returned pointer")
	}

	hd := must(h.Snapshot.Get(ctx, "c"))(t)
	name, pd, size := hd.Name(), hd.ParentDigest(), hd.SizeBytes()
	if name == nil || pd == nil || size == nil {
		t.Fatalf("Name/ParentDigest/SizeBytes = %v/%v/%v", name, pd, size)
	}
	*name, *pd, *size = "x", "y", 1
	if *hd.Name() != "c" || *hd.ParentDigest() != parent.Digest() || *hd.SizeBytes() != smallUpper {
		t.Error("handle accessors changed through returned pointers")
	}
	hl := hd.Labels()
	hl["k"] = "changed"
	if hd.Labels()["k"] != "v" {
		t.Error("handle Labels() changed through a returned map")
	}
}

func TestSnapshotCreateToPathAndOptionsErrors(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	stoppedSandbox(t, h, "baseline", 2)
	dir := filepath.Join(t.TempDir(), "srv", "baseline")

	snap, err := h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Path() != dir {
		t.Errorf("Path() = %q, want %q", snap.Path(), dir)
	}
	if snap.IntegrityAlgorithm() != "" {
		t.Errorf("integrity recorded without RecordIntegrity: %q", snap.IntegrityAlgorithm())
	}

	_, err = h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Path: dir})
	if !errors.Is(err, m.ErrAlreadyExists) {
		t.Errorf("second Create to the same path: %v, want ErrAlreadyExists", err)
	}
	again, err := h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Path: dir, Force: true, Labels: map[string]string{"v": "2"}})
	if err != nil {
		t.Fatalf("Create with Force: %v", err)
	}
	if again.Labels()["v"] != "2" || again.Digest() == snap.Digest() {
		t.Errorf("Force did not replace the artifact: %v %s", again.Labels(), again.Digest())
	}

	for _, opts := range []m.SnapshotCreateOptions{
		{}, // neither
		{Name: "a", Path: filepath.Join(dir, "b")}, // both
		{Name: "../escape"},                        // not a bare name
		{Name: "x", RecordIntegrity: true, IntegrityAlgorithm: "md5"},
	} {
		if _, err := h.Snapshot.Create(ctx, "baseline", opts); !errors.Is(err, m.ErrInvalidArgument) {
			t.Errorf("Create(%+v): %v, want ErrInvalidArgument", opts, err)
		}
	}
	if _, err := h.Snapshot.Create(ctx, "no-such-sandbox", m.SnapshotCreateOptions{Name: "z"}); !errors.Is(err, m.ErrSandboxNotFound) {
		t.Errorf("Create from a missing sandbox: %v, want ErrSandboxNotFound", err)
	}
}

func TestSnapshotIntegrityAlgorithms(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	stoppedSandbox(t, h, "baseline", 3)
	for _, alg := range []string{"sha256", "msb-sparse-sha256-v1", "microsnap-merkle-sha256-v1", "msb-file-merkle-blake3-v1"} {
		snap, err := h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{
			Name: "alg-" + strings.ReplaceAll(alg, ".", "-"), RecordIntegrity: true, IntegrityAlgorithm: alg,
		})
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		r, err := snap.Verify(ctx)
		if err != nil {
			t.Fatalf("Verify %s: %v", alg, err)
		}
		if r.Upper.Kind != "verified" || r.Upper.Algorithm != alg || r.Upper.Digest != snap.IntegrityDigest() {
			t.Errorf("%s: report %+v, recorded %s", alg, r, snap.IntegrityDigest())
		}
	}
}

func TestSnapshotCreateRefusesRunningSandbox(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	sb := must(h.CreateSandbox(ctx, "live", m.WithImage(testImage), m.WithUpperSize(smallUpper)))(t)
	defer sb.Close()
	_, err := h.Snapshot.Create(ctx, "live", m.SnapshotCreateOptions{Name: "nope"})
	if !errors.Is(err, m.ErrSandboxRunning) {
		t.Fatalf("Create from a running sandbox: %v, want ErrSandboxRunning", err)
	}
	if _, err := os.Stat(filepath.Join(h.Path(), "snapshots", "nope")); !os.IsNotExist(err) {
		t.Errorf("refused Create left %s behind: %v", "nope", err)
	}
}

func TestSnapshotOpenGetList(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	stoppedSandbox(t, h, "baseline", 4)
	first := must(h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: "first", Labels: map[string]string{"n": "1"}}))(t)
	second := must(h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: "second"}))(t)

	for _, ref := range []string{"first", first.Path()} {
		a, err := h.Snapshot.Open(ctx, ref)
		if err != nil {
			t.Fatalf("Open(%q): %v", ref, err)
		}
		if a.Digest() != first.Digest() || a.Path() != first.Path() || a.Labels()["n"] != "1" {
			t.Errorf("Open(%q) = %s %s", ref, a.Digest(), a.Path())
		}
	}
	for _, ref := range []string{"first", first.Digest(), first.Path()} {
		hd, err := h.Snapshot.Get(ctx, ref)
		if err != nil {
			t.Fatalf("Get(%q): %v", ref, err)
		}
		if hd.Digest() != first.Digest() || hd.Path() != first.Path() || hd.ImageRef() != testImage ||
			hd.Format() != "raw" || hd.Fstype() != "ext4" || hd.ImageManifestDigest() != first.ImageManifestDigest() {
			t.Errorf("Get(%q) = %+v", ref, hd)
		}
		if n := hd.Name(); n == nil || *n != "first" {
			t.Errorf("Get(%q).Name() = %v", ref, n)
		}
		if hd.ParentDigest() != nil || hd.ChildCount() != 0 {
			t.Errorf("Get(%q): parent %v children %d", ref, hd.ParentDigest(), hd.ChildCount())
		}
		wantTime, _ := time.Parse(time.RFC3339Nano, first.CreatedAt())
		if !hd.CreatedAt().Equal(wantTime) {
			t.Errorf("CreatedAt() = %v, want %v", hd.CreatedAt(), wantTime)
		}
		opened, err := hd.Open(ctx)
		if err != nil || opened.Digest() != first.Digest() {
			t.Errorf("handle Open: %v", err)
		}
	}

	list, err := h.Snapshot.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Digest() != second.Digest() || list[1].Digest() != first.Digest() {
		var got []string
		for _, l := range list {
			got = append(got, l.Path())
		}
		t.Errorf("List() = %v, want second then first (newest first)", got)
	}
	// List and Get read the same handle object through different decoders
	// (handle_json.go's listing fast path, encoding/json for Get).
	got := must(h.Snapshot.Get(ctx, "first"))(t)
	listed := list[1]
	if listed.Digest() != got.Digest() || *listed.Name() != *got.Name() || listed.ParentDigest() != nil ||
		listed.ImageRef() != got.ImageRef() || listed.ImageManifestDigest() != got.ImageManifestDigest() ||
		listed.Format() != got.Format() || listed.Fstype() != got.Fstype() ||
		*listed.SizeBytes() != *got.SizeBytes() || listed.Path() != got.Path() ||
		!listed.CreatedAt().Equal(got.CreatedAt()) || listed.ChildCount() != got.ChildCount() ||
		!maps.Equal(listed.Labels(), got.Labels()) || listed.Labels()["n"] != "1" {
		t.Errorf("listed handle %+v differs from Get's %+v", listed, got)
	}

	if _, err := h.Snapshot.Open(ctx, "missing"); !errors.Is(err, m.ErrSnapshotNotFound) {
		t.Errorf("Open(missing): %v", err)
	}
	if _, err := h.Snapshot.Get(ctx, "missing"); !errors.Is(err, m.ErrSnapshotNotFound) {
		t.Errorf("Get(missing): %v", err)
	}
}

func TestSnapshotListDirAndReindex(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	stoppedSandbox(t, h, "baseline", 5)
	srv := t.TempDir()
	a := must(h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Path: filepath.Join(srv, "a")}))(t)
	b := must(h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Path: filepath.Join(srv, "b"), Labels: map[string]string{"x": "y"}}))(t)
	if err := os.Mkdir(filepath.Join(srv, "not-an-artifact"), 0o755); err != nil {
		t.Fatal(err)
	}

	arts, err := h.Snapshot.ListDir(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, art := range arts {
		got[art.Path()] = art.Digest()
	}
	if len(arts) != 2 || got[a.Path()] != a.Digest() || got[b.Path()] != b.Digest() {
		t.Errorf("ListDir = %v", got)
	}

	// Forget both in the index, then rebuild it from the directory.
	for _, art := range []*m.SnapshotArtifact{a, b} {
		hd := must(h.Snapshot.Get(ctx, art.Digest()))(t)
		if err := os.Rename(art.Path(), art.Path()+".keep"); err != nil {
			t.Fatal(err)
		}
		if err := hd.Remove(ctx, false); err == nil {
			// removed the row of a vanished artifact: fine
		} else if !errors.Is(err, m.ErrSnapshotNotFound) {
			t.Fatalf("Remove of a moved artifact: %v", err)
		}
		if err := os.Rename(art.Path()+".keep", art.Path()); err != nil {
			t.Fatal(err)
		}
	}
	n, err := h.Snapshot.Reindex(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("Reindex = %d, want 2", n)
	}
	for _, art := range []*m.SnapshotArtifact{a, b} {
		hd, err := h.Snapshot.Get(ctx, art.Digest())
		if err != nil || hd.Path() != art.Path() {
			t.Errorf("after Reindex, Get(%s): %v", art.Digest(), err)
		}
	}
	if _, err := h.Snapshot.ListDir(ctx, filepath.Join(srv, "missing")); err == nil {
		t.Error("ListDir of a missing directory succeeded")
	}
}

func TestSnapshotRemoveAndChildren(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	stoppedSandbox(t, h, "baseline", 6)
	parent := must(h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: "parent"}))(t)
	sb := must(h.CreateSandbox(ctx, "worker", m.WithSnapshot("parent")))(t)
	if err := sb.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	_ = sb.Close()
	child := must(h.Snapshot.Create(ctx, "worker", m.SnapshotCreateOptions{Name: "child"}))(t)
	if p := child.Parent(); p == nil || *p != parent.Digest() {
		t.Fatalf("child Parent() = %v, want %s", p, parent.Digest())
	}
	if hd := must(h.Snapshot.Get(ctx, "parent"))(t); hd.ChildCount() != 1 {
		t.Errorf("parent ChildCount() = %d", hd.ChildCount())
	}

	err := h.Snapshot.Remove(ctx, "parent", false)
	if !errors.Is(err, m.ErrHasChildren) {
		t.Fatalf("Remove(parent): %v, want ErrHasChildren", err)
	}
	var me *m.Error
	if !errors.As(err, &me) || me.Digest != parent.Digest() || me.Children != 1 {
		t.Errorf("has_children details: %+v", me)
	}
	if _, err := os.Stat(parent.Path()); err != nil {
		t.Errorf("refused Remove deleted the parent: %v", err)
	}

	hd := must(h.Snapshot.Get(ctx, "child"))(t)
	if err := hd.Remove(ctx, false); err != nil {
		t.Fatalf("handle Remove(child): %v", err)
	}
	if _, err := os.Stat(child.Path()); !os.IsNotExist(err) {
		t.Errorf("child still on disk: %v", err)
	}
	if err := h.Snapshot.Remove(ctx, parent.Path(), false); err != nil {
		t.Fatalf("Remove(parent) by path once childless: %v", err)
	}
	if _, err := h.Snapshot.Get(ctx, parent.Digest()); !errors.Is(err, m.ErrSnapshotNotFound) {
		t.Errorf("Get after Remove: %v", err)
	}
	if err := h.Snapshot.Remove(ctx, "parent", false); !errors.Is(err, m.ErrSnapshotNotFound) {
		t.Errorf("second Remove: %v", err)
	}
}

func TestSnapshotRemoveForce(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	stoppedSandbox(t, h, "baseline", 7)
	must(h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: "parent"}))(t)
	sb := must(h.CreateSandbox(ctx, "worker", m.WithSnapshot("parent")))(t)
	_ = sb.Stop(ctx)
	_ = sb.Close()
	must(h.Snapshot.Create(ctx, "worker", m.SnapshotCreateOptions{Name: "child"}))(t)
	hd := must(h.Snapshot.Get(ctx, "parent"))(t)
	if err := hd.Remove(ctx, true); err != nil {
		t.Fatalf("Remove(force): %v", err)
	}
	if _, err := os.Stat(hd.Path()); !os.IsNotExist(err) {
		t.Errorf("forced Remove left the artifact: %v", err)
	}
}

func TestSnapshotVerify(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	stoppedSandbox(t, h, "baseline", 8)
	snap := must(h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: "v", RecordIntegrity: true}))(t)
	r, err := snap.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Digest != snap.Digest() || r.Path != snap.Path() || r.Upper.Kind != "verified" ||
		r.Upper.Algorithm != snap.IntegrityAlgorithm() || r.Upper.Digest != snap.IntegrityDigest() {
		t.Errorf("Verify report %+v", r)
	}

	plain := must(h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: "plain"}))(t)
	r, err = plain.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Upper.Kind != "not_recorded" || r.Upper.Algorithm != "" || r.Upper.Digest != "" {
		t.Errorf("Verify without integrity: %+v", r.Upper)
	}

	// Flip data in the recorded upper: Verify must say so, with both digests.
	writeUpper(t, filepath.Join(snap.Path(), snap.UpperFile()), 99, 4096)
	_, err = snap.Verify(ctx)
	if !errors.Is(err, m.ErrIntegrityMismatch) {
		t.Fatalf("Verify of a changed upper: %v, want ErrIntegrityMismatch", err)
	}
	var me *m.Error
	if !errors.As(err, &me) || me.Expected != snap.IntegrityDigest() || me.Actual == "" || me.Actual == me.Expected {
		t.Errorf("mismatch details: %+v", me)
	}
	// And a sandbox refuses to boot from it.
	if _, err := h.CreateSandbox(ctx, "from-bad", m.WithSnapshot("v")); !errors.Is(err, m.ErrIntegrityMismatch) {
		t.Errorf("CreateSandbox from a corrupted snapshot: %v", err)
	}
}
