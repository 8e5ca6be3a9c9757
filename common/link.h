/*
 * link — whether a connecting socket's peer is there, from libzmq's socket
 * monitor: a handshake that succeeded means up; a disconnect or close means
 * down. A capture agent uses it to say "no connection to …" instead of
 * staying silent; a relay to choose among its next hops.
 */
#ifndef TAPMESH_LINK_H
#define TAPMESH_LINK_H

#include <stdbool.h>
#include <stddef.h>

typedef struct link_t link_t;

/* Monitors `socket` (a libzmq handle). Returns NULL with `err` naming
 * `subject` when the monitor cannot be set up. */
link_t *link_new(void *socket, const char *subject, char *err, size_t errlen);

/* Stops monitoring and frees. Accepts NULL. */
void link_destroy(link_t **self_p);

/* The monitor's libzmq handle, to poll for ZMQ_POLLIN. */
void *link_handle(const link_t *self);

/* Reads every pending event. Returns true when the state changed; the
 * state is then link_up(). */
bool link_update(link_t *self);

bool link_up(const link_t *self);

#endif
