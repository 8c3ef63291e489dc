package microsnap

/*
#include "msnap_go.h"
*/
import "C"

import "context"

// snapshotFactory holds the snapshot functions of one home. The
// package-level Snapshot value works on the default home; Home.Snapshot on
// an explicit one.
type snapshotFactory struct {
	home *Home // nil: the default home (DefaultHome)
}

// Snapshot gives the snapshot functions on the default home
// ($MICROSNAP_HOME, else ~/.microsnap), e.g. m.Snapshot.Create(ctx, ...);
// Home.Snapshot gives the same functions on an explicit home. They are
// methods of an unexported type, as in the microsandbox Go SDK whose API
// this package reproduces, so go doc lists them here (a test keeps this
// list equal to the methods):
//
//	func (snapshotFactory) Create(ctx context.Context, sourceSandbox string, opts SnapshotCreateOptions) (*SnapshotArtifact, error)
//
// Create creates a snapshot from a stopped or crashed sandbox (or one never
// started). Set exactly one of opts.Name (resolved under the default
// snapshots directory) or opts.Path (an explicit artifact directory). A
// running sandbox is ErrSandboxRunning; a taken destination is
// ErrAlreadyExists unless opts.Force. opts.Format picks the artifact's
// layout (FormatMsbV063, the default, or FormatMsbV0614). A cancelled ctx
// stops the copy and leaves nothing behind.
//
//	func (snapshotFactory) Export(ctx context.Context, nameOrPath, outPath string, opts SnapshotExportOptions) error
//
// Export bundles a snapshot (bare name, digest or artifact path) into a
// .tar.zst archive at outPath. Set opts.PlainTar to skip compression, and
// opts.Format for the archive's layout (FormatMsbV063, the default, or
// FormatMsbV0614). A cancelled ctx stops the export and removes the
// partial archive.
//
//	func (snapshotFactory) ExportWithReport(ctx context.Context, nameOrPath, outPath string, opts SnapshotExportOptions) (*SnapshotExportReport, error)
//
// ExportWithReport is Export, returning the library's report of what it
// wrote.
//
//	func (snapshotFactory) Get(ctx context.Context, nameOrDigest string) (*SnapshotHandle, error)
//
// Get looks up a lightweight handle in the local index by bare name,
// manifest digest, or artifact path.
//
//	func (snapshotFactory) Import(ctx context.Context, archive, dest string) (*SnapshotHandle, error)
//
// Import unpacks a snapshot archive (.tar.zst or .tar, detected from its
// content) into the home's snapshots directory, or into dest if it is not
// "", and indexes it. It returns the handle of the archive's head snapshot
// (the last one that is no other's parent). A malformed or hostile archive
// is ErrInvalidArchive; a failed or cancelled import leaves nothing behind.
//
//	func (snapshotFactory) ImportWithOptions(ctx context.Context, archive string, opts SnapshotImportOptions) (*SnapshotHandle, error)
//
// ImportWithOptions is Import with a destination and a name for the head.
//
//	func (snapshotFactory) List(ctx context.Context) ([]*SnapshotHandle, error)
//
// List lists the indexed snapshots from the local index, newest first.
//
//	func (snapshotFactory) ListDir(ctx context.Context, dir string) ([]*SnapshotArtifact, error)
//
// ListDir walks dir and parses each subdirectory's manifest without
// touching the index. It returns one artifact per parsed subdirectory;
// subdirectories that are not readable artifacts are skipped.
//
//	func (snapshotFactory) Open(ctx context.Context, pathOrName string) (*SnapshotArtifact, error)
//
// Open opens an existing artifact by bare name (resolved under the default
// snapshots directory) or artifact directory path. It validates metadata
// only; call Verify for content checks.
//
//	func (snapshotFactory) Prune(ctx context.Context, opts SnapshotPruneOptions) (*SnapshotPruneReport, error)
//
// Prune removes the snapshots the retention policy opts does not keep and
// reports every indexed snapshot as removed or kept, with why. A snapshot
// whose child stays, or that a sandbox was created from, stays unless
// opts.Force. Removals go children first, each crash-safe as Remove; a
// cancelled ctx stops between two removals. Bad options (no rule, an
// unreadable duration) are ErrInvalidArgument.
//
//	func (snapshotFactory) Pull(ctx context.Context, ref, dest string, opts SnapshotPullOptions) (*SnapshotHandle, error)
//
// Pull brings a snapshot from ref (as Push takes it) into the home's
// snapshots directory, or into dest if it is not "", verified end to end,
// and indexes it. Chunks a local snapshot already has are copied, not
// downloaded. Pulling a snapshot that is already there is no error (see
// PullWithReport for the report that says so). A failed or cancelled pull
// leaves nothing behind.
//
//	func (snapshotFactory) PullWithReport(ctx context.Context, ref, dest string, opts SnapshotPullOptions) (*SnapshotHandle, *SnapshotPullReport, error)
//
// PullWithReport is Pull, returning the library's report of what it
// transferred as well.
//
//	func (snapshotFactory) Push(ctx context.Context, nameOrPath, ref string, opts SnapshotPushOptions) (*SnapshotPushReport, error)
//
// Push sends a local snapshot (bare name, digest or artifact path) to ref:
// HOST[:PORT]/REPO[:TAG|@sha256:...] (a registry, HTTPS unless
// opts.PlainHTTP), oci:DIR[:TAG] (an OCI image layout) or
// oci-archive:FILE[:TAG]. Only chunks the target lacks are sent. Refused
// credentials are ErrUnauthorized; a registry that is down, slow or
// answers nonsense is ErrRegistryError. A cancelled ctx stops it; no
// manifest is written before every blob it names is there.
//
//	func (snapshotFactory) Reindex(ctx context.Context, dir string) (uint32, error)
//
// Reindex walks dir and rebuilds the local index from the artifacts it
// finds, returning how many it indexed. An empty dir means the home's
// snapshots directory.
//
//	func (snapshotFactory) Remove(ctx context.Context, pathOrName string, force bool) error
//
// Remove removes a snapshot artifact (by bare name, digest or path) and its
// index row. It refuses, with ErrHasChildren, to delete a snapshot with
// indexed children unless force is true.
var Snapshot snapshotFactory

