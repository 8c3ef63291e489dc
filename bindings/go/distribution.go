package microsnap

/*
#include "msnap_go.h"
*/
import "C"

import "context"

// RemoteOptions says how to reach a registry; Push and Pull share it. The
// local transports (oci:DIR, oci-archive:FILE) ignore it.
type RemoteOptions struct {
	// PlainHTTP speaks plain HTTP instead of HTTPS. Never implied.
	PlainHTTP bool
	// Username and Password are explicit credentials: both or neither.
	// They win over docker's config. They never appear in an error.
	Username, Password string
	// CAFile is a PEM file of CA certificates to verify the registry's TLS
	// certificate against instead of the system roots.
	CAFile string
	// DockerConfig is docker's config.json to take credentials from; ""
	// is $DOCKER_CONFIG/config.json, else ~/.docker/config.json.
	DockerConfig string
	// MaxInFlight is the number of requests at once; 0 is the library's
	// default (4).
	MaxInFlight int
	// TimeoutSeconds is how long a request may go without progress before
	// it fails with ErrRegistryError; 0 is the library's default (30).
	TimeoutSeconds int
}

// remoteArgs is RemoteOptions as the library's argument members.
type remoteArgs struct {
	PlainHTTP      bool   `json:"plain_http,omitzero"`
	Username       string `json:"username,omitzero"`
	Password       string `json:"password,omitzero"`
	CAFile         string `json:"ca_file,omitzero"`
	DockerConfig   string `json:"docker_config,omitzero"`
	MaxInFlight    int    `json:"max_in_flight,omitzero"`
	TimeoutSeconds int    `json:"timeout_seconds,omitzero"`
}

func (o RemoteOptions) args() remoteArgs {
	return remoteArgs{o.PlainHTTP, o.Username, o.Password, o.CAFile, o.DockerConfig, o.MaxInFlight, o.TimeoutSeconds}
}

// SnapshotPushOptions configures Snapshot.Push.
type SnapshotPushOptions struct {
	// WithParents pushes every ancestor too, root first, each tagged
	// sha256-<hex of its snapshot digest>. Without it only the head is
	// pushed; its manifest still names every pack it needs.
	WithParents bool
	// Since, for an oci-archive: reference only, names a local ancestor
	// (name, digest or path): the archive then holds only what it lacks.
	Since string
	RemoteOptions
}

// SnapshotPushedSnapshot is one snapshot a push sent.
type SnapshotPushedSnapshot struct {
	SnapshotDigest string `json:"snapshot_digest"`
	ManifestDigest string `json:"manifest_digest"`
	// Tags are the tags it was given.
	Tags []string `json:"tags"`
}

// SnapshotPushReport is what a push did (docs/abi.md, "push report").
type SnapshotPushReport struct {
	// Reference is where it was pushed.
	Reference string `json:"reference"`
	// ManifestDigest is the head's image manifest digest.
	ManifestDigest string `json:"manifest_digest"`
	// SnapshotDigest is the head's snapshot digest (the manifest's config
	// digest).
	SnapshotDigest string `json:"snapshot_digest"`
	// ChunksTotal counts the non-zero 64 KiB chunks of every snapshot
	// pushed.
	ChunksTotal uint64 `json:"chunks_total"`
	// ChunksUploaded were compressed into packs that were sent.
	ChunksUploaded uint64 `json:"chunks_uploaded"`
	// ChunksReused were already in the target (through a parent's index
	// or a pack it had).
	ChunksReused uint64 `json:"chunks_reused"`
	// BytesUploaded counts every blob byte sent (packs, indexes, configs,
	// manifests).
	BytesUploaded uint64 `json:"bytes_uploaded"`
	// BytesReused is the compressed size of the reused chunks.
	BytesReused uint64 `json:"bytes_reused"`
	// Snapshots lists what was pushed, root first, the head last.
	Snapshots []SnapshotPushedSnapshot `json:"snapshots"`
}

type pushArgs struct {
	Ref         string `json:"ref"`
	Reference   string `json:"reference"`
	WithParents bool   `json:"with_parents,omitzero"`
	Since       string `json:"since,omitzero"`
	remoteArgs
}

