package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	m "github.com/microsnap/microsnap/bindings/go"
)

// Issue 19 §3: --json means JSON on every path, with the C ABI's field
// names.

// holdSandbox starts a sandbox in this (test) process, so that to the CLI
// another process holds it; the returned func stops it.
func holdSandbox(t *testing.T, home, name string) func() {
	t.Helper()
	h, err := m.OpenHome(home)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := h.GetSandbox(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := sh.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return func() {
		sb.Stop(context.Background())
		sb.Close()
		h.Close()
	}
}

// jsonError checks that r failed with exit code and printed exactly one
// JSON error object with that code name on stderr, and nothing on stdout.
func jsonError(t *testing.T, what string, r result, exit int, code string) map[string]any {
	t.Helper()
	if r.code != exit {
		t.Errorf("%s: exit %d, want %d (%q)", what, r.code, exit, r.stderr)
	}
	var e map[string]any
	dec := json.NewDecoder(strings.NewReader(r.stderr))
	if err := dec.Decode(&e); err != nil || dec.More() {
		t.Errorf("%s: stderr is not one JSON object: %v %q", what, err, r.stderr)
		return nil
	}
	if e["code"] != code {
		t.Errorf("%s: code %v, want %s", what, e["code"], code)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Errorf("%s: no message: %v", what, e)
	}
	if r.stdout != "" {
		t.Errorf("%s: stdout %q on failure", what, r.stdout)
	}
	return e
}

func TestJSONErrorsOnEveryPath(t *testing.T) {
	home := newHome(t, 1)
	must(t, cli(t, home, "snapshot", "create", "s1", "--from", "base", "--integrity"))
	must(t, cli(t, home, "sandbox", "create", "fork", "--snapshot", "s1"))
	must(t, cli(t, home, "snapshot", "create", "s2", "--from", "fork"))
	cases := []struct {
		name string
		args []string
		exit int
		code string
	}{
		{"usage: unknown flag", []string{"snapshot", "ls", "--bogus"}, exitUsage, "invalid_argument"},
		{"usage: unknown command", []string{"snapshot", "frobnicate"}, exitUsage, "invalid_argument"},
		{"usage: bad size", []string{"sandbox", "create", "x", "--image", "demo:1", "--size", "1.5"}, exitUsage, "invalid_argument"},
		{"usage: bad threads", []string{"snapshot", "export", "s1", "/tmp/x.tar.zst", "--threads", "-1"}, exitUsage, "invalid_argument"},
		{"usage: bad level before --json", []string{"snapshot", "export", "s1", "/tmp/x.tar.zst", "--level", "x"}, exitUsage, "invalid_argument"},
		{"not found", []string{"snapshot", "inspect", "nope"}, exitNotFound, "snapshot_not_found"},
		{"missing archive", []string{"snapshot", "import", "/nonexistent/a.tar.zst"}, exitNotFound, "not_found"},
		{"invalid archive", []string{"snapshot", "import", "/etc/hostname"}, exitArchive, "invalid_archive"},
		{"conflict", []string{"snapshot", "create", "s1", "--from", "base"}, exitConflict, "already_exists"},
		{"usage: password flag", []string{"snapshot", "push", "s1", "oci:/tmp/l", "--username", "u"}, exitUsage, "invalid_argument"},
		{"bad reference", []string{"snapshot", "pull", "nohost/s:v1"}, exitUsage, "invalid_argument"},
		{"push of a missing snapshot", []string{"snapshot", "push", "nope", "oci:" + t.TempDir() + ":v1"}, exitNotFound, "snapshot_not_found"},
	}
	for _, c := range cases {
		// --json last, so a flag error before it still yields JSON.
		jsonError(t, c.name, cli(t, home, append(c.args, "--json")...), c.exit, c.code)
	}
	e := jsonError(t, "has children", cli(t, home, "--json", "snapshot", "rm", "s1"), exitConflict, "has_children")
	if e != nil && (e["children"] != float64(1) || !strings.HasPrefix(e["digest"].(string), "sha256:")) {
		t.Errorf("has_children details: %v", e)
	}
	upper := filepath.Join(home, "snapshots", "s1", "upper.ext4")
	f, _ := os.OpenFile(upper, os.O_WRONLY, 0)
	f.WriteAt([]byte{0xff}, 10)
	f.Close()
	e = jsonError(t, "integrity", cli(t, home, "--json", "snapshot", "verify", "s1"), exitIntegrity, "integrity_mismatch")
	if e != nil && (e["path"] != upper || e["expected"] == nil || e["actual"] == nil) {
		t.Errorf("integrity_mismatch details: %v", e)
	}
}

// goldenKeys reads the member names of a golden C ABI result object.
func goldenKeys(t *testing.T, file string, pick func(map[string]any) map[string]any) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "tests", "golden", file))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Out map[string]any `json:"out"`
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	return keys(pick(g.Out))
}

func keys(o map[string]any) []string {
	var k []string
	for name := range o {
		k = append(k, name)
	}
	sort.Strings(k)
	return k
}

func decodeObject(t *testing.T, what, text string) map[string]any {
	t.Helper()
	var o map[string]any
	if err := json.Unmarshal([]byte(text), &o); err != nil {
		t.Fatalf("%s: %v %q", what, err, text)
	}
	return o
}

func decodeList(t *testing.T, what, text string) []map[string]any {
	t.Helper()
	var o []map[string]any
	if err := json.Unmarshal([]byte(text), &o); err != nil {
		t.Fatalf("%s: %v %q", what, err, text)
	}
	return o
}