func (f snapshotFactory) resolve() (*Home, error) {
	if f.home != nil {
		return f.home, nil
	}
	return DefaultHome()
}

// SnapshotCreateOptions configures Snapshot.Create. Set exactly one of Name
// or Path.
type SnapshotCreateOptions struct {
	// Name is a bare name; the artifact is written under the home's
	// snapshots directory.
	Name string
	// Path is an explicit artifact directory (mutually exclusive with Name).
	Path string
	// Labels are arbitrary user labels recorded in the manifest.
	Labels map[string]string
	// Force overwrites an existing artifact at the destination.
	Force bool
	// RecordIntegrity records content hashes so Verify can recompute them.
	RecordIntegrity bool
	// IntegrityAlgorithm picks the recorded hash: "" for the library
	// default ("microsnap-merkle-sha256-v1"), "msb-file-merkle-blake3-v1"
	// (microsandbox v0.6.14's; its digest is "blake3:<hex>"),
	// "msb-sparse-sha256-v1" (microsandbox v0.6.3's) or "sha256". In the
	// v0.6.14 format "" means "msb-file-merkle-blake3-v1", and only the
	// algorithms v0.6.14 reads are accepted (microsnap's default is not one
	// of them).
	IntegrityAlgorithm string
	// Format is the artifact's on-disk layout: "" or FormatMsbV063
	// ("msb-v0.6.3", manifest.json, the default) or FormatMsbV0614
	// ("msb-v0.6.14", snapshot.json, which current microsandbox reads
	// without migrating it). Another value is ErrInvalidArgument.
	Format string
}

type snapshotCreateArgs struct {
	SourceSandbox      string            `json:"source_sandbox"`
	Name               string            `json:"name,omitzero"`
	Path               string            `json:"path,omitzero"`
	Labels             map[string]string `json:"labels,omitempty"`
	Force              bool              `json:"force,omitzero"`
	RecordIntegrity    bool              `json:"record_integrity,omitzero"`
	IntegrityAlgorithm string            `json:"integrity_algorithm,omitzero"`
	Format             string            `json:"format,omitzero"`
}

// Create creates a snapshot from a stopped or crashed sandbox (or one never
// started). Set exactly one of opts.Name (resolved under the default
// snapshots directory) or opts.Path (an explicit artifact directory). A
// running sandbox is ErrSandboxRunning; a taken destination is
// ErrAlreadyExists unless opts.Force. opts.Format picks the artifact's
// layout (FormatMsbV063, the default, or FormatMsbV0614). A cancelled ctx
// stops the copy and leaves nothing behind.
func (f snapshotFactory) Create(ctx context.Context, sourceSandbox string, opts SnapshotCreateOptions) (*SnapshotArtifact, error) {
	h, err := f.resolve()
	if err != nil {
		return nil, err
	}
	args := snapshotCreateArgs{
		SourceSandbox:      sourceSandbox,
		Name:               opts.Name,
		Path:               opts.Path,
		Labels:             opts.Labels,
		Force:              opts.Force,
		RecordIntegrity:    opts.RecordIntegrity,
		IntegrityAlgorithm: opts.IntegrityAlgorithm,
		Format:             opts.Format,
	}
	var a artifactJSON
	err = h.long(ctx, "snapshot_create", args, &a,
		func(out **C.char, native *C.msnap_context, args *C.char, cancel *C.msnap_cancel, monitor C.uintptr_t) C.int32_t {
			return C.go_snapshot_create(out, native, args, cancel, monitor)
		})
	if err != nil {
		return nil, err
	}
	return newArtifact(h, a), nil
}

