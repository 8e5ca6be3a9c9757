/*
 * test_seqset — the collector's record of received batch numbers: exact
 * membership under any arrival order, gaps counted, and the bounded case
 * where the oldest hole is given up; ranges added and numbers removed
 * (the journal's restore), checked against a bitmap model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "seqset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

/* The ranges of `s` are exactly `want` (pairs lo, hi). */
static void s_assert_ranges(const seqset_t *s, const uint64_t *want, size_t n)
{
    if (s->n != n) {
        fail_msg("%zu ranges, expected %zu", s->n, n);
    }
    for (size_t i = 0; i < n; i++) {
        if (s->r[i].lo != want[2 * i] || s->r[i].hi != want[2 * i + 1])
            fail_msg("range %zu is [%llu, %llu), expected [%llu, %llu)", i,
                     (unsigned long long)s->r[i].lo, (unsigned long long)s->r[i].hi,
                     (unsigned long long)want[2 * i], (unsigned long long)want[2 * i + 1]);
    }
}

#define S_RANGES(s, ...)                                                                           \
    do {                                                                                           \
        static const uint64_t want_[] = {__VA_ARGS__};                                             \
        s_assert_ranges((s), want_, sizeof want_ / sizeof want_[0] / 2);                           \
    } while (0)

/* Ranges merge with what they overlap or touch, on either side. */
static void test_add_range_merges(void **state)
{
    (void)state;
    seqset_t s;
    seqset_init(&s, 16);
    assert_int_equal(seqset_add_range(&s, 5, 5), 0); /* empty */
    assert_int_equal(seqset_add_range(&s, 7, 3), 0); /* reversed: empty */
    assert_int_equal(s.n, 0);
    assert_false(seqset_has(&s, 5));

    assert_int_equal(seqset_add_range(&s, 10, 20), 0);
    S_RANGES(&s, 10, 20);
    assert_int_equal(seqset_add_range(&s, 30, 40), 0); /* apart, after */
    S_RANGES(&s, 10, 20, 30, 40);
    assert_int_equal(seqset_add_range(&s, 0, 5), 0); /* apart, before */
    S_RANGES(&s, 0, 5, 10, 20, 30, 40);
    assert_int_equal(seqset_add_range(&s, 20, 23), 0); /* touches the left one */
    S_RANGES(&s, 0, 5, 10, 23, 30, 40);
    assert_int_equal(seqset_add_range(&s, 27, 30), 0); /* touches the right one */
    S_RANGES(&s, 0, 5, 10, 23, 27, 40);
    assert_int_equal(seqset_add_range(&s, 23, 27), 0); /* touches both: one range */
    S_RANGES(&s, 0, 5, 10, 40);
    assert_int_equal(seqset_add_range(&s, 12, 15), 0); /* inside */
    assert_int_equal(seqset_add_range(&s, 10, 40), 0); /* the same */
    S_RANGES(&s, 0, 5, 10, 40);
    assert_int_equal(seqset_add_range(&s, 7, 12), 0); /* overlaps the start */
    S_RANGES(&s, 0, 5, 7, 40);
    assert_int_equal(seqset_add_range(&s, 35, 50), 0); /* overlaps the end */
    S_RANGES(&s, 0, 5, 7, 50);
    assert_int_equal(seqset_add_range(&s, 4, 8), 0); /* overlaps both */
    S_RANGES(&s, 0, 50);
    assert_int_equal(seqset_end(&s), 50);
    assert_int_equal(seqset_missing_below(&s, 60), 10);
    seqset_free(&s);

    /* one range swallowing several, and their holes */
    seqset_init(&s, 16);
    for (uint64_t i = 0; i < 10; i += 2)
        assert_int_equal(seqset_add_range(&s, 10 * i, 10 * i + 5), 0);
    assert_int_equal(s.n, 5);
    assert_int_equal(seqset_add_range(&s, 23, 61), 0);
    S_RANGES(&s, 0, 5, 20, 65, 80, 85);
    assert_int_equal(seqset_add_range(&s, 0, 1000), 0);
    S_RANGES(&s, 0, 1000);
    seqset_free(&s);

    /* up to the largest seq */
    seqset_init(&s, 4);
    assert_int_equal(seqset_add_range(&s, UINT64_MAX - 3, UINT64_MAX), 0);
    assert_true(seqset_has(&s, UINT64_MAX - 1));
    assert_false(seqset_has(&s, UINT64_MAX - 4));
    assert_int_equal(seqset_end(&s), UINT64_MAX);
    seqset_free(&s);
}

