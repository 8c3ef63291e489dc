package main

import (
	"errors"
	"fmt"

	m "github.com/microsnap/microsnap/bindings/go"
	"github.com/spf13/cobra"
)

func sandboxCommand(e *env) *cobra.Command {
	return group("sandbox", "Create, list, stop and remove sandboxes",
		sandboxCreate(e), sandboxList(e), sandboxStop(e), sandboxRemove(e))
}

// sandboxCreate creates a sandbox without starting it: a running sandbox
// lives only as long as the process that holds it, and this one exits.
func sandboxCreate(e *env) *cobra.Command {
	var image, snapshot, upper, fstype string
	size := &sizeFlag{name: "size"}
	c := &cobra.Command{
		Use:   "create NAME (--image REF | --snapshot SNAPSHOT | --upper FILE --fstype FS --image REF)",
		Short: "Create a sandbox (not started) from an image, a snapshot, or an existing upper file",
		Long: `Create a sandbox without starting it: from an image of the home's layout (a
fresh upper disk), from a snapshot (a copy of its upper), or adopting an
existing upper file. A running sandbox lives as long as the process holding it;
runtimes hold it through the library.`,
		Args: args(1, 1),
	}
	c.Flags().StringVar(&image, "image", "", "image `REF` or digest in the home's OCI layout")
	c.Flags().StringVar(&snapshot, "snapshot", "", "boot from `SNAPSHOT` (a name, path or digest)")
	c.Flags().StringVar(&upper, "upper", "", "adopt the existing upper `FILE` (with --fstype and --image)")
	c.Flags().StringVar(&fstype, "fstype", "", "filesystem type `FS` of the upper (e.g. ext4)")
	c.Flags().Var(size, "size", "size of a fresh upper (default 4G): "+sizeHelp)
	c.RunE = func(c *cobra.Command, pos []string) error {
		var opts []m.SandboxOption
		switch {
		case snapshot != "" && image == "" && upper == "":
			opts = append(opts, m.WithSnapshot(snapshot))
		case upper != "" && image != "":
			if fstype == "" {
				return usageError("--upper needs --fstype")
			}
			opts = append(opts, m.WithImage(image), m.WithUpperFile(upper, fstype))
		case image != "" && snapshot == "":
			opts = append(opts, m.WithImage(image))
			if fstype != "" {
				opts = append(opts, m.WithFstype(fstype))
			}
		default:
			return usageError("give --image REF, --snapshot SNAPSHOT, or --upper FILE --fstype FS --image REF")
		}
		if size.value != 0 {
			opts = append(opts, m.WithUpperSize(size.value))
		}
		home, err := e.openHome()
		if err != nil {
			return err
		}
		sb, err := home.NewSandbox(e.withProgress(e.ctx), pos[0], opts...)
		e.done()
		if err != nil {
			return err
		}
		if e.json {
			return printJSON(e.stdout, viewSandbox(sb))
		}
		fmt.Fprintf(e.stdout, "created sandbox %s (%s, %s upper at %s)\n", sb.Name(), sb.ImageRef(),
			humanBytes(sb.SizeBytes()), sb.UpperPath())
		return nil
	}
	return c
}

func sandboxList(e *env) *cobra.Command {
	return &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List the home's sandboxes",
		Args: args(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			home, err := e.openHome()
			if err != nil {
				return err
			}
			list, err := home.ListSandboxes(e.ctx)
			if err != nil {
				return err
			}
			views := make([]sandboxView, len(list))
			rows := make([][]string, len(list))
			for i, s := range list {
				views[i] = viewSandbox(s)
				from := "-"
				if f := s.FromSnapshot(); f != nil {
					from = shortDigest(*f)
				}
				rows[i] = []string{s.Name(), s.State(), s.ImageRef(), s.Format() + "/" + s.Fstype(),
					humanBytes(s.SizeBytes()), from}
			}
			if e.json {
				return printJSON(e.stdout, views)
			}
			table(e.stdout, []string{"NAME", "STATE", "IMAGE", "DISK", "SIZE", "FROM SNAPSHOT"}, rows)
			return nil
		},
	}
}

// heldElsewhere says who holds a running sandbox: the library's
// sandbox_running means a live process holds its lock, and this CLI never
// holds one past its own exit.
func heldElsewhere(err error, name, what string) error {
	if !errors.Is(err, m.ErrSandboxRunning) {
		return err
	}
	return &m.Error{Code: m.CodeSandboxRunning, Name: "sandbox_running",
		Message: fmt.Sprintf("sandbox %s is running: another process holds it; %s", name, what)}
}

// sandboxStop records a sandbox that no process holds as stopped (how a
// crashed one is cleared); one held by a live process stays running.
func sandboxStop(e *env) *cobra.Command {
	return &cobra.Command{
		Use: "stop NAME", Short: "Record a sandbox no process holds (a crashed one) as stopped",
		Long: `Record a sandbox that no process holds as stopped, which is how a crashed one
is cleared. A sandbox another process holds stays running: stop it there.`,
		Args: args(1, 1),
		RunE: func(c *cobra.Command, pos []string) error {
			home, err := e.openHome()
			if err != nil {
				return err
			}
			sb, err := home.GetSandbox(e.ctx, pos[0])
			if err != nil {
				return err
			}
			if err := sb.MarkStopped(e.ctx); err != nil {
				return heldElsewhere(err, pos[0], "stop it from that process, or end that process")
			}
			if sb, err = home.GetSandbox(e.ctx, pos[0]); err != nil {
				return err
			}
			if e.json {
				return printJSON(e.stdout, viewSandbox(sb))
			}
			fmt.Fprintf(e.stdout, "stopped %s\n", pos[0])
			return nil
		},
	}
}

func sandboxRemove(e *env) *cobra.Command {
	return &cobra.Command{
		Use: "rm NAME", Aliases: []string{"remove"}, Short: "Remove a sandbox that is not running, and its upper disk",
		Args: args(1, 1),
		RunE: func(c *cobra.Command, pos []string) error {
			home, err := e.openHome()
			if err != nil {
				return err
			}
			if err := home.RemoveSandbox(e.ctx, pos[0]); err != nil {
				return heldElsewhere(err, pos[0], "stop it there first")
			}
			if e.json {
				return printJSON(e.stdout, map[string]string{"removed": pos[0]})
			}
			fmt.Fprintf(e.stdout, "removed sandbox %s\n", pos[0])
			return nil
		},
	}
}
