package microsnap

/*
#include "msnap_go.h"
*/
import "C"

import (
	"context"
	"maps"
)

// SnapshotArtifact is a snapshot artifact on disk: a directory holding
// its descriptor (manifest.json, or snapshot.json for current microsandbox;
// see ArtifactFormat) and the upper-layer image. Its fields are unexported; read
// them through the accessors, which are plain field reads. Only Verify
// touches the filesystem.
type SnapshotArtifact struct {
	home *Home
	a    artifactJSON
}

// artifactJSON is the library's artifact object (docs/abi.md).
type artifactJSON struct {
	Path                string            `json:"path"`
	Digest              string            `json:"digest"`
	ArtifactFormat      string            `json:"artifact_format"`
	Schema              uint32            `json:"schema"`
	Format              string            `json:"format"`
	Fstype              string            `json:"fstype"`
	ImageRef            string            `json:"image_ref"`
	ImageManifestDigest string            `json:"image_manifest_digest"`
	Parent              *string           `json:"parent"`
	CreatedAt           string            `json:"created_at"`
	Labels              map[string]string `json:"labels"`
	UpperFile           string            `json:"upper_file"`
	SizeBytes           uint64            `json:"size_bytes"`
	Integrity           *struct {
		Algorithm string `json:"algorithm"`
		Digest    string `json:"digest"`
	} `json:"integrity"`
	SourceSandbox *string `json:"source_sandbox"`
}

func newArtifact(h *Home, a artifactJSON) *SnapshotArtifact {
	return &SnapshotArtifact{home: h, a: a}
}

func copyString(p *string) *string {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// Path returns the artifact directory on disk.
func (s *SnapshotArtifact) Path() string { return s.a.Path }

// Digest returns the canonical manifest digest (sha256:...), the
// snapshot's identity.
func (s *SnapshotArtifact) Digest() string { return s.a.Digest }

// SizeBytes returns the apparent size of the upper layer in bytes (0 for
// a checkpoint-state snapshot, which has no disk upper).
func (s *SnapshotArtifact) SizeBytes() uint64 { return s.a.SizeBytes }

// ImageRef returns the image reference the snapshot was taken from.
func (s *SnapshotArtifact) ImageRef() string { return s.a.ImageRef }

// ImageManifestDigest returns the pinned OCI manifest digest of the base
// image.
func (s *SnapshotArtifact) ImageManifestDigest() string { return s.a.ImageManifestDigest }

// Format returns the upper-layer disk format: "raw" or "qcow2" ("" for a
// microsandbox v0.6.14 checkpoint-state snapshot, which has no disk upper).
func (s *SnapshotArtifact) Format() string { return s.a.Format }

// Fstype returns the filesystem type inside the upper layer.
func (s *SnapshotArtifact) Fstype() string { return s.a.Fstype }

// Parent returns the parent snapshot's digest, or nil if this snapshot has
// no parent. It returns a defensive copy.
func (s *SnapshotArtifact) Parent() *string { return copyString(s.a.Parent) }

// CreatedAt returns the RFC 3339 creation timestamp.
func (s *SnapshotArtifact) CreatedAt() string { return s.a.CreatedAt }

// Labels returns the user labels recorded at creation (never nil). It
// returns a defensive copy.
func (s *SnapshotArtifact) Labels() map[string]string {
	if s.a.Labels == nil {
		return map[string]string{}
	}
	return maps.Clone(s.a.Labels)
}

// SourceSandbox returns the best-effort name of the sandbox the snapshot
// was taken from, or nil. It returns a defensive copy.
func (s *SnapshotArtifact) SourceSandbox() *string { return copyString(s.a.SourceSandbox) }

// ArtifactFormat returns the format of the artifact's descriptor:
// FormatMsbV063 ("msb-v0.6.3", manifest.json, the reference page's
// microsandbox) or FormatMsbV0614 ("msb-v0.6.14", snapshot.json, current
// microsandbox). It is what the directory holds, not what was asked for:
// microsnap never converts a directory it reads.
func (s *SnapshotArtifact) ArtifactFormat() string { return s.a.ArtifactFormat }

// UpperFile returns the upper image's file name inside the artifact
// directory (e.g. "upper.ext4").
func (s *SnapshotArtifact) UpperFile() string { return s.a.UpperFile }

// IntegrityAlgorithm returns the algorithm of the recorded upper-layer
// integrity, or "" if none was recorded.
func (s *SnapshotArtifact) IntegrityAlgorithm() string {
	if s.a.Integrity == nil {
		return ""
	}
	return s.a.Integrity.Algorithm
}

// IntegrityDigest returns the recorded upper-layer digest, or "" if none
// was recorded.
func (s *SnapshotArtifact) IntegrityDigest() string {
	if s.a.Integrity == nil {
		return ""
	}
	return s.a.Integrity.Digest
}

// SnapshotVerifyReport is the result of SnapshotArtifact.Verify.
type SnapshotVerifyReport struct {
	// Digest is the recomputed manifest digest.
	Digest string `json:"digest"`
	// Path is the artifact directory that was verified.
	Path string `json:"path"`
	// Upper is the upper layer's integrity status.
	Upper SnapshotUpperVerifyStatus `json:"upper"`
}

// SnapshotUpperVerifyStatus is the upper-layer part of a
// SnapshotVerifyReport.
type SnapshotUpperVerifyStatus struct {
	// Kind is the integrity record kind: "verified", or "not_recorded"
	// when the artifact was created without RecordIntegrity.
	Kind string `json:"kind"`
	// Algorithm is the hash algorithm used ("" when not recorded).
	Algorithm string `json:"algorithm"`
	// Digest is the recomputed upper-layer digest ("" when not recorded).
	Digest string `json:"digest"`
}

// Verify recomputes the content integrity recorded for this snapshot and
// re-checks its metadata. A changed upper is an error matching
// ErrIntegrityMismatch (its Expected and Actual name both digests). An
// artifact created without RecordIntegrity verifies with Upper.Kind
// "not_recorded". A cancelled ctx stops the hashing.
func (s *SnapshotArtifact) Verify(ctx context.Context) (*SnapshotVerifyReport, error) {
	var r SnapshotVerifyReport
	err := s.home.long(ctx, "snapshot_verify", map[string]string{"ref": s.a.Path}, &r,
		func(out **C.char, native *C.msnap_context, args *C.char, cancel *C.msnap_cancel, monitor C.uintptr_t) C.int32_t {
			return C.go_snapshot_verify(out, native, args, cancel, monitor)
		})
	if err != nil {
		return nil, err
	}
	return &r, nil
}
