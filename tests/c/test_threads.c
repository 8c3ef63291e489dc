/* Every function is safe to call from many threads at once on one context:
 * 8 threads each snapshot a shared stopped sandbox under their own names,
 * verify, get and list, while the main thread lists too. */
#include "common.h"
#include <pthread.h>

#define THREADS 8
#define ROUNDS 4

static msnap_context *g_ctx;
static int g_errors[THREADS];

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    char args[256], *out = NULL;
    for (int r = 0; r < ROUNDS; r++) {
        snprintf(args, sizeof args,
                 "{\"source_sandbox\":\"shared\",\"name\":\"t%d-r%d\",\"record_integrity\":true}", id, r);
        /* The sandbox lock serializes snapshot copies of one sandbox, so a
         * concurrent copy may see sandbox_running: retry as a caller would. */
        int32_t st;
        do {
            st = msnap_snapshot_create(&out, g_ctx, args, NULL, NULL, NULL);
            if (st != MSNAP_OK && st != MSNAP_ERR_SANDBOX_RUNNING) { fprintf(stderr, "create: %s\n", out); g_errors[id]++; }
            msnap_string_free(out);
        } while (st == MSNAP_ERR_SANDBOX_RUNNING);
        snprintf(args, sizeof args, "{\"ref\":\"t%d-r%d\"}", id, r);
        if (msnap_snapshot_verify(&out, g_ctx, args, NULL, NULL, NULL) != MSNAP_OK) { fprintf(stderr, "verify: %s\n", out); g_errors[id]++; }
        msnap_string_free(out);
        if (msnap_snapshot_get(&out, g_ctx, args) != MSNAP_OK) { fprintf(stderr, "get: %s\n", out); g_errors[id]++; }
        msnap_string_free(out);
        if (msnap_snapshot_list(&out, g_ctx, NULL) != MSNAP_OK) { fprintf(stderr, "list: %s\n", out); g_errors[id]++; }
        msnap_string_free(out);
    }
    return NULL;
}

int main(void) {
    char home[256], upper[1024], *out = NULL;
    make_home(home, sizeof home);
    g_ctx = open_ctx(home);
    msnap_sandbox *sb = NULL;
    CHECK(msnap_sandbox_create(&sb, &out, g_ctx,
                               "{\"name\":\"shared\",\"image\":\"alpine:3.20\",\"size_bytes\":16777216}",
                               NULL, NULL, NULL) == MSNAP_OK, "create: %s", out);
    json_str(out, "upper_path", upper, sizeof upper);
    msnap_string_free(out);
    write_at(upper, 4096, 0x11, 65536);
    CHECK(msnap_sandbox_stop(&out, sb) == MSNAP_OK, "stop");
    msnap_string_free(out);
    msnap_sandbox_free(sb);

    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < 20; i++) {
        CHECK(msnap_snapshot_list(&out, g_ctx, NULL) == MSNAP_OK, "main list: %s", out);
        msnap_string_free(out);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < THREADS; i++) CHECK(g_errors[i] == 0, "thread %d had %d errors", i, g_errors[i]);

    CHECK(msnap_snapshot_list(&out, g_ctx, NULL) == MSNAP_OK, "final list");
    CHECK(count_occurrences(out, "\"digest\":") == THREADS * ROUNDS, "want %d snapshots: %.200s",
          THREADS * ROUNDS, out);
    msnap_string_free(out);
    CHECK(msnap_context_free(g_ctx) == MSNAP_OK, "free");
    remove_tree(home);
    return finish("test_threads");
}
