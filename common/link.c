/*
 * link — a PAIR socket on the monitor's inproc endpoint, read without
 * blocking.
 */
#include "link.h"

#include "log.h"

#include <czmq.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct link_t {
    void *socket;     /* monitored; not ours */
    zsock_t *monitor; /* PAIR, receives the events */
    bool up;
    bool refused; /* a CURVE refusal was logged since the last handshake */
    char subject[256];
};

link_t *link_new(void *socket, const char *subject, char *err, size_t errlen)
{
    link_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "%s: out of memory", subject);
        return NULL;
    }
    self->socket = socket;
    snprintf(self->subject, sizeof self->subject, "%s", subject);
    char inproc[64];
    snprintf(inproc, sizeof inproc, "inproc://tapmesh-link-%p", (void *)self);
    self->monitor = zsock_new(ZMQ_PAIR);
    if (!self->monitor ||
        zmq_socket_monitor(socket, inproc,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_CLOSED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) < 0 ||
        zsock_connect(self->monitor, "%s", inproc) < 0) {
        snprintf(err, errlen, "%s: cannot monitor the connection: %s", subject,
                 zmq_strerror(zmq_errno()));
        zmq_socket_monitor(socket, NULL, 0);
        zsock_destroy(&self->monitor);
        free(self);
        return NULL;
    }
    return self;
}

void link_destroy(link_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    link_t *self = *self_p;
    zmq_socket_monitor(self->socket, NULL, 0);
    zsock_destroy(&self->monitor);
    free(self);
    *self_p = NULL;
}

void *link_handle(const link_t *self)
{
    return zsock_resolve(self->monitor);
}

bool link_update(link_t *self)
{
    bool was = self->up;
    void *sock = zsock_resolve(self->monitor);
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (uint8_t *)zmq_msg_data(&ev) + 2, 4);
        }
        zmq_msg_init(&addr);
        if (zmq_msg_more(&ev))
            zmq_msg_recv(&addr, sock, 0);
        zmq_msg_close(&addr);
        zmq_msg_close(&ev);
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            self->up = true;
            self->refused = false;
        } else if (event == ZMQ_EVENT_DISCONNECTED || event == ZMQ_EVENT_CLOSED) {
            self->up = false;
        } else if (!self->refused) {
            /* said once until a handshake succeeds: the peer keeps refusing */
            self->refused = true;
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
                log_warn("%s refused this service's CURVE key (status %u): is its public "
                         "certificate in the next hop's CURVE_ALLOWED_KEYS_DIR?",
                         self->subject, value);
            else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
                log_warn(
                    "%s: the next hop %s CURVE: set CURVE_* alike on both sides", self->subject,
                    zsock_mechanism(self->socket) == ZMQ_CURVE ? "does not speak" : "asks for");
            else
                log_warn("%s: the handshake failed (protocol error 0x%x): is "
                         "CURVE_SERVER_PUBLIC_KEY the next hop's key?",
                         self->subject, value);
        }
    }
    return was != self->up;
}

bool link_up(const link_t *self)
{
    return self->up;
}
