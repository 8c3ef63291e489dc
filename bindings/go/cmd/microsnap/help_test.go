package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"

	m "github.com/microsnap/microsnap/bindings/go"
)

// Issue 13 §5: --help at every level shows every flag with its help text.

// helpOf runs `microsnap ARGS --help` and checks it succeeds on stdout.
func helpOf(t *testing.T, args ...string) string {
	t.Helper()
	r := cli(t, t.TempDir(), append(args, "--help")...)
	if r.code != 0 || r.stdout == "" {
		t.Fatalf("%v --help: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// flagLine finds the help line of --name and returns its help text.
func flagLine(help, name string) string {
	re := regexp.MustCompile(`(?m)^\s+(?:-\w, )?--` + regexp.QuoteMeta(name) + `(?: \S+)?\s{2,}(\S.*)$`)
	if m := re.FindStringSubmatch(help); m != nil {
		return m[1]
	}
	return ""
}

func TestHelpAtEveryLevel(t *testing.T) {
	global := []string{"home", "json"}
	levels := []struct {
		args  []string
		flags []string
		words []string
	}{
		{nil, global, []string{"snapshot", "sandbox", "image", "Exit codes", "130"}},
		{[]string{"snapshot"}, global, []string{"create", "ls", "inspect", "verify", "rm", "reindex", "export", "import"}},
		{[]string{"sandbox"}, global, []string{"create", "ls", "stop", "rm"}},
		{[]string{"image"}, global, []string{"ls", "import"}},
		{[]string{"snapshot", "create"}, []string{"from", "label", "integrity", "integrity-algorithm", "force", "format"}, []string{"NAME|PATH", "msb-v0.6.3", "msb-v0.6.14"}},
		{[]string{"snapshot", "inspect"}, []string{"verify"}, nil},
		{[]string{"snapshot", "rm"}, []string{"force"}, nil},
		{[]string{"snapshot", "export"}, []string{"with-parents", "with-image", "plain-tar", "dense", "level", "threads", "format", "home", "json"}, []string{"NAME", "OUT", "msb-v0.6.3", "msb-v0.6.14"}},
		{[]string{"snapshot", "import"}, []string{"dest", "name"}, []string{"ARCHIVE"}},
		{[]string{"sandbox", "create"}, []string{"image", "snapshot", "upper", "fstype", "size"}, nil},
		{[]string{"image", "import"}, []string{"ref"}, nil},
	}
	for _, l := range levels {
		help := helpOf(t, l.args...)
		for _, f := range l.flags {
			if text := flagLine(help, f); len(text) < 4 {
				t.Errorf("%v --help: --%s has no help text:\n%s", l.args, f, help)
			}
		}
		for _, w := range l.words {
			if !strings.Contains(help, w) {
				t.Errorf("%v --help lacks %q:\n%s", l.args, w, help)
			}
		}
	}
	// `microsnap help snapshot export` is the same page.
	if r := cli(t, t.TempDir(), "help", "snapshot", "export"); r.code != 0 || r.stdout != helpOf(t, "snapshot", "export") {
		t.Errorf("help snapshot export: exit %d %q", r.code, r.stdout)
	}
}

func TestProgressNeverPanicsOrMisdraws(t *testing.T) {
	width := func(line string) int {
		i, j := strings.Index(line, " [")+1, strings.IndexByte(line, ']')
		if i < 1 || j < i {
			return -1
		}
		return j - i - 1
	}
	for _, p := range []m.Progress{
		{Phase: "copy", Done: 10, Total: 5},
		{Phase: "copy", Done: 0, Total: 0},
		{Phase: "copy", Done: 1 << 40, Total: 0},
		{Phase: "hash", Done: ^uint64(0), Total: 1},
		{Phase: "hash", Done: 5, Total: 10},
		{Phase: "hash", Done: 10, Total: 10},
	} {
		var out bytes.Buffer
		bar := newProgressBar(&out)
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%+v: panic %v", p, r)
				}
			}()
			bar.update(p)
		}()
		line := out.String()
		if strings.Contains(line, "%!") || strings.Contains(line, "NaN") || strings.Contains(line, "Inf") {
			t.Errorf("%+v: misdrawn %q", p, line)
		}
		pct := regexp.MustCompile(`(\d+)%`).FindStringSubmatch(line)
		if p.Total == 0 {
			// Unknown total: no percentage, no bar that claims 100%.
			if pct != nil {
				t.Errorf("%+v: a percentage for an unknown total: %q", p, line)
			}
			continue
		}
		if w := width(line); w != 30 {
			t.Errorf("%+v: bar width %d in %q", p, w, line)
		}
		if pct == nil {
			t.Errorf("%+v: no percentage: %q", p, line)
		} else if n, _ := strconv.Atoi(pct[1]); n > 100 {
			t.Errorf("%+v: percentage %d%%: %q", p, n, line)
		}
	}
}
