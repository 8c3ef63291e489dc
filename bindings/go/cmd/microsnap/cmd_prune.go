package main

import (
	"fmt"
	"math"
	"strings"
	"time"

	m "github.com/microsnap/microsnap/bindings/go"
	"github.com/spf13/cobra"
)

const pruneHelp = `Remove the snapshots a retention policy does not keep, the way restic's
forget decides, and show every snapshot as removed or kept, with why.

Only snapshots carrying every --label are candidates (the others are kept as
not_selected). Candidates are grouped by the sandbox they were made from, or
by the value of a label (--group-by label:KEY). A candidate stays if any rule
keeps it: --keep-last N keeps the N newest of its group; --keep-within D
keeps those made within D of the newest of its group (not of now, as
restic's); --older-than D lets only snapshots made more than D ago go. At
least one of the three is needed.

A snapshot stays while a child of it stays (has_children) or while a sandbox
made from it exists (used_by_sandbox), unless --force; a whole chain goes
together, children first. --dry-run shows exactly what a run would remove.
Each removal is crash-safe, as rm's.

Durations: whole numbers with a unit s, m (minutes), h, d or w, combinable:
90m, 36h, 7d, 2w, 1d12h.

Reasons a snapshot is kept: keep_last, keep_within, not_old_enough,
not_selected, unreadable, has_children:CHILD, used_by_sandbox:SANDBOX.
FREED is the disk space the removed artifacts took (allocated blocks, not
their logical size).`

func snapshotPrune(e *env) *cobra.Command {
	var o m.SnapshotPruneOptions
	labels := labelFlags{}
	keepLast := &intFlag{name: "keep-last", min: 1, max: math.MaxInt32, what: "snapshots per group"}
	c := &cobra.Command{
		Use:   "prune [--keep-last N] [--keep-within D] [--older-than D] [--label k=v]...",
		Short: "Remove the snapshots a retention policy does not keep",
		Long:  pruneHelp,
		Example: `  microsnap snapshot prune --keep-last 24 --keep-within 7d --dry-run
  microsnap snapshot prune --label ci=true --older-than 36h
  microsnap snapshot prune --keep-last 3 --group-by label:branch`,
		Args: args(0, 0),
	}
	c.Flags().Var(labels, "label", "only snapshots with the label `k=v` are candidates (repeatable; all must match)")
	c.Flags().StringVar(&o.OlderThan, "older-than", "", "only snapshots made more than `D` ago may go (90m, 36h, 7d, 2w)")
	c.Flags().Var(keepLast, "keep-last", "keep the `N` newest snapshots of each group")
	c.Flags().StringVar(&o.GroupBy, "group-by", "", "group for the keep rules by `BY`: source_sandbox (default) or label:KEY")
	c.Flags().StringVar(&o.KeepWithin, "keep-within", "", "keep the snapshots made within `D` of the newest of their group")
	c.Flags().BoolVar(&o.DryRun, "dry-run", false, "show what would be removed; remove nothing")
	c.Flags().BoolVar(&o.Force, "force", false, "remove even snapshots that children or sandboxes still reference")
	c.RunE = func(c *cobra.Command, _ []string) error {
		o.Labels = labels
		o.KeepLast = keepLast.value
		home, err := e.openHome()
		if err != nil {
			return err
		}
		r, err := home.Snapshot.Prune(e.withProgress(e.ctx), o)
		e.done()
		if err != nil {
			return err
		}
		if r.Removed == nil {
			r.Removed = []m.PrunedSnapshot{}
		}
		if r.Kept == nil {
			r.Kept = []m.KeptSnapshot{}
		}
		if e.json {
			return printJSON(e.stdout, r)
		}
		printPrune(e, r)
		return nil
	}
	return c
}

func printPrune(e *env, r *m.SnapshotPruneReport) {
	removed, freed, keep := "removed", "freed", "kept"
	if r.DryRun {
		removed, freed, keep = "would remove", "would free", "would keep"
	}
	var rows [][]string
	for _, s := range r.Removed {
		rows = append(rows, []string{removed, prunedName(s.Name, s.Path), shortDigest(s.Digest),
			orDash(s.Group), localTime(s.CreatedAt), humanBytes(s.AllocatedBytes), "-"})
	}
	for _, s := range r.Kept {
		reasons := make([]string, len(s.Reasons))
		for i, why := range s.Reasons {
			// has_children:sha256:<64 hex> reads better shortened.
			if code, ref, ok := strings.Cut(why, ":"); ok && strings.HasPrefix(ref, "sha256:") {
				why = code + ":" + shortDigest(ref)
			}
			reasons[i] = why
		}
		rows = append(rows, []string{keep, prunedName(s.Name, s.Path), shortDigest(s.Digest),
			orDash(s.Group), localTime(s.CreatedAt), "-", strings.Join(reasons, ", ")})
	}
	if len(rows) > 0 {
		table(e.stdout, []string{"ACTION", "NAME", "DIGEST", "GROUP", "CREATED", "FREED", "REASON"}, rows)
	}
	fmt.Fprintf(e.stdout, "%s %d snapshots, %s %d; %s %s\n", removed, len(r.Removed), keep, len(r.Kept),
		freed, humanBytes(r.BytesFreed))
}

// prunedName is what ls shows for a snapshot: its bare name, else its path.
func prunedName(name *string, path string) string {
	if name != nil {
		return *name
	}
	return path
}

// localTime shows a created_at as ls does; text that does not parse as
// written.
func localTime(created string) string {
	t, err := time.Parse(time.RFC3339Nano, created)
	if err != nil {
		return created
	}
	return t.Local().Format("2006-01-02 15:04:05")
}
