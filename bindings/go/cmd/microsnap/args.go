package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

type globalFlags struct {
	home string
	json bool
}

// splitGlobal takes --home and --json from anywhere on the command line, so
// `microsnap snapshot ls --json` works as well as `microsnap --json snapshot ls`.
func splitGlobal(argv []string) (globalFlags, []string, error) {
	var g globalFlags
	var rest []string
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		switch {
		case a == "--json" || a == "-json":
			g.json = true
		case a == "--home" || a == "-home":
			if i+1 >= len(argv) {
				return g, nil, fmt.Errorf("--home needs a directory")
			}
			i++
			g.home = argv[i]
		case strings.HasPrefix(a, "--home="):
			g.home = strings.TrimPrefix(a, "--home=")
		default:
			rest = append(rest, a)
		}
	}
	return g, rest, nil
}

// parseFlags parses a command's flags wherever they stand among its
// positional arguments (Go's flag package stops at the first positional),
// and checks the positional count.
func parseFlags(fs *flag.FlagSet, args []string, minPos, maxPos int) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, usageError(err.Error())
		}
		args = fs.Args()
		if len(args) > 0 {
			if args[0] == "--" {
				pos = append(pos, args[1:]...)
				break
			}
			pos = append(pos, args[0])
			args = args[1:]
		}
	}
	if len(pos) < minPos || len(pos) > maxPos {
		return nil, usageError(fmt.Sprintf("%s: wrong number of arguments", fs.Name()))
	}
	return pos, nil
}

// labelFlags collects repeated --label k=v.
type labelFlags map[string]string

func (l labelFlags) String() string { return "" }

func (l labelFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("label %q is not k=v", v)
	}
	l[k] = val
	return nil
}
