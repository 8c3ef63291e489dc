package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	m "github.com/microsnap/microsnap/bindings/go"
	"github.com/spf13/cobra"
)

func snapshotCommand(e *env) *cobra.Command {
	return group("snapshot", "Create, list, verify, remove, prune, export, import, push and pull snapshots",
		snapshotCreate(e), snapshotList(e), snapshotInspect(e), snapshotVerify(e),
		snapshotRemove(e), snapshotPrune(e), snapshotReindex(e), snapshotExport(e), snapshotImport(e),
		snapshotPush(e), snapshotPull(e))
}

// refHelp says what a snapshot argument may be.
const refHelp = `A snapshot is named by a bare name (<home>/snapshots/NAME), a path (contains
"/"), or a digest (sha256:...).`

func snapshotCreate(e *env) *cobra.Command {
	var opts m.SnapshotCreateOptions
	var from string
	var format formatFlag
	labels := labelFlags{}
	c := &cobra.Command{
		Use:   "create NAME|PATH --from SANDBOX",
		Short: "Snapshot a stopped sandbox's disk",
		Long: `Snapshot a stopped sandbox's upper disk into <home>/snapshots/NAME, or into
the directory PATH (an argument with a "/").

--format msb-v0.6.14 writes the layout current microsandbox reads without
migrating it (snapshot.json); its integrity algorithm defaults to
msb-file-merkle-blake3-v1, and microsnap-merkle-sha256-v1 cannot be recorded
in it. The default, msb-v0.6.3, is microsandbox v0.6.3's (manifest.json).`,
		Args: args(1, 1),
	}
	c.Flags().StringVar(&from, "from", "", "the `SANDBOX` to snapshot (required)")
	c.Flags().Var(labels, "label", "add a label `k=v` (repeatable)")
	c.Flags().BoolVar(&opts.RecordIntegrity, "integrity", false, "record the upper disk's content digest, for verify")
	c.Flags().StringVar(&opts.IntegrityAlgorithm, "integrity-algorithm", "",
		"record integrity with `ALGORITHM`: microsnap-merkle-sha256-v1 (default), msb-file-merkle-blake3-v1 "+
			"(the default with --format msb-v0.6.14), msb-sparse-sha256-v1, sha256")
	c.Flags().BoolVar(&opts.Force, "force", false, "replace an existing artifact of that name")
	c.Flags().Var(&format, "format", "write the artifact in `FORMAT`: msb-v0.6.3 (default, manifest.json) or msb-v0.6.14 (snapshot.json)")
	c.RunE = func(c *cobra.Command, pos []string) error {
		if from == "" {
			return usageError("snapshot create needs --from SANDBOX")
		}
		opts.Labels = labels
		opts.Format = format.value
		opts.RecordIntegrity = opts.RecordIntegrity || opts.IntegrityAlgorithm != ""
		if strings.Contains(pos[0], "/") {
			opts.Path = pos[0]
		} else {
			opts.Name = pos[0]
		}
		home, err := e.openHome()
		if err != nil {
			return err
		}
		a, err := home.Snapshot.Create(e.withProgress(e.ctx), from, opts)
		e.done()
		if err != nil {
			return err
		}
		if e.json {
			return printJSON(e.stdout, viewArtifact(a))
		}
		fmt.Fprintf(e.stdout, "created %s\n  digest %s\n  parent %s\n  size   %s\n  format %s\n", a.Path(), a.Digest(),
			orDash(a.Parent()), humanBytes(a.SizeBytes()), a.ArtifactFormat())
		if alg := a.IntegrityAlgorithm(); alg != "" {
			fmt.Fprintf(e.stdout, "  integrity %s %s\n", alg, a.IntegrityDigest())
		}
		return nil
	}
	return c
}

func snapshotList(e *env) *cobra.Command {
	return &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List the home's indexed snapshots, newest first",
		Args: args(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			home, err := e.openHome()
			if err != nil {
				return err
			}
			list, err := home.Snapshot.List(e.ctx)
			if err != nil {
				return err
			}
			views := make([]handleView, len(list))
			rows := make([][]string, len(list))
			for i, h := range list {
				views[i] = viewHandle(h)
				size := "-"
				if s := h.SizeBytes(); s != nil {
					size = humanBytes(*s)
				}
				parent := "-"
				if p := h.ParentDigest(); p != nil {
					parent = shortDigest(*p)
				}
				rows[i] = []string{nameOrPath(h), shortDigest(h.Digest()), parent, h.ImageRef(), size,
					fmt.Sprint(h.ChildCount()), h.ArtifactFormat(), h.CreatedAt().Local().Format("2006-01-02 15:04:05")}
			}
			if e.json {
				return printJSON(e.stdout, views)
			}
			table(e.stdout, []string{"NAME", "DIGEST", "PARENT", "IMAGE", "SIZE", "CHILDREN", "ARTIFACT FORMAT", "CREATED"}, rows)
			return nil
		},
	}
}

