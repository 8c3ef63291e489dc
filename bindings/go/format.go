package microsnap

// The artifact formats: the on-disk layout of a snapshot's descriptor (and
// of an archive's members), the values of SnapshotCreateOptions.Format,
// SnapshotExportOptions.Format and of the ArtifactFormat accessors.
const (
	// FormatMsbV063 is microsandbox v0.6.3's layout (manifest.json), the
	// reference page's and the default.
	FormatMsbV063 = "msb-v0.6.3"
	// FormatMsbV0614 is current microsandbox's layout (snapshot.json),
	// measured against v0.6.14, which reads it without migrating anything.
	FormatMsbV0614 = "msb-v0.6.14"
)