/* A range that would need one more range than the maximum is refused and
 * changes nothing; one that merges still fits. */
static void test_add_range_full(void **state)
{
    (void)state;
    seqset_t s;
    seqset_init(&s, 2);
    assert_int_equal(seqset_add_range(&s, 0, 5), 0);
    assert_int_equal(seqset_add_range(&s, 10, 15), 0);
    assert_int_equal(seqset_add_range(&s, 20, 25), -ENOSPC);
    assert_int_equal(seqset_add_range(&s, 7, 8), -ENOSPC); /* a hole, touching nothing */
    S_RANGES(&s, 0, 5, 10, 15);
    assert_false(seqset_has(&s, 20));
    assert_int_equal(seqset_add_range(&s, 15, 18), 0); /* touches */
    assert_int_equal(seqset_add_range(&s, 3, 7), 0);   /* overlaps */
    S_RANGES(&s, 0, 7, 10, 18);
    assert_int_equal(seqset_add_range(&s, 7, 10), 0); /* fills the hole */
    S_RANGES(&s, 0, 18);
    assert_int_equal(seqset_add_range(&s, 20, 25), 0); /* room again */
    S_RANGES(&s, 0, 18, 20, 25);
    seqset_free(&s);
}

static void test_remove(void **state)
{
    (void)state;
    seqset_t s;
    seqset_init(&s, 16);
    assert_int_equal(seqset_remove(&s, 0), 0); /* empty set */
    assert_int_equal(seqset_add_range(&s, 0, 10), 0);
    assert_int_equal(seqset_remove(&s, 5), 1); /* middle: split */
    S_RANGES(&s, 0, 5, 6, 10);
    assert_int_equal(seqset_remove(&s, 5), 0);  /* absent: a hole */
    assert_int_equal(seqset_remove(&s, 10), 0); /* absent: past the end */
    assert_int_equal(seqset_remove(&s, UINT64_MAX), 0);
    S_RANGES(&s, 0, 5, 6, 10);
    assert_int_equal(seqset_remove(&s, 0), 1); /* first of a range */
    assert_int_equal(seqset_remove(&s, 9), 1); /* last of a range */
    S_RANGES(&s, 1, 5, 6, 9);
    assert_int_equal(seqset_end(&s), 9);
    assert_int_equal(seqset_remove(&s, 8), 1);
    assert_int_equal(seqset_remove(&s, 7), 1);
    S_RANGES(&s, 1, 5, 6, 7);
    assert_int_equal(seqset_remove(&s, 6), 1); /* a single-number range goes */
    S_RANGES(&s, 1, 5);
    assert_int_equal(seqset_end(&s), 5);
    assert_int_equal(seqset_add_range(&s, 10, 11), 0);
    assert_int_equal(seqset_add_range(&s, 20, 30), 0);
    assert_int_equal(seqset_remove(&s, 10), 1); /* one in the middle of the array */
    S_RANGES(&s, 1, 5, 20, 30);
    assert_int_equal(seqset_remove(&s, 2), 1);
    S_RANGES(&s, 1, 2, 3, 5, 20, 30);
    assert_int_equal(seqset_missing_below(&s, 30), 30 - 1 - 2 - 10);
    seqset_free(&s);
}

/* A removal must not fail: it splits a range even when the set already
 * holds its maximum of ranges. */
static void test_remove_split_when_full(void **state)
{
    (void)state;
    seqset_t s;
    seqset_init(&s, 1);
    assert_int_equal(seqset_add_range(&s, 0, 10), 0);
    assert_int_equal(seqset_remove(&s, 5), 1);
    S_RANGES(&s, 0, 5, 6, 10);
    assert_true(seqset_has(&s, 4));
    assert_false(seqset_has(&s, 5));
    assert_true(seqset_has(&s, 6));
    seqset_free(&s);

    seqset_init(&s, 4);
    for (uint64_t i = 0; i < 4; i++)
        assert_int_equal(seqset_add_range(&s, 10 * i, 10 * i + 5), 0);
    assert_int_equal(s.n, 4);
    assert_int_equal(seqset_remove(&s, 12), 1);
    assert_int_equal(seqset_remove(&s, 32), 1);
    S_RANGES(&s, 0, 5, 10, 12, 13, 15, 20, 25, 30, 32, 33, 35);
    seqset_free(&s);
}