// nameOrPath is what ls shows in its NAME column: the bare name where one
// resolves to the snapshot (it sits in the home's snapshots directory), else
// its path. Either works as the SNAPSHOT argument of every other command.
func nameOrPath(h *m.SnapshotHandle) string {
	if n := h.Name(); n != nil {
		return *n
	}
	return h.Path()
}

func snapshotInspect(e *env) *cobra.Command {
	var verify bool
	c := &cobra.Command{
		Use: "inspect SNAPSHOT", Short: "Show a snapshot's manifest", Long: "Show a snapshot's manifest.\n\n" + refHelp,
		Args: args(1, 1),
	}
	c.Flags().BoolVar(&verify, "verify", false, "also recompute and check the recorded integrity")
	c.RunE = func(c *cobra.Command, pos []string) error {
		home, err := e.openHome()
		if err != nil {
			return err
		}
		a, err := home.Snapshot.Open(e.ctx, pos[0])
		if err != nil {
			return err
		}
		out := struct {
			artifactView
			Verify *m.SnapshotVerifyReport `json:"verify,omitempty"`
		}{artifactView: viewArtifact(a)}
		if verify {
			r, err := a.Verify(e.withProgress(e.ctx))
			e.done()
			if err != nil {
				return err
			}
			out.Verify = r
		}
		if e.json {
			return printJSON(e.stdout, out)
		}
		v := out.artifactView
		lines := [][2]string{
			{"path", v.Path}, {"digest", v.Digest}, {"parent", orDash(v.ParentDigest)},
			{"image", v.ImageRef + " @ " + v.ImageManifestDigest}, {"format", diskFormat(v)},
			{"artifact format", v.ArtifactFormat},
			{"size", diskSize(v)},
			{"created", v.CreatedAt}, {"source", orDash(v.SourceSandbox)},
		}
		if v.Integrity != nil {
			lines = append(lines, [2]string{"integrity", v.Integrity.Algorithm + " " + v.Integrity.Digest})
		} else {
			lines = append(lines, [2]string{"integrity", "not recorded"})
		}
		for k, val := range v.Labels {
			lines = append(lines, [2]string{"label", k + "=" + val})
		}
		if out.Verify != nil {
			lines = append(lines, [2]string{"verify", out.Verify.Upper.Kind})
		}
		for _, l := range lines {
			fmt.Fprintf(e.stdout, "%-15s %s\n", l[0], l[1])
		}
		return nil
	}
	return c
}

// diskFormat is inspect's "format" line: the upper's disk format and
// filesystem, or what stands for them when a microsandbox v0.6.14
// checkpoint-state snapshot has no disk upper.
func diskFormat(v artifactView) string {
	if v.UpperFile == "" {
		return "- (no disk upper: a checkpoint-state snapshot)"
	}
	return v.Format + " / " + v.Fstype
}

// diskSize is inspect's "size" line, "-" without a disk upper.
func diskSize(v artifactView) string {
	if v.UpperFile == "" {
		return "-"
	}
	return fmt.Sprintf("%s (%d bytes)", humanBytes(v.SizeBytes), v.SizeBytes)
}

func snapshotVerify(e *env) *cobra.Command {
	return &cobra.Command{
		Use: "verify SNAPSHOT", Short: "Recompute a snapshot's digests and check them",
		Long: "Recompute a snapshot's manifest digest and recorded upper integrity, and check them.\n\n" + refHelp,
		Args: args(1, 1),
		RunE: func(c *cobra.Command, pos []string) error {
			home, err := e.openHome()
			if err != nil {
				return err
			}
			a, err := home.Snapshot.Open(e.ctx, pos[0])
			if err != nil {
				return err
			}
			r, err := a.Verify(e.withProgress(e.ctx))
			e.done()
			if err != nil {
				return err
			}
			if e.json {
				return printJSON(e.stdout, r)
			}
			if r.Upper.Kind == "not_recorded" {
				fmt.Fprintf(e.stdout, "%s: no integrity recorded (metadata checked only)\n", pos[0])
				return nil
			}
			fmt.Fprintf(e.stdout, "%s: verified (%s %s)\n", pos[0], r.Upper.Algorithm, r.Upper.Digest)
			return nil
		},
	}
}

func snapshotRemove(e *env) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use: "rm SNAPSHOT", Aliases: []string{"remove"}, Short: "Remove a snapshot and its index row",
		Long: "Remove a snapshot's artifact directory and its index row.\n\n" + refHelp,
		Args: args(1, 1),
	}
	c.Flags().BoolVar(&force, "force", false, "remove even when indexed snapshots have it as their parent")
	c.RunE = func(c *cobra.Command, pos []string) error {
		home, err := e.openHome()
		if err != nil {
			return err
		}
		if err := home.Snapshot.Remove(e.ctx, pos[0], force); err != nil {
			return err
		}
		if e.json {
			return printJSON(e.stdout, map[string]string{"removed": pos[0]})
		}
		fmt.Fprintf(e.stdout, "removed %s\n", pos[0])
		return nil
	}
	return c
}

