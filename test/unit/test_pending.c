/*
 * test_pending — the relay's table of acknowledgements owed: lookup by
 * (source, generation, seq, part) under many inserts and removals checked
 * against a model, the bound, and when an entry is settled.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "pending.h"

#include <stdlib.h>

static void test_model(void **state)
{
    (void)state;
    enum { CAP = 512, KEYS = 2000 };
    pending_table_t *t = pending_new(CAP);
    static pending_t *model[KEYS];
    unsigned r = 1;
    size_t live = 0;
    for (int step = 0; step < 200000; step++) {
        r = r * 1103515245u + 12345u;
        unsigned k = (r >> 8) % KEYS;
        uint32_t source = k % 7, gen = k % 3;
        uint64_t seq = k / 21;
        uint16_t part = (uint16_t)(k % 2);
        pending_t *found = pending_find(t, source, gen, seq, part);
        assert_ptr_equal(found, model[k]);
        if (found) {
            assert_int_equal(found->seq, seq);
            pending_remove(t, found);
            model[k] = NULL;
            live--;
        } else {
            pending_t *p = pending_add(t, source, gen, seq, part);
            if (live == CAP) {
                assert_null(p); /* bounded */
            } else {
                assert_non_null(p);
                assert_true(p->used);
                assert_int_equal(p->needed, 0);
                model[k] = p;
                live++;
            }
        }
        assert_int_equal(pending_count(t), live);
    }
    size_t used = 0;
    for (size_t i = 0; i < pending_capacity(t); i++)
        used += pending_slot(t, i)->used;
    assert_int_equal(used, live);
    pending_destroy(&t);
    assert_null(t);
}

static void test_done(void **state)
{
    (void)state;
    pending_t p = {.needed = 0x3, .acked = 0x1};
    assert_false(pending_done(&p)); /* duplicate / split: all of them */
    p.acked = 0x3;
    assert_true(pending_done(&p));
    p = (pending_t){.needed = 0x2, .acked = 0, .any = true};
    assert_false(pending_done(&p));
    p.acked = 0x2; /* failover: the hop it went to */
    assert_true(pending_done(&p));
    p.acked = 0x1; /* an acknowledgement from a hop it did not go to settles nothing */
    assert_false(pending_done(&p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_done),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
