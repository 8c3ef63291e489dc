package microsnap

/*
#include "msnap_go.h"
*/
import "C"

import "context"

// SnapshotExportOptions configures Snapshot.Export.
type SnapshotExportOptions struct {
	// WithParents includes the snapshot's parent chain in the archive.
	WithParents bool
	// WithImage includes the base OCI image in the archive.
	WithImage bool
	// PlainTar writes an uncompressed .tar instead of .tar.zst.
	PlainTar bool
	// Dense writes upper files as plain regular tar entries instead of
	// sparse ones, for readers that take nothing else (microsandbox
	// v0.6.3 is one). The archive is larger; the content is the same.
	Dense bool
	// Level is the zstd compression level; 0 means the library default.
	Level int
	// Threads is the number of zstd worker threads; 0 means the library
	// default.
	Threads int
	// Format is the archive's layout: "" or FormatMsbV063 ("msb-v0.6.3",
	// the default) or FormatMsbV0614 ("msb-v0.6.14", current
	// microsandbox's archive layout). Another value is ErrInvalidArgument;
	// a library that cannot write the layout says ErrUnsupported.
	Format string
}

type exportArgs struct {
	Ref         string `json:"ref"`
	Out         string `json:"out"`
	WithParents bool   `json:"with_parents,omitzero"`
	WithImage   bool   `json:"with_image,omitzero"`
	PlainTar    bool   `json:"plain_tar,omitzero"`
	Dense       bool   `json:"dense,omitzero"`
	Level       *int   `json:"level,omitzero"`
	Threads     *int   `json:"threads,omitzero"`
	Format      string `json:"format,omitzero"`
}

// Export bundles a snapshot (bare name, digest or artifact path) into a
// .tar.zst archive at outPath. Set opts.PlainTar to skip compression, and
// opts.Format for the archive's layout (FormatMsbV063, the default, or
// FormatMsbV0614). A cancelled ctx stops the export and removes the
// partial archive.
func (f snapshotFactory) Export(ctx context.Context, nameOrPath, outPath string, opts SnapshotExportOptions) error {
	_, err := f.ExportWithReport(ctx, nameOrPath, outPath, opts)
	return err
}

// SnapshotExportReport is what an export wrote.
type SnapshotExportReport struct {
	// Path is the archive written.
	Path string `json:"path"`
	// Snapshots are the digests of the snapshots in the archive, parents
	// first.
	Snapshots []string `json:"snapshots"`
	// BytesWritten is the archive's size in bytes.
	BytesWritten uint64 `json:"bytes_written"`
}

// ExportWithReport is Export, returning the library's report of what it
// wrote.
func (f snapshotFactory) ExportWithReport(ctx context.Context, nameOrPath, outPath string, opts SnapshotExportOptions) (*SnapshotExportReport, error) {
	h, err := f.resolve()
	if err != nil {
		return nil, err
	}
	args := exportArgs{
		Ref: nameOrPath, Out: outPath,
		WithParents: opts.WithParents, WithImage: opts.WithImage,
		PlainTar: opts.PlainTar, Dense: opts.Dense,
		Format: opts.Format,
	}
	if opts.Level != 0 {
		args.Level = &opts.Level
	}
	if opts.Threads != 0 {
		args.Threads = &opts.Threads
	}
	var r SnapshotExportReport
	err = h.long(ctx, "snapshot_export", args, &r,
		func(out **C.char, native *C.msnap_context, args *C.char, cancel *C.msnap_cancel, monitor C.uintptr_t) C.int32_t {
			return C.go_snapshot_export(out, native, args, cancel, monitor)
		})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// Import unpacks a snapshot archive (.tar.zst or .tar, detected from its
// content) into the home's snapshots directory, or into dest if it is not
// "", and indexes it. It returns the handle of the archive's head snapshot
// (the last one that is no other's parent). A malformed or hostile archive
// is ErrInvalidArchive; a failed or cancelled import leaves nothing behind.
func (f snapshotFactory) Import(ctx context.Context, archive, dest string) (*SnapshotHandle, error) {
	return f.ImportWithOptions(ctx, archive, SnapshotImportOptions{Dest: dest})
}

// SnapshotImportOptions configures Snapshot.ImportWithOptions.
type SnapshotImportOptions struct {
	// Dest is the directory the artifacts are unpacked into; "" is the
	// home's snapshots directory.
	Dest string
	// Name, if not "", is the bare name the head is installed under in Dest,
	// instead of the directory name the archive carries; its ancestors keep
	// theirs.
	Name string
}

// ImportWithOptions is Import with a destination and a name for the head.
func (f snapshotFactory) ImportWithOptions(ctx context.Context, archive string, opts SnapshotImportOptions) (*SnapshotHandle, error) {
	h, err := f.resolve()
	if err != nil {
		return nil, err
	}
	args := struct {
		Archive string `json:"archive"`
		Dest    string `json:"dest,omitzero"`
		Name    string `json:"name,omitzero"`
	}{archive, opts.Dest, opts.Name}
	var r importResult
	err = h.long(ctx, "snapshot_import", args, &r,
		func(out **C.char, native *C.msnap_context, args *C.char, cancel *C.msnap_cancel, monitor C.uintptr_t) C.int32_t {
			return C.go_snapshot_import(out, native, args, cancel, monitor)
		})
	if err != nil {
		return nil, err
	}
	return newHandle(h, r.Head), nil
}

// importResult is snapshot_import's result. Import returns the head; the
// other imported handles, the image manifest digests and the members
// checked but not installed (a v0.6.14 archive's images/ cache) are read
// but not kept.
type importResult struct {
	Head     handleJSON   `json:"head"`
	Imported []handleJSON `json:"imported"`
	Images   []string     `json:"images"`
	Skipped  []string     `json:"skipped"`
}
