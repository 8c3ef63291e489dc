package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	m "github.com/microsnap/microsnap/bindings/go"
)

// Exit codes: distinct per kind of failure so scripts can branch on them.
// The README's table and the root --help list them.
const (
	exitOK        = 0
	exitError     = 1
	exitUsage     = 2
	exitNotFound  = 3
	exitConflict  = 4
	exitIntegrity = 5
	exitArchive   = 6
	exitAuth      = 7
	exitRegistry  = 8
	exitCancelled = 130
)

const exitCodesHelp = `Exit codes: 0 ok, 1 other error (io, internal), 2 invalid input
(invalid_argument, invalid_manifest, unsupported), 3 not found
(snapshot_not_found, sandbox_not_found, image_not_found, not_found: a missing
archive or layout file), 4 conflict (already_exists, sandbox_running,
has_children), 5 integrity_mismatch, 6 invalid_archive, 7 unauthorized,
8 registry_error, 130 cancelled.
Errors are one line on stderr, "microsnap: CODE: MESSAGE"; with --json, one
JSON object {"code","message",...} with the same exit code.`

// cliError is an error the CLI finds itself, before or around a library
// call: a usage error (invalid_argument) or a missing input file
// (not_found).
type cliError struct {
	code string
	exit int
	msg  string
}

func (c *cliError) Error() string { return c.code + ": " + c.msg }

func usageError(msg string) error { return &cliError{"invalid_argument", exitUsage, msg} }

func usageErrorf(format string, args ...any) error { return usageError(fmt.Sprintf(format, args...)) }

// notFound is a file the user named that does not exist: exit 3, as a
// missing snapshot, sandbox or image is.
func notFound(msg string) error { return &cliError{"not_found", exitNotFound, msg} }

// errorObject is what an error prints: the library's error object (code,
// message and the details some codes carry), or the CLI's own.
type errorObject struct {
	Code     string  `json:"code"`
	Message  string  `json:"message"`
	Path     string  `json:"path,omitempty"`
	Expected string  `json:"expected,omitempty"`
	Actual   string  `json:"actual,omitempty"`
	Digest   string  `json:"digest,omitempty"`
	Children *uint64 `json:"children,omitempty"`
}

func describe(err error) errorObject {
	var c *cliError
	if errors.As(err, &c) {
		return errorObject{Code: c.code, Message: c.msg}
	}
	var e *m.Error
	if errors.As(err, &e) {
		o := errorObject{Code: e.Name, Message: withoutCode(e.Name, e.Message),
			Path: e.Path, Expected: e.Expected, Actual: e.Actual, Digest: e.Digest}
		if e.Code == m.CodeIntegrityMismatch && e.Path != "" {
			// The library's "integrity mismatch for PATH: ..." would
			// repeat the code.
			o.Message = fmt.Sprintf("%s: expected %s, found %s", e.Path, e.Expected, e.Actual)
		}
		if e.Code == m.CodeHasChildren {
			n := e.Children
			o.Children = &n
		}
		return o
	}
	if errors.Is(err, context.Canceled) {
		return errorObject{Code: "cancelled", Message: "operation cancelled"}
	}
	return errorObject{Code: "error", Message: err.Error()}
}

// spokenCodes are the library's spoken forms of codes whose spelling
// differs from the code's name with spaces.
var spokenCodes = map[string]string{
	"sandbox_running": "sandbox is running",
	"internal":        "internal error",
}

// withoutCode drops the library's spoken form of the code from the front of
// its message ("unsupported: x", "snapshot not found: x"): the line already
// starts with the code.
func withoutCode(code, msg string) string {
	spoken := strings.ReplaceAll(code, "_", " ")
	if s, ok := spokenCodes[code]; ok {
		spoken = s
	}
	for _, prefix := range []string{code + ": ", spoken + ": "} {
		if rest, ok := strings.CutPrefix(msg, prefix); ok && rest != "" {
			return rest
		}
	}
	return msg
}

// report prints err, as one line or (asJSON) one JSON object, and returns
// its exit code.
func report(w io.Writer, err error, asJSON bool) int {
	o := describe(err)
	if asJSON {
		b, merr := json.Marshal(o)
		if merr == nil {
			fmt.Fprintf(w, "%s\n", b)
			return exitCode(err)
		}
	}
	fmt.Fprintf(w, "microsnap: %s: %s\n", o.Code, oneLine(o.Message))
	return exitCode(err)
}

// oneLine keeps an error to the one line scripts expect.
func oneLine(s string) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", " ")
}

func exitCode(err error) int {
	var c *cliError
	if errors.As(err, &c) {
		return c.exit
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, m.ErrCancelled):
		return exitCancelled
	case errors.Is(err, m.ErrSnapshotNotFound), errors.Is(err, m.ErrSandboxNotFound), errors.Is(err, m.ErrImageNotFound):
		return exitNotFound
	case errors.Is(err, m.ErrAlreadyExists), errors.Is(err, m.ErrSandboxRunning), errors.Is(err, m.ErrHasChildren):
		return exitConflict
	case errors.Is(err, m.ErrIntegrityMismatch):
		return exitIntegrity
	case errors.Is(err, m.ErrInvalidArchive):
		return exitArchive
	case errors.Is(err, m.ErrUnauthorized):
		return exitAuth
	case errors.Is(err, m.ErrRegistryError):
		return exitRegistry
	case errors.Is(err, m.ErrInvalidArgument), errors.Is(err, m.ErrInvalidManifest), errors.Is(err, m.ErrUnsupported):
		return exitUsage
	}
	return exitError
}
