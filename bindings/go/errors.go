package microsnap

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-json-experiment/json"
)

// Code is a stable microsnap error code: the status every library call
// returns, MSNAP_OK or one of the MSNAP_ERR_* constants of
// include/microsnap.h. The values never change meaning across library
// versions.
type Code int32

// The error codes, with the values of include/microsnap.h (a test keeps
// them equal) and the meanings of docs/abi.md.
const (
	CodeOK                Code = 0  // success
	CodeSnapshotNotFound  Code = 1  // no snapshot by that name, digest or path
	CodeSandboxNotFound   Code = 2  // no sandbox by that name
	CodeImageNotFound     Code = 3  // the image is not in the home's OCI layout
	CodeAlreadyExists     Code = 4  // destination or name taken
	CodeSandboxRunning    Code = 5  // the sandbox is running (a live handle holds its lock)
	CodeHasChildren       Code = 6  // the snapshot has indexed children (use force)
	CodeIntegrityMismatch Code = 7  // content differs from what the manifest records
	CodeInvalidArgument   Code = 8  // bad argument: JSON, name, handle, NULL, UTF-8
	CodeInvalidManifest   Code = 9  // manifest.json malformed or inconsistent with the artifact
	CodeInvalidArchive    Code = 10 // archive malformed or hostile
	CodeUnsupported       Code = 11 // valid but not supported (unknown algorithm, qcow2 backing file, newer DB)
	CodeIO                Code = 12 // filesystem or database error
	CodeCancelled         Code = 13 // cancelled by the context (or the library's cancel token)
	CodeInternal          Code = 14 // a bug in the library (including a caught panic)
	CodeUnauthorized      Code = 15 // a registry refused the credentials (or their absence)
	CodeRegistryError     Code = 16 // a registry could not be reached, timed out, or answered outside the protocol
)

// codeNames are the names the library uses in its error objects.
var codeNames = map[Code]string{
	CodeOK:                "ok",
	CodeSnapshotNotFound:  "snapshot_not_found",
	CodeSandboxNotFound:   "sandbox_not_found",
	CodeImageNotFound:     "image_not_found",
	CodeAlreadyExists:     "already_exists",
	CodeSandboxRunning:    "sandbox_running",
	CodeHasChildren:       "has_children",
	CodeIntegrityMismatch: "integrity_mismatch",
	CodeInvalidArgument:   "invalid_argument",
	CodeInvalidManifest:   "invalid_manifest",
	CodeInvalidArchive:    "invalid_archive",
	CodeUnsupported:       "unsupported",
	CodeIO:                "io",
	CodeCancelled:         "cancelled",
	CodeInternal:          "internal",
	CodeUnauthorized:      "unauthorized",
	CodeRegistryError:     "registry_error",
}

// String returns the code's stable name, e.g. "snapshot_not_found".
func (c Code) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("code(%d)", int32(c))
}

// Error is every error the library reports: its stable Code, the library's
// message, and the extra fields some codes carry. Compare with the
// sentinels through errors.Is:
//
//	if errors.Is(err, microsnap.ErrSnapshotNotFound) { ... }
//
// An Error caused by a cancelled or expired context.Context also unwraps to
// context.Canceled or context.DeadlineExceeded.
type Error struct {
	// Code is the stable error code.
	Code Code
	// Name is the code's stable name as the library spells it.
	Name string
	// Message is the library's human-readable message, naming the offending
	// thing (a name, path or field).
	Message string
	// Path is the file the error is about, when the library names one
	// (integrity_mismatch).
	Path string
	// Expected and Actual are the recorded and recomputed digests of an
	// integrity_mismatch.
	Expected, Actual string
	// Digest is the snapshot a has_children error is about.
	Digest string
	// Children is the number of its indexed children.
	Children uint64

	cause error
}

// Error returns "microsnap: <name>: <message>".
func (e *Error) Error() string {
	name := e.Name
	if name == "" {
		name = e.Code.String()
	}
	if e.Message == "" {
		return "microsnap: " + name
	}
	return "microsnap: " + name + ": " + e.Message
}

