/*
 * auth — the receiving side of CurveZMQ for a service's ROUTER: answers
 * libzmq's ZAP requests (RFC 27) from the allow-list (trust.h), with the
 * client's public key as the connection's User-Id (what frames_recv reads
 * and the engines check against the sources a message speaks for), and
 * watches the handshakes that fail before ZAP is asked (a peer without
 * CURVE, a peer that used another server key). Every refused connection is
 * counted, tapmesh_<service>_auth_failures_total{reason}:
 *
 *   unknown_key  a CURVE client whose key is not in CURVE_ALLOWED_KEYS_DIR
 *   plaintext    a peer without CURVE (or with another mechanism)
 *   crypto       a CURVE handshake that does not decrypt: the client uses
 *                another server key than this service's
 *   protocol     any other broken handshake
 *   handshake    a handshake broken off without detail: a peer without
 *                CURVE that hangs up on seeing CURVE asked for (libzmq
 *                reports that or a mismatch: plaintext), or a timeout
 *   identity     (counted by the engines) a message for a source its
 *                peer's key may not speak for
 *
 * and logged once per (address, reason), a few lines a second at most.
 *
 * czmq's zauth is not used: it sends a certificate's metadata through a
 * fixed 512-byte buffer without a bound (metadata longer than that
 * overwrites memory), and reads its directory apart from the allow-list
 * the engines check. One list, read in one place, answers both.
 *
 * Everything runs in the service's loop thread: main.c polls auth_pollitems
 * and calls auth_handle (service_pollitems / service_handle do both).
 */
#ifndef TAPMESH_AUTH_H
#define TAPMESH_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "metrics.h"
#include "trust.h"

/* The ZAP domain of tapmesh's CURVE sockets. */
#define AUTH_ZAP_DOMAIN "tapmesh"

/* Help text of tapmesh_<service>_auth_failures_total: the engines register
 * reason="identity" in the same family. */
#define AUTH_FAILURES_HELP                                                                         \
    "Connections and messages refused for want of an allowed key (CURVE_ALLOWED_KEYS_DIR), "       \
    "by reason"

typedef struct auth_t auth_t;

/* Binds the ZAP handler in czmq's context (before any CURVE server socket
 * binds: a connection accepted without a handler would not be checked) and
 * registers the counters of `service` ("relay", "collect"). `trust` stays
 * the caller's and may be reloaded in place. Returns NULL with `err`
 * saying why. */
auth_t *auth_new(const char *service, const trust_t *trust, metrics_t *metrics, char *err,
                 size_t errlen);

/* Stops answering (connections still arriving are then refused by libzmq)
 * and frees. Accepts NULL. */
void auth_destroy(auth_t **self_p);

/* Watches the handshakes of `socket` (a CURVE server), bound to
 * `endpoint`. Returns 0, or a negative errno with `err` naming the
 * endpoint. */
int auth_watch(auth_t *self, void *socket, const char *endpoint, char *err, size_t errlen);

/* The sockets to poll for ZMQ_POLLIN: written to `items` (at most `max`);
 * returns how many. */
size_t auth_pollitems(const auth_t *self, zmq_pollitem_t *items, size_t max);

/* Answers the ZAP requests waiting and reads the handshake events, counting
 * and logging the refusals. Bounded work per call. */
void auth_handle(auth_t *self, int64_t now_ms);

/* Refusals counted so far, all reasons but identity (tests). */
uint64_t auth_refused(const auth_t *self);

#endif
