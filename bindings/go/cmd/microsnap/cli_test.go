package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests drive the built binary, as a user or a script would.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "microsnap-cli-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "microsnap")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic("go build: " + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

func cli(t *testing.T, home string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--home", home}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

func must(t *testing.T, r result) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	return r
}

// newHome builds a home with the image demo:1 and a stopped sandbox "base"
// whose upper holds dataMiB of random data.
func newHome(t *testing.T, dataMiB int) string {
	t.Helper()
	home := t.TempDir()
	script := filepath.Join("..", "..", "..", "..", "tests", "fixtures", "make_oci_image.py")
	if out, err := exec.Command("python3", script, filepath.Join(home, "images"), "demo:1").CombinedOutput(); err != nil {
		t.Skipf("fixture needs python3: %v %s", err, out)
	}
	must(t, cli(t, home, "sandbox", "create", "base", "--image", "demo:1", "--size", "1G"))
	var sb []map[string]any
	r := must(t, cli(t, home, "--json", "sandbox", "ls"))
	if err := json.Unmarshal([]byte(r.stdout), &sb); err != nil || len(sb) != 1 {
		t.Fatalf("sandbox ls --json: %v %q", err, r.stdout)
	}
	f, err := os.OpenFile(sb[0]["upper_path"].(string), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < dataMiB; i++ {
		rng.Read(buf)
		if _, err := f.WriteAt(buf, int64(i)*(4<<20)); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	return home
}

func TestFlowJSONAndExitCodes(t *testing.T) {
	home := newHome(t, 4)
	var art map[string]any
	r := must(t, cli(t, home, "snapshot", "create", "s1", "--from", "base", "--label", "k=v", "--integrity", "--json"))
	if err := json.Unmarshal([]byte(r.stdout), &art); err != nil {
		t.Fatalf("create --json: %v %q", err, r.stdout)
	}
	if !strings.HasPrefix(art["digest"].(string), "sha256:") || art["labels"].(map[string]any)["k"] != "v" {
		t.Fatalf("artifact %v", art)
	}
	if r.stderr != "" {
		t.Fatalf("progress or noise on a non-terminal stderr: %q", r.stderr)
	}
	var list []map[string]any
	r = must(t, cli(t, home, "snapshot", "ls", "--json"))
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0]["digest"] != art["digest"] {
		t.Fatalf("ls --json: %v %q", err, r.stdout)
	}
	r = must(t, cli(t, home, "snapshot", "ls"))
	if !strings.Contains(r.stdout, "NAME") || !strings.Contains(r.stdout, "s1") || !strings.Contains(r.stdout, "1.0 GiB") {
		t.Fatalf("ls table: %q", r.stdout)
	}
	var rep map[string]any
	r = must(t, cli(t, home, "--json", "snapshot", "verify", "s1"))
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if up, _ := rep["upper"].(map[string]any); up["kind"] != "verified" {
		t.Fatalf("verify: %v", rep)
	}
	must(t, cli(t, home, "snapshot", "inspect", "s1", "--verify"))

	out := filepath.Join(t.TempDir(), "s1.tar.zst")
	must(t, cli(t, home, "snapshot", "export", "s1", out))
	other := t.TempDir()
	var imported map[string]any
	r = must(t, cli(t, other, "--json", "snapshot", "import", out))
	if err := json.Unmarshal([]byte(r.stdout), &imported); err != nil || imported["digest"] != art["digest"] {
		t.Fatalf("import: %v %q", err, r.stdout)
	}

	cases := []struct {
		args []string
		code int
		name string
	}{
		{[]string{"snapshot", "inspect", "nope"}, exitNotFound, "snapshot_not_found"},
		{[]string{"sandbox", "rm", "nope"}, exitNotFound, "sandbox_not_found"},
		{[]string{"sandbox", "create", "x", "--image", "nope:1"}, exitNotFound, "image_not_found"},
		{[]string{"snapshot", "create", "s1", "--from", "base"}, exitConflict, "already_exists"},
		{[]string{"snapshot", "create", "bad/..", "--from", "base"}, exitUsage, "invalid_argument"},
		{[]string{"snapshot", "create", ".hidden", "--from", "base"}, exitUsage, "invalid_argument"},
		{[]string{"snapshot", "create", "x"}, exitUsage, "invalid_argument"},
		{[]string{"snapshot", "frobnicate"}, exitUsage, ""},
		{[]string{"snapshot", "import", "/etc/hostname"}, exitArchive, "invalid_archive"},
	}
	for _, c := range cases {
		r := cli(t, home, c.args...)
		if r.code != c.code {
			t.Errorf("%v: exit %d, want %d (%s)", c.args, r.code, c.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if len(lines) != 1 || !strings.Contains(r.stderr, c.name) {
			t.Errorf("%v: want one error line naming %q, got %q", c.args, c.name, r.stderr)
		}
	}

	// Tampering is exit code 5.
	upper := filepath.Join(home, "snapshots", "s1", "upper.ext4")
	f, _ := os.OpenFile(upper, os.O_WRONLY, 0)
	f.WriteAt([]byte{0xff}, 10)
	f.Close()
	if r := cli(t, home, "snapshot", "verify", "s1"); r.code != exitIntegrity || !strings.Contains(r.stderr, "integrity_mismatch") {
		t.Fatalf("tampered verify: %d %q", r.code, r.stderr)
	}
}

func TestCtrlCDuringExportLeavesNothing(t *testing.T) {
	home := newHome(t, 192)
	must(t, cli(t, home, "snapshot", "create", "big", "--from", "base"))
	outDir := t.TempDir()
	cmd := exec.Command(binary, "--home", home, "snapshot", "export", "big", filepath.Join(outDir, "big.tar.zst"), "--level", "9", "--threads", "1")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the export is writing, then interrupt it like Ctrl-C does.
	deadline := time.Now().Add(20 * time.Second)
	for {
		entries, _ := os.ReadDir(outDir)
		if len(entries) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitCancelled {
		t.Fatalf("interrupted export: %v (%s)", err, errb.String())
	}
	if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
		t.Fatalf("left behind in the output dir: %v", entries)
	}
	if entries, _ := os.ReadDir(filepath.Join(home, "tmp")); len(entries) != 0 {
		t.Fatalf("left staging behind: %v", entries)
	}
	if !strings.Contains(errb.String(), "cancelled") {
		t.Fatalf("stderr %q", errb.String())
	}
}

func TestSizesAndArgs(t *testing.T) {
	for in, want := range map[string]uint64{"4G": 4 << 30, "512M": 512 << 20, "1GiB": 1 << 30, "1024": 1024, "1.5K": 1536} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1G", "0"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
	if humanBytes(4<<30) != "4.0 GiB" || humanBytes(12) != "12 B" {
		t.Errorf("humanBytes: %s %s", humanBytes(4<<30), humanBytes(12))
	}
	// The global flags work after the command as well as before it.
	home := t.TempDir()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"snapshot", "ls", "--json", "--home", home}, &out, &errb, false); code != 0 ||
		strings.TrimSpace(out.String()) != "[]" {
		t.Errorf("snapshot ls --json --home DIR: exit %d, %q %q", code, out.String(), errb.String())
	}
	if _, err := os.Stat(filepath.Join(home, "snapshots")); err != nil {
		t.Errorf("--home after the command was not the home: %v", err)
	}
}

// On a terminal, long operations draw a progress bar (bytes, rate, ETA) on
// stderr; `script` gives the command a pseudo-terminal.
func TestProgressBarOnATerminal(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("script (util-linux) not installed: no pseudo-terminal to test with")
	}
	home := newHome(t, 64)
	line := binary + " --home " + home + " snapshot create s --from base --integrity"
	out, err := exec.Command("script", "-qfec", line, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("script: %v %s", err, out)
	}
	text := string(out)
	for _, want := range []string{"copy", "hash", "ETA", "/s", "created "} {
		if !strings.Contains(text, want) {
			t.Errorf("terminal output lacks %q: %q", want, text)
		}
	}
}
