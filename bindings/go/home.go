package microsnap

/*
#include <stdlib.h>
#include "microsnap.h"
*/
import "C"

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/go-json-experiment/json"
)

// SupportedABIVersion is the libmicrosnap ABI version this package is
// written against: MSNAP_ABI_VERSION of include/microsnap.h (a test keeps
// the two equal).
const SupportedABIVersion = 1

// abiError is checked once, when the package loads: a library implementing
// another ABI version is refused by every call that opens a home.
var abiError = checkABI(uint32(C.msnap_abi_version()))

func checkABI(got uint32) error {
	if got != SupportedABIVersion {
		return fmt.Errorf("%w: the library implements ABI %d, this package needs %d",
			ErrIncompatibleLibrary, got, SupportedABIVersion)
	}
	return nil
}

// ABIVersion returns the ABI version of the loaded library.
func ABIVersion() uint32 { return uint32(C.msnap_abi_version()) }

// LibraryVersion returns the loaded library's version string, e.g. "0.1.0".
func LibraryVersion() string { return C.GoString(C.msnap_version()) }

// Home is one microsnap home directory (database, sandboxes, snapshots and
// the local OCI image layout) opened for use. It is safe for concurrent use
// by many goroutines. Its Snapshot field and its methods give the same API
// as the package-level Snapshot value and functions, on this home.
//
// Close releases it; a Home that becomes unreachable without Close is
// released by the garbage collector.
type Home struct {
	// Snapshot gives the snapshot functions (Create, Open, Get, List, ...)
	// on this home; the package-level Snapshot variable documents them.
	Snapshot snapshotFactory

	native  *C.msnap_context
	path    string
	closed  atomic.Bool
	cleanup runtime.Cleanup
}

// OpenHome opens the home at path, creating its layout if needed. It does
// not read or change MICROSNAP_HOME.
func OpenHome(path string) (*Home, error) {
	if path == "" {
		return nil, &Error{Code: CodeInvalidArgument, Name: CodeInvalidArgument.String(), Message: "home path is empty"}
	}
	return openHome(map[string]string{"home": path})
}

func openHome(args any) (*Home, error) {
	if abiError != nil {
		return nil, abiError
	}
	cargs, err := cArgs(args)
	if err != nil {
		return nil, err
	}
	defer freeArgs(cargs)
	var native *C.msnap_context
	var opened homeOpened
	var unreadable error
	err = runQuick(context.Background(), func(out **C.char) C.int32_t {
		return C.msnap_context_open(&native, out, cargs)
	}, func(body []byte) error {
		unreadable = decodeResult("context_open", body, &opened)
		return unreadable
	})
	if unreadable != nil {
		C.msnap_context_free(native)
	}
	if err != nil {
		return nil, err
	}
	h := &Home{native: native, path: opened.Home}
	h.Snapshot = snapshotFactory{home: h}
	h.cleanup = runtime.AddCleanup(h, func(native *C.msnap_context) {
		C.msnap_context_free(native)
	}, native)
	return h, nil
}

// homeOpened is context_open's result.
type homeOpened struct {
	Home string `json:"home"`
}

// Path returns the home's absolute, symlink-free directory.
func (h *Home) Path() string { return h.path }

// Close releases the home. Calls still running on other goroutines finish
// normally; later calls fail with an error wrapping ErrClosed. Closing
// twice is a no-op.
func (h *Home) Close() error {
	if !h.closed.CompareAndSwap(false, true) {
		return nil
	}
	h.cleanup.Stop()
	status := C.msnap_context_free(h.native)
	if status != C.MSNAP_OK {
		return decodeError(nil, Code(status), nil)
	}
	return nil
}

// context returns the native handle, or an error once closed. Callers keep
// h alive (runtime.KeepAlive) until their native call has returned, so the
// cleanup cannot close the context under a running call.
func (h *Home) context() (*C.msnap_context, error) {
	if h == nil {
		return nil, &Error{Code: CodeInvalidArgument, Name: CodeInvalidArgument.String(), Message: "nil Home"}
	}
	if h.closed.Load() {
		return nil, closedError("home " + h.path)
	}
	return h.native, nil
}

