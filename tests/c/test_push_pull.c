/* msnap_snapshot_push and msnap_snapshot_pull through the C ABI: a snapshot
 * pushed into an oci: layout and pulled back into a second home (with
 * progress, twice: the second is a no-op), a pull cancelled by its callback
 * that leaves nothing; and misuse (NULL, malformed JSON, unknown or
 * misplaced members, malformed references, bad handles) is an error object,
 * never a crash. */
#include "common.h"

static void check_code(int32_t st, int32_t want, char *out, const char *code, const char *what) {
    CHECK(st == want, "%s: status %d want %d: %s", what, (int)st, (int)want, out ? out : "(null)");
    if (out && code) {
        char pat[128];
        snprintf(pat, sizeof pat, "\"code\":\"%s\"", code);
        CHECK(strstr(out, pat) != NULL, "%s: %s lacks %s", what, out, pat);
    }
    msnap_string_free(out);
}

static int push_reports = 0, pull_reports = 0;
static int32_t count_phases(const char *phase, uint64_t done, uint64_t total, void *payload) {
    (void)payload;
    CHECK(done <= total, "%s: done %llu > total %llu", phase, (unsigned long long)done, (unsigned long long)total);
    if (strcmp(phase, "push") == 0) push_reports++;
    if (strcmp(phase, "pull") == 0) pull_reports++;
    return 0;
}

static int32_t cancel_in_pull(const char *phase, uint64_t done, uint64_t total, void *payload) {
    (void)done; (void)total; (void)payload;
    return strcmp(phase, "pull") == 0; /* non-zero cancels */
}

/* The number value of "key" (first occurrence) in our own JSON. */
static long long json_num(const char *json, const char *key) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = json ? strstr(json, pat) : NULL;
    return p ? atoll(p + strlen(pat)) : -1;
}

/* A stopped sandbox "base" with data, snapshotted as "s" with integrity. */
static void make_snapshot(msnap_context *ctx) {
    char *out = NULL, upper[1024];
    msnap_sandbox *sb = NULL;
    EXPECT_STATUS(msnap_sandbox_create(&sb, &out, ctx,
                      "{\"name\":\"base\",\"image\":\"alpine:3.20\",\"size_bytes\":67108864}",
                      NULL, NULL, NULL),
                  MSNAP_OK, out);
    json_str(out, "upper_path", upper, sizeof upper);
    msnap_string_free(out);
    write_at(upper, 1 << 20, 0xab, 200000);
    write_at(upper, 40 << 20, 0xcd, 4096);
    EXPECT_STATUS(msnap_sandbox_stop(&out, sb), MSNAP_OK, out);
    msnap_string_free(out);
    EXPECT_STATUS(msnap_sandbox_free(sb), MSNAP_OK, "free");
    EXPECT_STATUS(msnap_snapshot_create(&out, ctx,
                      "{\"source_sandbox\":\"base\",\"name\":\"s\",\"record_integrity\":true}",
                      NULL, NULL, NULL),
                  MSNAP_OK, out);
    msnap_string_free(out);
}

