package main

import (
	"strings"
	"testing"
	"time"
)

// snapshot prune as a user runs it: dry run table, JSON with the library's
// field names, bad input as usage errors, and the real run.
func TestSnapshotPrune(t *testing.T) {
	home := newHome(t, 1)
	for _, n := range []string{"s1", "s2", "s3"} {
		must(t, cli(t, home, "snapshot", "create", n, "--from", "base", "--label", "ci=1"))
		time.Sleep(5 * time.Millisecond)
	}
	must(t, cli(t, home, "snapshot", "create", "manual", "--from", "base"))

	r := must(t, cli(t, home, "snapshot", "prune", "--keep-last", "1", "--label", "ci=1", "--dry-run"))
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "ACTION") {
		t.Fatalf("dry run table:\n%s", r.stdout)
	}
	for _, want := range []string{"would remove  s1", "would remove  s2", "would keep    s3", "would keep    manual"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry run table has no %q:\n%s", want, r.stdout)
		}
	}
	// Removed in removal order, then kept newest first.
	if !strings.Contains(lines[3], "manual") || !strings.HasSuffix(lines[3], "not_selected") ||
		!strings.Contains(lines[4], "s3") || !strings.HasSuffix(lines[4], "keep_last") {
		t.Errorf("reasons missing:\n%s", r.stdout)
	}
	if !strings.HasPrefix(lines[5], "would remove 2 snapshots, would keep 2; would free ") {
		t.Errorf("summary %q", lines[5])
	}
	if ls := must(t, cli(t, home, "snapshot", "ls")).stdout; !strings.Contains(ls, "s1") {
		t.Fatalf("a dry run removed s1:\n%s", ls)
	}

	self := func(o map[string]any) map[string]any { return o }
	first := func(member string) func(map[string]any) map[string]any {
		return func(o map[string]any) map[string]any { return o[member].([]any)[0].(map[string]any) }
	}
	report := decodeObject(t, "prune --json", must(t, cli(t, home, "--json", "snapshot", "prune",
		"--keep-last", "1", "--label", "ci=1", "--dry-run")).stdout)
	same := func(what string, got map[string]any, want []string) {
		t.Helper()
		if g := keys(got); strings.Join(g, ",") != strings.Join(want, ",") {
			t.Errorf("%s fields:\n got %v\nwant %v", what, g, want)
		}
	}
	same("prune", report, goldenKeys(t, "snapshot_prune.json", self))
	same("prune removed", first("removed")(report), goldenKeys(t, "snapshot_prune.json", first("removed")))
	same("prune kept", first("kept")(report), goldenKeys(t, "snapshot_prune.json", first("kept")))
	if report["dry_run"] != true || first("removed")(report)["name"] != "s1" {
		t.Errorf("report %v", report)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--older-than", "7"}, "older_than: invalid duration \"7\""},
		{[]string{"--keep-within", "1y"}, "months and years"},
		{[]string{"--keep-last", "0"}, "--keep-last 0 is out of range"},
		{[]string{"--label", "ci=1"}, "give a retention rule"},
		{[]string{"--keep-last", "1", "--group-by", "host"}, "label:KEY"},
	} {
		bad := cli(t, home, append([]string{"snapshot", "prune"}, c.args...)...)
		if bad.code != exitUsage || !strings.Contains(bad.stderr, c.want) {
			t.Errorf("prune %v: exit %d, stderr %q; want exit %d with %q", c.args, bad.code, bad.stderr, exitUsage, c.want)
		}
	}

	r = must(t, cli(t, home, "snapshot", "prune", "--keep-last", "1", "--label", "ci=1"))
	if !strings.Contains(r.stdout, "removed  s1") || !strings.Contains(r.stdout, "removed 2 snapshots, kept 2; freed ") {
		t.Errorf("prune:\n%s", r.stdout)
	}
	ls := must(t, cli(t, home, "snapshot", "ls")).stdout
	if strings.Contains(ls, "s1") || strings.Contains(ls, "s2") || !strings.Contains(ls, "s3") || !strings.Contains(ls, "manual") {
		t.Errorf("after prune:\n%s", ls)
	}
	r = must(t, cli(t, home, "snapshot", "prune", "--keep-last", "1", "--label", "ci=1"))
	if !strings.HasPrefix(r.stdout, "ACTION") || !strings.Contains(r.stdout, "removed 0 snapshots") {
		t.Errorf("second prune:\n%s", r.stdout)
	}
}