/* A removal may leave a set with more ranges than its maximum (by design,
 * see test_remove_split_when_full); the adds must cope: seqset_add_range
 * answers -ENOSPC, seqset_add gives up the oldest hole, and neither ever
 * shrinks the array below the ranges it holds (a heap overflow once). */
static void test_add_after_remove_past_max(void **state)
{
    (void)state;
    seqset_t s;
    seqset_init(&s, 2);
    assert_int_equal(seqset_add_range(&s, 0, 10), 0);
    assert_int_equal(seqset_add_range(&s, 20, 30), 0);
    assert_int_equal(seqset_remove(&s, 5), 1); /* 3 ranges: one past the maximum */
    assert_int_equal(s.n, 3);
    assert_int_equal(seqset_add_range(&s, 40, 50), -ENOSPC);
    assert_int_equal(seqset_add_range(&s, 60, 70), -ENOSPC);
    assert_int_equal(s.n, 3);
    /* a lone seq is still taken (by closing the oldest hole) */
    for (uint64_t seq = 100; seq < 120; seq += 2)
        assert_int_equal(seqset_add(&s, seq, NULL), 1);
    assert_true(s.n <= 3);
    for (uint64_t seq = 100; seq < 120; seq += 2)
        assert_true(seqset_has(&s, seq));
    seqset_free(&s);
}

/* The ranges are sorted, disjoint, not touching, not empty. */
static void s_assert_canonical(const seqset_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        assert_true(s->r[i].lo < s->r[i].hi);
        if (i > 0)
            assert_true(s->r[i - 1].hi < s->r[i].lo);
    }
}

/* Ranges in a bitmap of n bits. */
static size_t s_model_ranges(const unsigned char *model, size_t n)
{
    size_t ranges = 0;
    for (size_t i = 0; i < n; i++)
        ranges += model[i] && (i == 0 || !model[i - 1]);
    return ranges;
}

static void s_assert_matches(const seqset_t *s, const unsigned char *model, size_t n)
{
    uint64_t missing = 0, end = 0;
    for (size_t i = 0; i < n; i++) {
        if (seqset_has(s, i) != (model[i] != 0))
            fail_msg("seq %zu: %s, expected %s", i, seqset_has(s, i) ? "present" : "absent",
                     model[i] ? "present" : "absent");
        missing += !model[i];
        if (model[i])
            end = i + 1;
    }
    assert_false(seqset_has(s, n));
    assert_int_equal(seqset_missing_below(s, n), missing);
    assert_int_equal(seqset_end(s), end);
    assert_int_equal(s->n, s_model_ranges(model, n));
    s_assert_canonical(s);
}

/* add, add_range and remove in random order agree with a bitmap. */
static void test_range_ops_match_model(void **state)
{
    (void)state;
    enum { N = 3000 };
    static unsigned char model[N];
    memset(model, 0, sizeof model);
    seqset_t s;
    seqset_init(&s, 100000);
    unsigned r = 777;
    for (int op = 0; op < 30000; op++) {
        r = r * 1103515245u + 12345u;
        unsigned kind = (r >> 8) % 3;
        r = r * 1103515245u + 12345u;
        uint64_t seq = (r >> 8) % N;
        if (kind == 0) {
            assert_int_equal(seqset_add(&s, seq, NULL), model[seq] ? 0 : 1);
            model[seq] = 1;
        } else if (kind == 1) {
            r = r * 1103515245u + 12345u;
            uint64_t hi = seq + (r >> 8) % 40;
            if (hi > N)
                hi = N;
            assert_int_equal(seqset_add_range(&s, seq, hi), 0);
            memset(model + seq, 1, hi - seq);
        } else {
            assert_int_equal(seqset_remove(&s, seq), model[seq] ? 1 : 0);
            model[seq] = 0;
        }
        if (op % 97 == 0)
            s_assert_matches(&s, model, N);
    }
    s_assert_matches(&s, model, N);
    seqset_free(&s);
}

/* With a small maximum, add_range refuses exactly what would need a range
 * too many, and leaves the set as it was. */
