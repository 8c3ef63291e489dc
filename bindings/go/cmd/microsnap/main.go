// Command microsnap manages sandbox disk snapshots from the shell: the
// snapshot, sandbox and image commands of microsandbox's `msb snapshot`,
// over libmicrosnap.
//
//	microsnap [--home DIR] [--json] snapshot|sandbox|image COMMAND [ARGS]
//
// Run `microsnap --help` (at any level) for the commands and their flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	m "github.com/microsnap/microsnap/bindings/go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// env is what every command gets: where to write, how to format, and the
// home to work on, opened on first use.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	// stdin is what --password-stdin reads.
	stdin    io.Reader
	tty      bool
	homeFlag string
	json     bool
	home     *m.Home
	// progress is non-nil when stderr is a terminal and --json is off.
	progress *progressBar
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, isTerminal(os.Stderr))
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, argv []string, stdout, stderr io.Writer, tty bool) int {
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, stdin: stdinOf(), tty: tty}
	root := newRootCommand(e)
	root.SetArgs(argv)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if e.home != nil {
		e.home.Close()
	}
	if err != nil {
		if e.progress != nil {
			e.progress.clear()
		}
		// A flag error can stop parsing before --json is read.
		return report(stderr, err, e.json || wantsJSON(argv))
	}
	return exitOK
}

func newRootCommand(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "microsnap",
		Short: "Snapshots of microVM sandbox disks",
		Long: `microsnap creates, lists, verifies, exports, imports, pushes and pulls
snapshots of sandbox disks, and manages the sandboxes and images they come from.

Home: --home DIR, else $MICROSNAP_HOME, else ~/.microsnap.
Long operations draw a progress bar when stderr is a terminal; Ctrl-C cancels
them cleanly.

` + exitCodesHelp,
		Version:            cliVersion,
		Args:               unknownCommand,
		RunE:               groupRun,
		SilenceErrors:      true,
		SilenceUsage:       true,
		DisableSuggestions: true,
	}
	root.SetVersionTemplate(versionText())
	root.PersistentFlags().StringVar(&e.homeFlag, "home", "", "the microsnap home `DIR` (default $MICROSNAP_HOME, else ~/.microsnap)")
	root.PersistentFlags().BoolVar(&e.json, "json", false, "print results as JSON on stdout, and errors as a JSON object on stderr")
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(snapshotCommand(e), sandboxCommand(e), imageCommand(e), diskUsage(e), versionCommand(), manCommand())
	return root
}

// group is a command that only holds others: `microsnap snapshot`.
func group(use, short string, cmds ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{Use: use, Short: short, Args: unknownCommand, RunE: groupRun}
	g.AddCommand(cmds...)
	return g
}

// unknownCommand refuses a word that names no command under c.
func unknownCommand(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unknown command %q for %q; see %s --help", args[0], c.CommandPath(), c.CommandPath())
	}
	return nil
}

// groupRun is a group called without a command: the root shows its help
// (as `microsnap` alone always has), a group says what is missing.
func groupRun(c *cobra.Command, args []string) error {
	if !c.HasParent() {
		return c.Help()
	}
	return usageErrorf("%s needs a command; see %s --help", c.CommandPath(), c.CommandPath())
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use: "version", Short: "Print the CLI, library and ABI versions", Args: args(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			fmt.Fprint(c.OutOrStdout(), versionText())
			return nil
		},
	}
}

// flagError makes a flag that does not parse a usage error. The flag
// values' own messages name the flag; pflag's wrapping of them would say
// "invalid argument" twice.
func flagError(_ *cobra.Command, err error) error {
	var bad *pflag.InvalidValueError
	if errors.As(err, &bad) {
		msg := bad.Unwrap().Error()
		if name := "--" + bad.GetFlag().Name; !strings.Contains(msg, name) {
			msg = fmt.Sprintf("%s %q: %s", name, bad.GetValue(), msg)
		}
		return usageError(msg)
	}
	return usageError(err.Error())
}

// wantsJSON reports whether --json stands among the global flags of argv
// (before any "--").
func wantsJSON(argv []string) bool {
	for _, a := range argv {
		switch a {
		case "--":
			return false
		case "--json", "--json=true":
			return true
		}
	}
	return false
}

// openHome opens the home once, on first use, so that --help and usage
// errors never touch the disk.
func (e *env) openHome() (*m.Home, error) {
	if e.home != nil {
		return e.home, nil
	}
	path := e.homeFlag
	if path == "" {
		path = os.Getenv("MICROSNAP_HOME")
	}
	if path == "" {
		dir, err := os.UserHomeDir()
		if err != nil {
			return nil, usageError("no home: set MICROSNAP_HOME or pass --home DIR")
		}
		path = dir + "/.microsnap"
	}
	h, err := m.OpenHome(path)
	if err != nil {
		return nil, err
	}
	e.home = h
	if e.tty && !e.json {
		e.progress = newProgressBar(e.stderr)
	}
	return h, nil
}