func TestJSONResultsUseTheABIFieldNames(t *testing.T) {
	home := newHome(t, 1)
	self := func(o map[string]any) map[string]any { return o }
	first := func(member string) func(map[string]any) map[string]any {
		return func(o map[string]any) map[string]any { return o[member].([]any)[0].(map[string]any) }
	}
	// The artifact object mirrors manifest.json, which calls the parent
	// "parent"; the CLI says parent_digest everywhere, as the handle does.
	artifact := goldenKeys(t, "snapshot_open.json", self)
	for i, k := range artifact {
		if k == "parent" {
			artifact[i] = "parent_digest"
		}
	}
	sort.Strings(artifact)
	handle := goldenKeys(t, "snapshot_get.json", self)
	sandbox := goldenKeys(t, "sandbox_get.json", self)
	image := goldenKeys(t, "image_list.json", first("images"))
	export := goldenKeys(t, "snapshot_export.json", self)

	same := func(what string, got map[string]any, want []string) {
		t.Helper()
		if g := keys(got); strings.Join(g, ",") != strings.Join(want, ",") {
			t.Errorf("%s fields:\n got %v\nwant %v", what, g, want)
		}
	}
	created := decodeObject(t, "snapshot create", must(t, cli(t, home, "--json", "snapshot", "create", "s1", "--from", "base", "--integrity")).stdout)
	same("snapshot create", created, artifact)
	inspect := decodeObject(t, "snapshot inspect", must(t, cli(t, home, "--json", "snapshot", "inspect", "s1")).stdout)
	same("snapshot inspect", inspect, artifact)
	list := decodeList(t, "snapshot ls", must(t, cli(t, home, "--json", "snapshot", "ls")).stdout)
	same("snapshot ls", list[0], handle)
	sandboxes := decodeList(t, "sandbox ls", must(t, cli(t, home, "--json", "sandbox", "ls")).stdout)
	same("sandbox ls", sandboxes[0], sandbox)
	same("sandbox create", decodeObject(t, "sandbox create", must(t, cli(t, home, "--json", "sandbox", "create", "fork", "--snapshot", "s1")).stdout), sandbox)
	same("sandbox stop", decodeObject(t, "sandbox stop", must(t, cli(t, home, "--json", "sandbox", "stop", "fork")).stdout), sandbox)
	images := decodeList(t, "image ls", must(t, cli(t, home, "--json", "image", "ls")).stdout)
	same("image ls", images[0], image)

	out := filepath.Join(t.TempDir(), "s1.tar.zst")
	report := decodeObject(t, "snapshot export", must(t, cli(t, home, "--json", "snapshot", "export", "s1", out)).stdout)
	same("snapshot export", report, export)
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if report["bytes_written"] != float64(st.Size()) {
		t.Errorf("export report bytes_written %v, archive is %d bytes", report["bytes_written"], st.Size())
	}
	if snaps, _ := report["snapshots"].([]any); len(snaps) != 1 || snaps[0] != created["digest"] {
		t.Errorf("export report snapshots %v, want [%v]", report["snapshots"], created["digest"])
	}
	other := t.TempDir()
	imported := decodeObject(t, "snapshot import", must(t, cli(t, other, "--json", "snapshot", "import", out)).stdout)
	same("snapshot import", imported, handle)

	// One timestamp form: the one the library writes (RFC 3339, UTC as
	// +00:00), and the same text for the same snapshot in every command.
	form := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?\+00:00$`)
	stamps := map[string]any{
		"snapshot create": created["created_at"], "snapshot inspect": inspect["created_at"],
		"snapshot ls": list[0]["created_at"], "snapshot import": imported["created_at"],
		"sandbox ls": sandboxes[0]["created_at"],
	}
	for what, s := range stamps {
		if str, _ := s.(string); !form.MatchString(str) {
			t.Errorf("%s: created_at %v is not in the library's form", what, s)
		}
	}
	if created["created_at"] != list[0]["created_at"] || created["created_at"] != imported["created_at"] {
		t.Errorf("one snapshot, several timestamps: create %v, ls %v, import %v",
			created["created_at"], list[0]["created_at"], imported["created_at"])
	}
	if created["parent_digest"] != nil || list[0]["parent_digest"] != nil {
		t.Errorf("parent_digest of a root snapshot: %v %v", created["parent_digest"], list[0]["parent_digest"])
	}

	// Push and pull print the library's reports; pull's head is a handle.
	layout := "oci:" + filepath.Join(t.TempDir(), "layout") + ":v1"
	pushed := decodeObject(t, "snapshot push", must(t, cli(t, home, "--json", "snapshot", "push", "s1", layout)).stdout)
	same("snapshot push", pushed, goldenKeys(t, "snapshot_push.json", self))
	same("snapshot push snapshots[0]", pushed["snapshots"].([]any)[0].(map[string]any),
		goldenKeys(t, "snapshot_push.json", first("snapshots")))
	pulled := decodeObject(t, "snapshot pull", must(t, cli(t, other, "--json", "snapshot", "pull", layout)).stdout)
	same("snapshot pull", pulled, goldenKeys(t, "snapshot_pull.json", self))
	same("snapshot pull head", pulled["head"].(map[string]any), handle)
	same("snapshot pull report", pulled["report"].(map[string]any),
		goldenKeys(t, "snapshot_pull.json", func(o map[string]any) map[string]any { return o["report"].(map[string]any) }))
}
