/* Shared helpers for the C tests: a temporary home with a real OCI image
 * layout, tiny JSON field extraction, and check macros that report the
 * library's error object on failure. */
#ifndef MICROSNAP_TEST_COMMON_H
#define MICROSNAP_TEST_COMMON_H

#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>
#include "microsnap.h"

static int g_failures = 0;
static int g_checks = 0;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        g_checks++;                                                          \
        if (!(cond)) {                                                       \
            g_failures++;                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                    \
            fprintf(stderr, "\n");                                           \
        }                                                                    \
    } while (0)

/* Expect a status; print the out-string when it differs. */
#define EXPECT_STATUS(call_status, want, out)                                  \
    do {                                                                       \
        int32_t st_ = (call_status);                                           \
        CHECK(st_ == (want), "status %d, want %d: %s", (int)st_, (int)(want),  \
              (out) ? (out) : "(null)");                                       \
    } while (0)

/* The string value of "key" in a flat JSON object (first occurrence),
 * copied into buf. Enough for test assertions on our own output. */
static inline const char *json_str(const char *json, const char *key, char *buf, size_t n) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = json ? strstr(json, pat) : NULL;
    if (!p) { buf[0] = 0; return buf; }
    p += strlen(pat);
    size_t i = 0;
    while (*p && *p != '"' && i + 1 < n) buf[i++] = *p++;
    buf[i] = 0;
    return buf;
}

static inline int count_occurrences(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* Entries in a directory, not counting . and .. */
static inline int dir_entries(const char *path) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", path);
    FILE *f = popen(cmd, "r");
    int n = -1;
    if (f) { if (fscanf(f, "%d", &n) != 1) n = -1; pclose(f); }
    return n;
}

/* A fresh temporary home with an OCI layout holding alpine:3.20. */
static inline void make_home(char *home, size_t n) {
    snprintf(home, n, "/tmp/msnap-c-XXXXXX");
    if (!mkdtemp(home)) { perror("mkdtemp"); exit(2); }
    const char *fixtures = getenv("MICROSNAP_FIXTURES");
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "python3 '%s/make_oci_image.py' '%s/images' alpine:3.20 >/dev/null",
             fixtures ? fixtures : "tests/fixtures", home);
    if (system(cmd) != 0) { fprintf(stderr, "fixture failed: %s\n", cmd); exit(2); }
}

static inline void remove_tree(const char *path) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", path);
}

static inline msnap_context *open_ctx(const char *home) {
    char args[4200];
    snprintf(args, sizeof args, "{\"home\":\"%s\"}", home);
    msnap_context *ctx = NULL;
    char *out = NULL;
    int32_t st = msnap_context_open(&ctx, &out, args);
    if (st != MSNAP_OK) { fprintf(stderr, "context_open: %s\n", out); exit(2); }
    msnap_string_free(out);
    return ctx;
}

/* Write `len` bytes of `byte` at `offset` in a file (the sandbox "runs"). */
static inline void write_at(const char *path, long offset, int byte, size_t len) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) { perror(path); exit(2); }
    char *buf = malloc(len);
    memset(buf, byte, len);
    if (pwrite(fd, buf, len, offset) != (ssize_t)len) { perror("pwrite"); exit(2); }
    free(buf);
    close(fd);
}

static inline int finish(const char *name) {
    printf("%s: %d checks, %d passed, %d failed\n", name, g_checks, g_checks - g_failures,
           g_failures);
    return g_failures ? 1 : 0;
}

#endif