static void round_trip(msnap_context *ctx, const char *layout) {
    char args[2048], digest[128], buf[1024], home2[256];
    char *out = NULL;
    make_snapshot(ctx);
    snprintf(args, sizeof args, "{\"ref\":\"s\",\"reference\":\"oci:%s:v1\",\"max_in_flight\":2}", layout);
    EXPECT_STATUS(msnap_snapshot_push(&out, ctx, args, NULL, count_phases, NULL), MSNAP_OK, out);
    json_str(out, "snapshot_digest", digest, sizeof digest);
    CHECK(strncmp(digest, "sha256:", 7) == 0, "push report: %s", out);
    CHECK(json_num(out, "chunks_uploaded") > 0 && json_num(out, "bytes_uploaded") > 0, "push report: %s", out);
    CHECK(strstr(out, "\"v1\"") != NULL, "the v1 tag is not in %s", out);
    CHECK(push_reports > 0, "no push progress");
    msnap_string_free(out);

    make_home(home2, sizeof home2);
    msnap_context *ctx2 = open_ctx(home2);
    snprintf(args, sizeof args, "{\"reference\":\"oci:%s:v1\"}", layout);
    /* Cancelled by the callback at its first pull report: nothing is left. */
    out = NULL;
    int32_t st = msnap_snapshot_pull(&out, ctx2, args, NULL, cancel_in_pull, NULL);
    CHECK(st == MSNAP_ERR_CANCELLED, "cancelled pull: %d %s", (int)st, out ? out : "(null)");
    msnap_string_free(out);
    snprintf(buf, sizeof buf, "%s/snapshots", home2);
    CHECK(dir_entries(buf) <= 0, "a cancelled pull left %d entries in %s", dir_entries(buf), buf);

    EXPECT_STATUS(msnap_snapshot_pull(&out, ctx2, args, NULL, count_phases, NULL), MSNAP_OK, out);
    CHECK(strstr(out, "\"head\":{") != NULL && strstr(out, "\"report\":{") != NULL, "pull result: %s", out);
    CHECK(strcmp(json_str(out, "digest", buf, sizeof buf), digest) == 0, "pulled %s, pushed %s", buf, digest);
    CHECK(strcmp(json_str(out, "name", buf, sizeof buf), "v1") == 0, "named after the tag: %s", out);
    CHECK(strstr(out, "\"already_present\":false") != NULL, "first pull: %s", out);
    CHECK(json_num(out, "chunks_downloaded") > 0, "first pull: %s", out);
    CHECK(pull_reports > 0, "no pull progress");
    msnap_string_free(out);
    EXPECT_STATUS(msnap_snapshot_verify(&out, ctx2, "{\"ref\":\"v1\"}", NULL, NULL, NULL), MSNAP_OK, out);
    msnap_string_free(out);
    EXPECT_STATUS(msnap_snapshot_pull(&out, ctx2, args, NULL, NULL, NULL), MSNAP_OK, out);
    CHECK(strstr(out, "\"already_present\":true") != NULL, "second pull: %s", out);
    msnap_string_free(out);

    CHECK(msnap_context_free(ctx2) == MSNAP_OK, "context_free");
    remove_tree(home2);
}

#define EXPECT_CODE(call, want, code, what)           \
    do {                                              \
        out = NULL;                                   \
        int32_t st_ = (call);                         \
        check_code(st_, (want), out, (code), (what)); \
        out = NULL;                                   \
    } while (0)

/* `out` must name `word` (a misplaced member, say). */
static void expect_named(char *out, const char *word, const char *what) {
    CHECK(out && strstr(out, word) != NULL, "%s: %s does not name %s", what, out ? out : "(null)", word);
    msnap_string_free(out);
}

