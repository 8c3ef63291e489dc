package microsnap

/*
#include "msnap_go.h"
*/
import "C"

import (
	"context"
	"runtime"
	"sync"
)

// SandboxOption configures CreateSandbox.
type SandboxOption func(*sandboxCreateArgs)

type sandboxCreateArgs struct {
	Name      string  `json:"name"`
	Image     string  `json:"image,omitzero"`
	Snapshot  string  `json:"snapshot,omitzero"`
	Upper     string  `json:"upper,omitzero"`
	Fstype    string  `json:"fstype,omitzero"`
	SizeBytes *uint64 `json:"size_bytes,omitzero"`
	Start     *bool   `json:"start,omitzero"`
}

// WithSnapshot boots the sandbox from a private copy of a snapshot's upper
// layer (bare name, digest or artifact path). The image, format and fstype
// come from the snapshot; recorded integrity is verified first.
func WithSnapshot(nameOrPath string) SandboxOption {
	return func(a *sandboxCreateArgs) { a.Snapshot = nameOrPath }
}

// WithImage runs the sandbox on an image of the home's OCI layout (a ref
// such as "alpine:3.20" or a manifest digest). Alone, it gives the sandbox
// a fresh sparse upper (see WithUpperSize); with WithUpperFile, it names the
// image the adopted upper belongs to.
func WithImage(ref string) SandboxOption {
	return func(a *sandboxCreateArgs) { a.Image = ref }
}

// WithUpperFile adopts a copy of an existing upper file (raw or qcow2,
// detected; a qcow2 with a backing file is ErrUnsupported) holding a
// filesystem of type fstype. Combine it with WithImage.
func WithUpperFile(path, fstype string) SandboxOption {
	return func(a *sandboxCreateArgs) { a.Upper, a.Fstype = path, fstype }
}

// WithUpperSize sets the size in bytes of a fresh sparse upper (default
// 4 GiB). It applies only to a sandbox created WithImage alone.
func WithUpperSize(bytes uint64) SandboxOption {
	return func(a *sandboxCreateArgs) { a.SizeBytes = &bytes }
}

// WithFstype sets the filesystem type recorded for a fresh upper (default
// "ext4").
func WithFstype(fstype string) SandboxOption {
	return func(a *sandboxCreateArgs) { a.Fstype = fstype }
}

