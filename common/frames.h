/*
 * frames — one received ZeroMQ multipart message split into its parts
 * (proto/wire-v2.md §1): routing envelope, empty delimiter, command frame,
 * optional payload frame. Frames stay in zmq_msg_t, so the payload can be
 * kept (moved) without a copy.
 *
 * route_t keeps an envelope after the message is gone, so that an
 * acknowledgement can be sent back along the path the source last used.
 */
#ifndef TAPMESH_FRAMES_H
#define TAPMESH_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "wire.h"

/* Envelope frames a message may carry: one per ROUTER it passed. */
#define FRAMES_ENVELOPE_MAX (WIRE_HOPS_MAX + 2)
#define FRAMES_MAX (FRAMES_ENVELOPE_MAX + 3)
#define FRAMES_IDENTITY_MAX 255
/* A ZAP User-Id kept (CURVE: the peer's public key, 40 characters). */
#define FRAMES_USER_ID_MAX 64

typedef struct {
    zmq_msg_t part[FRAMES_MAX];
    size_t count;    /* parts held in `part` */
    size_t total;    /* parts the message had (more than count: too many) */
    size_t envelope; /* envelope frames before the delimiter */
    bool framed;     /* a delimiter, a command, at most one payload */
    /* who the connection authenticated as (ZAP's User-Id: with CURVE, the
     * direct peer's public key in Z85), "" without authentication; a
     * longer one is cut, and so matches no key */
    char user_id[FRAMES_USER_ID_MAX + 1];
} frames_t;

typedef struct {
    uint8_t count;
    uint8_t len[FRAMES_ENVELOPE_MAX];
    uint8_t id[FRAMES_ENVELOPE_MAX][FRAMES_IDENTITY_MAX];
} route_t;

/* Receives one whole message (all parts, also those beyond FRAMES_MAX,
 * which are dropped), with the connection's User-Id. Returns 0, -EAGAIN
 * with ZMQ_DONTWAIT and nothing to read, or another negative errno. On 0
 * the caller must frames_close(). */
int frames_recv(frames_t *self, void *socket, int flags);

void frames_close(frames_t *self);

/* The command frame and the payload frame (NULL / 0 when absent). */
const uint8_t *frames_command(const frames_t *self, size_t *len);
zmq_msg_t *frames_payload(frames_t *self);

/* Who sent the message, for per-peer accounting: a hash, keyed with `seed`
 * (so that nobody can aim at another's value), of the direct peer's
 * User-Id (its CURVE key) or, without one, its connection's routing id,
 * and of the envelope frames after it (the connections behind a relay). */
uint64_t frames_peer(const frames_t *self, uint64_t seed);

/* Copies the envelope into a route. */
void frames_route(const frames_t *self, route_t *route);

/* Sends route + delimiter + command (+ payload when not NULL; the payload
 * message is consumed once sent). Returns 0 or a negative errno (-EAGAIN
 * with ZMQ_DONTWAIT when the peer's queue is full, -EHOSTUNREACH for an
 * unknown route on a mandatory ROUTER, -EINTR for a signal).
 * Whole or nothing: when the first part fails nothing is sent; once it is
 * queued every later part is handed to libzmq (a signal's EINTR is retried),
 * so that no half message is left to merge with the next. A later part's
 * other failure (the peer's pipe gone mid-message: libzmq drops the message)
 * is returned after the remaining parts. */
int frames_send(void *socket, const route_t *route, const uint8_t *command, size_t len,
                zmq_msg_t *payload, int flags);

#endif