// quick runs a short call on this home with JSON arguments and decodes its
// result into result (unless result is nil).
func (h *Home) quick(ctx context.Context, what string, args any, result any,
	call func(out **C.char, native *C.msnap_context, args *C.char) C.int32_t) error {
	native, err := h.context()
	if err != nil {
		return err
	}
	cargs, err := cArgs(args)
	if err != nil {
		return err
	}
	defer freeArgs(cargs)
	err = runQuick(ctx, func(out **C.char) C.int32_t {
		return call(out, native, cargs)
	}, func(body []byte) error {
		return decodeResult(what, body, result)
	})
	runtime.KeepAlive(h)
	return err
}

// long runs a cancellable call on this home (see runCancellable).
func (h *Home) long(ctx context.Context, what string, args any, result any,
	call func(out **C.char, native *C.msnap_context, args *C.char, cancel *C.msnap_cancel, monitor C.uintptr_t) C.int32_t) error {
	native, err := h.context()
	if err != nil {
		return err
	}
	cargs, err := cArgs(args)
	if err != nil {
		return err
	}
	defer freeArgs(cargs)
	err = runCancellable(ctx, func(cancel *C.msnap_cancel, monitor C.uintptr_t, out **C.char) C.int32_t {
		return call(out, native, cargs, cancel, monitor)
	}, func(body []byte) error {
		return decodeResult(what, body, result)
	})
	runtime.KeepAlive(h)
	return err
}

// decodeResult reads a call's result into result (nothing when result is
// nil) with github.com/go-json-experiment/json, the code of Go's
// encoding/json/v2, usable without GOEXPERIMENT. Its defaults are the strict
// reading the ABI's fully specified output allows: member names match
// exactly (encoding/json also matched them case-insensitively), a duplicate
// member is an error, invalid UTF-8 is an error, and a number must fit its
// Go type exactly (no fraction into an integer, no overflow).
//
// A member this package does not know is skipped: a newer library may add
// one to a result without changing the ABI version (the header bumps it
// only for incompatible changes). The tests decode every golden result with
// unknown members rejected (golden_test.go), so a member the library writes
// and this package has no field for fails a test.
func decodeResult(what string, body []byte, result any) error {
	if result == nil {
		return nil
	}
	var opts []json.Options
	if o, ok := result.(interface{ decodeOptions() json.Options }); ok {
		opts = append(opts, o.decodeOptions())
	}
	if err := json.Unmarshal(body, result, opts...); err != nil {
		return badResult(what, err)
	}
	return nil
}

func badResult(what string, err error) error {
	return &Error{Code: CodeInternal, Name: CodeInternal.String(), Message: fmt.Sprintf("%s: unreadable result: %v", what, err)}
}

// The package-level API works on the default home: $MICROSNAP_HOME, else
// ~/.microsnap, as the variable reads at each call. Each distinct home is
// opened once and stays open for the life of the process.
var defaultHomes struct {
	sync.Mutex
	byEnv map[string]*Home
}

// DefaultHome returns the home the package-level API uses: $MICROSNAP_HOME
// if set, else ~/.microsnap, opened on first use and kept open. Do not
// Close it.
func DefaultHome() (*Home, error) {
	key := os.Getenv("MICROSNAP_HOME")
	defaultHomes.Lock()
	defer defaultHomes.Unlock()
	if h, ok := defaultHomes.byEnv[key]; ok {
		return h, nil
	}
	var args any = struct{}{} // unset: the library uses $HOME/.microsnap
	if key != "" {
		args = map[string]string{"home": key}
	}
	h, err := openHome(args)
	if err != nil {
		return nil, err
	}
	if defaultHomes.byEnv == nil {
		defaultHomes.byEnv = map[string]*Home{}
	}
	defaultHomes.byEnv[key] = h
	return h, nil
}
