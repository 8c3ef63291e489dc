package main

import (
	"fmt"
	"time"

	m "github.com/microsnap/microsnap/bindings/go"
)

// The JSON the CLI prints: the C ABI's objects (docs/abi.md,
// tests/golden/*.json) with the same member names, so a script reads
// `microsnap --json` output as it reads the library's. One exception: a
// parent is "parent_digest" everywhere, also in an artifact, whose
// manifest.json calls it "parent".

// artifactView is an artifact (snapshot create, snapshot inspect).
type artifactView struct {
	Path                string            `json:"path"`
	Digest              string            `json:"digest"`
	ArtifactFormat      string            `json:"artifact_format"`
	Format              string            `json:"format"`
	Fstype              string            `json:"fstype"`
	ImageRef            string            `json:"image_ref"`
	ImageManifestDigest string            `json:"image_manifest_digest"`
	ParentDigest        *string           `json:"parent_digest"`
	CreatedAt           string            `json:"created_at"`
	Labels              map[string]string `json:"labels"`
	UpperFile           string            `json:"upper_file"`
	SizeBytes           uint64            `json:"size_bytes"`
	Integrity           *integrityView    `json:"integrity"`
	SourceSandbox       *string           `json:"source_sandbox"`
	Schema              uint32            `json:"schema"`
}

type integrityView struct {
	Algorithm string `json:"algorithm"`
	Digest    string `json:"digest"`
}

// artifactSchema is a manifest's schema: the library opens only schema 1
// (manifest.rs), so every artifact it returns has it; the Go binding does
// not expose the member.
const artifactSchema = 1

func viewArtifact(a *m.SnapshotArtifact) artifactView {
	v := artifactView{
		Path: a.Path(), Digest: a.Digest(), ArtifactFormat: a.ArtifactFormat(), Format: a.Format(), Fstype: a.Fstype(),
		ImageRef: a.ImageRef(), ImageManifestDigest: a.ImageManifestDigest(),
		ParentDigest: a.Parent(), CreatedAt: a.CreatedAt(), Labels: a.Labels(),
		UpperFile: a.UpperFile(), SizeBytes: a.SizeBytes(), SourceSandbox: a.SourceSandbox(),
		Schema: artifactSchema,
	}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	if alg := a.IntegrityAlgorithm(); alg != "" {
		v.Integrity = &integrityView{alg, a.IntegrityDigest()}
	}
	return v
}

// handleView is an indexed snapshot (snapshot ls, snapshot import).
type handleView struct {
	Digest              string            `json:"digest"`
	Name                *string           `json:"name"`
	ParentDigest        *string           `json:"parent_digest"`
	ImageRef            string            `json:"image_ref"`
	ImageManifestDigest string            `json:"image_manifest_digest"`
	Format              string            `json:"format"`
	Fstype              string            `json:"fstype"`
	SizeBytes           *uint64           `json:"size_bytes"`
	Path                string            `json:"path"`
	CreatedAt           string            `json:"created_at"`
	CreatedAtUnixNanos  int64             `json:"created_at_unix_nanos"`
	Labels              map[string]string `json:"labels"`
	ChildCount          uint64            `json:"child_count"`
	ArtifactFormat      string            `json:"artifact_format"`
}

func viewHandle(h *m.SnapshotHandle) handleView {
	v := handleView{
		Digest: h.Digest(), Name: h.Name(), ParentDigest: h.ParentDigest(),
		ImageRef: h.ImageRef(), ImageManifestDigest: h.ImageManifestDigest(),
		Format: h.Format(), Fstype: h.Fstype(), SizeBytes: h.SizeBytes(), Path: h.Path(),
		CreatedAt: rfc3339(h.CreatedAt()), CreatedAtUnixNanos: h.CreatedAt().UnixNano(),
		Labels: h.Labels(), ChildCount: h.ChildCount(), ArtifactFormat: h.ArtifactFormat(),
	}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	return v
}

// sandboxView is a sandbox (sandbox create, ls, stop).
type sandboxView struct {
	Name                string  `json:"name"`
	State               string  `json:"state"`
	ImageRef            string  `json:"image_ref"`
	ImageManifestDigest string  `json:"image_manifest_digest"`
	UpperPath           string  `json:"upper_path"`
	Format              string  `json:"format"`
	Fstype              string  `json:"fstype"`
	SizeBytes           uint64  `json:"size_bytes"`
	FromSnapshot        *string `json:"from_snapshot"`
	CreatedAt           string  `json:"created_at"`
}

func viewSandbox(s *m.SandboxHandle) sandboxView {
	return sandboxView{s.Name(), s.State(), s.ImageRef(), s.ImageManifestDigest(), s.UpperPath(),
		s.Format(), s.Fstype(), s.SizeBytes(), s.FromSnapshot(), s.CreatedAt()}
}

// imageView is an image of the home's layout (image ls, image import); an
// unnamed one has a null ref, as in the library's list.
type imageView struct {
	Ref            *string `json:"ref"`
	ManifestDigest string  `json:"manifest_digest"`
	ConfigDigest   string  `json:"config_digest"`
	Layers         int     `json:"layers"`
	Size           uint64  `json:"size"`
}

func viewImages(images []m.Image) []imageView {
	views := make([]imageView, len(images))
	for i, img := range images {
		views[i] = imageView{nil, img.ManifestDigest, img.ConfigDigest, img.Layers, img.Size}
		if img.Ref != "" {
			ref := img.Ref
			views[i].Ref = &ref
		}
	}
	return views
}

// importedView is an image import added: the library reports its ref and
// manifest digest only.
type importedView struct {
	Ref            *string `json:"ref"`
	ManifestDigest string  `json:"manifest_digest"`
}

func viewImported(images []m.Image) []importedView {
	views := make([]importedView, len(images))
	for i, v := range viewImages(images) {
		views[i] = importedView{v.Ref, v.ManifestDigest}
	}
	return views
}

// rfc3339 writes a time as the library does (chrono's to_rfc3339 in UTC):
// "+00:00", and a fraction of 0, 3, 6 or 9 digits, the shortest exact one.
// The library keeps a manifest's created_at text as written; the Go
// binding gives an indexed snapshot's time as a time.Time.
func rfc3339(t time.Time) string {
	t = t.UTC()
	base := t.Format("2006-01-02T15:04:05")
	ns := t.Nanosecond()
	switch {
	case ns == 0:
		return base + "+00:00"
	case ns%1_000_000 == 0:
		return fmt.Sprintf("%s.%03d+00:00", base, ns/1_000_000)
	case ns%1_000 == 0:
		return fmt.Sprintf("%s.%06d+00:00", base, ns/1_000)
	}
	return fmt.Sprintf("%s.%09d+00:00", base, ns)
}
