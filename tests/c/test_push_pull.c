/* msnap_snapshot_push and msnap_snapshot_pull through the C ABI: misuse
 * (NULL, malformed JSON, unknown or misplaced members, malformed
 * references, bad handles) is an error object, never a crash. */
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

    /* A made-up cancel token is refused, not dereferenced. */
    snprintf(args, sizeof args, "{\"reference\":\"oci:%s:v1\"}", layout);
    EXPECT_CODE(msnap_snapshot_pull(&out, ctx, args, (msnap_cancel *)(uintptr_t)0x4321, NULL, NULL),
                MSNAP_ERR_INVALID_ARGUMENT, "invalid_argument", "pull: made-up cancel token");
    CHECK(dir_entries(home) >= 1, "home vanished");

    CHECK(msnap_context_free(ctx) == MSNAP_OK, "context_free");
    remove_tree(home);
    return finish("test_push_pull");
}
