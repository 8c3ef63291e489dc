package microsnap

/*
#include "msnap_go.h"
*/
import "C"

import "context"

// ImagePruneOptions says how PruneImages runs.
type ImagePruneOptions struct {
	// DryRun reports what would be removed and changes nothing.
	DryRun bool `json:"dry_run,omitzero"`
}

// PrunedBlob is one blob PruneImages removed (or would remove).
type PrunedBlob struct {
	Digest string `json:"digest"`
	// Size is the file's length in bytes.
	Size uint64 `json:"size"`
	// AllocatedBytes is what it occupied on disk (st_blocks * 512).
	AllocatedBytes uint64 `json:"allocated_bytes"`
}

// ImagePruneReport is what PruneImages did.
type ImagePruneReport struct {
	DryRun bool `json:"dry_run"`
	// Removed lists the blobs removed, in digest order.
	Removed []PrunedBlob `json:"removed"`
	// UntaggedRemoved lists the digests of the unnamed index.json entries
	// dropped because nothing pinned them.
	UntaggedRemoved []string `json:"untagged_removed"`
	// BlobsKept counts the blobs left in place.
	BlobsKept uint64 `json:"blobs_kept"`
	// BlobsKeptYoung counts, of those, unneeded blobs modified after the
	// prune started (a writer that takes no lock may be adding them).
	BlobsKeptYoung uint64 `json:"blobs_kept_young"`
	// BytesFreed is the allocated bytes of what was removed.
	BytesFreed uint64 `json:"bytes_freed"`
	// LogicalBytesFreed is its logical size.
	LogicalBytesFreed uint64 `json:"logical_bytes_freed"`
	// TempFilesRemoved counts leftover temp files of killed writers removed.
	TempFilesRemoved uint64 `json:"temp_files_removed"`
}

// PruneImages removes the blobs of this home's OCI image layout that no
// tagged image, sandbox or snapshot needs, and the unnamed index.json
// entries nothing pins; the layout stays valid for OCI tools. It waits while
// an import or sandbox create is adding blobs (ctx cancels the wait). A
// snapshot directory whose descriptor cannot be read makes it fail with
// ErrInvalidManifest, removing nothing.
func (h *Home) PruneImages(ctx context.Context, opts ImagePruneOptions) (*ImagePruneReport, error) {
	var r ImagePruneReport
	err := h.long(ctx, "image_prune", opts, &r,
		func(out **C.char, native *C.msnap_context, args *C.char, cancel *C.msnap_cancel, monitor C.uintptr_t) C.int32_t {
			return C.go_image_prune(out, native, args, cancel, monitor)
		})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// Space is a logical, allocated and shared byte count.
type Space struct {
	// LogicalBytes is the sum of the files' lengths.
	LogicalBytes uint64 `json:"logical_bytes"`
	// AllocatedBytes is what they occupy on disk (st_blocks * 512, as du).
	AllocatedBytes uint64 `json:"allocated_bytes"`
	// SharedBytes is, of those, the bytes in extents the filesystem reports
	// shared with other files (reflinks on XFS or btrfs; 0 on ext4), and for
	// an image the blobs another image needs too.
	SharedBytes uint64 `json:"shared_bytes"`
}

// UsageItem is one snapshot, sandbox or image and what it occupies.
type UsageItem struct {
	// Name is the snapshot's bare name (else its path), the sandbox's name,
	// or the image's ref (else its digest).
	Name string `json:"name"`
	// Digest is the snapshot's or image's digest; nil for a sandbox.
	Digest *string `json:"digest"`
	// Path is the snapshot's or sandbox's directory; nil for an image.
	Path *string `json:"path"`
	Space
}

// Usage is what a home's snapshots, sandboxes and images occupy.
type Usage struct {
	Snapshots []UsageItem `json:"snapshots"`
	Sandboxes []UsageItem `json:"sandboxes"`
	Images    []UsageItem `json:"images"`
	// UnreferencedImages is what PruneImages would reclaim.
	UnreferencedImages Space `json:"unreferenced_images"`
	// Cache is the home's cache/ directory: derived data (leaf lists for
	// push and pull), rebuilt when needed if deleted.
	Cache Space `json:"cache"`
	// Total counts every file once (a blob two images share counts once).
	Total Space `json:"total"`
}

// Usage measures this home: logical, allocated and shared bytes of every
// snapshot, sandbox and image, plus totals.
func (h *Home) Usage(ctx context.Context) (*Usage, error) {
	var r Usage
	err := h.quick(ctx, "home_usage", struct{}{}, &r,
		func(out **C.char, native *C.msnap_context, args *C.char) C.int32_t {
			return C.msnap_home_usage(out, native, args)
		})
	if err != nil {
		return nil, err
	}
	return &r, nil
}
