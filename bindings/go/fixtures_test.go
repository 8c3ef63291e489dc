package microsnap_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	m "github.com/microsnap/microsnap/bindings/go"
)

// testImage is the image every test home holds, built by the repo's
// deterministic OCI fixture generator.
const testImage = "alpine:3.20"

// smallUpper keeps test uppers small: the library under test is a debug build.
const smallUpper = 64 << 20

var fixtureScript = filepath.Join("..", "..", "tests", "fixtures", "make_oci_image.py")

// makeImage writes a real OCI layout holding ref into dir (a home's images/
// or any layout directory) and returns the manifest digest.
func makeImage(t testing.TB, dir, ref string) string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not found: cannot build the OCI image fixture")
	}
	out, err := exec.Command("python3", fixtureScript, dir, ref).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("make_oci_image.py %s %s: %v\n%s", dir, ref, err, stderr)
	}
	digest := strings.TrimSpace(string(out))
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("fixture printed %q, want a sha256 digest", digest)
	}
	return digest
}

// newHome opens a fresh home in a temporary directory holding testImage.
func newHome(t testing.TB) *m.Home {
	t.Helper()
	dir := t.TempDir()
	makeImage(t, filepath.Join(dir, "images"), testImage)
	h, err := m.OpenHome(dir)
	if err != nil {
		t.Fatalf("OpenHome(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// stoppedSandbox creates a sandbox on a small fresh upper, writes seeded
// data into it (sparse: a few blocks far apart), stops and closes it.
func stoppedSandbox(t testing.TB, h *m.Home, name string, seed byte) {
	t.Helper()
	ctx := context.Background()
	sb, err := h.CreateSandbox(ctx, name, m.WithImage(testImage), m.WithUpperSize(smallUpper))
	if err != nil {
		t.Fatalf("CreateSandbox(%s): %v", name, err)
	}
	writeUpper(t, sb.UpperPath(), seed, 1<<20)
	if err := sb.Stop(ctx); err != nil {
		t.Fatalf("Stop(%s): %v", name, err)
	}
	if err := sb.Close(); err != nil {
		t.Fatalf("Close(%s): %v", name, err)
	}
}

// writeUpper writes n bytes derived from seed at three offsets of a sparse
// upper, leaving holes between them.
func writeUpper(t testing.TB, path string, seed byte, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := pattern(seed, n)
	for _, off := range []int64{0, 17 << 20, 40 << 20} {
		if _, err := f.WriteAt(block, off); err != nil {
			t.Fatalf("write %s at %d: %v", path, off, err)
		}
	}
}

// pattern is n deterministic, seed-dependent, incompressible-ish bytes.
func pattern(seed byte, n int) []byte {
	var buf bytes.Buffer
	sum := sha256.Sum256([]byte{seed})
	for buf.Len() < n {
		buf.Write(sum[:])
		sum = sha256.Sum256(sum[:])
	}
	return buf.Bytes()[:n]
}

// must(f(...))(t) returns f's value, failing t on f's error.
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
