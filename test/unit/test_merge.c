/*
 * test_merge — the k-way merge heap: always yields the lane with the
 * smallest (timestamp, order) after any sequence of updates and removals,
 * checked against a linear scan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "merge.h"

static merge_lane_t *s_scan(merge_lane_t *lanes, size_t n)
{
    merge_lane_t *best = NULL;
    for (size_t i = 0; i < n; i++) {
        merge_lane_t *l = &lanes[i];
        if (l->pos == MERGE_NOWHERE)
            continue;
        if (!best || l->ts < best->ts || (l->ts == best->ts && l->order < best->order))
            best = l;
    }
    return best;
}

static void test_against_scan(void **state)
{
    (void)state;
    enum { N = 64 };
    merge_lane_t lanes[N];
    merge_t m;
    merge_init(&m);
    for (size_t i = 0; i < N; i++)
        merge_lane_init(&lanes[i], i);
    assert_null(merge_top(&m));
    unsigned r = 7;
    size_t in = 0;
    for (int step = 0; step < 100000; step++) {
        r = r * 1103515245u + 12345u;
        merge_lane_t *l = &lanes[(r >> 8) % N];
        if ((r >> 20) % 4 == 0) {
            if (l->pos != MERGE_NOWHERE)
                in--;
            merge_remove(&m, l);
        } else {
            if (l->pos == MERGE_NOWHERE)
                in++;
            l->ts = (r >> 4) % 50; /* many ties */
            assert_int_equal(merge_update(&m, l), 0);
        }
        assert_int_equal(merge_size(&m), in);
        assert_ptr_equal(merge_top(&m), s_scan(lanes, N));
    }
    merge_free(&m);
}

/* Draining by "take top, advance that lane" yields a globally sorted
 * sequence from per-lane sorted sequences (what mergecap does). */
static void test_k_way_merge_sorted(void **state)
{
    (void)state;
    enum { LANES = 5, PER = 200 };
    uint64_t seqs[LANES][PER];
    size_t next[LANES] = {0};
    merge_lane_t lanes[LANES];
    merge_t m;
    merge_init(&m);
    unsigned r = 99;
    for (size_t l = 0; l < LANES; l++) {
        uint64_t t = 0;
        for (size_t i = 0; i < PER; i++) {
            r = r * 1103515245u + 12345u;
            t += (r >> 10) % 1000;
            seqs[l][i] = t;
        }
        merge_lane_init(&lanes[l], l);
        lanes[l].ts = seqs[l][0];
        merge_update(&m, &lanes[l]);
    }
    uint64_t last = 0;
    size_t count = 0;
    merge_lane_t *top;
    while ((top = merge_top(&m))) {
        size_t l = (size_t)(top - lanes);
        assert_true(top->ts >= last);
        last = top->ts;
        count++;
        if (++next[l] == PER) {
            merge_remove(&m, top);
        } else {
            top->ts = seqs[l][next[l]];
            merge_update(&m, top);
        }
    }
    assert_int_equal(count, LANES * PER);
    merge_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_scan),
        cmocka_unit_test(test_k_way_merge_sorted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
