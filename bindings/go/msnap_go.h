/* C glue for the Go binding: the progress trampoline's C side and the long
 * operations with their monitor handle passed as an integer, so Go never
 * converts an integer to a pointer. Included by the Go files that call
 * these; every function is static inline. */
#ifndef MSNAP_GO_H
#define MSNAP_GO_H

#include <stdint.h>
#include <stddef.h>
#include "microsnap.h"

// Exported from progress_export.go. cgo writes this prototype to
// _cgo_export.h, which a preamble with definitions may not include, so it is
// repeated here with the exact types cgo generates.
extern int32_t microsnapGoProgress(char *phase, uint64_t done, uint64_t total, uintptr_t monitor);

// The progress callback handed to the library. The payload is a
// runtime/cgo.Handle (an integer), never a Go pointer.
static inline int32_t msnap_go_progress(const char *phase, uint64_t done, uint64_t total, void *payload) {
	return microsnapGoProgress((char *)phase, done, total, (uintptr_t)payload);
}

static inline msnap_progress_fn msnap_go_progress_fn(uintptr_t monitor) {
	return monitor ? msnap_go_progress : NULL;
}

// The long operations, taking the monitor handle as an integer so that Go
// never converts an integer to a pointer.
static inline int32_t go_snapshot_create(char **out, const msnap_context *ctx, const char *args,
                                  const msnap_cancel *cancel, uintptr_t monitor) {
	return msnap_snapshot_create(out, ctx, args, cancel, msnap_go_progress_fn(monitor), (void *)monitor);
}

static inline int32_t go_snapshot_verify(char **out, const msnap_context *ctx, const char *args,
                                  const msnap_cancel *cancel, uintptr_t monitor) {
	return msnap_snapshot_verify(out, ctx, args, cancel, msnap_go_progress_fn(monitor), (void *)monitor);
}

static inline int32_t go_sandbox_create(msnap_sandbox **out_sandbox, char **out, const msnap_context *ctx,
                                 const char *args, const msnap_cancel *cancel, uintptr_t monitor) {
	return msnap_sandbox_create(out_sandbox, out, ctx, args, cancel, msnap_go_progress_fn(monitor), (void *)monitor);
}

static inline int32_t go_snapshot_export(char **out, const msnap_context *ctx, const char *args,
                                         const msnap_cancel *cancel, uintptr_t monitor) {
	return msnap_snapshot_export(out, ctx, args, cancel, msnap_go_progress_fn(monitor), (void *)monitor);
}

static inline int32_t go_snapshot_import(char **out, const msnap_context *ctx, const char *args,
                                         const msnap_cancel *cancel, uintptr_t monitor) {
	return msnap_snapshot_import(out, ctx, args, cancel, msnap_go_progress_fn(monitor), (void *)monitor);
}

static inline int32_t go_snapshot_prune(char **out, const msnap_context *ctx, const char *args,
                                        const msnap_cancel *cancel, uintptr_t monitor) {
	return msnap_snapshot_prune(out, ctx, args, cancel, msnap_go_progress_fn(monitor), (void *)monitor);
}

static inline int32_t go_image_prune(char **out, const msnap_context *ctx, const char *args,
                                     const msnap_cancel *cancel, uintptr_t monitor) {
	return msnap_image_prune(out, ctx, args, cancel, msnap_go_progress_fn(monitor), (void *)monitor);
}

static inline int32_t go_snapshot_push(char **out, const msnap_context *ctx, const char *args,
                                       const msnap_cancel *cancel, uintptr_t monitor) {
	return msnap_snapshot_push(out, ctx, args, cancel, msnap_go_progress_fn(monitor), (void *)monitor);
}

static inline int32_t go_snapshot_pull(char **out, const msnap_context *ctx, const char *args,
                                       const msnap_cancel *cancel, uintptr_t monitor) {
	return msnap_snapshot_pull(out, ctx, args, cancel, msnap_go_progress_fn(monitor), (void *)monitor);
}

#endif /* MSNAP_GO_H */
