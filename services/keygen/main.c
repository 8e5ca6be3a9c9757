/*
 * tapmesh-keygen — makes a CurveZMQ certificate pair for one tapmesh
 * service, in czmq's zcert format: PATH (the public certificate, for the
 * peers' CURVE_ALLOWED_KEYS_DIR or CURVE_SERVER_PUBLIC_KEY) and PATH_secret
 * (mode 0600, for the service's own CURVE_SECRET_KEY_FILE). The public
 * certificate's metadata says what its holder may speak for (trust.h):
 *
 *   tapmesh-keygen PATH [--node-id ID|PATTERN]... [--relay]
 *
 * Existing files are never overwritten. The public key is printed.
 */
#include "trust.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#ifndef TAPMESH_VERSION
#define TAPMESH_VERSION "0.0.0"
#endif

static void s_usage(FILE *out)
{
    fprintf(out,
            "Usage: tapmesh-keygen PATH [--node-id ID|PATTERN]... [--relay]\n"
            "Writes a CurveZMQ certificate pair in zcert format: PATH, the public certificate\n"
            "(give it to the services this one connects to, in their CURVE_ALLOWED_KEYS_DIR,\n"
            "or to those connecting to it, as their CURVE_SERVER_PUBLIC_KEY), and PATH_secret,\n"
            "mode 0600, this service's own CURVE_SECRET_KEY_FILE. Prints the public key.\n"
            "\n"
            "  --node-id ID|PATTERN  a node id the holder may send for (its NODE_ID), or a\n"
            "                        glob pattern (site1-*); repeat, or separate with commas\n"
            "  --relay               the holder is a relay: it may pass on any source that\n"
            "                        its own CURVE_ALLOWED_KEYS_DIR lets in\n"
            "  --help, --version\n"
            "\n"
            "A collector's certificate needs neither. Existing files are not overwritten.\n");
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    char ids[TRUST_NODE_IDS_MAX + 2] = "";
    bool relay = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0) {
            s_usage(stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf("tapmesh-keygen %s\n", TAPMESH_VERSION);
            return 0;
        }
        if (strcmp(a, "--relay") == 0) {
            relay = true;
        } else if (strcmp(a, "--node-id") == 0 || strncmp(a, "--node-id=", 10) == 0) {
            const char *v = a[9] == '=' ? a + 10 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v) {
                fprintf(stderr, "tapmesh-keygen: --node-id needs a value\n");
                return 2;
            }
            size_t used = strlen(ids);
            if (used + 1 + strlen(v) > TRUST_NODE_IDS_MAX) {
                fprintf(stderr, "tapmesh-keygen: --node-id: more than %d bytes in all\n",
                        TRUST_NODE_IDS_MAX);
                return 2;
            }
            snprintf(ids + used, sizeof ids - used, "%s%s", used ? "," : "", v);
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "tapmesh-keygen: unknown option %s (see --help)\n", a);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "tapmesh-keygen: one PATH only (%s, %s)\n", path, a);
            return 2;
        }
    }
    if (!path) {
        s_usage(stderr);
        return 2;
    }
    char why[256];
    if (*ids && trust_patterns_check(ids, why, sizeof why) < 0) {
        fprintf(stderr, "tapmesh-keygen: --node-id: %s\n", why);
        return 2;
    }
    if (*ids && relay) {
        fprintf(stderr, "tapmesh-keygen: --relay and --node-id: a relay speaks for any source; "
                        "choose one\n");
        return 2;
    }
    char secret[4096];
    if (snprintf(secret, sizeof secret, "%s_secret", path) >= (int)sizeof secret) {
        fprintf(stderr, "tapmesh-keygen: %s: path too long\n", path);
        return 2;
    }
    struct stat st;
    const char *existing = stat(path, &st) == 0 ? path : stat(secret, &st) == 0 ? secret : NULL;
    if (existing) {
        fprintf(stderr, "tapmesh-keygen: %s exists: not overwritten\n", existing);
        return 1;
    }
    zsys_init();
    if (!zsys_has_curve()) {
        fprintf(stderr, "tapmesh-keygen: this libzmq was built without CURVE\n");
        return 1;
    }
    zcert_t *cert = zcert_new();
    if (!cert) {
        fprintf(stderr, "tapmesh-keygen: cannot make a key pair\n");
        return 1;
    }
    if (*ids)
        zcert_set_meta(cert, "node-id", "%s", ids);
    if (relay)
        zcert_set_meta(cert, "role", "relay");
    /* the secret file is never readable by others, not even for a moment */
    mode_t old = umask(077);
    int rc = zcert_save_secret(cert, secret);
    umask(old);
    if (rc == 0)
        rc = zcert_save_public(cert, path);
    if (rc != 0) {
        fprintf(stderr, "tapmesh-keygen: cannot write %s and %s\n", path, secret);
        zcert_destroy(&cert);
        return 1;
    }
    printf("%s\n", zcert_public_txt(cert));
    fprintf(stderr, "tapmesh-keygen: wrote %s (public%s%s%s) and %s (secret, mode 0600)\n", path,
            *ids ? ", node-id " : "", ids, relay ? ", role relay" : "", secret);
    zcert_destroy(&cert);
    zsys_shutdown();
    return 0;
}
