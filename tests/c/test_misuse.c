/* Misuse of the C ABI must produce errors, never crashes: NULL pointers,
 * invalid UTF-8, malformed JSON, wrong JSON types, unknown fields, stale,
 * foreign and made-up handles, double free; and cancellation (a token
 * triggered before the call, a progress callback that cancels) must leave
 * nothing behind. */
#include "common.h"

static int32_t cancel_after_first(const char *phase, uint64_t done, uint64_t total, void *payload) {
    (void)phase; (void)done; (void)total;
    int *calls = payload;
    return ++*calls > 1; /* let the first report through, then cancel */
}

static void check_code(int32_t st, int32_t want, char *out, const char *code, const char *what) {
    CHECK(st == want, "%s: status %d want %d: %s", what, (int)st, (int)want, out ? out : "(null)");
    if (out && code) {
        char pat[128];
        snprintf(pat, sizeof pat, "\"code\":\"%s\"", code);
        CHECK(strstr(out, pat) != NULL, "%s: %s lacks %s", what, out, pat);
        CHECK(strstr(out, "\"message\":\"") != NULL, "%s: no message in %s", what, out);
    }
    msnap_string_free(out);
}

/* Run `call` (which writes `out`), then check status and error code. A
 * macro so that `out` is read after the call, not as a sibling argument. */
#define EXPECT_CODE(call, want, code, what)                \
    do {                                                   \
        out = NULL;                                        \
        int32_t st_ = (call);                              \
        check_code(st_, (want), out, (code), (what));      \
        out = NULL;                                        \
    } while (0)

