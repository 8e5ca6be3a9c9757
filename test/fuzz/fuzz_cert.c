/*
 * fuzz_cert — libFuzzer target for the certificate reader (common/trust.c,
 * trust_cert_read: the allow-list of CURVE_ALLOWED_KEYS_DIR and the
 * services' own key files, zcert's text format).
 *
 * The input is the file. Properties: a certificate read has a public key
 * of TRUST_KEY_LEN Z85 characters, a secret key of none or that length,
 * NUL-terminated metadata; one refused says why; and a certificate read
 * can be added to an allow-list, which then knows its key — or refuses its
 * node-id with a reason.
 * A broken property calls abort(), so the fuzzer and replay.c both see it.
 * The file lives in a directory of its own under /tmp, removed at exit.
 */
#include "trust.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char s_dir[64], s_path[128];

static void s_cleanup(void)
{
    unlink(s_path);
    rmdir(s_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_dir[0]) {
        snprintf(s_dir, sizeof s_dir, "/tmp/fuzz_cert.XXXXXX");
        if (!mkdtemp(s_dir))
            abort();
        snprintf(s_path, sizeof s_path, "%s/cert", s_dir);
        atexit(s_cleanup);
    }
    FILE *f = fopen(s_path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    trust_cert_t cert;
    char why[512] = "";
    int rc = trust_cert_read(s_path, &cert, why, sizeof why);
    if (rc < 0) {
        if (!why[0])
            abort(); /* a refusal says why */
        return 0;
    }
    size_t pub = strnlen(cert.public_key, sizeof cert.public_key);
    size_t sec = strnlen(cert.secret_key, sizeof cert.secret_key);
    if (pub != TRUST_KEY_LEN || (sec != 0 && sec != TRUST_KEY_LEN) ||
        strnlen(cert.node_ids, sizeof cert.node_ids) == sizeof cert.node_ids ||
        strnlen(cert.role, sizeof cert.role) == sizeof cert.role)
        abort();
    trust_t *t = trust_new();
    if (!t)
        abort();
    char err[512] = "";
    bool relay = strcmp(cert.role, "relay") == 0;
    if (trust_add(t, cert.public_key, cert.node_ids, relay, err, sizeof err) == 0) {
        if (!trust_known(t, cert.public_key))
            abort();
    } else if (!err[0]) {
        abort();
    }
    trust_destroy(&t);
    return 0;
}
