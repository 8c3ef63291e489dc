// Package microsnap is the Go binding of libmicrosnap, a snapshot engine
// for microVM sandbox disks. It reproduces the snapshot API of the
// microsandbox Go SDK: stop a sandbox, snapshot it, list and verify the
// artifacts, export them to an archive and import them elsewhere, push them
// to an OCI registry or layout and pull them on other hosts (Snapshot.Push,
// Snapshot.Pull), and boot fresh sandboxes from them.
//
//	import m "github.com/microsnap/microsnap/bindings/go"
//
//	_ = sb.Stop(ctx)
//	_ = sb.Close()
//	snap, err := m.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{
//		Name:            "after-pip-install",
//		RecordIntegrity: true,
//	})
//	...
//	sb2, err := m.CreateSandbox(ctx, "worker", m.WithSnapshot("after-pip-install"))
//
// # Homes
//
// Everything lives in a home directory: the index database, sandboxes,
// snapshots and a local OCI image layout (images/). The package-level API
// (Snapshot, CreateSandbox, GetSandbox, ListSandboxes, RemoveSandbox) uses
// $MICROSNAP_HOME, else ~/.microsnap. OpenHome opens an explicit home
// without touching the environment; its Snapshot field and methods are the
// same API.
//
// # Contexts, progress and errors
//
// Every call takes a context.Context. Long operations (snapshot create,
// verify, export, import, push, pull, sandbox create) are cancelled natively when the
// context ends: the call returns once the library has stopped and cleaned
// up, with an error matching both ErrCancelled and context.Canceled (or
// context.DeadlineExceeded). Work that finished before the cancel took
// effect is kept and returned. Short calls check the context before they
// start. ContextWithProgress attaches a progress callback.
//
// Errors are *Error values carrying the library's stable Code and message;
// errors.Is matches them against the sentinels ErrSnapshotNotFound,
// ErrSandboxRunning, ErrIntegrityMismatch, and so on.
//
// # Building
//
// The package includes the generated include/microsnap.h through cgo. In
// the repository it links target/debug/libmicrosnap.so (build it with
// `make lib`) with an rpath, so `go test` needs no environment. Outside the
// repository, after `make install`, build with -tags microsnap_pkgconfig to
// link through pkg-config. When the package loads it checks that the
// library implements the ABI version it was written for
// (SupportedABIVersion); otherwise every call fails with
// ErrIncompatibleLibrary.
package microsnap
