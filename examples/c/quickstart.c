/* microsnap from C: open a home, list its images and snapshots, and verify
 * one snapshot if its name is given.
 *
 *   cc quickstart.c $(pkg-config --cflags --libs microsnap) -o quickstart
 *   ./quickstart [HOME [SNAPSHOT]]
 */
#include <stdio.h>
#include <string.h>
#include <microsnap.h>

static int report(const char *what, int32_t status, char *out) {
    printf("%s -> %s\n", what, out ? out : "(null)");
    msnap_string_free(out); /* library memory: never free() it */
    return status == MSNAP_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    if (msnap_abi_version() != MSNAP_ABI_VERSION) {
        fprintf(stderr, "libmicrosnap ABI %u, header %d\n", msnap_abi_version(), MSNAP_ABI_VERSION);
        return 1;
    }
    char args[4096];
    if (argc > 1)
        snprintf(args, sizeof args, "{\"home\":\"%s\"}", argv[1]);
    else
        strcpy(args, "{}"); /* $MICROSNAP_HOME, else ~/.microsnap */

    msnap_context *ctx = NULL;
    char *out = NULL;
    int32_t st = msnap_context_open(&ctx, &out, args);
    if (report("open", st, out)) return 1;

    int failed = 0;
    /* Call first, then read `out`: as sibling arguments their order would
     * be unspecified. */
    st = msnap_image_list(&out, ctx, NULL);
    failed |= report("images", st, out);
    st = msnap_snapshot_list(&out, ctx, NULL);
    failed |= report("snapshots", st, out);
    if (argc > 2) {
        snprintf(args, sizeof args, "{\"ref\":\"%s\"}", argv[2]);
        st = msnap_snapshot_verify(&out, ctx, args, NULL, NULL, NULL);
        failed |= report("verify", st, out);
    }
    msnap_context_free(ctx);
    return failed;
}
