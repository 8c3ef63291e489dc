package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// strayBlob puts a blob nothing names into the home's layout, an hour old.
func strayBlob(t *testing.T, home, content string) (string, string) {
	t.Helper()
	sum := sha256.Sum256([]byte(content))
	name := hex.EncodeToString(sum[:])
	path := filepath.Join(home, "images", "blobs", "sha256", name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	return "sha256:" + name, path
}

func TestImagePruneDryRunThenPrune(t *testing.T) {
	home := newHome(t, 1)
	digest, path := strayBlob(t, home, "nothing names this blob")

	r := must(t, cli(t, home, "image", "prune", "--dry-run"))
	if !strings.Contains(r.stdout, "would remove "+digest) || !strings.Contains(r.stdout, "would remove 1 blobs, would keep 3; would free ") {
		t.Fatalf("dry run output:\n%s", r.stdout)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("dry run removed the blob: %v", err)
	}

	r = must(t, cli(t, home, "--json", "image", "prune"))
	got := decodeObject(t, "image prune", r.stdout)
	if want := goldenKeys(t, "image_prune.json", func(o map[string]any) map[string]any { return o }); strings.Join(keys(got), ",") != strings.Join(want, ",") {
		t.Errorf("image prune --json fields %v, want the ABI's %v", keys(got), want)
	}
	removed, _ := got["removed"].([]any)
	if len(removed) != 1 || removed[0].(map[string]any)["digest"] != digest || got["dry_run"] != false {
		t.Fatalf("image prune --json: %s", r.stdout)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("blob still there: %v", err)
	}
	r = must(t, cli(t, home, "image", "prune"))
	if !strings.Contains(r.stdout, "removed 0 blobs, kept 3; freed 0 B") {
		t.Fatalf("second prune:\n%s", r.stdout)
	}
	// The image still starts sandboxes.
	must(t, cli(t, home, "sandbox", "create", "after", "--image", "demo:1", "--size", "64M"))
}

func TestDfTableAndJSON(t *testing.T) {
	home := newHome(t, 2)
	must(t, cli(t, home, "snapshot", "create", "s1", "--from", "base"))
	strayBlob(t, home, "reclaimable")

	r := must(t, cli(t, home, "df"))
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 7 || !strings.HasPrefix(lines[0], "TYPE") {
		t.Fatalf("df table:\n%s", r.stdout)
	}
	for _, want := range []string{"TYPE", "NAME", "LOGICAL", "ALLOCATED", "SHARED"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("df header %q lacks %s", lines[0], want)
		}
	}
	for i, prefix := range []string{"snapshot  ", "sandbox  ", "image  ", "unreferenced  ", "cache  ", "TOTAL  "} {
		if !strings.HasPrefix(lines[i+1], prefix) {
			t.Errorf("df row %d %q, want it to start with %q", i+1, lines[i+1], prefix)
		}
	}
	if !strings.Contains(lines[1], "s1") || !strings.Contains(lines[2], "base") || !strings.Contains(lines[3], "demo:1") {
		t.Errorf("df rows:\n%s", r.stdout)
	}

	r = must(t, cli(t, home, "--json", "df"))
	var u struct {
		Snapshots []struct {
			Name           string `json:"name"`
			AllocatedBytes uint64 `json:"allocated_bytes"`
		} `json:"snapshots"`
		Sandboxes []struct {
			Name           string `json:"name"`
			Path           string `json:"path"`
			LogicalBytes   uint64 `json:"logical_bytes"`
			AllocatedBytes uint64 `json:"allocated_bytes"`
		} `json:"sandboxes"`
		UnreferencedImages struct {
			LogicalBytes uint64 `json:"logical_bytes"`
		} `json:"unreferenced_images"`
		Cache struct {
			AllocatedBytes uint64 `json:"allocated_bytes"`
		} `json:"cache"`
		Total struct {
			AllocatedBytes uint64 `json:"allocated_bytes"`
		} `json:"total"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &u); err != nil {
		t.Fatalf("df --json: %v\n%s", err, r.stdout)
	}
	if want := goldenKeys(t, "home_usage.json", func(o map[string]any) map[string]any { return o }); strings.Join(keys(decodeObject(t, "df", r.stdout)), ",") != strings.Join(want, ",") {
		t.Errorf("df --json top-level fields differ from the ABI's %v", want)
	}
	if len(u.Sandboxes) != 1 || u.Sandboxes[0].Name != "base" || u.Sandboxes[0].LogicalBytes < 1<<30 {
		t.Fatalf("df --json sandboxes: %+v", u.Sandboxes)
	}
	// newHome wrote 2 MiB of data into a sparse 1 GiB upper.
	if a := u.Sandboxes[0].AllocatedBytes; a < 2<<20 || a > 16<<20 {
		t.Errorf("sandbox allocated %d bytes", a)
	}
	if len(u.Snapshots) != 1 || u.Snapshots[0].AllocatedBytes < 2<<20 {
		t.Errorf("df --json snapshots: %+v", u.Snapshots)
	}
	if u.UnreferencedImages.LogicalBytes != uint64(len("reclaimable")) {
		t.Errorf("unreferenced: %+v", u.UnreferencedImages)
	}
	if u.Total.AllocatedBytes < u.Sandboxes[0].AllocatedBytes+u.Snapshots[0].AllocatedBytes+u.Cache.AllocatedBytes {
		t.Errorf("total %+v", u.Total)
	}
}
