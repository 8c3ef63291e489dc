package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Issue 19 §1: `snapshot import --name NAME` installs the archive's head as
// <dest>/NAME, a name of the user's choosing.
func TestImportUnderAName(t *testing.T) {
	home := newHome(t, 1)
	r := must(t, cli(t, home, "--json", "snapshot", "create", "s1", "--from", "base"))
	var art map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &art); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "s1.tar.zst")
	must(t, cli(t, home, "snapshot", "export", "s1", out))
	other := t.TempDir()
	r = must(t, cli(t, other, "--json", "snapshot", "import", out, "--name", "mine"))
	var h map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(other, "snapshots", "mine")
	if h["name"] != "mine" || h["path"] != want || h["digest"] != art["digest"] {
		t.Fatalf("import --name mine: %v", h)
	}
	if _, err := os.Stat(filepath.Join(want, "manifest.json")); err != nil {
		t.Fatal(err)
	}
	must(t, cli(t, other, "snapshot", "inspect", "mine"))
	// The name is a bare name: a path or a digest is refused before any
	// work, as snapshot create refuses them.
	for _, bad := range []string{"a/b", "..", ".hidden", ""} {
		errorLine(t, "--name "+bad, cli(t, other, "snapshot", "import", out, "--name", bad), exitUsage, "invalid_argument")
	}
}
