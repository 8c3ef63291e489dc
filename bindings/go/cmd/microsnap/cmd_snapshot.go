package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	m "github.com/microsnap/microsnap/bindings/go"
)

func init() {
	register("snapshot", "create", "create NAME|PATH --from SANDBOX [--label k=v]... [--integrity] [--integrity-algorithm A] [--force]", snapshotCreate)
	register("snapshot", "ls", "ls", snapshotList)
	register("snapshot", "inspect", "inspect NAME [--verify]", snapshotInspect)
	register("snapshot", "verify", "verify NAME", snapshotVerify)
	register("snapshot", "rm", "rm NAME [--force]", snapshotRemove)
	register("snapshot", "reindex", "reindex [DIR]", snapshotReindex)
	register("snapshot", "export", "export NAME OUT [--with-parents] [--with-image] [--plain-tar] [--dense] [--level N] [--threads N]", snapshotExport)
	register("snapshot", "import", "import ARCHIVE [--dest DIR]", snapshotImport)
}

// artifactView is the JSON shape of an artifact in CLI output.
type artifactView struct {
	Path                string            `json:"path"`
	Digest              string            `json:"digest"`
	Format              string            `json:"format"`
	Fstype              string            `json:"fstype"`
	ImageRef            string            `json:"image_ref"`
	ImageManifestDigest string            `json:"image_manifest_digest"`
	Parent              *string           `json:"parent"`
	CreatedAt           string            `json:"created_at"`
	Labels              map[string]string `json:"labels"`
	SizeBytes           uint64            `json:"size_bytes"`
	IntegrityAlgorithm  string            `json:"integrity_algorithm,omitempty"`
	IntegrityDigest     string            `json:"integrity_digest,omitempty"`
	SourceSandbox       *string           `json:"source_sandbox"`
}

func viewArtifact(a *m.SnapshotArtifact) artifactView {
	return artifactView{
		Path: a.Path(), Digest: a.Digest(), Format: a.Format(), Fstype: a.Fstype(),
		ImageRef: a.ImageRef(), ImageManifestDigest: a.ImageManifestDigest(),
		Parent: a.Parent(), CreatedAt: a.CreatedAt(), Labels: a.Labels(),
		SizeBytes: a.SizeBytes(), IntegrityAlgorithm: a.IntegrityAlgorithm(),
		IntegrityDigest: a.IntegrityDigest(), SourceSandbox: a.SourceSandbox(),
	}
}

// handleView is the JSON shape of an indexed snapshot in CLI output.
type handleView struct {
	Name         *string   `json:"name"`
	Digest       string    `json:"digest"`
	ParentDigest *string   `json:"parent_digest"`
	ImageRef     string    `json:"image_ref"`
	Format       string    `json:"format"`
	SizeBytes    *uint64   `json:"size_bytes"`
	Path         string    `json:"path"`
	CreatedAt    time.Time `json:"created_at"`
	Children     uint64    `json:"child_count"`
}

func viewHandle(h *m.SnapshotHandle) handleView {
	return handleView{
		Name: h.Name(), Digest: h.Digest(), ParentDigest: h.ParentDigest(),
		ImageRef: h.ImageRef(), Format: h.Format(), SizeBytes: h.SizeBytes(),
		Path: h.Path(), CreatedAt: h.CreatedAt(), Children: h.ChildCount(),
	}
}

func snapshotCreate(e *env, args []string) error {
	fs := flag.NewFlagSet("snapshot create", flag.ContinueOnError)
	from := fs.String("from", "", "source sandbox")
	integrity := fs.Bool("integrity", false, "record content integrity")
	algorithm := fs.String("integrity-algorithm", "", "integrity algorithm")
	force := fs.Bool("force", false, "replace an existing artifact")
	labels := labelFlags{}
	fs.Var(labels, "label", "k=v label (repeatable)")
	pos, err := parseFlags(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if *from == "" {
		return usageError("snapshot create needs --from SANDBOX")
	}
	opts := m.SnapshotCreateOptions{Labels: labels, Force: *force,
		RecordIntegrity: *integrity || *algorithm != "", IntegrityAlgorithm: *algorithm}
	if strings.Contains(pos[0], "/") {
		opts.Path = pos[0]
	} else {
		opts.Name = pos[0]
	}
	a, err := e.home.Snapshot.Create(e.withProgress(e.ctx), *from, opts)
	e.done()
	if err != nil {
		return err
	}
	if e.json {
		return printJSON(e.stdout, viewArtifact(a))
	}
	fmt.Fprintf(e.stdout, "created %s\n  digest %s\n  parent %s\n  size   %s\n", a.Path(), a.Digest(),
		orDash(a.Parent()), humanBytes(a.SizeBytes()))
	if alg := a.IntegrityAlgorithm(); alg != "" {
		fmt.Fprintf(e.stdout, "  integrity %s %s\n", alg, a.IntegrityDigest())
	}
	return nil
}

func snapshotList(e *env, args []string) error {
	fs := flag.NewFlagSet("snapshot ls", flag.ContinueOnError)
	if _, err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	list, err := e.home.Snapshot.List(e.ctx)
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
		rows[i] = []string{orDash(h.Name()), shortDigest(h.Digest()), parent, h.ImageRef(), size,
			fmt.Sprint(h.ChildCount()), h.CreatedAt().Local().Format("2006-01-02 15:04:05")}
	}
	if e.json {
		return printJSON(e.stdout, views)
	}
	table(e.stdout, []string{"NAME", "DIGEST", "PARENT", "IMAGE", "SIZE", "CHILDREN", "CREATED"}, rows)
	return nil
}