int main(void) {
    char home[256], path[1024];
    make_home(home, sizeof home);
    msnap_context *ctx = open_ctx(home);
    char *out = NULL;

    /* NULL everywhere. */
    EXPECT_CODE(msnap_snapshot_list(&out, NULL, NULL), MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "NULL ctx");
    EXPECT_CODE(msnap_snapshot_get(&out, ctx, NULL), MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "NULL args where ref is required");
    CHECK(msnap_snapshot_list(NULL, ctx, NULL) == MSNAP_OK, "NULL out is allowed");
    EXPECT_CODE(msnap_context_open(NULL, &out, NULL), MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "NULL out_ctx");
    CHECK(msnap_cancel_new(NULL) == MSNAP_ERR_INVALID_ARGUMENT, "NULL out_cancel");
    EXPECT_CODE(msnap_sandbox_create(NULL, &out, ctx, "{\"name\":\"x\",\"image\":\"alpine:3.20\"}",
                                     NULL, NULL, NULL), MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "NULL out_sandbox");
    msnap_string_free(NULL);

    /* Bad strings and JSON. */
    EXPECT_CODE(msnap_snapshot_get(&out, ctx, "{\"ref\":\"\xff\xfe\"}"), MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "invalid UTF-8");
    EXPECT_CODE(msnap_snapshot_get(&out, ctx, "{\"ref\":"), MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "truncated JSON");
    EXPECT_CODE(msnap_snapshot_get(&out, ctx, "[1,2]"), MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "array instead of object");
    EXPECT_CODE(msnap_snapshot_get(&out, ctx, "{\"ref\":42}"), MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "wrong type");
    EXPECT_CODE(msnap_snapshot_remove(&out, ctx, "{\"ref\":\"x\",\"forse\":true}"), MSNAP_ERR_INVALID_ARGUMENT, NULL, "unknown field");
    msnap_snapshot_remove(&out, ctx, "{\"ref\":\"x\",\"forse\":true}");
    CHECK(strstr(out, "forse") != NULL, "unknown field not named: %s", out);
    msnap_string_free(out);
    EXPECT_CODE(msnap_snapshot_get(&out, ctx, "{\"ref\":\"a/../../etc\"}"), MSNAP_ERR_SNAPSHOT_NOT_FOUND, "snapshot_not_found", "path that is no artifact");
    EXPECT_CODE(msnap_snapshot_create(&out, ctx, "{\"source_sandbox\":\"nope\",\"name\":\".x\"}",
                                      NULL, NULL, NULL), MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "hidden name");
    EXPECT_CODE(msnap_snapshot_create(&out, ctx, "{\"source_sandbox\":\"nope\",\"name\":\"ok\"}",
                                      NULL, NULL, NULL), MSNAP_ERR_SANDBOX_NOT_FOUND, "sandbox_not_found", "unknown sandbox");
    EXPECT_CODE(msnap_sandbox_create(NULL, &out, ctx,
                                     "{\"name\":\"x\",\"image\":\"nope:1\",\"start\":false}",
                                     NULL, NULL, NULL), MSNAP_ERR_IMAGE_NOT_FOUND, "image_not_found", "unknown image");

    /* Handles: made-up, foreign, stale, double free. */
    msnap_context *fake = (msnap_context *)(uintptr_t)0x1234;
    EXPECT_CODE(msnap_snapshot_list(&out, fake, NULL), MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "made-up handle");
    msnap_cancel *tok = NULL;
    CHECK(msnap_cancel_new(&tok) == MSNAP_OK, "cancel_new");
    EXPECT_CODE(msnap_snapshot_list(&out, (msnap_context *)tok, NULL), MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "foreign handle");
    CHECK(msnap_context_free((msnap_context *)tok) == MSNAP_ERR_INVALID_ARGUMENT,
          "freeing a cancel token as a context");
    msnap_context *other = open_ctx(home);
    CHECK(msnap_context_free(other) == MSNAP_OK, "free");
    CHECK(msnap_context_free(other) == MSNAP_ERR_INVALID_ARGUMENT, "double free");
    EXPECT_CODE(msnap_snapshot_list(&out, other, NULL), MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "stale handle");
    /* The deprecated name still frees, with the same checks. */
    other = open_ctx(home);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    CHECK(msnap_context_close(other) == MSNAP_OK, "deprecated msnap_context_close frees");
    CHECK(msnap_context_close(other) == MSNAP_ERR_INVALID_ARGUMENT, "deprecated close after free");
#pragma GCC diagnostic pop
    EXPECT_CODE(msnap_snapshot_list(&out, other, NULL), MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument",
                "stale handle after deprecated close");
    CHECK(msnap_sandbox_free((msnap_sandbox *)(uintptr_t)0x5300000100000001ULL) ==
              MSNAP_ERR_INVALID_ARGUMENT, "made-up sandbox handle");

    /* Cancellation leaves nothing behind. */
    msnap_sandbox *sb = NULL;
    CHECK(msnap_sandbox_create(&sb, &out, ctx,
                               "{\"name\":\"src\",\"image\":\"alpine:3.20\",\"size_bytes\":134217728}",
                               NULL, NULL, NULL) == MSNAP_OK, "create: %s", out);
    char upper[1024];
    json_str(out, "upper_path", upper, sizeof upper);
    msnap_string_free(out);
    for (int i = 0; i < 16; i++) write_at(upper, (long)i << 23, 0x5a + i, 1 << 20);
    CHECK(msnap_sandbox_stop(&out, sb) == MSNAP_OK, "stop");
    msnap_string_free(out);
    CHECK(msnap_sandbox_free(sb) == MSNAP_OK, "free");
    CHECK(msnap_sandbox_free(sb) == MSNAP_ERR_INVALID_ARGUMENT, "double free of sandbox handle");

    CHECK(msnap_cancel_trigger(tok) == MSNAP_OK, "trigger");
    EXPECT_CODE(msnap_snapshot_create(&out, ctx, "{\"source_sandbox\":\"src\",\"name\":\"c1\"}",
                                      tok, NULL, NULL), MSNAP_ERR_CANCELLED, "cancelled", "pre-cancelled token");
    int calls = 0;
    EXPECT_CODE(msnap_snapshot_create(&out, ctx,
                                      "{\"source_sandbox\":\"src\",\"name\":\"c2\",\"record_integrity\":true}",
                                      NULL, cancel_after_first, &calls), MSNAP_ERR_CANCELLED, "cancelled", "progress callback cancels");
    CHECK(calls >= 2, "callback ran %d times", calls);
    snprintf(path, sizeof path, "%s/snapshots", home);
    CHECK(dir_entries(path) == 0, "snapshots dir not empty after cancels");
    snprintf(path, sizeof path, "%s/tmp", home);
    CHECK(dir_entries(path) == 0, "staging left in tmp after cancels");
    EXPECT_CODE(msnap_snapshot_list(&out, ctx, NULL), MSNAP_OK, NULL, "list");
    msnap_snapshot_list(&out, ctx, NULL);
    CHECK(strcmp(out, "{\"snapshots\":[]}") == 0, "index changed by cancelled calls: %s", out);
    msnap_string_free(out);
    /* Cancel mid-export: a snapshot to export, a callback that stops it
     * after the first progress report, and no archive (nor partial file)
     * left in the output directory. */
    EXPECT_CODE(msnap_snapshot_create(&out, ctx, "{\"source_sandbox\":\"src\",\"name\":\"exp\"}",
                                      NULL, NULL, NULL),
                MSNAP_OK, NULL, "snapshot to export");
    char outdir[1100], eargs[2400];
    snprintf(outdir, sizeof outdir, "%s/out", home);
    mkdir(outdir, 0755);
    snprintf(eargs, sizeof eargs, "{\"ref\":\"exp\",\"out\":\"%s/exp.tar.zst\"}", outdir);
    calls = 0;
    EXPECT_CODE(msnap_snapshot_export(&out, ctx, eargs, NULL, cancel_after_first, &calls),
                MSNAP_ERR_CANCELLED, "cancelled", "progress callback cancels export");
    CHECK(calls >= 2, "export callback ran %d times", calls);
    CHECK(dir_entries(outdir) == 0, "cancelled export left files in %s", outdir);
    EXPECT_CODE(msnap_snapshot_export(&out, ctx, eargs, tok, NULL, NULL), MSNAP_ERR_CANCELLED,
                "cancelled", "token cancels export");
    CHECK(dir_entries(outdir) == 0, "cancelled export left files in %s", outdir);
    EXPECT_CODE(msnap_snapshot_export(&out, ctx, eargs, NULL, NULL, NULL), MSNAP_OK, NULL, "export");
    CHECK(dir_entries(outdir) == 1, "export wrote no archive");

    CHECK(msnap_cancel_free(tok) == MSNAP_OK, "cancel_free");
    CHECK(msnap_cancel_free(tok) == MSNAP_ERR_INVALID_ARGUMENT, "cancel double free");

    CHECK(msnap_context_free(ctx) == MSNAP_OK, "free");
    remove_tree(home);
    return finish("test_misuse");
}
