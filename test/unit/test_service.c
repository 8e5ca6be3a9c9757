/*
 * test_service — which bound endpoints only this host can reach (those
 * bound without CURVE elsewhere draw a warning and count as plaintext
 * endpoints).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "service.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoint_local),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
