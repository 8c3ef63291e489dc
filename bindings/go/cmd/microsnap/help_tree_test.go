package main

import (
	"bytes"
	"testing"

	m "github.com/microsnap/microsnap/bindings/go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Every command of the tree, walked in process: each flag, local or
// inherited, has help text, so no flag added later can go without.
func TestEveryFlagHasHelpText(t *testing.T) {
	root := newRootCommand(&env{})
	cmds := allCommands(root)
	if len(cmds) < 16 {
		t.Fatalf("only %d commands", len(cmds))
	}
	for _, c := range cmds {
		var out bytes.Buffer
		c.SetOut(&out)
		if err := c.Help(); err != nil {
			t.Fatal(err)
		}
		help := out.String()
		names := flagNames(c)
		if len(names) < 2 {
			t.Errorf("%s: flags %v (want at least --home and --json)", c.CommandPath(), names)
		}
		for _, name := range names {
			if text := flagLine(help, name); len(text) < 4 {
				t.Errorf("%s --help: --%s has no help text:\n%s", c.CommandPath(), name, help)
			}
		}
	}
}

func allCommands(c *cobra.Command) []*cobra.Command {
	all := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		all = append(all, allCommands(sub)...)
	}
	return all
}

// flagNames lists the flags a command's help shows: its own and the
// inherited ones, except cobra's own --help.
func flagNames(c *cobra.Command) []string {
	var names []string
	add := func(f *pflag.Flag) {
		if f.Name != "help" && !f.Hidden {
			names = append(names, f.Name)
		}
	}
	c.LocalFlags().VisitAll(add)
	c.InheritedFlags().VisitAll(add)
	return names
}

// The library's messages start with their code spoken ("unsupported: …",
// "snapshot not found: …"); the line starts with the code already.
func TestMessagesDoNotRepeatTheirCode(t *testing.T) {
	cases := []struct{ code, msg, want string }{
		{"unsupported", "unsupported: recorded integrity algorithm \"x\"", "recorded integrity algorithm \"x\""},
		{"snapshot_not_found", "snapshot not found: nope", "nope"},
		{"sandbox_running", "sandbox is running: base", "base"},
		{"internal", "internal error: lock", "lock"},
		{"io", "open archive /x: No such file or directory (os error 2)", "open archive /x: No such file or directory (os error 2)"},
		{"invalid_argument", "invalid argument: ", "invalid argument: "},
	}
	for _, c := range cases {
		if got := withoutCode(c.code, c.msg); got != c.want {
			t.Errorf("withoutCode(%q, %q) = %q, want %q", c.code, c.msg, got, c.want)
		}
	}
	var out bytes.Buffer
	err := &m.Error{Code: m.CodeUnsupported, Name: "unsupported", Message: "unsupported: recorded integrity algorithm \"x\""}
	if code := report(&out, err, false); code != exitUsage || out.String() != "microsnap: unsupported: recorded integrity algorithm \"x\"\n" {
		t.Errorf("report: %d %q", code, out.String())
	}
	out.Reset()
	if code := report(&out, err, true); code != exitUsage || out.String() != `{"code":"unsupported","message":"recorded integrity algorithm \"x\""}`+"\n" {
		t.Errorf("report --json: %d %q", code, out.String())
	}
}
