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

/* Random adds, finds, resends, unwatches and removals against a model:
 * lookups find exactly the live entries, the table is bounded, and the two
 * timer lists' heads are the live entry first forwarded earliest and the
 * watched entry last forwarded earliest. */
static void test_model(void **state)
{
    (void)state;
    enum { CAP = 512, KEYS = 2000 };
    pending_table_t *t = pending_new(CAP);
    static pending_t *model[KEYS];
    unsigned r = 1;
    size_t live = 0;
    int64_t now = 0;
    for (int step = 0; step < 200000; step++) {
        r = r * 1103515245u + 12345u;
        now += (r >> 4) % 3; /* time moves forward, sometimes not at all */
        unsigned k = (r >> 8) % KEYS;
        uint32_t source = k % 7, gen = k % 3;
        uint64_t seq = k / 21;
        uint16_t part = (uint16_t)(k % 2);
        pending_t *found = pending_find(t, source, gen, seq, part);
        assert_ptr_equal(found, model[k]);
        unsigned what = (r >> 20) % 4;
        if (found && what == 0) {
            pending_sent(t, found, now); /* a resend */
            assert_true(found->watched);
        } else if (found && what == 1) {
            pending_unwatch(t, found); /* its hop timeout was dealt with */
            assert_false(found->watched);
        } else if (found) {
            assert_int_equal(found->seq, seq);
            pending_remove(t, found);
            model[k] = NULL;
            live--;
        } else {
            pending_t *p = pending_add(t, source, gen, seq, part, now);
            if (live == CAP) {
                assert_null(p); /* bounded */
            } else {
                assert_non_null(p);
                assert_true(p->used);
                assert_int_equal(p->needed, 0);
                assert_int_equal(p->first_ms, now);
                if (what & 2)
                    pending_sent(t, p, now);
                model[k] = p;
                live++;
            }
        }
        assert_int_equal(pending_count(t), live);
        if (step % 97 == 0) {
            const pending_t *first = NULL, *sent = NULL;
            for (unsigned i = 0; i < KEYS; i++) {
                const pending_t *p = model[i];
                if (!p)
                    continue;
                if (!first || p->first_ms < first->first_ms)
                    first = p;
                if (p->watched && (!sent || p->sent_ms < sent->sent_ms))
                    sent = p;
            }
            const pending_t *h = pending_oldest(t);
            if (!first)
                assert_null(h);
            else
                assert_int_equal(h->first_ms, first->first_ms);
            h = pending_oldest_sent(t);
            if (!sent)
                assert_null(h);
            else
                assert_int_equal(h->sent_ms, sent->sent_ms);
        }
    }
    /* empty the table through the list heads: each entry once */
    size_t removed = 0;
    pending_t *p;
    int64_t last = INT64_MIN;
    while ((p = pending_oldest(t))) {
        assert_true(p->first_ms >= last);
        last = p->first_ms;
        pending_remove(t, p);
        removed++;
    }
    assert_int_equal(removed, live);
    assert_null(pending_oldest_sent(t));
    assert_int_equal(pending_count(t), 0);
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
