/*
 * test_seqset — the collector's record of received batch numbers: exact
 * membership under any arrival order, gaps counted, and the bounded case
 * where the oldest hole is given up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "seqset.h"

#include <stdlib.h>

static void test_in_order(void **state)
{
    (void)state;
    seqset_t s;
    seqset_init(&s, 16);
    assert_false(seqset_has(&s, 0));
    assert_int_equal(seqset_end(&s), 0);
    for (uint64_t i = 0; i < 1000; i++)
        assert_int_equal(seqset_add(&s, i, NULL), 1);
    assert_int_equal(s.n, 1);
    for (uint64_t i = 0; i < 1000; i++) {
        assert_true(seqset_has(&s, i));
        assert_int_equal(seqset_add(&s, i, NULL), 0); /* duplicate */
    }
    assert_false(seqset_has(&s, 1000));
    assert_int_equal(seqset_end(&s), 1000);
    assert_int_equal(seqset_missing_below(&s, 1000), 0);
    assert_int_equal(seqset_missing_below(&s, 1010), 10);
    seqset_free(&s);
}

/* Holes open and close; membership stays exact against a bitmap model. */
static void test_random_order_matches_model(void **state)
{
    (void)state;
    enum { N = 5000 };
    static unsigned char model[N];
    seqset_t s;
    seqset_init(&s, 100000);
    unsigned r = 12345;
    for (int i = 0; i < 20000; i++) {
        r = r * 1103515245u + 12345u;
        uint64_t seq = (r >> 8) % N;
        int rc = seqset_add(&s, seq, NULL);
        assert_int_equal(rc, model[seq] ? 0 : 1);
        model[seq] = 1;
    }
    uint64_t missing = 0;
    for (uint64_t i = 0; i < N; i++) {
        assert_int_equal(seqset_has(&s, i), model[i] != 0);
        missing += !model[i];
    }
    assert_int_equal(seqset_missing_below(&s, N), missing);
    for (size_t i = 1; i < s.n; i++)
        assert_true(s.r[i - 1].hi < s.r[i].lo); /* sorted, disjoint, not touching */
    seqset_free(&s);
}

static void test_fill_hole_merges(void **state)
{
    (void)state;
    seqset_t s;
    seqset_init(&s, 16);
    seqset_add(&s, 0, NULL);
    seqset_add(&s, 2, NULL);
    seqset_add(&s, 4, NULL);
    assert_int_equal(s.n, 3);
    assert_int_equal(seqset_missing_below(&s, 5), 2);
    assert_int_equal(seqset_add(&s, 3, NULL), 1);
    assert_int_equal(s.n, 2);
    assert_int_equal(seqset_add(&s, 1, NULL), 1);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.r[0].lo, 0);
    assert_int_equal(s.r[0].hi, 5);
    seqset_free(&s);
}

/* Full: the oldest hole is closed and reported; a seq inside that hole is
 * still new (never mistaken for a duplicate). */
static void test_bounded_gives_up_oldest_hole(void **state)
{
    (void)state;
    seqset_t s;
    seqset_init(&s, 3);
    seqset_add(&s, 0, NULL);  /* [0,1) */
    seqset_add(&s, 10, NULL); /* [10,11) */
    seqset_add(&s, 20, NULL); /* [20,21) */
    uint64_t given = 99;
    assert_int_equal(seqset_add(&s, 30, &given), 1);
    assert_int_equal(given, 9); /* 1..9 given up */
    assert_true(seqset_has(&s, 5));
    assert_true(seqset_has(&s, 30));
    assert_false(seqset_has(&s, 15));
    assert_int_equal(s.n, 3);
    /* a seq inside the hole being closed is new */
    assert_int_equal(seqset_add(&s, 12, &given), 1);
    assert_int_equal(given, 8); /* 11..19 minus 12 itself */
    assert_true(seqset_has(&s, 19));
    seqset_free(&s);
}

static void test_extremes(void **state)
{
    (void)state;
    seqset_t s;
    seqset_init(&s, 4);
    assert_int_equal(seqset_add(&s, UINT64_MAX, NULL), 0);
    assert_int_equal(seqset_add(&s, UINT64_MAX - 1, NULL), 1);
    assert_true(seqset_has(&s, UINT64_MAX - 1));
    assert_false(seqset_has(&s, UINT64_MAX - 2));
    seqset_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_random_order_matches_model),
        cmocka_unit_test(test_fill_hole_merges),
        cmocka_unit_test(test_bounded_gives_up_oldest_hole),
        cmocka_unit_test(test_extremes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
