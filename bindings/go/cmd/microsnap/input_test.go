package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Issue 19 §3: every input validated before it reaches the library, every
// error the right exit code and one line that does not repeat its code.

// sandboxNames lists the sandboxes of home through the CLI.
func sandboxNames(t *testing.T, home string) []string {
	t.Helper()
	var list []map[string]any
	r := must(t, cli(t, home, "--json", "sandbox", "ls"))
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("sandbox ls --json: %v %q", err, r.stdout)
	}
	var names []string
	for _, s := range list {
		names = append(names, s["name"].(string))
	}
	return names
}

// errorLine checks that r failed with code and a single line
// "microsnap: <name>: <message>" whose message does not repeat the code.
func errorLine(t *testing.T, what string, r result, code int, name string) string {
	t.Helper()
	if r.code != code {
		t.Errorf("%s: exit %d, want %d (stdout %q stderr %q)", what, r.code, code, r.stdout, r.stderr)
	}
	line := strings.TrimSuffix(r.stderr, "\n")
	if strings.Contains(line, "\n") {
		t.Errorf("%s: want one error line, got %q", what, r.stderr)
	}
	prefix := "microsnap: " + name + ": "
	if !strings.HasPrefix(line, prefix) {
		t.Errorf("%s: want a line starting %q, got %q", what, prefix, line)
		return line
	}
	msg := strings.TrimPrefix(line, prefix)
	spoken := strings.ReplaceAll(name, "_", " ")
	if strings.HasPrefix(msg, name) || strings.HasPrefix(msg, spoken) {
		t.Errorf("%s: the message repeats its code: %q", what, line)
	}
	return msg
}

func TestSizeFlagIsValidated(t *testing.T) {
	home := newHome(t, 0)
	for _, bad := range []string{"inf", "nan", "-1", "1.5", "1e30", "0", "", "4X", "1.1K", "99999999999E"} {
		r := cli(t, home, "sandbox", "create", "sized", "--image", "demo:1", "--size", bad)
		msg := errorLine(t, "--size "+bad, r, exitUsage, "invalid_argument")
		if !strings.Contains(msg, "--size") {
			t.Errorf("--size %q: the message does not name the flag: %q", bad, msg)
		}
		if names := sandboxNames(t, home); len(names) != 1 {
			t.Fatalf("--size %q created a sandbox: %v", bad, names)
		}
	}
	// The suffixes users type, and plain bytes.
	for in, want := range map[string]float64{"4G": 4 << 30, "512MiB": 512 << 20, "64m": 64 << 20, "134217728": 128 << 20, "300MB": 300 << 20, "1.5G": 3 << 29} {
		r := must(t, cli(t, home, "--json", "sandbox", "create", "s"+strings.ToLower(strings.ReplaceAll(in, ".", "")), "--image", "demo:1", "--size", in))
		var sb map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &sb); err != nil {
			t.Fatalf("--size %s: %v %q", in, err, r.stdout)
		}
		if sb["size_bytes"] != want {
			t.Errorf("--size %s: size_bytes %v, want %v", in, sb["size_bytes"], want)
		}
		st, err := os.Stat(sb["upper_path"].(string))
		if err != nil || float64(st.Size()) != want {
			t.Errorf("--size %s: upper is %v bytes (%v), want %v", in, st.Size(), err, want)
		}
	}
	// The help says which suffixes there are.
	r := must(t, cli(t, home, "sandbox", "create", "--help"))
	for _, want := range []string{"--size", "4G", "512MiB", "1024"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("sandbox create --help lacks %q: %q", want, r.stdout)
		}
	}
}