static void test_bounded_add_range_matches_model(void **state)
{
    (void)state;
    enum { N = 400, MAX = 6 };
    unsigned char model[N], tried[N];
    memset(model, 0, sizeof model);
    seqset_t s;
    seqset_init(&s, MAX);
    unsigned r = 4242;
    int refused = 0;
    size_t most = 0;
    for (int op = 0; op < 5000; op++) {
        r = r * 1103515245u + 12345u;
        uint64_t lo = (r >> 8) % N;
        r = r * 1103515245u + 12345u;
        uint64_t hi = lo + (r >> 8) % 8;
        if (hi > N)
            hi = N;
        memcpy(tried, model, sizeof model);
        memset(tried + lo, 1, hi - lo);
        int rc = seqset_add_range(&s, lo, hi);
        if (s_model_ranges(tried, N) > MAX) {
            assert_int_equal(rc, -ENOSPC);
            refused++;
        } else {
            assert_int_equal(rc, 0);
            memcpy(model, tried, sizeof model);
        }
        s_assert_matches(&s, model, N);
        if (s.n > most)
            most = s.n;
    }
    assert_true(refused > 100);
    assert_int_equal(most, MAX); /* it did fill up */
    seqset_free(&s);
}

/* count_in, next_gap and prefix_union against bitmap models of two sets. */
static void test_union_helpers_match_model(void **state)
{
    (void)state;
    enum { N = 200 };
    srand(11);
    for (int round = 0; round < 200; round++) {
        seqset_t a, b;
        seqset_init(&a, 1000);
        seqset_init(&b, 1000);
        bool ma[N] = {0}, mb[N] = {0};
        int density = 1 + round % 9;
        for (uint64_t i = 0; i < N; i++) {
            if (rand() % 10 < density) {
                ma[i] = true;
                assert_int_equal(seqset_add(&a, i, NULL), 1);
            } else if (rand() % 3 == 0) {
                mb[i] = true;
                assert_int_equal(seqset_add(&b, i, NULL), 1);
            }
        }
        /* count_in */
        for (int k = 0; k < 50; k++) {
            uint64_t lo = (uint64_t)(rand() % (N + 10)), hi = lo + (uint64_t)(rand() % 60);
            uint64_t want = 0;
            for (uint64_t i = lo; i < hi && i < N; i++)
                want += ma[i];
            assert_int_equal(seqset_count_in(&a, lo, hi), want);
        }
        /* next_gap walks exactly the numbers not in `a` */
        bool gap[N] = {0};
        uint64_t from = 0, glo, ghi;
        int steps = 0;
        while (seqset_next_gap(&a, from, N, &glo, &ghi)) {
            assert_true(glo < ghi && ghi <= N && glo >= from);
            for (uint64_t i = glo; i < ghi; i++)
                gap[i] = true;
            from = ghi;
            assert_true(++steps <= N);
        }
        for (uint64_t i = 0; i < N; i++)
            assert_int_equal(gap[i], !ma[i]);
        /* prefix_union */
        uint64_t want = 0;
        while (want < N && (ma[want] || mb[want]))
            want++;
        assert_int_equal(seqset_prefix_union(&a, &b), want);
        assert_int_equal(seqset_prefix_union(&b, &a), want);
        seqset_free(&a);
        seqset_free(&b);
    }
    /* both empty; one covering everything the other lacks */
    seqset_t a, b;
    seqset_init(&a, 8);
    seqset_init(&b, 8);
    assert_int_equal(seqset_prefix_union(&a, &b), 0);
    assert_int_equal(seqset_add_range(&a, 0, 5), 0);
    assert_int_equal(seqset_add_range(&a, 10, 20), 0);
    assert_int_equal(seqset_add_range(&b, 5, 10), 0);
    assert_int_equal(seqset_add_range(&b, 20, 21), 0);
    assert_int_equal(seqset_prefix_union(&a, &b), 21);
    seqset_free(&a);
    seqset_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_random_order_matches_model),
        cmocka_unit_test(test_fill_hole_merges),
        cmocka_unit_test(test_bounded_gives_up_oldest_hole),
        cmocka_unit_test(test_extremes),
        cmocka_unit_test(test_add_range_merges),
        cmocka_unit_test(test_add_range_full),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_remove_split_when_full),
        cmocka_unit_test(test_add_after_remove_past_max),
        cmocka_unit_test(test_range_ops_match_model),
        cmocka_unit_test(test_bounded_add_range_matches_model),
        cmocka_unit_test(test_union_helpers_match_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
