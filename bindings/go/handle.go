package microsnap

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// SnapshotHandle is a lightweight view of a snapshot in the home's local
// index. Its fields are unexported; read them through the accessors, which
// are plain field reads. Open and Remove take a context.
type SnapshotHandle struct {
	home *Home
	h    handleJSON
}

// handleJSON is the library's snapshot handle object (docs/abi.md).
type handleJSON struct {
	Digest              string           `json:"digest"`
	Name                optional[string] `json:"name"`
	ParentDigest        optional[string] `json:"parent_digest"`
	ImageRef            string           `json:"image_ref"`
	ImageManifestDigest string           `json:"image_manifest_digest"`
	Format              string           `json:"format"`
	Fstype              string           `json:"fstype"`
	SizeBytes           optional[uint64] `json:"size_bytes"`
	Path                string           `json:"path"`
	CreatedAt           string           `json:"created_at"` // the same time as CreatedAtUnixNanos, as text
	CreatedAtUnixNanos  int64            `json:"created_at_unix_nanos"`
	Labels              labels           `json:"labels"`
	ChildCount          uint64           `json:"child_count"`
	ArtifactFormat      string           `json:"artifact_format"`
}

// handleListResult is snapshot_list's result.
type handleListResult struct {
	Snapshots handleSlice `json:"snapshots"`
}

// handles returns the listing's handles, on home h. An empty index lists
// as [], not nil.
func (r *handleListResult) handles(h *Home) ([]*SnapshotHandle, error) {
	if r.Snapshots == nil {
		return nil, badResult("snapshot_list", errors.New(`missing member "snapshots"`))
	}
	for _, handle := range r.Snapshots {
		handle.home = h
	}
	return r.Snapshots, nil
}

// decodeOptions lets the tokenizer skip its check for repeated member
// names, a fifth of a listing's decode: the handle decoder checks its own
// members, and handleSlice refuses a second "snapshots". (An unknown member
// is skipped whether repeated or not.)
func (*handleListResult) decodeOptions() json.Options {
	return jsontext.AllowDuplicateNames(true)
}

// handleSlice reads an array of handle objects, each straight into the
// SnapshotHandle List returns: a listing has thousands, and decoding into
// a []handleJSON first would copy each one, and the growing array again.
// The handles' home is left to the caller.
type handleSlice []*SnapshotHandle

func (s *handleSlice) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	if *s != nil {
		return errors.New(`duplicate member "snapshots"`)
	}
	*s = handleSlice{}
	if kind := dec.PeekKind(); kind != '[' {
		return fmt.Errorf("expected an array of handles, found %v", kind)
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	pool := new(stringPool)
	for dec.PeekKind() != ']' {
		h := new(SnapshotHandle)
		if err := h.h.decode(dec, pool); err != nil {
			return err
		}
		*s = append(*s, h)
	}
	_, err := dec.ReadToken()
	return err
}

func newHandle(home *Home, h handleJSON) *SnapshotHandle {
	return &SnapshotHandle{home: home, h: h}
}

// Digest returns the manifest digest.
func (h *SnapshotHandle) Digest() string { return h.h.Digest }

// Name returns the bare-name alias if the snapshot was indexed with one,
// otherwise nil. It returns a defensive copy.
func (h *SnapshotHandle) Name() *string { return h.h.Name.ptr() }

// ParentDigest returns the parent's digest, or nil. It returns a defensive
// copy.
func (h *SnapshotHandle) ParentDigest() *string { return h.h.ParentDigest.ptr() }

// ImageRef returns the pinned image reference.
func (h *SnapshotHandle) ImageRef() string { return h.h.ImageRef }

// ImageManifestDigest returns the pinned OCI manifest digest of the base
// image.
func (h *SnapshotHandle) ImageManifestDigest() string { return h.h.ImageManifestDigest }

// Format returns the upper-layer disk format: "raw" or "qcow2" ("" for a
// microsandbox v0.6.14 checkpoint-state snapshot, which has no disk upper).
func (h *SnapshotHandle) Format() string { return h.h.Format }

// Fstype returns the filesystem type inside the upper layer.
func (h *SnapshotHandle) Fstype() string { return h.h.Fstype }

// SizeBytes returns the apparent upper size at index time, or nil if
// unknown (as for a checkpoint-state snapshot, which has no disk upper). It returns a defensive copy.
func (h *SnapshotHandle) SizeBytes() *uint64 { return h.h.SizeBytes.ptr() }

// Path returns the artifact directory on disk.
func (h *SnapshotHandle) Path() string { return h.h.Path }

// CreatedAt returns the snapshot's creation time, decoded from the index's
// Unix timestamp (in UTC).
func (h *SnapshotHandle) CreatedAt() time.Time { return time.Unix(0, h.h.CreatedAtUnixNanos).UTC() }

// Labels returns the user labels recorded in the index (never nil). It
// returns a defensive copy.
func (h *SnapshotHandle) Labels() map[string]string {
	pairs := h.h.Labels.pairs
	labels := make(map[string]string, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		labels[pairs[i]] = pairs[i+1]
	}
	return labels
}

// ChildCount returns how many indexed snapshots name this one as parent.
func (h *SnapshotHandle) ChildCount() uint64 { return h.h.ChildCount }

// ArtifactFormat returns the format of the artifact's descriptor:
// FormatMsbV063 ("msb-v0.6.3", manifest.json) or FormatMsbV0614
// ("msb-v0.6.14", snapshot.json, current microsandbox).
func (h *SnapshotHandle) ArtifactFormat() string { return h.h.ArtifactFormat }

// Open opens the underlying artifact's metadata. It is equivalent to
// Snapshot.Open on this handle's path.
func (h *SnapshotHandle) Open(ctx context.Context) (*SnapshotArtifact, error) {
	return snapshotFactory{home: h.home}.Open(ctx, h.h.Path)
}

// Remove removes this snapshot. It is equivalent to Snapshot.Remove on
// this handle's digest.
func (h *SnapshotHandle) Remove(ctx context.Context, force bool) error {
	return snapshotFactory{home: h.home}.Remove(ctx, h.h.Digest, force)
}
