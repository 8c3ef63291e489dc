/* The generated header must be self-contained, pedantic-clean in C99 and
 * C++, and safe to include twice in one translation unit. */
#include "microsnap.h"
#include "microsnap.h"

int header_twice_probe(void);
int header_twice_probe(void) {
    msnap_progress_fn cb = 0;
    (void)cb;
    return MSNAP_OK + MSNAP_ERR_INTERNAL + (int)MSNAP_ABI_VERSION;
}
