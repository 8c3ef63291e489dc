package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	m "github.com/microsnap/microsnap/bindings/go"
)

// --version and `version` print the CLI's own version, the loaded
// library's and its ABI, one line each.
func TestVersionPrintsCLILibraryAndABI(t *testing.T) {
	want := fmt.Sprintf("microsnap %s\nlibmicrosnap %s (ABI %d)\n", cliVersion, m.LibraryVersion(), m.ABIVersion())
	for _, argv := range [][]string{{"--version"}, {"version"}} {
		r := must(t, cli(t, t.TempDir(), argv...))
		if r.stdout != want {
			t.Errorf("%v: got %q, want %q", argv, r.stdout, want)
		}
	}
	if m.ABIVersion() != 1 || m.LibraryVersion() == "" {
		t.Errorf("library %q ABI %d", m.LibraryVersion(), m.ABIVersion())
	}
}

// The CLI is released with the library: its version is the crate's.
func TestCLIVersionIsTheCrateVersion(t *testing.T) {
	cargo, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "Cargo.toml"))
	if err != nil {
		t.Fatal(err)
	}
	got := regexp.MustCompile(`(?m)^version = "([^"]+)"`).FindSubmatch(cargo)
	if got == nil {
		t.Fatal("Cargo.toml has no version line")
	}
	if string(got[1]) != cliVersion {
		t.Errorf("cliVersion %q, Cargo.toml says %q", cliVersion, got[1])
	}
}

// `microsnap completion SHELL` is a script the shell parses (`bash -n`,
// `zsh -n`) and that completes microsnap's own commands.
func TestCompletionScriptsParse(t *testing.T) {
	for _, shell := range []string{"bash", "zsh"} {
		t.Run(shell, func(t *testing.T) {
			r := must(t, cli(t, t.TempDir(), "completion", shell))
			if !strings.Contains(r.stdout, "microsnap") || len(r.stdout) < 1000 {
				t.Fatalf("completion %s: %d bytes:\n%s", shell, len(r.stdout), r.stdout)
			}
			if _, err := exec.LookPath(shell); err != nil {
				t.Skipf("%s not installed: the script is not parsed", shell)
			}
			script := filepath.Join(t.TempDir(), "microsnap."+shell)
			if err := os.WriteFile(script, []byte(r.stdout), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(shell, "-n", script).CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v\n%s", shell, err, out)
			}
		})
	}
	// The completions come from the command tree: `__complete` is what the
	// scripts call at each TAB.
	r := must(t, cli(t, t.TempDir(), "__complete", "snapshot", ""))
	for _, sub := range []string{"create", "export", "import", "verify", "push", "pull"} {
		if !strings.Contains(r.stdout, sub) {
			t.Errorf("completing `microsnap snapshot `: no %q in\n%s", sub, r.stdout)
		}
	}
}

// `microsnap man DIR` writes one page per command from the command tree,
// with each command's flags; the hidden man command itself gets none.
func TestManPagesCoverTheCommandTree(t *testing.T) {
	dir := t.TempDir()
	must(t, cli(t, t.TempDir(), "man", dir))
	top, err := os.ReadFile(filepath.Join(dir, "microsnap.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`.TH "MICROSNAP" "1"`, "microsnap " + cliVersion, "--home", "microsnap-snapshot(1)"} {
		if !strings.Contains(string(top), want) {
			t.Errorf("microsnap.1 lacks %q:\n%s", want, top)
		}
	}
	export, err := os.ReadFile(filepath.Join(dir, "microsnap-snapshot-export.1"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(export), "with-parents") {
		t.Errorf("microsnap-snapshot-export.1 lacks --with-parents:\n%s", export)
	}
	for _, page := range []string{"microsnap-snapshot-push.1", "microsnap-snapshot-pull.1"} {
		text, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(text), "password\\-stdin") && !strings.Contains(string(text), "password-stdin") {
			t.Errorf("%s lacks --password-stdin:\n%s", page, text)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "microsnap-man.1")); err == nil {
		t.Error("the hidden man command has a page")
	}
	if strings.Contains(string(top), "Auto generated") {
		t.Error("pages carry a generation date")
	}
	if r := cli(t, t.TempDir(), "man"); r.code != exitUsage {
		t.Errorf("man without DIR: exit %d %s", r.code, r.stderr)
	}
}
