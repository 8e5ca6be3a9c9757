/*
 * frames — multipart receive and send in the shape of proto/wire-v2.md §1.
 */
#include "frames.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int frames_recv(frames_t *self, void *socket, int flags)
{
    self->count = self->total = self->envelope = 0;
    self->framed = false;
    self->user_id[0] = '\0';
    int more = 1;
    while (more) {
        zmq_msg_t *m = &self->part[self->count < FRAMES_MAX ? self->count : FRAMES_MAX - 1];
        if (self->count >= FRAMES_MAX)
            zmq_msg_close(m); /* too many parts: keep draining into the last slot */
        zmq_msg_init(m);
        if (zmq_msg_recv(m, socket, self->total == 0 ? flags : 0) < 0) {
            int e = errno;
            zmq_msg_close(m);
            if (self->total == 0)
                return -e;
            /* a message is delivered whole or not at all; reaching here is a
             * context shutdown: give back what we hold */
            frames_close(self);
            return -e;
        }
        more = zmq_msg_more(m);
        if (!self->user_id[0]) {
            /* the connection's, the same on every part; but a ROUTER
             * (libzmq 4.3) leaves it off the routing-id frame it adds when
             * the message was fetched by a poll: read it from any part */
            const char *user = zmq_msg_gets(m, "User-Id");
            if (user)
                snprintf(self->user_id, sizeof self->user_id, "%s", user);
        }
        self->total++;
        if (self->count < FRAMES_MAX)
            self->count++;
    }
    if (self->total > FRAMES_MAX)
        return 0; /* framed stays false */
    size_t d = 0;
    while (d < self->count && zmq_msg_size(&self->part[d]) != 0)
        d++;
    size_t after = self->count - d; /* delimiter + command + payload */
    if (d < self->count && d <= FRAMES_ENVELOPE_MAX && (after == 2 || after == 3)) {
        self->envelope = d;
        self->framed = true;
    }
    return 0;
}

void frames_close(frames_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        zmq_msg_close(&self->part[i]);
    self->count = 0;
}

const uint8_t *frames_command(const frames_t *self, size_t *len)
{
    if (!self->framed) {
        *len = 0;
        return NULL;
    }
    zmq_msg_t *m = (zmq_msg_t *)&self->part[self->envelope + 1];
    *len = zmq_msg_size(m);
    return zmq_msg_data(m);
}

zmq_msg_t *frames_payload(frames_t *self)
{
    if (!self->framed || self->count != self->envelope + 3)
        return NULL;
    return &self->part[self->envelope + 2];
}

static uint64_t s_mix(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return (h ^ 0x1ff) * 1099511628211ull; /* an item boundary */
}

uint64_t frames_peer(const frames_t *self, uint64_t seed)
{
    uint64_t h = 1469598103934665603ull ^ seed;
    size_t n = self->framed ? self->envelope : (self->count > 0 ? 1 : 0);
    size_t i = 0;
    if (self->user_id[0]) {
        h = s_mix(h ^ 0x4b, (const uint8_t *)self->user_id, strlen(self->user_id));
        i = 1;
    }
    for (; i < n; i++) {
        zmq_msg_t *m = (zmq_msg_t *)&self->part[i];
        h = s_mix(h, zmq_msg_data(m), zmq_msg_size(m));
    }
    /* a final mix, so that nearby inputs land far apart */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

void frames_route(const frames_t *self, route_t *route)
{
    route->count = 0;
    for (size_t i = 0; i < self->envelope && i < FRAMES_ENVELOPE_MAX; i++) {
        zmq_msg_t *m = (zmq_msg_t *)&self->part[i];
        size_t n = zmq_msg_size(m);
        if (n > FRAMES_IDENTITY_MAX)
            n = FRAMES_IDENTITY_MAX;
        route->len[route->count] = (uint8_t)n;
        memcpy(route->id[route->count], zmq_msg_data(m), n);
        route->count++;
    }
}

/* One message on its way out, part by part. A failure on the first part
 * sends nothing. Once the first part is queued the rest must follow: libzmq
 * does not refuse a later part for lack of room (its high-water mark counts
 * whole messages), and a message left unfinished would swallow the first
 * parts of the next one. So a later part interrupted by a signal (EINTR) is
 * retried, as czmq's zmsg_send does; any other failure of a later part is
 * kept for the caller and the remaining parts still go, so that libzmq sees
 * where the message ends (when the peer's pipe went away mid-message it
 * drops the remaining parts, and with them the whole message). */
typedef struct {
    void *socket;
    int flags;
    bool started; /* the first part is queued */
    int rc;       /* the first failure (a negative errno), or 0 */
} s_out_t;

/* Sends a buffer (`msg` NULL) or a message (consumed when sent). */
static void s_out_part(s_out_t *o, zmq_msg_t *msg, const void *buf, size_t len, bool more)
{
    if (o->rc < 0 && !o->started)
        return;
    int flags = o->flags | (more ? ZMQ_SNDMORE : 0);
    for (;;) {
        int r = msg ? zmq_msg_send(msg, o->socket, flags) : zmq_send(o->socket, buf, len, flags);
        if (r >= 0) {
            o->started = true;
            return;
        }
        if (errno == EINTR && o->started)
            continue;
        if (o->rc == 0)
            o->rc = -errno;
        return;
    }
}

/* The tail common to both senders: delimiter, command, payload. */
static int s_out_tail(s_out_t *o, const uint8_t *command, size_t len, zmq_msg_t *payload)
{
    s_out_part(o, NULL, "", 0, true);
    s_out_part(o, NULL, command, len, payload != NULL);
    if (payload)
        s_out_part(o, payload, NULL, 0, false);
    return o->rc;
}

int frames_send(void *socket, const route_t *route, const uint8_t *command, size_t len,
                zmq_msg_t *payload, int flags)
{
    s_out_t o = {.socket = socket, .flags = flags};
    for (size_t i = 0; route && i < route->count; i++)
        s_out_part(&o, NULL, route->id[i], route->len[i], true);
    return s_out_tail(&o, command, len, payload);
}