// Push sends a local snapshot (bare name, digest or artifact path) to ref:
// HOST[:PORT]/REPO[:TAG|@sha256:...] (a registry, HTTPS unless
// opts.PlainHTTP), oci:DIR[:TAG] (an OCI image layout) or
// oci-archive:FILE[:TAG]. Only chunks the target lacks are sent. Refused
// credentials are ErrUnauthorized; a registry that is down, slow or
// answers nonsense is ErrRegistryError. A cancelled ctx stops it; no
// manifest is written before every blob it names is there.
func (f snapshotFactory) Push(ctx context.Context, nameOrPath, ref string, opts SnapshotPushOptions) (*SnapshotPushReport, error) {
	h, err := f.resolve()
	if err != nil {
		return nil, err
	}
	args := pushArgs{Ref: nameOrPath, Reference: ref, WithParents: opts.WithParents, Since: opts.Since,
		remoteArgs: opts.RemoteOptions.args()}
	var r SnapshotPushReport
	err = h.long(ctx, "snapshot_push", args, &r,
		func(out **C.char, native *C.msnap_context, args *C.char, cancel *C.msnap_cancel, monitor C.uintptr_t) C.int32_t {
			return C.go_snapshot_push(out, native, args, cancel, monitor)
		})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// SnapshotPullOptions configures Snapshot.Pull.
type SnapshotPullOptions struct {
	// Name is the head's directory name in the destination; "" is the
	// reference's tag. A name a different snapshot has is
	// ErrAlreadyExists.
	Name string
	// WithParents pulls every ancestor too and records the lineage.
	WithParents bool
	RemoteOptions
}

// SnapshotPullReport is what a pull did (docs/abi.md, "pull report").
type SnapshotPullReport struct {
	Reference      string `json:"reference"`
	ManifestDigest string `json:"manifest_digest"`
	SnapshotDigest string `json:"snapshot_digest"`
	// ChunksTotal counts the non-zero chunks of every snapshot pulled.
	ChunksTotal      uint64 `json:"chunks_total"`
	ChunksDownloaded uint64 `json:"chunks_downloaded"`
	// ChunksReused were copied from a local artifact instead.
	ChunksReused uint64 `json:"chunks_reused"`
	// BytesDownloaded counts every blob byte received.
	BytesDownloaded uint64 `json:"bytes_downloaded"`
	// BytesReused is the compressed size of the chunks not downloaded.
	BytesReused uint64 `json:"bytes_reused"`
	// BytesCopiedLocally is their uncompressed size, copied from local
	// artifacts.
	BytesCopiedLocally uint64 `json:"bytes_copied_locally"`
	// AlreadyPresent: the snapshot was already in the destination and
	// nothing was written.
	AlreadyPresent bool `json:"already_present"`
	// Path is where the head is.
	Path string `json:"path"`
}

type pullArgs struct {
	Reference   string `json:"reference"`
	Dest        string `json:"dest,omitzero"`
	Name        string `json:"name,omitzero"`
	WithParents bool   `json:"with_parents,omitzero"`
	remoteArgs
}

// pullResult is snapshot_pull's result.
type pullResult struct {
	Head   handleJSON         `json:"head"`
	Report SnapshotPullReport `json:"report"`
}

// Pull brings a snapshot from ref (as Push takes it) into the home's
// snapshots directory, or into dest if it is not "", verified end to end,
// and indexes it. Chunks a local snapshot already has are copied, not
// downloaded. Pulling a snapshot that is already there is no error (see
// PullWithReport for the report that says so). A failed or cancelled pull
// leaves nothing behind.
func (f snapshotFactory) Pull(ctx context.Context, ref, dest string, opts SnapshotPullOptions) (*SnapshotHandle, error) {
	h, _, err := f.PullWithReport(ctx, ref, dest, opts)
	return h, err
}

// PullWithReport is Pull, returning the library's report of what it
// transferred as well.
func (f snapshotFactory) PullWithReport(ctx context.Context, ref, dest string, opts SnapshotPullOptions) (*SnapshotHandle, *SnapshotPullReport, error) {
	h, err := f.resolve()
	if err != nil {
		return nil, nil, err
	}
	args := pullArgs{Reference: ref, Dest: dest, Name: opts.Name, WithParents: opts.WithParents,
		remoteArgs: opts.RemoteOptions.args()}
	var r pullResult
	err = h.long(ctx, "snapshot_pull", args, &r,
		func(out **C.char, native *C.msnap_context, args *C.char, cancel *C.msnap_cancel, monitor C.uintptr_t) C.int32_t {
			return C.go_snapshot_pull(out, native, args, cancel, monitor)
		})
	if err != nil {
		return nil, nil, err
	}
	return newHandle(h, r.Head), &r.Report, nil
}
