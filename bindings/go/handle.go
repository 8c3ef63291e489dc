package microsnap

import (
	"context"
	"time"
)

// SnapshotHandle is a lightweight view of a snapshot in the home's local
// index. Its fields are unexported; read them through the accessors, which
// are plain field reads. Open and Remove take a context.
type SnapshotHandle struct {
	home *Home
	h    handleJSON
}

// handleJSON is the library's snapshot handle object (docs/abi.md), as
// handle_json.go decodes it. It is shaped for listings of thousands: the
// nullable members are values with a presence flag rather than pointers,
// and labels are the pairs the library sent rather than a map (a map each
// would be most of a listing's memory); the accessors build the pointers
// and the map, which they copy anyway.
type handleJSON struct {
	Digest              string
	Name                optional[string]
	ParentDigest        optional[string]
	ImageRef            string
	ImageManifestDigest string
	Format              string
	Fstype              string
	SizeBytes           optional[uint64]
	Path                string
	CreatedAtUnixNanos  int64    // created_at, the same time as text, is checked but not kept
	Labels              []string // key, value, key, value, ...; keys unique
	ChildCount          uint64
}

// optional is a JSON member that may be null.
type optional[T any] struct {
	value T
	set   bool
}

func some[T any](v T) optional[T] { return optional[T]{v, true} }

// ptr returns a pointer to a copy of the value, or nil for null.
func (o optional[T]) ptr() *T {
	if !o.set {
		return nil
	}
	v := o.value
	return &v
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

// Format returns the upper-layer disk format: "raw" or "qcow2".
func (h *SnapshotHandle) Format() string { return h.h.Format }

// Fstype returns the filesystem type inside the upper layer.
func (h *SnapshotHandle) Fstype() string { return h.h.Fstype }

// SizeBytes returns the apparent upper size at index time, or nil if
// unknown. It returns a defensive copy.
func (h *SnapshotHandle) SizeBytes() *uint64 { return h.h.SizeBytes.ptr() }

// Path returns the artifact directory on disk.
func (h *SnapshotHandle) Path() string { return h.h.Path }

// CreatedAt returns the snapshot's creation time, decoded from the index's
// Unix timestamp (in UTC).
func (h *SnapshotHandle) CreatedAt() time.Time { return time.Unix(0, h.h.CreatedAtUnixNanos).UTC() }

// Labels returns the user labels recorded in the index (never nil). It
// returns a defensive copy.
func (h *SnapshotHandle) Labels() map[string]string {
	labels := make(map[string]string, len(h.h.Labels)/2)
	for i := 0; i+1 < len(h.h.Labels); i += 2 {
		labels[h.h.Labels[i]] = h.h.Labels[i+1]
	}
	return labels
}

// ChildCount returns how many indexed snapshots name this one as parent.
func (h *SnapshotHandle) ChildCount() uint64 { return h.h.ChildCount }

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
