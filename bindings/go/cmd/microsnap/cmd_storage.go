package main

import (
	"fmt"

	m "github.com/microsnap/microsnap/bindings/go"
	"github.com/spf13/cobra"
)

// imagePrune is `microsnap image prune`: image garbage collection.
func imagePrune(e *env) *cobra.Command {
	var dryRun bool
	c := &cobra.Command{
		Use: "prune", Short: "Remove image blobs no tagged image, sandbox or snapshot needs",
		Long: `Remove the blobs of the home's OCI image layout that no tagged image, no
sandbox and no snapshot needs (following image indexes to their manifests
and manifests to their config and layers), and the unnamed index.json
entries nothing pins. index.json is rewritten before any blob is deleted, so
an interrupted prune leaves a valid layout (skopeo and umoci read it).

It waits while a microsnap import or sandbox create is adding blobs, and
never deletes a blob modified after it started; do not run skopeo copy into
the home's layout at the same time. A snapshot directory whose descriptor
cannot be read stops it (exit code of invalid_manifest) before anything is
removed. Leftover temp files of killed writers are removed too; microsnap
keeps no other caches.`,
		Args: args(0, 0),
	}
	c.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be removed; change nothing")
	c.RunE = func(c *cobra.Command, _ []string) error {
		home, err := e.openHome()
		if err != nil {
			return err
		}
		r, err := home.PruneImages(e.ctx, m.ImagePruneOptions{DryRun: dryRun})
		if err != nil {
			return err
		}
		if e.json {
			return printJSON(e.stdout, r)
		}
		verb := "removed"
		if r.DryRun {
			verb = "would remove"
		}
		for _, d := range r.UntaggedRemoved {
			fmt.Fprintf(e.stdout, "%s untagged %s\n", verb, d)
		}
		for _, b := range r.Removed {
			fmt.Fprintf(e.stdout, "%s %s (%s)\n", verb, b.Digest, humanBytes(b.AllocatedBytes))
		}
		kept, freed := "kept", "freed"
		if r.DryRun {
			kept, freed = "would keep", "would free"
		}
		fmt.Fprintf(e.stdout, "%s %d blobs, %s %d", verb, len(r.Removed), kept, r.BlobsKept)
		if r.BlobsKeptYoung > 0 {
			fmt.Fprintf(e.stdout, " (%d newer than the prune)", r.BlobsKeptYoung)
		}
		if r.TempFilesRemoved > 0 {
			fmt.Fprintf(e.stdout, "; %s %d temp files", verb, r.TempFilesRemoved)
		}
		fmt.Fprintf(e.stdout, "; %s %s\n", freed, humanBytes(r.BytesFreed))
		return nil
	}
	return c
}

// diskUsage is `microsnap df`: storage accounting, like `docker system df -v`.
func diskUsage(e *env) *cobra.Command {
	return &cobra.Command{
		Use: "df", Short: "Show what snapshots, sandboxes and images occupy",
		Long: `Show, for every snapshot, sandbox and image of the home, its logical size
(file lengths), the bytes it occupies on disk (allocated, as du says) and how
many of those are shared with something else: extents the filesystem reports
shared (reflink copies on XFS or btrfs; always 0 on ext4) and, for an image,
blobs another image needs too. UNREFERENCED is what "image prune" would
reclaim. TOTAL counts every file once.`,
		Args: args(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			home, err := e.openHome()
			if err != nil {
				return err
			}
			u, err := home.Usage(e.ctx)
			if err != nil {
				return err
			}
			if e.json {
				return printJSON(e.stdout, u)
			}
			table(e.stdout, []string{"TYPE", "NAME", "LOGICAL", "ALLOCATED", "SHARED"}, usageRows(u))
			return nil
		},
	}
}

func usageRows(u *m.Usage) [][]string {
	var rows [][]string
	add := func(kind, name string, s m.Space) {
		rows = append(rows, []string{kind, name, humanBytes(s.LogicalBytes), humanBytes(s.AllocatedBytes), humanBytes(s.SharedBytes)})
	}
	for _, s := range u.Snapshots {
		add("snapshot", s.Name, s.Space)
	}
	for _, s := range u.Sandboxes {
		add("sandbox", s.Name, s.Space)
	}
	for _, i := range u.Images {
		name := i.Name
		if i.Digest != nil && name == *i.Digest {
			name = "<none> " + shortDigest(name)
		}
		add("image", name, i.Space)
	}
	add("unreferenced", "(image prune reclaims)", u.UnreferencedImages)
	add("cache", "(derived data)", u.Cache)
	add("TOTAL", "", u.Total)
	return rows
}
