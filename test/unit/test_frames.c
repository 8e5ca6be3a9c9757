/*
 * test_frames — multipart messages in the shape of the wire protocol (§1)
 * over real ZeroMQ sockets (inproc): DEALER → ROUTER → (relay) → ROUTER and
 * back by the saved route; malformed shapes are flagged, not trusted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "frames.h"

#include <errno.h>
#include <string.h>

typedef struct {
    void *ctx, *dealer, *router, *relay_router, *relay_dealer, *collector;
} net_t;

static void *s_socket(void *ctx, int type)
{
    void *s = zmq_socket(ctx, type);
    assert_non_null(s);
    int zero = 0, timeout = 2000;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    return s;
}

static int s_setup(void **state)
{
    static net_t n;
    n.ctx = zmq_ctx_new();
    /* source DEALER → relay ROUTER; relay DEALER → collector ROUTER */
    n.relay_router = s_socket(n.ctx, ZMQ_ROUTER);
    n.collector = s_socket(n.ctx, ZMQ_ROUTER);
    assert_int_equal(zmq_bind(n.relay_router, "inproc://relay"), 0);
    assert_int_equal(zmq_bind(n.collector, "inproc://collector"), 0);
    n.dealer = s_socket(n.ctx, ZMQ_DEALER);
    n.relay_dealer = s_socket(n.ctx, ZMQ_DEALER);
    assert_int_equal(zmq_connect(n.dealer, "inproc://relay"), 0);
    assert_int_equal(zmq_connect(n.relay_dealer, "inproc://collector"), 0);
    *state = &n;
    return 0;
}

static int s_teardown(void **state)
{
    net_t *n = *state;
    zmq_close(n->dealer);
    zmq_close(n->relay_router);
    zmq_close(n->relay_dealer);
    zmq_close(n->collector);
    zmq_ctx_term(n->ctx);
    return 0;
}

/* A command with a payload goes through a relay; the collector sees a
 * two-identity envelope, and its reply, sent on the saved route, arrives
 * back at the source DEALER as delimiter + command. */
static void test_through_relay_and_back(void **state)
{
    net_t *n = *state;
    zmq_msg_t payload;
    zmq_msg_init_size(&payload, 5);
    memcpy(zmq_msg_data(&payload), "PKTS!", 5);
    assert_int_equal(frames_send(n->dealer, NULL, (const uint8_t *)"CMD", 3, &payload, 0), 0);
    zmq_msg_close(&payload);

    frames_t at_relay;
    assert_int_equal(frames_recv(&at_relay, n->relay_router, 0), 0);
    assert_true(at_relay.framed);
    assert_int_equal(at_relay.envelope, 1);
    size_t len;
    const uint8_t *cmd = frames_command(&at_relay, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(cmd, "CMD", 3);
    assert_non_null(frames_payload(&at_relay));
    assert_int_equal(frames_forward(n->relay_dealer, &at_relay, (const uint8_t *)"CMD2", 4, 0), 0);
    frames_close(&at_relay);

    frames_t at_collector;
    assert_int_equal(frames_recv(&at_collector, n->collector, 0), 0);
    assert_true(at_collector.framed);
    assert_int_equal(at_collector.envelope, 2);
    cmd = frames_command(&at_collector, &len);
    assert_memory_equal(cmd, "CMD2", 4);
    zmq_msg_t *p = frames_payload(&at_collector);
    assert_non_null(p);
    assert_int_equal(zmq_msg_size(p), 5);
    assert_memory_equal(zmq_msg_data(p), "PKTS!", 5);
    route_t route;
    frames_route(&at_collector, &route);
    assert_int_equal(route.count, 2);
    frames_close(&at_collector);

    /* the reply: collector → relay DEALER → relay ROUTER → source DEALER */
    assert_int_equal(frames_send(n->collector, &route, (const uint8_t *)"ACK", 3, NULL, 0), 0);
    frames_t back;
    assert_int_equal(frames_recv(&back, n->relay_dealer, 0), 0);
    assert_true(back.framed);
    assert_int_equal(back.envelope, 1);
    assert_null(frames_payload(&back));
    cmd = frames_command(&back, &len);
    assert_int_equal(frames_forward(n->relay_router, &back, cmd, len, 0), 0);
    frames_close(&back);
    frames_t at_source;
    assert_int_equal(frames_recv(&at_source, n->dealer, 0), 0);
    assert_true(at_source.framed);
    assert_int_equal(at_source.envelope, 0);
    cmd = frames_command(&at_source, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(cmd, "ACK", 3);
    frames_close(&at_source);
}

/* Shapes that are not delimiter + command [+ payload] are not framed. */
static void test_malformed_shapes(void **state)
{
    net_t *n = *state;
    frames_t f;
    /* no delimiter */
    zmq_send(n->dealer, "X", 1, 0);
    assert_int_equal(frames_recv(&f, n->relay_router, 0), 0);
    assert_false(f.framed);
    size_t len;
    assert_null(frames_command(&f, &len));
    assert_null(frames_payload(&f));
    frames_close(&f);
    /* delimiter, command, payload and one frame too many */
    zmq_send(n->dealer, "", 0, ZMQ_SNDMORE);
    zmq_send(n->dealer, "A", 1, ZMQ_SNDMORE);
    zmq_send(n->dealer, "B", 1, ZMQ_SNDMORE);
    zmq_send(n->dealer, "C", 1, 0);
    assert_int_equal(frames_recv(&f, n->relay_router, 0), 0);
    assert_false(f.framed);
    frames_close(&f);
    /* far too many frames: drained whole, not framed, nothing left behind */
    for (int i = 0; i < 100; i++)
        zmq_send(n->dealer, i == 5 ? "" : "id", i == 5 ? 0 : 2, i < 99 ? ZMQ_SNDMORE : 0);
    assert_int_equal(frames_recv(&f, n->relay_router, 0), 0);
    assert_false(f.framed);
    assert_int_equal(f.total, 101); /* with the ROUTER's identity frame */
    frames_close(&f);
    /* the next message is intact */
    assert_int_equal(frames_send(n->dealer, NULL, (const uint8_t *)"OK", 2, NULL, 0), 0);
    assert_int_equal(frames_recv(&f, n->relay_router, 0), 0);
    assert_true(f.framed);
    frames_close(&f);
    /* nothing to read */
    assert_int_equal(frames_recv(&f, n->relay_router, ZMQ_DONTWAIT), -EAGAIN);
}

/* ROUTER_MANDATORY: a reply on a route nobody holds fails with EHOSTUNREACH. */
static void test_unroutable(void **state)
{
    net_t *n = *state;
    int one = 1;
    zmq_setsockopt(n->collector, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    route_t route = {.count = 1, .len = {4}};
    memcpy(route.id[0], "gone", 4);
    assert_int_equal(frames_send(n->collector, &route, (const uint8_t *)"ACK", 3, NULL, 0),
                     -EHOSTUNREACH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_through_relay_and_back, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_shapes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unroutable, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
