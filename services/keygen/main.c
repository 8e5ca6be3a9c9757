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
#include "cfg.h"
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
            "  --help, --version, --man (the manual page)\n"
            "\n"
            "A collector's certificate needs neither. Existing files are not overwritten.\n");
}

static const cfg_item_t s_options[] = {
    {"PATH", "Where the public certificate goes; the secret one goes to `PATH_secret`."},
    {"--node-id ID|PATTERN",
     "A node id the holder may send for (its `NODE_ID`), or a glob pattern (`site1-*`); "
     "repeat it, or separate several with commas."},
    {"--relay",
     "The holder is a relay: it may pass on any source that its own `CURVE_ALLOWED_KEYS_DIR` "
     "lets in."},
    {NULL, NULL},
};

static const cfg_item_t s_exit_status[] = {
    {"0", "Both files were written; the public key was printed."},
    {"1", "`PATH` or `PATH_secret` exists (never overwritten), a file could not be written, or "
          "this libzmq has no CURVE."},
    {"2", "Bad arguments: no `PATH`, an invalid node id or pattern, or `--relay` with "
          "`--node-id`."},
    {NULL, NULL},
};

static const cfg_item_t s_files[] = {
    {"PATH",
     "The public certificate (czmq's zcert text format), with metadata `node-id` or `role = "
     "relay`: goes into the `CURVE_ALLOWED_KEYS_DIR` of the services this one connects to, or "
     "is the `CURVE_SERVER_PUBLIC_KEY` of those that connect to it."},
    {"PATH_secret",
     "The same with the secret key, mode 0600: this service's `CURVE_SECRET_KEY_FILE`. Keep it "
     "on its host."},
    {NULL, NULL},
};

static const cfg_item_t s_examples[] = {
    {"Keys for an agent, a relay and a collector, and who allows whom:",
     "tapmesh-keygen keys/edge1 --node-id edge1\n"
     "tapmesh-keygen keys/relay1 --relay\n"
     "tapmesh-keygen keys/collect\n"
     "cp keys/edge1 allow-relay/\n"
     "cp keys/relay1 allow-collect/"},
    {"One certificate for every agent of a site:", "tapmesh-keygen keys/site1 --node-id 'site1-*'"},
    {NULL, NULL},
};

static const cfg_page_t s_page = {
    .program = "tapmesh-keygen",
    .section = 1,
    .purpose = "make a CurveZMQ certificate pair for a tapmesh service",
    .synopsis = "PATH [--node-id ID|PATTERN]... [--relay]",
    .summary = "Writes a CurveZMQ certificate pair in czmq's zcert format: `PATH`, the public "
               "certificate, and `PATH_secret`, mode 0600, with the secret key. Prints the "
               "public key.",
    .description =
        "Every tapmesh hop can be encrypted and authenticated with CurveZMQ: a service that "
        "binds (tapmesh-relay(8), tapmesh-collect(8)) lets in only the keys in its "
        "`CURVE_ALLOWED_KEYS_DIR`, and checks every message against its direct peer's "
        "certificate. An agent's certificate names the node ids it may send for; a relay's "
        "says it is a relay, which may pass on any source its own allow-list let in; a "
        "collector's needs neither. Existing files are never overwritten.",
    .options = s_options,
    .exit_status = s_exit_status,
    .files = s_files,
    .examples = s_examples,
    .see_also = "tapmesh-capture(8), tapmesh-relay(8), tapmesh-collect(8)",
};

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
        if (strcmp(a, "--man") == 0) {
            cfg_man(stdout, &s_page, NULL, 0);
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
