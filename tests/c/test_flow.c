/* The whole job through the C ABI: sandbox from an OCI image, write to its
 * upper, stop, snapshot with integrity, verify, list, open, get, boot a
 * fork from the snapshot, snapshot the fork (lineage), remove. */
#include "common.h"

static int progress_calls = 0;
static int32_t count_progress(const char *phase, uint64_t done, uint64_t total, void *payload) {
    (void)payload;
    progress_calls++;
    CHECK(phase != NULL && phase[0] != 0, "phase is empty");
    CHECK(done <= total || total == 0, "done %llu > total %llu", (unsigned long long)done,
          (unsigned long long)total);
    return 0;
}

int main(void) {
    char home[256], buf[512], upper[1024], digest[128], args[2048];
    make_home(home, sizeof home);
    msnap_context *ctx = open_ctx(home);
    char *out = NULL;

    CHECK(msnap_abi_version() == MSNAP_ABI_VERSION, "abi version");
    CHECK(strlen(msnap_version()) > 0, "version string");

    /* A running sandbox from the image. */
    msnap_sandbox *sb = NULL;
    EXPECT_STATUS(msnap_sandbox_create(&sb, &out, ctx,
                      "{\"name\":\"baseline\",\"image\":\"alpine:3.20\",\"size_bytes\":67108864}",
                      NULL, NULL, NULL),
                  MSNAP_OK, out);
    CHECK(sb != NULL, "no sandbox handle");
    CHECK(strcmp(json_str(out, "state", buf, sizeof buf), "running") == 0, "state: %s", out);
    json_str(out, "upper_path", upper, sizeof upper);
    msnap_string_free(out);

    /* A running sandbox cannot be snapshotted. */
    EXPECT_STATUS(msnap_snapshot_create(&out, ctx, "{\"source_sandbox\":\"baseline\",\"name\":\"s1\"}",
                                        NULL, NULL, NULL),
                  MSNAP_ERR_SANDBOX_RUNNING, out);
    CHECK(strstr(out, "\"code\":\"sandbox_running\"") != NULL, "error object: %s", out);
    msnap_string_free(out);

    write_at(upper, 1 << 20, 0xab, 8192);
    write_at(upper, 40 << 20, 0xcd, 4096);

    EXPECT_STATUS(msnap_sandbox_stop(&out, sb), MSNAP_OK, out);
    CHECK(strcmp(json_str(out, "state", buf, sizeof buf), "stopped") == 0, "state: %s", out);
    msnap_string_free(out);
    EXPECT_STATUS(msnap_sandbox_free(sb), MSNAP_OK, "free");

    /* Snapshot with integrity and progress. */
    EXPECT_STATUS(msnap_snapshot_create(&out, ctx,
                      "{\"source_sandbox\":\"baseline\",\"name\":\"after-setup\","
                      "\"labels\":{\"stage\":\"post-deps\"},\"record_integrity\":true}",
                      NULL, count_progress, NULL),
                  MSNAP_OK, out);
    json_str(out, "digest", digest, sizeof digest);
    CHECK(strncmp(digest, "sha256:", 7) == 0 && strlen(digest) == 71, "digest %s", digest);
    CHECK(strstr(out, "\"algorithm\":\"microsnap-merkle-sha256-v1\"") != NULL, "integrity: %s", out);
    CHECK(strstr(out, "\"stage\":\"post-deps\"") != NULL, "labels: %s", out);
    CHECK(progress_calls > 0, "progress was never called");
    msnap_string_free(out);

    EXPECT_STATUS(msnap_snapshot_verify(&out, ctx, "{\"ref\":\"after-setup\"}", NULL, NULL, NULL),
                  MSNAP_OK, out);
    CHECK(strcmp(json_str(out, "kind", buf, sizeof buf), "verified") == 0, "verify: %s", out);
    msnap_string_free(out);

    EXPECT_STATUS(msnap_snapshot_list(&out, ctx, NULL), MSNAP_OK, out);
    CHECK(strstr(out, digest) != NULL, "list lacks %s: %s", digest, out);
    msnap_string_free(out);

    EXPECT_STATUS(msnap_snapshot_open(&out, ctx, "{\"ref\":\"after-setup\"}"), MSNAP_OK, out);
    CHECK(strcmp(json_str(out, "digest", buf, sizeof buf), digest) == 0, "open digest: %s", out);
    msnap_string_free(out);

    snprintf(args, sizeof args, "{\"ref\":\"%s\"}", digest);
    EXPECT_STATUS(msnap_snapshot_get(&out, ctx, args), MSNAP_OK, out);
    CHECK(strcmp(json_str(out, "name", buf, sizeof buf), "after-setup") == 0, "get: %s", out);
    msnap_string_free(out);

    /* Fork: a sandbox from the snapshot, then a snapshot of the fork. */
    EXPECT_STATUS(msnap_sandbox_create(&sb, &out, ctx,
                      "{\"name\":\"worker\",\"snapshot\":\"after-setup\"}", NULL, NULL, NULL),
                  MSNAP_OK, out);
    CHECK(strcmp(json_str(out, "from_snapshot", buf, sizeof buf), digest) == 0, "fork: %s", out);
    msnap_string_free(out);
    EXPECT_STATUS(msnap_sandbox_stop(&out, sb), MSNAP_OK, out);
    msnap_string_free(out);
    EXPECT_STATUS(msnap_sandbox_free(sb), MSNAP_OK, "free");
    EXPECT_STATUS(msnap_snapshot_create(&out, ctx, "{\"source_sandbox\":\"worker\",\"name\":\"child\"}",
                                        NULL, NULL, NULL),
                  MSNAP_OK, out);
    CHECK(strcmp(json_str(out, "parent", buf, sizeof buf), digest) == 0, "parent: %s", out);
    msnap_string_free(out);

    /* The parent now has a child: removal needs force. */
    EXPECT_STATUS(msnap_snapshot_remove(&out, ctx, "{\"ref\":\"after-setup\"}"),
                  MSNAP_ERR_HAS_CHILDREN, out);
    msnap_string_free(out);
    EXPECT_STATUS(msnap_snapshot_remove(&out, ctx, "{\"ref\":\"child\"}"), MSNAP_OK, out);
    msnap_string_free(out);
    EXPECT_STATUS(msnap_snapshot_remove(&out, ctx, "{\"ref\":\"after-setup\"}"), MSNAP_OK, out);
    msnap_string_free(out);
    EXPECT_STATUS(msnap_snapshot_open(&out, ctx, "{\"ref\":\"after-setup\"}"),
                  MSNAP_ERR_SNAPSHOT_NOT_FOUND, out);
    msnap_string_free(out);

    EXPECT_STATUS(msnap_sandbox_list(&out, ctx, "{}"), MSNAP_OK, out);
    CHECK(count_occurrences(out, "\"name\":") == 2, "two sandboxes: %s", out);
    msnap_string_free(out);
    EXPECT_STATUS(msnap_sandbox_remove(&out, ctx, "{\"name\":\"worker\"}"), MSNAP_OK, out);
    msnap_string_free(out);

    EXPECT_STATUS(msnap_image_list(&out, ctx, NULL), MSNAP_OK, out);
    CHECK(strstr(out, "\"ref\":\"alpine:3.20\"") != NULL, "images: %s", out);
    msnap_string_free(out);

    EXPECT_STATUS(msnap_home_usage(&out, ctx, NULL), MSNAP_OK, out);
    CHECK(strstr(out, "\"name\":\"alpine:3.20\"") != NULL, "usage: %s", out);
    CHECK(strstr(out, "\"total\":{") != NULL, "usage: %s", out);
    msnap_string_free(out);
    EXPECT_STATUS(msnap_image_prune(&out, ctx, "{\"dry_run\":true}", NULL, NULL, NULL), MSNAP_OK, out);
    CHECK(strstr(out, "\"dry_run\":true") != NULL, "prune: %s", out);
    CHECK(strstr(out, "\"removed\":[]") != NULL, "prune removed something needed: %s", out);
    msnap_string_free(out);
    EXPECT_STATUS(msnap_image_prune(&out, ctx, "{\"dryrun\":true}", NULL, NULL, NULL),
                  MSNAP_ERR_INVALID_ARGUMENT, out);
    msnap_string_free(out);

    EXPECT_STATUS(msnap_context_free(ctx), MSNAP_OK, "free");
    remove_tree(home);
    return finish("test_flow");
}
