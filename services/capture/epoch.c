/*
 * epoch — 64 bits from getrandom(2): no fallback to the clock or to
 * /dev/urandom, whose absence or failure says the kernel cannot give
 * secrets now; starting with a guessable epoch would be worse than not
 * starting.
 */
#include "epoch.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

/* Draws after a 0 (one in 2^64) before the source is taken to be broken. */
#define S_ZERO_TRIES 4

/* All `len` bytes, across signals and short reads. */
static int s_fill(uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(buf + got, len - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        got += (size_t)n;
    }
    return 0;
}

int epoch_new(uint64_t *epoch, char *err, size_t errlen)
{
    for (int i = 0; i < S_ZERO_TRIES; i++) {
        uint8_t b[8];
        int rc = s_fill(b, sizeof b);
        if (rc < 0) {
            snprintf(err, errlen, "cannot draw a random epoch: getrandom: %s", strerror(-rc));
            return rc;
        }
        uint64_t v = 0;
        for (size_t k = 0; k < sizeof b; k++)
            v = v << 8 | b[k];
        if (v != 0) {
            *epoch = v;
            return 0;
        }
    }
    snprintf(err, errlen, "cannot draw a random epoch: getrandom gave 0 %d times in a row",
             S_ZERO_TRIES);
    return -EIO;
}
