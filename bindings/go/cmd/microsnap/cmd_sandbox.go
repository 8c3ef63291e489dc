package main

import (
	"flag"
	"fmt"

	m "github.com/microsnap/microsnap/bindings/go"
)

func init() {
	register("sandbox", "create", "create NAME (--image REF | --snapshot NAME | --upper FILE --fstype ext4 --image REF) [--size 4G]", sandboxCreate)
	register("sandbox", "ls", "ls", sandboxList)
	register("sandbox", "stop", "stop NAME", sandboxStop)
	register("sandbox", "rm", "rm NAME", sandboxRemove)
}

type sandboxView struct {
	Name         string  `json:"name"`
	State        string  `json:"state"`
	ImageRef     string  `json:"image_ref"`
	UpperPath    string  `json:"upper_path"`
	Format       string  `json:"format"`
	Fstype       string  `json:"fstype"`
	SizeBytes    uint64  `json:"size_bytes"`
	FromSnapshot *string `json:"from_snapshot"`
	CreatedAt    string  `json:"created_at"`
}

func viewSandbox(s *m.SandboxHandle) sandboxView {
	return sandboxView{s.Name(), s.State(), s.ImageRef(), s.UpperPath(), s.Format(), s.Fstype(),
		s.SizeBytes(), s.FromSnapshot(), s.CreatedAt()}
}

// sandboxCreate creates a sandbox without starting it: a running sandbox
// lives only as long as the process that holds it, and this one exits.
func sandboxCreate(e *env, args []string) error {
	fs := flag.NewFlagSet("sandbox create", flag.ContinueOnError)
	image := fs.String("image", "", "image ref or digest in the home's OCI layout")
	snapshot := fs.String("snapshot", "", "snapshot to boot from")
	upper := fs.String("upper", "", "existing upper file to adopt")
	fstype := fs.String("fstype", "", "filesystem type of the upper")
	size := fs.String("size", "", "size of a fresh upper (default 4G)")
	pos, err := parseFlags(fs, args, 1, 1)
	if err != nil {
		return err
	}
	var opts []m.SandboxOption
	switch {
	case *snapshot != "" && *image == "" && *upper == "":
		opts = append(opts, m.WithSnapshot(*snapshot))
	case *upper != "" && *image != "":
		if *fstype == "" {
			return usageError("--upper needs --fstype")
		}
		opts = append(opts, m.WithImage(*image), m.WithUpperFile(*upper, *fstype))
	case *image != "" && *snapshot == "":
		opts = append(opts, m.WithImage(*image))
		if *fstype != "" {
			opts = append(opts, m.WithFstype(*fstype))
		}
	default:
		return usageError("give --image REF, --snapshot NAME, or --upper FILE --fstype FS --image REF")
	}
	if *size != "" {
		n, err := parseSize(*size)
		if err != nil {
			return err
		}
		opts = append(opts, m.WithUpperSize(n))
	}
	sb, err := e.home.NewSandbox(e.withProgress(e.ctx), pos[0], opts...)
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

func sandboxList(e *env, args []string) error {
	fs := flag.NewFlagSet("sandbox ls", flag.ContinueOnError)
	if _, err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	list, err := e.home.ListSandboxes(e.ctx)
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
}

// sandboxStop records a sandbox that no process holds as stopped (how a
// crashed one is cleared); one held by a live process stays running.
func sandboxStop(e *env, args []string) error {
	fs := flag.NewFlagSet("sandbox stop", flag.ContinueOnError)
	pos, err := parseFlags(fs, args, 1, 1)
	if err != nil {
		return err
	}
	sb, err := e.home.GetSandbox(e.ctx, pos[0])
	if err != nil {
		return err
	}
	if err := sb.MarkStopped(e.ctx); err != nil {
		return err
	}
	if e.json {
		return printJSON(e.stdout, map[string]string{"stopped": pos[0]})
	}
	fmt.Fprintf(e.stdout, "stopped %s\n", pos[0])
	return nil
}

func sandboxRemove(e *env, args []string) error {
	fs := flag.NewFlagSet("sandbox rm", flag.ContinueOnError)
	pos, err := parseFlags(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := e.home.RemoveSandbox(e.ctx, pos[0]); err != nil {
		return err
	}
	if e.json {
		return printJSON(e.stdout, map[string]string{"removed": pos[0]})
	}
	fmt.Fprintf(e.stdout, "removed sandbox %s\n", pos[0])
	return nil
}
