package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	m "github.com/microsnap/microsnap/bindings/go"
)

// cliIn is cli with stdin.
func cliIn(t *testing.T, stdin, home string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--home", home}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// Push and pull refuse bad input before the library runs, naming the flag;
// a password is never taken from a flag.
func TestPushPullUsageErrors(t *testing.T) {
	home := t.TempDir()
	layout := "oci:" + t.TempDir() + ":v1"
	cases := []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"snapshot", "push", "s", layout, "--username", "ci"}, "--username needs --password-stdin"},
		{"pw\n", []string{"snapshot", "pull", layout, "--password-stdin"}, "--password-stdin needs --username"},
		{"", []string{"snapshot", "push", "s", layout, "--username", "ci", "--password-stdin"}, "stdin is empty"},
		{"\n", []string{"snapshot", "pull", layout, "--username", "ci", "--password-stdin"}, "stdin is empty"},
		{"", []string{"snapshot", "push", "s", layout, "--password", "pw"}, "unknown flag: --password"},
		{"", []string{"snapshot", "push", "s", layout, "--jobs", "65"}, "--jobs 65 is out of range"},
		{"", []string{"snapshot", "pull", layout, "--timeout", "x"}, "--timeout \"x\" is not a whole number"},
		{"", []string{"snapshot", "pull", layout, "--name", "a/b"}, `--name "a/b" is not a bare snapshot name`},
		{"", []string{"snapshot", "push", "s"}, "too few arguments"},
		{"", []string{"snapshot", "pull"}, "too few arguments"},
	}
	for _, c := range cases {
		r := cliIn(t, c.stdin, home, c.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) || !strings.HasPrefix(r.stderr, "microsnap: invalid_argument: ") {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args, r.code, r.stderr, exitUsage, c.want)
		}
	}
}

// A malformed reference is the library's invalid_argument (exit 2), as
// one line and as a JSON error object.
func TestPushPullMalformedReference(t *testing.T) {
	home := newHome(t, 1)
	must(t, cli(t, home, "snapshot", "create", "s", "--from", "base"))
	r := cli(t, home, "snapshot", "push", "s", "sandboxes/s:v1")
	if r.code != exitUsage || !strings.Contains(r.stderr, "is not a registry host") {
		t.Errorf("push: exit %d %q", r.code, r.stderr)
	}
	r = cli(t, home, "--json", "snapshot", "pull", "docker://localhost:5000/s:v1")
	if r.code != exitUsage || !strings.HasPrefix(r.stderr, `{"code":"invalid_argument"`) || r.stdout != "" {
		t.Errorf("pull --json: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

// unauthorized and registry_error have exit codes of their own: a script
// tells "fix the credentials" from "the registry is down, retry".
func TestRegistryErrorsExitCodes(t *testing.T) {
	for _, c := range []struct {
		err  *m.Error
		exit int
		line string
	}{
		{&m.Error{Code: m.CodeUnauthorized, Name: "unauthorized", Message: "unauthorized: localhost:5000/s: pull refused"}, exitAuth,
			"microsnap: unauthorized: localhost:5000/s: pull refused\n"},
		{&m.Error{Code: m.CodeRegistryError, Name: "registry_error", Message: "registry error: localhost:5000: connection refused"}, exitRegistry,
			"microsnap: registry_error: localhost:5000: connection refused\n"},
	} {
		var out bytes.Buffer
		if code := report(&out, c.err, false); code != c.exit || out.String() != c.line {
			t.Errorf("report(%v) = %d %q, want %d %q", c.err.Code, code, out.String(), c.exit, c.line)
		}
	}
	if !strings.Contains(exitCodesHelp, "7 unauthorized") || !strings.Contains(exitCodesHelp, "8 registry_error") {
		t.Errorf("the root --help's exit codes lack 7 and 8:\n%s", exitCodesHelp)
	}
}

// Push a family into an oci: layout and pull it into another home, as a
// script would: --json prints the library's reports, the text form the
// figures, and a second pull says nothing was pulled.
func TestPushPullThroughAnOCILayout(t *testing.T) {
	home := newHome(t, 2)
	must(t, cli(t, home, "snapshot", "create", "s", "--from", "base", "--integrity"))
	layout := "oci:" + filepath.Join(t.TempDir(), "layout") + ":v1"
	r := must(t, cli(t, home, "--json", "snapshot", "push", "s", layout, "--jobs", "2"))
	var pushed m.SnapshotPushReport
	if err := json.Unmarshal([]byte(r.stdout), &pushed); err != nil || pushed.Reference != layout ||
		pushed.ChunksUploaded == 0 || len(pushed.Snapshots) != 1 {
		t.Fatalf("push --json: %v %q", err, r.stdout)
	}
	if r.stderr != "" {
		t.Errorf("progress or noise on a non-terminal stderr: %q", r.stderr)
	}
	r = must(t, cli(t, home, "snapshot", "push", "s", layout))
	if !strings.Contains(r.stdout, "pushed s to "+layout) || !strings.Contains(r.stdout, "0 uploaded") {
		t.Errorf("second push, text: %q", r.stdout)
	}

	other := t.TempDir()
	r = must(t, cli(t, other, "--json", "snapshot", "pull", layout, "--name", "copy"))
	var pulled struct {
		Head   map[string]any       `json:"head"`
		Report m.SnapshotPullReport `json:"report"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &pulled); err != nil || pulled.Head["digest"] != pushed.SnapshotDigest ||
		pulled.Head["name"] != "copy" || pulled.Report.AlreadyPresent || pulled.Report.ChunksDownloaded == 0 {
		t.Fatalf("pull --json: %v %q", err, r.stdout)
	}
	r = must(t, cli(t, other, "snapshot", "pull", layout, "--name", "copy"))
	if !strings.Contains(r.stdout, "nothing pulled") {
		t.Errorf("second pull, text: %q", r.stdout)
	}
	r = must(t, cli(t, other, "snapshot", "verify", "copy"))
	if !strings.Contains(r.stdout, "verified") {
		t.Errorf("verify of the pulled copy: %q", r.stdout)
	}
}

// Against loopback servers: refused credentials exit 7, a closed port 8,
// and the password read from stdin appears nowhere in the output.
func TestPushPullRegistryFailures(t *testing.T) {
	home := newHome(t, 1)
	must(t, cli(t, home, "snapshot", "create", "s", "--from", "base"))
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer refusing.Close()
	host := strings.TrimPrefix(refusing.URL, "http://")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	const password = "hunter2-secret"
	for _, c := range []struct {
		args []string
		exit int
		code string
	}{
		{[]string{"snapshot", "push", "s", host + "/sandboxes/s:v1"}, exitAuth, "unauthorized"},
		{[]string{"snapshot", "pull", host + "/sandboxes/s:v1"}, exitAuth, "unauthorized"},
		{[]string{"snapshot", "pull", closed + "/sandboxes/s:v1", "--timeout", "5"}, exitRegistry, "registry_error"},
	} {
		args := append(c.args, "--plain-http", "--username", "ci", "--password-stdin")
		r := cliIn(t, password+"\n", home, args...)
		if r.code != c.exit || !strings.HasPrefix(r.stderr, "microsnap: "+c.code+": ") {
			t.Errorf("%v: exit %d %q, want %d %s", c.args, r.code, r.stderr, c.exit, c.code)
		}
		if strings.Contains(r.stdout+r.stderr, "hunter2") {
			t.Errorf("%v: the password is in the output: %q %q", c.args, r.stdout, r.stderr)
		}
	}
}
