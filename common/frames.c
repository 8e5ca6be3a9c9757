/*
 * frames — multipart receive and send in the shape of proto/wire-v1.md §1.
 */
#include "frames.h"

#include <errno.h>
#include <string.h>

int frames_recv(frames_t *self, void *socket, int flags)
{
    self->count = self->total = self->envelope = 0;
    self->framed = false;
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

/* Sends the tail common to both senders: delimiter, command, payload. The
 * first part has already gone, so these cannot fail for lack of room. */
static int s_send_tail(void *socket, const uint8_t *command, size_t len, zmq_msg_t *payload,
                       int flags)
{
    int more = payload ? ZMQ_SNDMORE : 0;
    if (zmq_send(socket, command, len, flags | more) < 0)
        return -errno;
    if (payload && zmq_msg_send(payload, socket, flags) < 0)
        return -errno;
    return 0;
}

int frames_send(void *socket, const route_t *route, const uint8_t *command, size_t len,
                zmq_msg_t *payload, int flags)
{
    for (size_t i = 0; route && i < route->count; i++)
        if (zmq_send(socket, route->id[i], route->len[i], flags | ZMQ_SNDMORE) < 0)
            return -errno;
    if (zmq_send(socket, "", 0, flags | ZMQ_SNDMORE) < 0)
        return -errno;
    return s_send_tail(socket, command, len, payload, flags);
}

int frames_forward(void *socket, frames_t *in, const uint8_t *command, size_t len, int flags)
{
    for (size_t i = 0; i < in->envelope; i++)
        if (zmq_msg_send(&in->part[i], socket, flags | ZMQ_SNDMORE) < 0)
            return -errno;
    if (zmq_send(socket, "", 0, flags | ZMQ_SNDMORE) < 0)
        return -errno;
    return s_send_tail(socket, command, len, frames_payload(in), flags);
}