// Is reports whether target is an *Error with the same code, which makes
// every sentinel (ErrSnapshotNotFound, ...) match errors of its code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Unwrap returns the context error behind a cancellation (or ErrClosed for
// a call on a closed handle), else nil.
func (e *Error) Unwrap() error { return e.cause }

func sentinel(c Code) *Error { return &Error{Code: c, Name: c.String()} }

// Sentinels, one per code: errors.Is(err, ErrX) holds for every *Error of
// that code.
var (
	ErrSnapshotNotFound  = sentinel(CodeSnapshotNotFound)
	ErrSandboxNotFound   = sentinel(CodeSandboxNotFound)
	ErrImageNotFound     = sentinel(CodeImageNotFound)
	ErrAlreadyExists     = sentinel(CodeAlreadyExists)
	ErrSandboxRunning    = sentinel(CodeSandboxRunning)
	ErrHasChildren       = sentinel(CodeHasChildren)
	ErrIntegrityMismatch = sentinel(CodeIntegrityMismatch)
	ErrInvalidArgument   = sentinel(CodeInvalidArgument)
	ErrInvalidManifest   = sentinel(CodeInvalidManifest)
	ErrInvalidArchive    = sentinel(CodeInvalidArchive)
	ErrUnsupported       = sentinel(CodeUnsupported)
	ErrIO                = sentinel(CodeIO)
	ErrCancelled         = sentinel(CodeCancelled)
	ErrInternal          = sentinel(CodeInternal)
	ErrUnauthorized      = sentinel(CodeUnauthorized)
	ErrRegistryError     = sentinel(CodeRegistryError)
)

// ErrClosed is wrapped by the invalid_argument error a method returns when
// its Home or Sandbox has been closed.
var ErrClosed = errors.New("microsnap: use of a closed handle")

// ErrIncompatibleLibrary is returned by every call when the loaded
// libmicrosnap implements an ABI version this package does not know.
var ErrIncompatibleLibrary = errors.New("microsnap: incompatible libmicrosnap ABI version")

func closedError(what string) error {
	return &Error{Code: CodeInvalidArgument, Name: CodeInvalidArgument.String(), Message: what + " is closed", cause: ErrClosed}
}

// errorObject is the library's error object: code and message, then the
// details some codes add.
type errorObject struct {
	errorBody
	Path     string `json:"path"`     // integrity_mismatch
	Expected string `json:"expected"` // integrity_mismatch
	Actual   string `json:"actual"`   // integrity_mismatch
	Digest   string `json:"digest"`   // has_children
	Children uint64 `json:"children"` // has_children
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// decodeError turns a failed call's status and error object into an
// *Error. The status is authoritative; the object adds message and details.
// A cancellation while ctx is done unwraps to ctx.Err().
func decodeError(ctx context.Context, code Code, body []byte) error {
	e := &Error{Code: code, Name: code.String()}
	var o errorObject
	err := json.Unmarshal(body, &o)
	if err != nil {
		// A detail of a type this package does not expect must not hide
		// the message: read code and message alone.
		o = errorObject{}
		err = json.Unmarshal(body, &o.errorBody)
	}
	if err != nil {
		e.Message = fmt.Sprintf("unreadable error object %q", body)
	} else {
		if o.Code != "" {
			e.Name = o.Code
		}
		e.Message = o.Message
		e.Path, e.Expected, e.Actual = o.Path, o.Expected, o.Actual
		e.Digest, e.Children = o.Digest, o.Children
	}
	if code == CodeCancelled && ctx != nil && ctx.Err() != nil {
		e.cause = ctx.Err()
	}
	return e
}

// cancelledBefore is the error for a context that was already done before
// the call started; nothing was done.
func cancelledBefore(ctx context.Context) error {
	return &Error{Code: CodeCancelled, Name: CodeCancelled.String(), Message: "cancelled before start: " + ctx.Err().Error(), cause: ctx.Err()}
}