func TestNumericFlagsAreCheckedBeforeJSON(t *testing.T) {
	home := newHome(t, 1)
	must(t, cli(t, home, "snapshot", "create", "s1", "--from", "base"))
	out := filepath.Join(t.TempDir(), "s1.tar.zst")
	cases := []struct{ flag, value string }{
		{"--threads", "-1"}, {"--threads", "4294967296"}, {"--threads", "x"}, {"--threads", "1.5"}, {"--threads", "100000"},
		{"--level", "99"}, {"--level", "x"}, {"--level", "-9999999999"}, {"--level", "2.5"},
	}
	jsonError := regexp.MustCompile(`line \d+ column \d+|expected (u32|i32)`)
	for _, c := range cases {
		r := cli(t, home, "snapshot", "export", "s1", out, c.flag, c.value)
		what := c.flag + " " + c.value
		msg := errorLine(t, what, r, exitUsage, "invalid_argument")
		if !strings.Contains(msg, c.flag) {
			t.Errorf("%s: the message does not name the flag: %q", what, msg)
		}
		if jsonError.MatchString(msg) {
			t.Errorf("%s: a JSON decoder's message reached the user: %q", what, msg)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s: wrote an archive", what)
		}
	}
	// In range they work.
	must(t, cli(t, home, "snapshot", "export", "s1", out, "--threads", "2", "--level", "5"))
}

func TestExitCodesFollowTheTable(t *testing.T) {
	home := newHome(t, 1)
	missing := filepath.Join(t.TempDir(), "missing")
	notAnImage := filepath.Join(t.TempDir(), "not-a-layout.tar")
	os.WriteFile(notAnImage, []byte("garbage, not a tar"), 0o644)
	cases := []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"missing archive", []string{"snapshot", "import", missing + ".tar.zst"}, exitNotFound, "not_found"},
		{"missing layout", []string{"image", "import", missing}, exitNotFound, "not_found"},
		{"missing layout tar", []string{"image", "import", missing + ".tar"}, exitNotFound, "not_found"},
		{"unknown command", []string{"snapshot", "frobnicate"}, exitUsage, "invalid_argument"},
		{"unknown group", []string{"frobnicate"}, exitUsage, "invalid_argument"},
		{"group without command", []string{"snapshot"}, exitUsage, "invalid_argument"},
		{"unknown flag", []string{"snapshot", "ls", "--bogus"}, exitUsage, "invalid_argument"},
		{"missing argument", []string{"snapshot", "inspect"}, exitUsage, "invalid_argument"},
		{"extra argument", []string{"snapshot", "ls", "extra"}, exitUsage, "invalid_argument"},
		{"bad label", []string{"snapshot", "create", "x", "--from", "base", "--label", "novalue"}, exitUsage, "invalid_argument"},
		{"unknown algorithm", []string{"snapshot", "create", "x", "--from", "base", "--integrity-algorithm", "md5"}, exitUsage, "invalid_argument"},
		{"snapshot not found", []string{"snapshot", "inspect", "nope"}, exitNotFound, "snapshot_not_found"},
		{"sandbox not found", []string{"sandbox", "stop", "nope"}, exitNotFound, "sandbox_not_found"},
		{"image not found", []string{"sandbox", "create", "x", "--image", "nope:1"}, exitNotFound, "image_not_found"},
		{"not an archive", []string{"snapshot", "import", "/etc/hostname"}, exitArchive, "invalid_archive"},
		{"not a layout tar", []string{"image", "import", notAnImage}, exitUsage, "invalid_argument"},
	}
	for _, c := range cases {
		errorLine(t, c.name, cli(t, home, c.args...), c.code, c.err)
	}
	// A missing value of a global flag is a usage error too.
	errorLine(t, "--home without a value", cli(t, home, "snapshot", "ls", "--home"), exitUsage, "invalid_argument")
}

// Another process holding a sandbox is what stop reports, not a bare
// "sandbox is running".
func TestStopOfASandboxAnotherProcessHolds(t *testing.T) {
	home := newHome(t, 0)
	holder := holdSandbox(t, home, "base")
	defer holder()
	r := cli(t, home, "sandbox", "stop", "base")
	msg := errorLine(t, "stop held", r, exitConflict, "sandbox_running")
	if !strings.Contains(msg, "another process") || !strings.Contains(msg, "base") {
		t.Errorf("stop of a held sandbox: %q does not say another process holds base", msg)
	}
	r = cli(t, home, "--json", "sandbox", "stop", "base")
	var e map[string]any
	if err := json.Unmarshal([]byte(r.stderr), &e); err != nil || r.code != exitConflict ||
		e["code"] != "sandbox_running" || !strings.Contains(e["message"].(string), "another process") {
		t.Errorf("--json stop of a held sandbox: exit %d %q (%v)", r.code, r.stderr, err)
	}
}