int main(void) {
    char home[256], layout[512], args[2048];
    make_home(home, sizeof home);
    msnap_context *ctx = open_ctx(home);
    char *out = NULL;
    snprintf(layout, sizeof layout, "%s/layout", home);

    /* NULL context, NULL arguments (both calls need a reference). */
    snprintf(args, sizeof args, "{\"ref\":\"s\",\"reference\":\"oci:%s:v1\"}", layout);
    EXPECT_CODE(msnap_snapshot_push(&out, NULL, args, NULL, NULL, NULL), MSNAP_ERR_INVALID_ARGUMENT,
                "invalid_argument", "push: NULL ctx");
    EXPECT_CODE(msnap_snapshot_pull(&out, NULL, "{\"reference\":\"oci:/x\"}", NULL, NULL, NULL),
                MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "pull: NULL ctx");
    EXPECT_CODE(msnap_snapshot_push(&out, ctx, NULL, NULL, NULL, NULL), MSNAP_ERR_INVALID_ARGUMENT,
                "invalid_argument", "push: NULL args");
    EXPECT_CODE(msnap_snapshot_pull(&out, ctx, NULL, NULL, NULL, NULL), MSNAP_ERR_INVALID_ARGUMENT,
                "invalid_argument", "pull: NULL args");
    CHECK(msnap_snapshot_pull(NULL, ctx, NULL, NULL, NULL, NULL) == MSNAP_ERR_INVALID_ARGUMENT,
          "pull: NULL out still gives the status");

    /* Malformed JSON and wrong types. */
    EXPECT_CODE(msnap_snapshot_push(&out, ctx, "{\"ref\":\"s\",", NULL, NULL, NULL),
                MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "push: truncated JSON");
    EXPECT_CODE(msnap_snapshot_pull(&out, ctx, "[\"oci:/x\"]", NULL, NULL, NULL),
                MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "pull: an array");
    EXPECT_CODE(msnap_snapshot_pull(&out, ctx, "{\"reference\":\"oci:/x\",\"max_in_flight\":\"4\"}", NULL,
                                    NULL, NULL),
                MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "pull: max_in_flight as a string");
    EXPECT_CODE(msnap_snapshot_push(&out, ctx, "{\"ref\":\"s\",\"reference\":\"oci:/x\",\"with_parents\":1}",
                                    NULL, NULL, NULL),
                MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "push: with_parents as a number");
    EXPECT_CODE(msnap_snapshot_push(&out, ctx, "{\"ref\":\"\xff\",\"reference\":\"oci:/x\"}", NULL, NULL, NULL),
                MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "push: invalid UTF-8");

    /* Unknown members, and members of the other call, are refused by name. */
    msnap_snapshot_push(&out, ctx, "{\"ref\":\"s\",\"reference\":\"oci:/x\",\"plain_htp\":true}", NULL, NULL,
                        NULL);
    expect_named(out, "plain_htp", "push: misspelt member");
    msnap_snapshot_push(&out, ctx, "{\"ref\":\"s\",\"reference\":\"oci:/x\",\"dest\":\"/tmp\"}", NULL, NULL, NULL);
    expect_named(out, "dest", "push: pull's dest");
    msnap_snapshot_pull(&out, ctx, "{\"reference\":\"oci:/x\",\"since\":\"s\"}", NULL, NULL, NULL);
    expect_named(out, "since", "pull: push's since");
    msnap_snapshot_pull(&out, ctx, "{\"ref\":\"s\"}", NULL, NULL, NULL);
    expect_named(out, "ref", "pull: a ref instead of a reference");

    /* Malformed references. */
    const char *bad[] = {"sandboxes/s:v1", "docker://localhost:5000/s:v1", "localhost:5000/S:v1",
                         "localhost:5000/s@sha256:short", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(args, sizeof args, "{\"ref\":\"s\",\"reference\":\"%s\"}", bad[i]);
        out = NULL;
        int32_t st = msnap_snapshot_push(&out, ctx, args, NULL, NULL, NULL);
        CHECK(st == MSNAP_ERR_INVALID_ARGUMENT && out && strstr(out, "invalid reference"),
              "push to \"%s\": %d %s", bad[i], (int)st, out ? out : "(null)");
        msnap_string_free(out);
        snprintf(args, sizeof args, "{\"reference\":\"%s\",\"password\":\"hunter2-secret\",\"username\":\"u\"}",
                 bad[i]);
        out = NULL;
        st = msnap_snapshot_pull(&out, ctx, args, NULL, NULL, NULL);
        CHECK(st == MSNAP_ERR_INVALID_ARGUMENT && out && strstr(out, "invalid reference"),
              "pull from \"%s\": %d %s", bad[i], (int)st, out ? out : "(null)");
        CHECK(out && strstr(out, "hunter2") == NULL, "a password in the error: %s", out ? out : "(null)");
        msnap_string_free(out);
    }

    round_trip(ctx, layout);

    /* A made-up cancel token is refused, not dereferenced. */
    snprintf(args, sizeof args, "{\"reference\":\"oci:%s:v1\"}", layout);
    EXPECT_CODE(msnap_snapshot_pull(&out, ctx, args, (msnap_cancel *)(uintptr_t)0x4321, NULL, NULL),
                MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "pull: made-up cancel token");
    CHECK(dir_entries(home) >= 1, "home vanished");

    CHECK(msnap_context_free(ctx) == MSNAP_OK, "context_free");
    remove_tree(home);
    return finish("test_push_pull");
}
