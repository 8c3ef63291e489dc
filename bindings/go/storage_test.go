package microsnap_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	m "github.com/microsnap/microsnap/bindings/go"
)

// strayBlob writes a blob nothing names into the home's layout, an hour old
// (prune never removes a blob younger than itself).
func strayBlob(t *testing.T, h *m.Home, content string) (string, string) {
	t.Helper()
	sum := sha256.Sum256([]byte(content))
	name := hex.EncodeToString(sum[:])
	path := filepath.Join(h.Path(), "images", "blobs", "sha256", name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	return "sha256:" + name, path
}

func TestPruneImagesRemovesOnlyWhatNothingNeeds(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	stoppedSandbox(t, h, "sb", 1)
	digest, path := strayBlob(t, h, "nothing names this blob")

	dry, err := h.PruneImages(ctx, m.ImagePruneOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || len(dry.Removed) != 1 || dry.Removed[0].Digest != digest {
		t.Fatalf("dry run: %+v", dry)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("a dry run removed the blob: %v", err)
	}

	r, err := h.PruneImages(ctx, m.ImagePruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.DryRun || len(r.Removed) != 1 || r.Removed[0].Digest != digest || r.Removed[0].Size != 23 {
		t.Fatalf("prune: %+v", r)
	}
	// The test image (manifest, config, one layer) is tagged and pinned.
	if r.BlobsKept != 3 || r.BytesFreed != r.Removed[0].AllocatedBytes || r.LogicalBytesFreed != 23 {
		t.Fatalf("prune counts: %+v", r)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("blob still there: %v", err)
	}
	if _, err := h.CreateSandbox(ctx, "after", m.WithImage(testImage), m.WithUpperSize(smallUpper)); err != nil {
		t.Fatalf("the tagged image no longer works after prune: %v", err)
	}

	// A snapshot directory whose descriptor does not parse pins an unknown
	// image: prune refuses rather than guess.
	bad := filepath.Join(h.Path(), "snapshots", "broken")
	if err := os.MkdirAll(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "manifest.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.PruneImages(ctx, m.ImagePruneOptions{}); !errors.Is(err, m.ErrInvalidManifest) {
		t.Fatalf("prune with an unreadable snapshot: %v", err)
	}
}

func TestUsageMatchesStat(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	stoppedSandbox(t, h, "sb", 2)
	if _, err := h.Snapshot.Create(ctx, "sb", m.SnapshotCreateOptions{Name: "snap"}); err != nil {
		t.Fatal(err)
	}
	u, err := h.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Sandboxes) != 1 || len(u.Snapshots) != 1 || len(u.Images) != 1 {
		t.Fatalf("usage rows: %+v", u)
	}
	sb := u.Sandboxes[0]
	if sb.Name != "sb" || sb.Path == nil || sb.Digest != nil {
		t.Fatalf("sandbox row: %+v", sb)
	}
	var logical, allocated uint64
	entries, err := os.ReadDir(*sb.Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		info, err := os.Lstat(filepath.Join(*sb.Path, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().IsRegular() {
			logical += uint64(info.Size())
			allocated += uint64(info.Sys().(*syscall.Stat_t).Blocks) * 512
		}
	}
	if sb.LogicalBytes != logical || sb.AllocatedBytes != allocated {
		t.Fatalf("sandbox %+v, stat says logical %d allocated %d", sb, logical, allocated)
	}
	// writeUpper wrote 3 MiB into a sparse upper of smallUpper bytes.
	if sb.AllocatedBytes < 3<<20 || sb.AllocatedBytes >= uint64(smallUpper) {
		t.Fatalf("sandbox allocated %d", sb.AllocatedBytes)
	}
	snap := u.Snapshots[0]
	if snap.Name != "snap" || snap.Digest == nil || snap.AllocatedBytes < 3<<20 {
		t.Fatalf("snapshot row: %+v", snap)
	}
	img := u.Images[0]
	if img.Name != testImage || img.Path != nil || img.LogicalBytes == 0 || img.SharedBytes != 0 {
		t.Fatalf("image row: %+v", img)
	}
	sum := sb.AllocatedBytes + snap.AllocatedBytes + img.AllocatedBytes
	if u.Total.AllocatedBytes != sum || u.UnreferencedImages.AllocatedBytes != 0 {
		t.Fatalf("total %+v, rows add up to %d", u.Total, sum)
	}
}
