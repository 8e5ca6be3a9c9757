/*
 * trust — the allow-list of CurveZMQ client keys (CURVE_ALLOWED_KEYS_DIR)
 * and what each key's holder may say (shared DESIGN "Every service": trust
 * is hop by hop).
 *
 * Every file in the directory is a public certificate in zcert format (what
 * tapmesh-keygen writes). Its metadata says for whom its holder speaks:
 *
 *   metadata
 *       node-id = "edge1,site2-*"   node ids, exact or glob patterns
 *                                   (fnmatch: * ? [...]), comma-separated
 *       role = "relay"              or: a relay, which passes on any source
 *                                   (it checked its own peers)
 *
 * A certificate with neither lets its holder connect but speak for no
 * source. The list is read at start and again on SIGHUP; a directory that
 * does not read cleanly leaves the list as it was.
 */
#ifndef TAPMESH_TRUST_H
#define TAPMESH_TRUST_H

#include <stdbool.h>
#include <stddef.h>

/* A CURVE public key as Z85 text (what ZAP's User-Id carries). */
#define TRUST_KEY_LEN 40

/* Metadata of one certificate, at most (bytes of node-id). */
#define TRUST_NODE_IDS_MAX 4096

typedef struct trust_t trust_t;

/* What a certificate file says (zcert format). */
typedef struct {
    char public_key[TRUST_KEY_LEN + 1];
    char secret_key[TRUST_KEY_LEN + 1]; /* "" in a public certificate */
    char node_ids[TRUST_NODE_IDS_MAX + 1];
    char role[32];
} trust_cert_t;

/* Reads the certificate in `path` (at most 64 KiB of zcert's text format,
 * as czmq writes it: "metadata" and "curve" sections, `name = "value"`
 * lines indented by 4), checking only its shape and that its keys are Z85:
 * its metadata is checked where it is used. Returns 0, or a negative errno
 * with `why` saying what is wrong (without the path). */
int trust_cert_read(const char *path, trust_cert_t *cert, char *why, size_t whylen);

/* An empty list (no key allowed). Returns NULL when out of memory. */
trust_t *trust_new(void);
void trust_destroy(trust_t **self_p);

/* Replaces the list with the certificates in `dir` (its regular files not
 * starting with '.'; a secret certificate there is skipped with a warning:
 * only the public one belongs in an allow-list). Returns the number of keys,
 * or a negative errno with `err` naming the directory or the file and what
 * is wrong with it; the list is then unchanged. */
int trust_load(trust_t *self, const char *dir, char *err, size_t errlen);

/* Adds one key: `node_ids` as in a certificate's node-id (NULL or "" for
 * none), `relay` for role = relay. Returns 0, or -EINVAL with `err` saying
 * why (a key that is not Z85, a bad pattern, a key already in the list
 * with other rights), or -ENOMEM. */
int trust_add(trust_t *self, const char *key, const char *node_ids, bool relay, char *err,
              size_t errlen);

/* True when `key` is in the list. */
bool trust_known(const trust_t *self, const char *key);

/* True when the holder of `key` may speak for `source`: the key is a
 * relay's, or one of its patterns matches. False for a key not in the list
 * (or NULL, or ""). */
bool trust_allows(const trust_t *self, const char *key, const char *source);

/* Keys in the list. */
size_t trust_count(const trust_t *self);

/* Checks a node-id value (comma-separated ids or patterns of wire-name
 * characters and * ? [ ] !). Returns 0 or -EINVAL with `why` naming the
 * item. */
int trust_patterns_check(const char *node_ids, char *why, size_t whylen);

#endif
