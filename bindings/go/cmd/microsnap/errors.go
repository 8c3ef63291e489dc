package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	m "github.com/microsnap/microsnap/bindings/go"
)

// Exit codes: distinct per kind of failure so scripts can branch on them.
const (
	exitOK        = 0
	exitError     = 1
	exitUsage     = 2
	exitNotFound  = 3
	exitConflict  = 4
	exitIntegrity = 5
	exitArchive   = 6
	exitCancelled = 130
)

type usageErr struct{ msg string }

func (u *usageErr) Error() string { return u.msg }

func usageError(msg string) error { return &usageErr{msg} }

// report prints one line (code and message) and returns the exit code.
func report(w io.Writer, err error) int {
	var u *usageErr
	if errors.As(err, &u) {
		fmt.Fprintf(w, "microsnap: invalid_argument: %s\n", u.msg)
		return exitUsage
	}
	var e *m.Error
	if errors.As(err, &e) {
		fmt.Fprintf(w, "microsnap: %s: %s\n", e.Name, e.Message)
	} else {
		fmt.Fprintf(w, "microsnap: %v\n", err)
	}
	return exitCode(err)
}

func exitCode(err error) int {
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
	case errors.Is(err, m.ErrInvalidArgument), errors.Is(err, m.ErrInvalidManifest), errors.Is(err, m.ErrUnsupported):
		return exitUsage
	}
	return exitError
}