// Open opens an existing artifact by bare name (resolved under the default
// snapshots directory) or artifact directory path. It validates metadata
// only; call Verify for content checks.
func (f snapshotFactory) Open(ctx context.Context, pathOrName string) (*SnapshotArtifact, error) {
	h, err := f.resolve()
	if err != nil {
		return nil, err
	}
	var a artifactJSON
	err = h.quick(ctx, "snapshot_open", map[string]string{"ref": pathOrName}, &a,
		func(out **C.char, native *C.msnap_context, args *C.char) C.int32_t {
			return C.msnap_snapshot_open(out, native, args)
		})
	if err != nil {
		return nil, err
	}
	return newArtifact(h, a), nil
}

// Get looks up a lightweight handle in the local index by bare name,
// manifest digest, or artifact path.
func (f snapshotFactory) Get(ctx context.Context, nameOrDigest string) (*SnapshotHandle, error) {
	h, err := f.resolve()
	if err != nil {
		return nil, err
	}
	var hj handleJSON
	err = h.quick(ctx, "snapshot_get", map[string]string{"ref": nameOrDigest}, &hj,
		func(out **C.char, native *C.msnap_context, args *C.char) C.int32_t {
			return C.msnap_snapshot_get(out, native, args)
		})
	if err != nil {
		return nil, err
	}
	return newHandle(h, hj), nil
}

// List lists the indexed snapshots from the local index, newest first.
func (f snapshotFactory) List(ctx context.Context) ([]*SnapshotHandle, error) {
	h, err := f.resolve()
	if err != nil {
		return nil, err
	}
	var r handleListResult
	err = h.quick(ctx, "snapshot_list", struct{}{}, &r,
		func(out **C.char, native *C.msnap_context, args *C.char) C.int32_t {
			return C.msnap_snapshot_list(out, native, args)
		})
	if err != nil {
		return nil, err
	}
	return r.handles(h)
}

// ListDir walks dir and parses each subdirectory's manifest without
// touching the index. It returns one artifact per parsed subdirectory;
// subdirectories that are not readable artifacts are skipped.
func (f snapshotFactory) ListDir(ctx context.Context, dir string) ([]*SnapshotArtifact, error) {
	h, err := f.resolve()
	if err != nil {
		return nil, err
	}
	var r listDirResult
	err = h.quick(ctx, "snapshot_list_dir", map[string]string{"dir": dir}, &r,
		func(out **C.char, native *C.msnap_context, args *C.char) C.int32_t {
			return C.msnap_snapshot_list_dir(out, native, args)
		})
	if err != nil {
		return nil, err
	}
	arts := make([]*SnapshotArtifact, len(r.Artifacts))
	for i, a := range r.Artifacts {
		arts[i] = newArtifact(h, a)
	}
	return arts, nil
}

// listDirResult is snapshot_list_dir's result. The skipped directories are
// read but not returned: ListDir's contract is the artifacts it parsed.
type listDirResult struct {
	Artifacts []artifactJSON `json:"artifacts"`
	Skipped   []struct {
		Path    string `json:"path"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"skipped"`
}

// Remove removes a snapshot artifact (by bare name, digest or path) and its
// index row. It refuses, with ErrHasChildren, to delete a snapshot with
// indexed children unless force is true.
func (f snapshotFactory) Remove(ctx context.Context, pathOrName string, force bool) error {
	h, err := f.resolve()
	if err != nil {
		return err
	}
	args := struct {
		Ref   string `json:"ref"`
		Force bool   `json:"force"`
	}{pathOrName, force}
	return h.quick(ctx, "snapshot_remove", args, nil,
		func(out **C.char, native *C.msnap_context, args *C.char) C.int32_t {
			return C.msnap_snapshot_remove(out, native, args)
		})
}

// Reindex walks dir and rebuilds the local index from the artifacts it
// finds, returning how many it indexed. An empty dir means the home's
// snapshots directory.
func (f snapshotFactory) Reindex(ctx context.Context, dir string) (uint32, error) {
	h, err := f.resolve()
	if err != nil {
		return 0, err
	}
	args := struct {
		Dir string `json:"dir,omitzero"`
	}{dir}
	var r reindexResult
	err = h.quick(ctx, "snapshot_reindex", args, &r,
		func(out **C.char, native *C.msnap_context, args *C.char) C.int32_t {
			return C.msnap_snapshot_reindex(out, native, args)
		})
	return r.Indexed, err
}

// reindexResult is snapshot_reindex's result.
type reindexResult struct {
	Indexed uint32 `json:"indexed"`
}
