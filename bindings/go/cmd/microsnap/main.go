// Command microsnap manages sandbox disk snapshots from the shell: the
// snapshot, sandbox and image commands of microsandbox's `msb snapshot`,
// over libmicrosnap.
//
//	microsnap [--home DIR] [--json] snapshot|sandbox|image COMMAND [ARGS]
//
// Run `microsnap help` for the command list.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	m "github.com/microsnap/microsnap/bindings/go"
)

// env is what every command gets: where to write, how to format, and the
// home to work on.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	json   bool
	home   *m.Home
	// progress is non-nil when stderr is a terminal.
	progress *progressBar
}

type command struct {
	group, name string
	usage       string
	run         func(e *env, args []string) error
}

var commands []command

func register(group, name, usage string, run func(e *env, args []string) error) {
	commands = append(commands, command{group, name, usage, run})
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, isTerminal(os.Stderr))
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, argv []string, stdout, stderr io.Writer, tty bool) int {
	global, rest, err := splitGlobal(argv)
	if err != nil {
		fmt.Fprintln(stderr, "microsnap:", err)
		return exitUsage
	}
	if len(rest) == 0 || rest[0] == "help" || rest[0] == "--help" || rest[0] == "-h" {
		printUsage(stdout)
		return exitOK
	}
	if rest[0] == "version" {
		fmt.Fprintf(stdout, "microsnap %s (ABI %d)\n", m.LibraryVersion(), m.ABIVersion())
		return exitOK
	}
	if len(rest) < 2 {
		fmt.Fprintf(stderr, "microsnap: %q needs a command; see `microsnap help`\n", rest[0])
		return exitUsage
	}
	var cmd *command
	for i := range commands {
		c := &commands[i]
		if c.group == rest[0] && (c.name == rest[1] || (c.name == "ls" && rest[1] == "list") || (c.name == "rm" && rest[1] == "remove")) {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "microsnap: unknown command %q; see `microsnap help`\n", rest[0]+" "+rest[1])
		return exitUsage
	}
	home, err := openHome(global.home)
	if err != nil {
		return report(stderr, err)
	}
	defer home.Close()
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, json: global.json, home: home}
	if tty && !global.json {
		e.progress = newProgressBar(stderr)
	}
	if err := cmd.run(e, rest[2:]); err != nil {
		if e.progress != nil {
			e.progress.clear()
		}
		return report(stderr, err)
	}
	return exitOK
}

func openHome(path string) (*m.Home, error) {
	if path != "" {
		return m.OpenHome(path)
	}
	if p := os.Getenv("MICROSNAP_HOME"); p != "" {
		return m.OpenHome(p)
	}
	dir, err := os.UserHomeDir()
	if err != nil {
		return nil, usageError("no home: set MICROSNAP_HOME or pass --home DIR")
	}
	return m.OpenHome(dir + "/.microsnap")
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: microsnap [--home DIR] [--json] COMMAND")
	fmt.Fprintln(w, "\nHome: --home DIR, else $MICROSNAP_HOME, else ~/.microsnap. --json prints machine-readable output.")
	group := ""
	for _, c := range commands {
		if c.group != group {
			group = c.group
			fmt.Fprintf(w, "\n%s commands:\n", group)
		}
		fmt.Fprintf(w, "  microsnap %s %s\n", c.group, c.usage)
	}
	fmt.Fprintln(w, "\nExit codes: 0 ok, 1 error, 2 invalid input, 3 not found, 4 conflict, 5 integrity mismatch, 6 invalid archive, 130 cancelled.")
}