func snapshotInspect(e *env, args []string) error {
	fs := flag.NewFlagSet("snapshot inspect", flag.ContinueOnError)
	verify := fs.Bool("verify", false, "also recompute integrity")
	pos, err := parseFlags(fs, args, 1, 1)
	if err != nil {
		return err
	}
	a, err := e.home.Snapshot.Open(e.ctx, pos[0])
	if err != nil {
		return err
	}
	out := struct {
		artifactView
		Verify *m.SnapshotVerifyReport `json:"verify,omitempty"`
	}{artifactView: viewArtifact(a)}
	if *verify {
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
		{"path", v.Path}, {"digest", v.Digest}, {"parent", orDash(v.Parent)},
		{"image", v.ImageRef + " @ " + v.ImageManifestDigest}, {"format", v.Format + " / " + v.Fstype},
		{"size", fmt.Sprintf("%s (%d bytes)", humanBytes(v.SizeBytes), v.SizeBytes)},
		{"created", v.CreatedAt}, {"source", orDash(v.SourceSandbox)},
	}
	if v.IntegrityAlgorithm != "" {
		lines = append(lines, [2]string{"integrity", v.IntegrityAlgorithm + " " + v.IntegrityDigest})
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
		fmt.Fprintf(e.stdout, "%-10s %s\n", l[0], l[1])
	}
	return nil
}

func snapshotVerify(e *env, args []string) error {
	fs := flag.NewFlagSet("snapshot verify", flag.ContinueOnError)
	pos, err := parseFlags(fs, args, 1, 1)
	if err != nil {
		return err
	}
	a, err := e.home.Snapshot.Open(e.ctx, pos[0])
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
}

func snapshotRemove(e *env, args []string) error {
	fs := flag.NewFlagSet("snapshot rm", flag.ContinueOnError)
	force := fs.Bool("force", false, "remove even with indexed children")
	pos, err := parseFlags(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := e.home.Snapshot.Remove(e.ctx, pos[0], *force); err != nil {
		return err
	}
	if e.json {
		return printJSON(e.stdout, map[string]string{"removed": pos[0]})
	}
	fmt.Fprintf(e.stdout, "removed %s\n", pos[0])
	return nil
}

func snapshotReindex(e *env, args []string) error {
	fs := flag.NewFlagSet("snapshot reindex", flag.ContinueOnError)
	pos, err := parseFlags(fs, args, 0, 1)
	if err != nil {
		return err
	}
	dir := ""
	if len(pos) == 1 {
		dir = pos[0]
	}
	n, err := e.home.Snapshot.Reindex(e.ctx, dir)
	if err != nil {
		return err
	}
	if e.json {
		return printJSON(e.stdout, map[string]uint32{"indexed": n})
	}
	fmt.Fprintf(e.stdout, "indexed %d snapshots\n", n)
	return nil
}

func snapshotExport(e *env, args []string) error {
	fs := flag.NewFlagSet("snapshot export", flag.ContinueOnError)
	var o m.SnapshotExportOptions
	fs.BoolVar(&o.WithParents, "with-parents", false, "include the parent chain")
	fs.BoolVar(&o.WithImage, "with-image", false, "include the base OCI image")
	fs.BoolVar(&o.PlainTar, "plain-tar", false, "write an uncompressed .tar")
	fs.BoolVar(&o.Dense, "dense", false, "plain entries only (for microsandbox v0.6.3)")
	fs.IntVar(&o.Level, "level", 0, "zstd level")
	fs.IntVar(&o.Threads, "threads", 0, "zstd workers")
	pos, err := parseFlags(fs, args, 2, 2)
	if err != nil {
		return err
	}
	err = e.home.Snapshot.Export(e.withProgress(e.ctx), pos[0], pos[1], o)
	e.done()
	if err != nil {
		return err
	}
	if e.json {
		return printJSON(e.stdout, map[string]string{"snapshot": pos[0], "archive": pos[1]})
	}
	fmt.Fprintf(e.stdout, "exported %s to %s\n", pos[0], pos[1])
	return nil
}

func snapshotImport(e *env, args []string) error {
	fs := flag.NewFlagSet("snapshot import", flag.ContinueOnError)
	dest := fs.String("dest", "", "destination directory (default: the home's snapshots)")
	pos, err := parseFlags(fs, args, 1, 1)
	if err != nil {
		return err
	}
	h, err := e.home.Snapshot.Import(e.withProgress(e.ctx), pos[0], *dest)
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
