package microsnap

/*
#include "msnap_go.h"
*/
import "C"

import "context"

// SnapshotPruneOptions is the retention policy of Snapshot.Prune, the way
// restic's forget takes it. A snapshot is a candidate when its labels
// include every Labels pair; a candidate stays if any keep rule keeps it
// (KeepLast, KeepWithin), and only one older than OlderThan may go. At
// least one of KeepLast, KeepWithin and OlderThan must be set.
//
// Durations are text the library reads, so the CLI and every binding take
// the same ones: whole numbers with a unit s, m (minutes), h, d (24 h) or
// w (7 d), combinable ("90m", "36h", "7d", "2w", "1d12h"); "" is unset.
type SnapshotPruneOptions struct {
	// Labels selects the candidates: every pair must match.
	Labels map[string]string
	// OlderThan lets only snapshots created more than this long ago go.
	OlderThan string
	// KeepLast keeps the N newest snapshots of each group; 0 is unset.
	KeepLast int
	// GroupBy groups the candidates for KeepLast and KeepWithin:
	// "source_sandbox" (the default, also for "") or "label:KEY".
	GroupBy string
	// KeepWithin keeps the snapshots created at most this long before the
	// newest of their group (not before now, as restic's --keep-within).
	KeepWithin string
	// DryRun decides and reports, and removes nothing.
	DryRun bool
	// Force removes what the rules select even while children or sandboxes
	// still reference it.
	Force bool
}

type pruneArgs struct {
	Labels     map[string]string `json:"labels,omitempty"`
	OlderThan  string            `json:"older_than,omitzero"`
	KeepLast   *int              `json:"keep_last,omitzero"`
	GroupBy    string            `json:"group_by,omitzero"`
	KeepWithin string            `json:"keep_within,omitzero"`
	DryRun     bool              `json:"dry_run,omitzero"`
	Force      bool              `json:"force,omitzero"`
}

// SnapshotPruneReport is what a prune removed and kept. Every indexed
// snapshot is in exactly one of the two lists.
type SnapshotPruneReport struct {
	// DryRun is true when nothing was removed (Removed is what would go).
	DryRun bool `json:"dry_run"`
	// Removed lists the removed snapshots in removal order, children
	// before parents.
	Removed []PrunedSnapshot `json:"removed"`
	// Kept lists the kept snapshots, newest first, each with its reasons.
	Kept []KeptSnapshot `json:"kept"`
	// BytesFreed is the sum of the removed snapshots' AllocatedBytes.
	BytesFreed uint64 `json:"bytes_freed"`
}

// PrunedSnapshot is one snapshot a prune removed (or would remove).
type PrunedSnapshot struct {
	Digest string `json:"digest"`
	// Name is the bare name; nil for an artifact outside the home's
	// snapshots directory.
	Name *string `json:"name"`
	Path string  `json:"path"`
	// CreatedAt is the descriptor's created_at, as written.
	CreatedAt string `json:"created_at"`
	// Group is the group the keep rules saw it in (its source sandbox or
	// the GroupBy label's value); nil when it has none.
	Group *string `json:"group"`
	// AllocatedBytes is what its files took on disk (st_blocks * 512), not
	// their logical size.
	AllocatedBytes uint64 `json:"allocated_bytes"`
}

// KeptSnapshot is one snapshot a prune kept.
type KeptSnapshot struct {
	Digest    string  `json:"digest"`
	Name      *string `json:"name"`
	Path      string  `json:"path"`
	CreatedAt string  `json:"created_at"`
	Group     *string `json:"group"`
	// Reasons says why, never empty: "keep_last", "keep_within",
	// "not_old_enough", "not_selected", "unreadable",
	// "has_children:<child>", "used_by_sandbox:<sandbox>" (docs/abi.md,
	// "Prune").
	Reasons []string `json:"reasons"`
}

// Prune removes the snapshots the retention policy opts does not keep and
// reports every indexed snapshot as removed or kept, with why. A snapshot
// whose child stays, or that a sandbox was created from, stays unless
// opts.Force. Removals go children first, each crash-safe as Remove; a
// cancelled ctx stops between two removals. Bad options (no rule, an
// unreadable duration) are ErrInvalidArgument.
func (f snapshotFactory) Prune(ctx context.Context, opts SnapshotPruneOptions) (*SnapshotPruneReport, error) {
	h, err := f.resolve()
	if err != nil {
		return nil, err
	}
	args := pruneArgs{
		Labels: opts.Labels, OlderThan: opts.OlderThan, GroupBy: opts.GroupBy,
		KeepWithin: opts.KeepWithin, DryRun: opts.DryRun, Force: opts.Force,
	}
	if opts.KeepLast < 0 {
		// The library reads a count as unsigned; say what is wrong here.
		return nil, &Error{Code: CodeInvalidArgument, Name: CodeInvalidArgument.String(),
			Message: "keep_last must be at least 1 (0 leaves it unset)"}
	}
	if opts.KeepLast != 0 {
		args.KeepLast = &opts.KeepLast
	}
	var r SnapshotPruneReport
	err = h.long(ctx, "snapshot_prune", args, &r,
		func(out **C.char, native *C.msnap_context, args *C.char, cancel *C.msnap_cancel, monitor C.uintptr_t) C.int32_t {
			return C.go_snapshot_prune(out, native, args, cancel, monitor)
		})
	if err != nil {
		return nil, err
	}
	return &r, nil
}
