package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Issue 19 §1: what `snapshot ls` prints in its NAME column works as the
// SNAPSHOT argument of inspect, verify and export, and a bare name never
// reaches (or removes) an artifact outside the home.
func TestEveryLsNameWorksEverywhere(t *testing.T) {
	home := newHome(t, 1)
	must(t, cli(t, home, "snapshot", "create", "in-home", "--from", "base", "--integrity"))
	outside := filepath.Join(t.TempDir(), "some", "dir", "art1")
	must(t, cli(t, home, "snapshot", "create", outside, "--from", "base", "--integrity"))

	lines := strings.Split(strings.TrimSpace(must(t, cli(t, home, "snapshot", "ls")).stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("ls: %q", lines)
	}
	var shown []string
	for _, row := range lines[1:] {
		shown = append(shown, strings.Fields(row)[0])
	}
	if !(slices.Contains(shown, "in-home") && slices.Contains(shown, outside)) {
		t.Fatalf("ls NAME column %q: want in-home and %s", shown, outside)
	}
	for i, ref := range shown {
		must(t, cli(t, home, "snapshot", "inspect", ref))
		must(t, cli(t, home, "snapshot", "verify", ref))
		must(t, cli(t, home, "snapshot", "export", ref, filepath.Join(t.TempDir(), "x"+string(rune('0'+i))+".tar.zst")))
	}

	// The outside artifact's file name is not a name of this home.
	errorLine(t, "inspect art1", cli(t, home, "snapshot", "inspect", "art1"), exitNotFound, "snapshot_not_found")
	errorLine(t, "rm art1", cli(t, home, "snapshot", "rm", "art1"), exitNotFound, "snapshot_not_found")
	if _, err := os.Stat(filepath.Join(outside, "manifest.json")); err != nil {
		t.Fatalf("rm art1 reached outside the home: %v", err)
	}
}
