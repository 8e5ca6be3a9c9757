/*
 * test_peers — per-peer accounting for the flood limits: states held per
 * peer, the allowance of new sources (a burst of `rate`, refilled at `rate`
 * a second), and the bound on peers remembered (those holding nothing are
 * forgotten first, never those holding states).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "peers.h"

static void test_held(void **state)
{
    (void)state;
    peers_t *p = peers_new(16, 0);
    assert_int_equal(peers_held(p, 42), 0);
    peers_hold(p, 42, 1);
    peers_hold(p, 42, 1);
    peers_hold(p, 0, 1); /* key 0 is a key like any other */
    assert_int_equal(peers_held(p, 42), 2);
    assert_int_equal(peers_held(p, 0), 1);
    assert_int_equal(peers_held(p, 43), 0);
    peers_hold(p, 42, -1);
    assert_int_equal(peers_held(p, 42), 1);
    peers_hold(p, 43, -1); /* never held: nothing happens */
    assert_int_equal(peers_held(p, 43), 0);
    /* no rate: always admitted */
    for (int i = 0; i < 1000; i++)
        assert_true(peers_admit(p, 7, 0));
    peers_destroy(&p);
    assert_null(p);
}

static void test_rate(void **state)
{
    (void)state;
    peers_t *p = peers_new(16, 10);
    for (int i = 0; i < 10; i++)
        assert_true(peers_admit(p, 1, 1000));
    assert_false(peers_admit(p, 1, 1000)); /* the burst is spent */
    assert_true(peers_admit(p, 2, 1000));  /* another peer has its own */
    assert_false(peers_admit(p, 1, 1099)); /* 0.99 of one back */
    assert_true(peers_admit(p, 1, 1100));  /* one back after 100 ms */
    assert_false(peers_admit(p, 1, 1100));
    int n = 0; /* a long pause refills to the burst, not beyond */
    while (peers_admit(p, 1, 60000))
        n++;
    assert_int_equal(n, 10);
    peers_destroy(&p);
}

static void test_bounded(void **state)
{
    (void)state;
    peers_t *p = peers_new(4, 1); /* remembers 4 * 4 + 64 = 80 peers */
    for (uint64_t k = 1; k <= 3; k++)
        peers_hold(p, k, 1);
    for (uint64_t k = 100; k < 10100; k++)
        peers_admit(p, k, 0); /* 10000 peers holding nothing */
    assert_true(peers_count(p) <= 80);
    for (uint64_t k = 1; k <= 3; k++) /* those holding states stay */
        assert_int_equal(peers_held(p, k), 1);
    peers_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_held),
        cmocka_unit_test(test_rate),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
