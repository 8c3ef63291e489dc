package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	m "github.com/microsnap/microsnap/bindings/go"
)

// registryBin is the docker-registry tools/registry/fetch.sh unpacks
// (`make registry-bin`; `make test` fetches it before the Rust tests).
var registryBin = filepath.Join("..", "..", "..", "..", "target", "registry", "bin", "docker-registry")

// startRegistry runs docker-registry on 127.0.0.1 with htpasswd auth for
// user:password, stopped when the test ends, and returns its host:port.
func startRegistry(t *testing.T, user, password string) string {
	t.Helper()
	if _, err := os.Stat(registryBin); err != nil {
		t.Skipf("%s is missing: run `make registry-bin`", registryBin)
	}
	htpasswd, err := exec.Command("htpasswd", "-Bbn", user, password).Output()
	if err != nil {
		t.Skipf("htpasswd (apache2-utils): %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), htpasswd, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
  secret: microsnap-cli-test
auth:
  htpasswd:
    realm: microsnap-test
    path: %s
`, filepath.Join(dir, "storage"), host, filepath.Join(dir, "htpasswd"))
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(registryBin, "serve", filepath.Join(dir, "config.yml"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
	})
	for deadline := time.Now().Add(15 * time.Second); ; {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return host
			}
		}
		if time.Now().After(deadline) {
			text, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			t.Fatalf("docker-registry did not start on %s: %v\n%s", host, err, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Through a real registry with Basic auth: push and pull with the password
// on stdin, a wrong password is unauthorized (exit 7), none is too, and
// the password never appears in any output.
func TestPushPullThroughARegistry(t *testing.T) {
	const user, password = "ci", "s3cret-pw-for-the-test"
	host := startRegistry(t, user, password)
	home := newHome(t, 2)
	must(t, cli(t, home, "snapshot", "create", "s", "--from", "base", "--integrity"))
	ref := host + "/sandboxes/s:v1"
	auth := []string{"--plain-http", "--username", user, "--password-stdin"}
	// An empty docker config, so that the user's own is never read.
	emptyConfig := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(emptyConfig, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	noConfig := []string{"--docker-config", emptyConfig}

	r := cliIn(t, password+"\n", home, append([]string{"--json", "snapshot", "push", "s", ref}, auth...)...)
	if r.code != 0 {
		t.Fatalf("push: exit %d %s", r.code, r.stderr)
	}
	var pushed m.SnapshotPushReport
	if err := json.Unmarshal([]byte(r.stdout), &pushed); err != nil || pushed.Reference != ref || pushed.ChunksUploaded == 0 {
		t.Fatalf("push --json: %v %q", err, r.stdout)
	}
	outputs := r.stdout + r.stderr

	other := t.TempDir()
	r = cliIn(t, password, other, append([]string{"snapshot", "pull", ref}, auth...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "pulled "+ref) {
		t.Fatalf("pull: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	outputs += r.stdout + r.stderr
	r = must(t, cli(t, other, "--json", "snapshot", "inspect", "v1"))
	if !strings.Contains(r.stdout, pushed.SnapshotDigest) {
		t.Errorf("the pulled snapshot is not the pushed one: %s", r.stdout)
	}

	r = cliIn(t, "wrong-"+password+"\n", other, append([]string{"snapshot", "pull", ref, "--name", "w"}, auth...)...)
	if r.code != exitAuth || !strings.HasPrefix(r.stderr, "microsnap: unauthorized: ") {
		t.Errorf("wrong password: exit %d %q", r.code, r.stderr)
	}
	outputs += r.stdout + r.stderr
	r = cli(t, other, append([]string{"snapshot", "pull", ref, "--name", "anon", "--plain-http"}, noConfig...)...)
	if r.code != exitAuth {
		t.Errorf("anonymous pull: exit %d %q", r.code, r.stderr)
	}
	if strings.Contains(outputs+r.stdout+r.stderr, password) {
		t.Errorf("the password appears in the output:\n%s", outputs)
	}
}