// sandboxJSON is the library's sandbox object (docs/abi.md).
type sandboxJSON struct {
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

// Sandbox is a running sandbox: it holds the sandbox's lock, so the
// sandbox reads as running and cannot be snapshotted, removed or started
// elsewhere until Stop. Close releases the handle; closing without Stop
// leaves the sandbox "crashed", as if its process had died (snapshots of a
// crashed sandbox are allowed). A Sandbox that becomes unreachable without
// Close is released by the garbage collector the same way.
type Sandbox struct {
	home *Home
	info sandboxJSON

	mu      sync.Mutex
	native  *C.msnap_sandbox // nil once closed
	stopped bool
	cleanup runtime.Cleanup
}

// CreateSandbox creates a sandbox on the default home and starts it. Give
// its disk with WithImage (a fresh upper, see WithUpperSize), WithSnapshot,
// or WithImage plus WithUpperFile. A taken name is ErrAlreadyExists.
func CreateSandbox(ctx context.Context, name string, opts ...SandboxOption) (*Sandbox, error) {
	h, err := DefaultHome()
	if err != nil {
		return nil, err
	}
	return h.CreateSandbox(ctx, name, opts...)
}

// GetSandbox returns the metadata handle of a sandbox of the default home.
func GetSandbox(ctx context.Context, name string) (*SandboxHandle, error) {
	h, err := DefaultHome()
	if err != nil {
		return nil, err
	}
	return h.GetSandbox(ctx, name)
}

// ListSandboxes lists the sandboxes of the default home by name.
func ListSandboxes(ctx context.Context) ([]*SandboxHandle, error) {
	h, err := DefaultHome()
	if err != nil {
		return nil, err
	}
	return h.ListSandboxes(ctx)
}

// RemoveSandbox removes a sandbox of the default home that is not running
// (ErrSandboxRunning otherwise): its record and its directory.
func RemoveSandbox(ctx context.Context, name string) error {
	h, err := DefaultHome()
	if err != nil {
		return err
	}
	return h.RemoveSandbox(ctx, name)
}

// CreateSandbox creates a sandbox on this home and starts it; see the
// package-level CreateSandbox.
func (h *Home) CreateSandbox(ctx context.Context, name string, opts ...SandboxOption) (*Sandbox, error) {
	args := sandboxCreateArgs{Name: name}
	for _, o := range opts {
		o(&args)
	}
	var native *C.msnap_sandbox
	var info sandboxJSON
	err := h.long(ctx, "sandbox_create", args, &info,
		func(out **C.char, ctxNative *C.msnap_context, args *C.char, cancel *C.msnap_cancel, monitor C.uintptr_t) C.int32_t {
			return C.go_sandbox_create(&native, out, ctxNative, args, cancel, monitor)
		})
	if native != nil && err != nil {
		// The sandbox was created (the handle is set only on success), but
		// its object did not decode: do not leak the lock.
		C.msnap_sandbox_free(native)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	return newSandbox(h, native, info), nil
}

// NewSandbox creates a sandbox on this home without starting it: its state
// reads "created" until something starts it (SandboxHandle.Start). This is
// what a command-line tool wants, since a running sandbox lives only as
// long as the process holding it.
func (h *Home) NewSandbox(ctx context.Context, name string, opts ...SandboxOption) (*SandboxHandle, error) {
	no := false
	args := sandboxCreateArgs{Name: name, Start: &no}
	for _, o := range opts {
		o(&args)
	}
	var info sandboxJSON
	err := h.long(ctx, "sandbox_create", args, &info,
		func(out **C.char, ctxNative *C.msnap_context, args *C.char, cancel *C.msnap_cancel, monitor C.uintptr_t) C.int32_t {
			return C.go_sandbox_create(nil, out, ctxNative, args, cancel, monitor)
		})
	if err != nil {
		return nil, err
	}
	return &SandboxHandle{home: h, s: info}, nil
}

func newSandbox(h *Home, native *C.msnap_sandbox, info sandboxJSON) *Sandbox {
	s := &Sandbox{home: h, native: native, info: info}
	s.cleanup = runtime.AddCleanup(s, func(native *C.msnap_sandbox) {
		C.msnap_sandbox_free(native)
	}, native)
	return s
}

// GetSandbox returns the metadata handle of a sandbox of this home.
func (h *Home) GetSandbox(ctx context.Context, name string) (*SandboxHandle, error) {
	var s sandboxJSON
	err := h.quick(ctx, "sandbox_get", map[string]string{"name": name}, &s,
		func(out **C.char, native *C.msnap_context, args *C.char) C.int32_t {
			return C.msnap_sandbox_get(out, native, args)
		})
	if err != nil {
		return nil, err
	}
	return &SandboxHandle{home: h, s: s}, nil
}

// ListSandboxes lists the sandboxes of this home by name.
func (h *Home) ListSandboxes(ctx context.Context) ([]*SandboxHandle, error) {
	var r sandboxListResult
	err := h.quick(ctx, "sandbox_list", struct{}{}, &r,
		func(out **C.char, native *C.msnap_context, args *C.char) C.int32_t {
			return C.msnap_sandbox_list(out, native, args)
		})
	if err != nil {
		return nil, err
	}
	list := make([]*SandboxHandle, len(r.Sandboxes))
	for i, s := range r.Sandboxes {
		list[i] = &SandboxHandle{home: h, s: s}
	}
	return list, nil
}

// sandboxListResult is sandbox_list's result.
type sandboxListResult struct {
	Sandboxes []sandboxJSON `json:"sandboxes"`
}

// RemoveSandbox removes a sandbox of this home that is not running.
func (h *Home) RemoveSandbox(ctx context.Context, name string) error {
	return h.quick(ctx, "sandbox_remove", map[string]string{"name": name}, nil,
		func(out **C.char, native *C.msnap_context, args *C.char) C.int32_t {
			return C.msnap_sandbox_remove(out, native, args)
		})
}

// Name returns the sandbox's name.
func (s *Sandbox) Name() string { return s.info.Name }

// UpperPath returns the absolute path of the sandbox's upper image file,
// the disk a runtime boots it with.
func (s *Sandbox) UpperPath() string { return s.info.UpperPath }

// Stop records the sandbox as stopped and releases its lock. The Sandbox
// must still be closed. Stopping twice is a no-op.
func (s *Sandbox) Stop(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return cancelledBefore(ctx)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.native == nil {
		return closedError("sandbox " + s.info.Name)
	}
	if s.stopped {
		return nil
	}
	var out *C.char
	status := C.msnap_sandbox_stop(&out, s.native)
	body := takeString(out)
	if status != C.MSNAP_OK {
		return decodeError(ctx, Code(status), body)
	}
	s.stopped = true
	return nil
}

// Info returns the sandbox's current metadata.
func (s *Sandbox) Info(ctx context.Context) (*SandboxHandle, error) {
	s.mu.Lock()
	native, stopped := s.native, s.stopped
	if native != nil && !stopped {
		var out *C.char
		status := C.msnap_sandbox_info(&out, native)
		s.mu.Unlock()
		body := takeString(out)
		if status != C.MSNAP_OK {
			return nil, decodeError(ctx, Code(status), body)
		}
		var info sandboxJSON
		if err := decodeResult("sandbox_info", body, &info); err != nil {
			return nil, err
		}
		return &SandboxHandle{home: s.home, s: info}, nil
	}
	s.mu.Unlock()
	return s.home.GetSandbox(ctx, s.info.Name)
}

// Close releases the handle. If the sandbox was not stopped, its lock is
// released without recording a stop, so it reads as "crashed". Closing
// twice is a no-op.
func (s *Sandbox) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.native == nil {
		return nil
	}
	s.cleanup.Stop()
	status := C.msnap_sandbox_free(s.native)
	s.native = nil
	if status != C.MSNAP_OK {
		return decodeError(nil, Code(status), nil)
	}
	return nil
}

// SandboxHandle is a sandbox's metadata as read from the home: what
// GetSandbox and ListSandboxes return. Snapshots are taken from it once the
// sandbox is stopped. The accessors are plain field reads.
type SandboxHandle struct {
	home *Home
	s    sandboxJSON
}

// Name returns the sandbox's name.
func (h *SandboxHandle) Name() string { return h.s.Name }

// State returns "created" (never started), "running", "stopped", or
// "crashed" (recorded running, but no process holds it).
func (h *SandboxHandle) State() string { return h.s.State }

// ImageRef returns the reference of the image the sandbox runs on.
func (h *SandboxHandle) ImageRef() string { return h.s.ImageRef }

// ImageManifestDigest returns the pinned manifest digest of its image.
func (h *SandboxHandle) ImageManifestDigest() string { return h.s.ImageManifestDigest }

// UpperPath returns the absolute path of the sandbox's upper image file.
func (h *SandboxHandle) UpperPath() string { return h.s.UpperPath }

// Format returns the upper's disk format: "raw" or "qcow2".
func (h *SandboxHandle) Format() string { return h.s.Format }

// Fstype returns the filesystem type inside the upper.
func (h *SandboxHandle) Fstype() string { return h.s.Fstype }

// SizeBytes returns the upper's apparent size in bytes.
func (h *SandboxHandle) SizeBytes() uint64 { return h.s.SizeBytes }

// FromSnapshot returns the digest of the snapshot the sandbox was created
// from, or nil. It returns a defensive copy.
func (h *SandboxHandle) FromSnapshot() *string { return copyString(h.s.FromSnapshot) }

// CreatedAt returns the RFC 3339 creation timestamp.
func (h *SandboxHandle) CreatedAt() string { return h.s.CreatedAt }

// Snapshot snapshots this sandbox under a bare name in the default
// snapshots directory of its home. The sandbox must be stopped or crashed.
func (h *SandboxHandle) Snapshot(ctx context.Context, name string) (*SnapshotArtifact, error) {
	return snapshotFactory{home: h.home}.Create(ctx, h.s.Name, SnapshotCreateOptions{Name: name})
}

// SnapshotTo snapshots this sandbox to an explicit artifact directory. The
// sandbox must be stopped or crashed.
func (h *SandboxHandle) SnapshotTo(ctx context.Context, path string) (*SnapshotArtifact, error) {
	return snapshotFactory{home: h.home}.Create(ctx, h.s.Name, SnapshotCreateOptions{Path: path})
}

// Start starts this (stopped, crashed or never started) sandbox and returns
// the running handle; ErrSandboxRunning if it is running.
func (h *SandboxHandle) Start(ctx context.Context) (*Sandbox, error) {
	var native *C.msnap_sandbox
	var info sandboxJSON
	err := h.home.quick(ctx, "sandbox_start", map[string]string{"name": h.s.Name}, &info,
		func(out **C.char, ctxNative *C.msnap_context, args *C.char) C.int32_t {
			return C.msnap_sandbox_start(&native, out, ctxNative, args)
		})
	if err != nil {
		if native != nil {
			C.msnap_sandbox_free(native)
		}
		return nil, err
	}
	return newSandbox(h.home, native, info), nil
}

// MarkStopped records a sandbox that no process holds as stopped, clearing
// "crashed". A running sandbox is ErrSandboxRunning.
func (h *SandboxHandle) MarkStopped(ctx context.Context) error {
	return h.home.quick(ctx, "sandbox_mark_stopped", map[string]string{"name": h.s.Name}, nil,
		func(out **C.char, native *C.msnap_context, args *C.char) C.int32_t {
			return C.msnap_sandbox_mark_stopped(out, native, args)
		})
}

// Remove removes this sandbox (it must not be running).
func (h *SandboxHandle) Remove(ctx context.Context) error {
	return h.home.RemoveSandbox(ctx, h.s.Name)
}
