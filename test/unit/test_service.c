/*
 * test_service — which bound endpoints only this host can reach (those
 * bound without CURVE elsewhere draw a warning and count as plaintext
 * endpoints), and a next hop's connection watched from before it is made.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "service.h"

#include <czmq.h>
#include <time.h>

/* The socket monitor is slow to start (linked with --wrap=zmq_socket_monitor):
 * a monitor attached after the connection would miss its handshake. */
int __real_zmq_socket_monitor(void *s, const char *addr, int events);
int __wrap_zmq_socket_monitor(void *s, const char *addr, int events);
int __wrap_zmq_socket_monitor(void *s, const char *addr, int events)
{
    if (addr)
        nanosleep(&(struct timespec){.tv_nsec = 200 * 1000000L}, NULL);
    return __real_zmq_socket_monitor(s, addr, events);
}

static void test_endpoint_local(void **state)
{
    (void)state;
    assert_true(service_endpoint_local("tcp://127.0.0.1:5710"));
    assert_true(service_endpoint_local("tcp://127.1.2.3:5710"));
    assert_true(service_endpoint_local("tcp://localhost:5710"));
    assert_true(service_endpoint_local("tcp://[::1]:5710"));
    assert_true(service_endpoint_local("tcp://lo:5710"));
    assert_true(service_endpoint_local("ipc:///run/tapmesh/collect"));
    assert_true(service_endpoint_local("inproc://collect"));
    assert_false(service_endpoint_local("tcp://*:5710"));
    assert_false(service_endpoint_local("tcp://0.0.0.0:5710"));
    assert_false(service_endpoint_local("tcp://[::]:5710"));
    assert_false(service_endpoint_local("tcp://eth0:5710"));
    assert_false(service_endpoint_local("tcp://192.0.2.1:5710"));
    assert_false(service_endpoint_local("tcp://128.0.0.1:5710"));
    assert_false(service_endpoint_local("tcp://localhost.example.com:5710"));
    assert_false(service_endpoint_local("pgm://eth0;239.192.1.1:5555"));
}

/* service_dealer's link sees the connection come up even when the next hop
 * is there at once and the monitor takes its time to start. */
static void test_dealer_link_sees_first_connection(void **state)
{
    (void)state;
    zsys_init();
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    assert_non_null(router);
    int port = zsock_bind(router, "tcp://127.0.0.1:*");
    assert_true(port > 0);
    char ep[64], err[256];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    service_sock_opts_t o = {.sndhwm = SERVICE_DEFAULT, .rcvhwm = SERVICE_DEFAULT, .linger_ms = 0};
    link_t *link = NULL;
    zsock_t *dealer = service_dealer("RELAY_ENDPOINT", ep, &o, &link, err, sizeof err);
    assert_non_null(dealer);
    assert_non_null(link);
    bool up = false;
    for (int i = 0; i < 100 && !up; i++) {
        zmq_pollitem_t item = {link_handle(link), 0, ZMQ_POLLIN, 0};
        zmq_poll(&item, 1, 50);
        link_update(link);
        up = link_up(link);
    }
    assert_true(up);
    link_destroy(&link);
    zsock_destroy(&dealer);
    zsock_destroy(&router);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoint_local),
        cmocka_unit_test(test_dealer_link_sees_first_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