func snapshotReindex(e *env) *cobra.Command {
	return &cobra.Command{
		Use: "reindex [DIR]", Short: "Rebuild the index from the artifacts on disk",
		Long: "Rebuild the index from the artifacts in DIR (default: the home's snapshots directory).",
		Args: args(0, 1),
		RunE: func(c *cobra.Command, pos []string) error {
			dir := ""
			if len(pos) == 1 {
				dir = pos[0]
			}
			home, err := e.openHome()
			if err != nil {
				return err
			}
			n, err := home.Snapshot.Reindex(e.ctx, dir)
			if err != nil {
				return err
			}
			if e.json {
				return printJSON(e.stdout, map[string]uint32{"indexed": n})
			}
			fmt.Fprintf(e.stdout, "indexed %d snapshots\n", n)
			return nil
		},
	}
}

// zstd's level range (ZSTD_minCLevel() to ZSTD_maxCLevel()), which the
// library checks again.
const minZstdLevel, maxZstdLevel = -131072, 22

// maxZstdThreads is zstd's limit on workers (ZSTDMT_NBWORKERS_MAX).
const maxZstdThreads = 256

func snapshotExport(e *env) *cobra.Command {
	var o m.SnapshotExportOptions
	var format formatFlag
	level := &intFlag{name: "level", min: minZstdLevel, max: maxZstdLevel, zeroIsDefault: true, what: "a zstd level"}
	threads := &intFlag{name: "threads", min: 1, max: maxZstdThreads, zeroIsDefault: true, what: "zstd workers"}
	c := &cobra.Command{
		Use: "export SNAPSHOT OUT", Short: "Write a snapshot to a .tar.zst (or .tar) archive",
		Long: "Write a snapshot, and optionally its parents and base image, to the archive OUT.\n\n" + refHelp,
		Args: args(2, 2),
	}
	c.Flags().BoolVar(&o.WithParents, "with-parents", false, "include the snapshot's parent chain")
	c.Flags().BoolVar(&o.WithImage, "with-image", false, "include the base OCI image")
	c.Flags().BoolVar(&o.PlainTar, "plain-tar", false, "write an uncompressed .tar")
	c.Flags().BoolVar(&o.Dense, "dense", false, "write upper disks as plain entries, not sparse ones (for microsandbox v0.6.3)")
	c.Flags().Var(level, "level", fmt.Sprintf("zstd compression level, %d to %d (default: the library's)", minZstdLevel, maxZstdLevel))
	c.Flags().Var(threads, "threads", fmt.Sprintf("zstd worker threads, 1 to %d (default: the cores, at most 4)", maxZstdThreads))
	c.Flags().Var(&format, "format", "write the archive in `FORMAT`: msb-v0.6.3 (default) or msb-v0.6.14 (current microsandbox's layout; "+
		"converts v0.6.3 snapshots, no --with-image or --dense)")
	c.RunE = func(c *cobra.Command, pos []string) error {
		o.Level, o.Threads, o.Format = level.value, threads.value, format.value
		home, err := e.openHome()
		if err != nil {
			return err
		}
		r, err := home.Snapshot.ExportWithReport(e.withProgress(e.ctx), pos[0], pos[1], o)
		e.done()
		if err != nil {
			return err
		}
		if e.json {
			return printJSON(e.stdout, r)
		}
		fmt.Fprintf(e.stdout, "exported %s to %s (%d snapshots, %s)\n", pos[0], r.Path, len(r.Snapshots), humanBytes(r.BytesWritten))
		return nil
	}
	return c
}

func snapshotImport(e *env) *cobra.Command {
	var dest, name string
	c := &cobra.Command{
		Use: "import ARCHIVE", Short: "Unpack and index a snapshot archive",
		Long: `Unpack a snapshot archive (.tar.zst or .tar) into DIR (default: the home's
snapshots directory) under the directory names the archive carries, and index
it. Prints the archive's head snapshot.`,
		Args: args(1, 1),
	}
	c.Flags().StringVar(&dest, "dest", "", "unpack into `DIR` (default: the home's snapshots directory)")
	c.Flags().StringVar(&name, "name", "", "install the head snapshot as DIR/`NAME` instead of the name the archive carries")
	c.RunE = func(c *cobra.Command, pos []string) error {
		if c.Flags().Changed("name") {
			if err := bareName(name); err != nil {
				return err
			}
		}
		if err := mustExist(pos[0], "archive"); err != nil {
			return err
		}
		home, err := e.openHome()
		if err != nil {
			return err
		}
		h, err := home.Snapshot.ImportWithOptions(e.withProgress(e.ctx), pos[0],
			m.SnapshotImportOptions{Dest: dest, Name: name})
		e.done()
		if err != nil {
			return err
		}
		if e.json {
			return printJSON(e.stdout, viewHandle(h))
		}
		fmt.Fprintf(e.stdout, "imported %s as %s\n  digest %s\n", pos[0], h.Path(), h.Digest())
		return nil
	}
	return c
}

// mustExist is not_found (exit 3) for an input file that is not there, as
// for a snapshot, sandbox or image that is not.
func mustExist(path, what string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return notFound(fmt.Sprintf("%s %s: no such file or directory", what, path))
	}
	return nil
}
