/*
 * test_outbox — the capture agent's custody of batches: closing by size,
 * sequence numbers, the send window, resends with backoff, release on
 * acknowledgement, the memory bound that stops reading, the read-ahead
 * bound, and payloads lent to ZeroMQ (zero-copy sends) that stay intact
 * until given back, whatever happens to their batch meanwhile.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "outbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static uint8_t s_data[WIRE_SNAPLEN_MAX];

static wire_packet_t s_pkt(uint64_t ts, uint32_t caplen)
{
    for (uint32_t i = 0; i < caplen; i++)
        s_data[i] = (uint8_t)(ts + i);
    return (wire_packet_t){.ts_ns = ts, .caplen = caplen, .origlen = caplen + 4, .data = s_data};
}

/* Batches close at the byte threshold, carry every packet intact in order,
 * and get consecutive sequence numbers. */
static void test_batches_close_and_carry_packets(void **state)
{
    (void)state;
    outbox_t *o = outbox_new(4096, 1 << 24, 8, 100, 1000);
    assert_non_null(o);
    for (uint64_t i = 0; i < 100; i++) {
        wire_packet_t p = s_pkt(1000 + i, 1000);
        assert_true(outbox_has_room(o, 1000));
        assert_int_equal(outbox_add(o, &p, 1000 + i, 0), 0);
    }
    outbox_close(o);
    /* 4 + n * (20 + 1000) bytes: the fifth record takes a batch past 4096 */
    assert_int_equal(outbox_held(o), 20);
    assert_int_equal(outbox_next_seq(o), 20);
    uint64_t expect_ts = 1000;
    for (uint64_t seq = 0; seq < 20; seq++) {
        batch_t *b = outbox_next_send(o, 0);
        assert_non_null(b);
        assert_int_equal(b->seq, seq);
        assert_int_equal(b->packets, 5);
        assert_int_equal(wire_packets_check(b->buf, b->len, b->packets, 1, NULL, NULL), WIRE_OK);
        size_t off = 0;
        wire_packet_t p;
        while (wire_packets_next(b->buf, b->len, &off, &p)) {
            assert_int_equal(p.ts_ns, expect_ts);
            assert_int_equal(p.caplen, 1000);
            assert_int_equal(p.origlen, 1004);
            assert_int_equal(p.data[0], (uint8_t)expect_ts);
            assert_int_equal(p.data[999], (uint8_t)(expect_ts + 999));
            expect_ts++;
        }
        assert_int_equal(b->watermark, expect_ts - 1);
        outbox_sent(o, b, 0);
        int64_t rtt;
        assert_int_equal(outbox_ack(o, seq, 5, &rtt), 1);
        assert_int_equal(rtt, 5);
    }
    assert_int_equal(expect_ts, 1100);
    assert_int_equal(outbox_held(o), 0);
    assert_int_equal(outbox_held_bytes(o), 0);
    outbox_destroy(&o);
    assert_null(o);
}

/* No more than `window` batches in flight; an acknowledgement frees a slot. */
static void test_window(void **state)
{
    (void)state;
    outbox_t *o = outbox_new(1024, 1 << 24, 3, 100, 1000);
    for (int i = 0; i < 10; i++) {
        wire_packet_t p = s_pkt((uint64_t)i, 100);
        outbox_add(o, &p, 0, 0);
        outbox_close(o);
    }
    for (int i = 0; i < 3; i++) {
        batch_t *b = outbox_next_send(o, 0);
        assert_non_null(b);
        outbox_sent(o, b, 0);
    }
    assert_null(outbox_next_send(o, 50));
    assert_int_equal(outbox_inflight(o), 3);
    assert_int_equal(outbox_unsent(o), 7);
    assert_int_equal(outbox_ack(o, 1, 60, NULL), 1);
    batch_t *b = outbox_next_send(o, 60);
    assert_non_null(b);
    assert_int_equal(b->seq, 3);
    outbox_destroy(&o);
}

/* Resend after the timeout, doubling up to the maximum; resends go before
 * new batches; duplicate acknowledgements are recognised. */
static void test_resend_backoff(void **state)
{
    (void)state;
    outbox_t *o = outbox_new(1024, 1 << 24, 4, 100, 350);
    wire_packet_t p = s_pkt(1, 100);
    outbox_add(o, &p, 0, 0);
    outbox_close(o);
    batch_t *b = outbox_next_send(o, 0);
    outbox_sent(o, b, 0);
    assert_int_equal(outbox_next_deadline(o), 100);
    assert_null(outbox_next_send(o, 99));
    assert_false(outbox_overdue(o, 99));
    assert_true(outbox_overdue(o, 100));
    p = s_pkt(2, 100);
    outbox_add(o, &p, 0, 0);
    outbox_close(o);
    assert_ptr_equal(outbox_next_send(o, 100), b); /* the resend comes first */
    outbox_sent(o, b, 100);
    assert_int_equal(b->sends, 2);
    assert_int_equal(b->deadline_ms, 100 + 200);
    assert_true(outbox_overdue(o, 101)); /* sent again: not getting through */
    outbox_sent(o, b, 300);
    assert_int_equal(b->deadline_ms, 300 + 350); /* 400 capped at 350 */
    outbox_resend_all(o);
    assert_ptr_equal(outbox_next_send(o, 301), b);
    int64_t rtt;
    assert_int_equal(outbox_ack(o, 0, 400, &rtt), 1);
    assert_int_equal(rtt, 400); /* from the first send */
    assert_int_equal(outbox_ack(o, 0, 401, &rtt), 0);
    assert_int_equal(outbox_ack(o, 77, 401, &rtt), 0);
    assert_int_equal(outbox_next_deadline(o), INT64_MAX);
    assert_false(outbox_overdue(o, 100000));
    outbox_destroy(&o);
}

/* The bound: with BUFFER for three full batches, adding stops once the
 * held bytes would pass it, and acknowledgements make room again. */
static void test_memory_bound(void **state)
{
    (void)state;
    size_t cap = WIRE_FRAME_HDR + WIRE_PKT_HDR + WIRE_SNAPLEN_MAX; /* a full buffer */
    outbox_t *o = outbox_new(cap, 3 * cap, 8, 100, 1000);
    int added = 0;
    while (outbox_has_room(o, 200000) && added < 100) {
        wire_packet_t p = s_pkt((uint64_t)added, 200000);
        assert_int_equal(outbox_add(o, &p, 0, 0), 0);
        added++;
    }
    assert_int_equal(added, 3); /* one 200 kB packet per buffer */
    assert_true(outbox_held_bytes(o) <= 3 * cap);
    wire_packet_t p = s_pkt(99, 200000);
    assert_int_equal(outbox_add(o, &p, 0, 0), -ENOBUFS);
    batch_t *b = outbox_next_send(o, 0);
    outbox_sent(o, b, 0);
    outbox_ack(o, b->seq, 1, NULL);
    assert_true(outbox_has_room(o, 200000));
    outbox_destroy(&o);
}

/* Small batches are moved to exact-size buffers: many one-packet batches
 * do not each pin a full buffer. The ring grows past its first size. */
static void test_small_batches_are_compact(void **state)
{
    (void)state;
    outbox_t *o = outbox_new(262144, 1 << 20, 8, 100, 1000);
    for (int i = 0; i < 1000; i++) {
        wire_packet_t p = s_pkt((uint64_t)i, 60);
        assert_true(outbox_has_room(o, 60));
        assert_int_equal(outbox_add(o, &p, 0, 0), 0);
        outbox_close(o);
    }
    assert_int_equal(outbox_held(o), 1000);
    assert_int_equal(outbox_held_bytes(o), 1000 * (WIRE_FRAME_HDR + WIRE_PKT_HDR + 60));
    /* acknowledge out of order; all are found by seq */
    for (int i = 999; i >= 0; i -= 2)
        assert_int_equal(outbox_ack(o, (uint64_t)i, 0, NULL), 1);
    for (int i = 0; i < 1000; i += 2)
        assert_int_equal(outbox_ack(o, (uint64_t)i, 0, NULL), 1);
    assert_int_equal(outbox_held(o), 0);
    assert_int_equal(outbox_held_bytes(o), 0);
    outbox_destroy(&o);
}

/* Fills and closes one batch of `n` packets of `caplen` bytes. */
static void s_fill(outbox_t *o, uint64_t ts, int n, uint32_t caplen)
{
    for (int i = 0; i < n; i++) {
        wire_packet_t p = s_pkt(ts + (uint64_t)i, caplen);
        assert_int_equal(outbox_add(o, &p, ts, 0), 0);
    }
    outbox_close(o);
}

static void *s_give_back_thread(void *loan)
{
    outbox_give_back(loan);
    return NULL;
}

/* A batch sent without a copy and acknowledged before ZeroMQ let go of its
 * buffer (the free callback runs later, on the I/O thread): the buffer is
 * not reused for the next batches, its bytes stay as sent, it counts
 * against the bound, and it is recycled once the loan comes back from
 * another thread. */
static void test_lent_buffer_waits_for_give_back(void **state)
{
    (void)state;
    size_t cap = WIRE_FRAME_HDR + WIRE_PKT_HDR + WIRE_SNAPLEN_MAX;
    outbox_t *o = outbox_new(cap, 3 * cap, 8, 100, 1000);
    s_fill(o, 1000, 200, 1000); /* more than half full: keeps its full-size buffer */
    batch_t *b = outbox_next_send(o, 0);
    assert_non_null(b);
    outbox_buf_t *loan = outbox_lend(b);
    const uint8_t *lent = b->buf;
    size_t len = b->len;
    uint8_t *copy = malloc(len);
    memcpy(copy, lent, len);
    outbox_sent(o, b, 0);
    assert_int_equal(outbox_ack(o, 0, 1, NULL), 1); /* the ack beats the callback */
    assert_int_equal(outbox_held(o), 0);
    assert_int_equal(outbox_lent_bytes(o), cap);
    /* two more full batches fit the bound with the lent buffer, not three */
    for (int k = 0; k < 2; k++) {
        assert_true(outbox_has_room(o, 1000));
        s_fill(o, 5000 + 1000 * (uint64_t)k, 200, 1000);
        b = outbox_next_send(o, 0);
        assert_ptr_not_equal(b->buf, lent);
        outbox_sent(o, b, 0);
    }
    assert_false(outbox_has_room(o, 1000));
    assert_memory_equal(lent, copy, len);
    /* given back: recycled, and there is room again */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_give_back_thread, loan), 0);
    pthread_join(t, NULL);
    assert_true(outbox_has_room(o, 1000));
    assert_int_equal(outbox_lent_bytes(o), 0);
    s_fill(o, 9000, 200, 1000);
    b = outbox_next_send(o, 0);
    assert_ptr_equal(b->buf, lent); /* the same buffer, warm */
    free(copy);
    outbox_destroy(&o);
}

/* A resend is a second loan: the buffer waits for both. */
static void test_resend_is_another_loan(void **state)
{
    (void)state;
    outbox_t *o = outbox_new(262144, 1 << 24, 8, 100, 1000);
    s_fill(o, 1, 200, 1000);
    batch_t *b = outbox_next_send(o, 0);
    outbox_buf_t *first = outbox_lend(b);
    outbox_sent(o, b, 0);
    assert_ptr_equal(outbox_next_send(o, 100), b); /* due again */
    outbox_buf_t *second = outbox_lend(b);
    outbox_sent(o, b, 100);
    assert_ptr_equal(first, second);
    assert_int_equal(outbox_ack(o, 0, 150, NULL), 1);
    outbox_give_back(first);
    assert_true(outbox_has_room(o, 100));
    assert_int_equal(outbox_lent_bytes(o), WIRE_FRAME_HDR + WIRE_PKT_HDR + WIRE_SNAPLEN_MAX);
    outbox_give_back(second);
    assert_true(outbox_has_room(o, 100));
    assert_int_equal(outbox_lent_bytes(o), 0);
    outbox_destroy(&o);
}

/* The outbox goes (the agent exits) while ZeroMQ still holds a payload
 * (linger): the buffer stays until the loan comes back, which frees it. */
static void test_loan_outlives_outbox(void **state)
{
    (void)state;
    outbox_t *o = outbox_new(262144, 1 << 24, 8, 100, 1000);
    s_fill(o, 7, 200, 1000);
    s_fill(o, 9, 3, 100); /* a small one, in an exact-size buffer */
    batch_t *b = outbox_next_send(o, 0);
    outbox_buf_t *big = outbox_lend(b);
    const uint8_t *big_data = b->buf;
    size_t big_len = b->len;
    uint8_t *copy = malloc(big_len);
    memcpy(copy, big_data, big_len);
    outbox_sent(o, b, 0);
    b = outbox_next_send(o, 0);
    outbox_buf_t *small = outbox_lend(b);
    const uint8_t *small_data = b->buf;
    size_t small_len = b->len;
    outbox_sent(o, b, 0);
    outbox_ack(o, 0, 1, NULL); /* one retired, one still held */
    outbox_destroy(&o);
    assert_memory_equal(big_data, copy, big_len);
    assert_int_equal(wire_packets_check(small_data, small_len, 3, 1, NULL, NULL), WIRE_OK);
    free(copy);
    outbox_give_back(big);
    outbox_give_back(small); /* the last references: freed here */
}

/* Reading a file: no new batch while `ahead` closed batches wait unsent;
 * a send makes room. Without the bound, only memory limits. */
static void test_read_ahead(void **state)
{
    (void)state;
    outbox_t *o = outbox_new(4096, 1 << 24, 2, 100, 1000);
    outbox_set_read_ahead(o, 3);
    int closed = 0;
    while (outbox_has_room(o, WIRE_SNAPLEN_MAX) && closed < 100) {
        s_fill(o, (uint64_t)closed, 1, 3000);
        closed++;
    }
    assert_int_equal(closed, 3);
    batch_t *b = outbox_next_send(o, 0);
    outbox_sent(o, b, 0);
    assert_true(outbox_has_room(o, WIRE_SNAPLEN_MAX));
    s_fill(o, 50, 1, 3000);
    assert_false(outbox_has_room(o, WIRE_SNAPLEN_MAX));
    assert_false(outbox_has_room_for(o, 100));
    /* the window (2) is full after one more send: reading stays paused
     * until an acknowledgement lets another go */
    outbox_sent(o, outbox_next_send(o, 0), 0);
    assert_null(outbox_next_send(o, 0));
    assert_true(outbox_has_room(o, WIRE_SNAPLEN_MAX));
    s_fill(o, 60, 1, 3000);
    assert_false(outbox_has_room(o, WIRE_SNAPLEN_MAX));
    outbox_set_read_ahead(o, 0);
    assert_true(outbox_has_room(o, WIRE_SNAPLEN_MAX));
    outbox_destroy(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches_close_and_carry_packets),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_resend_backoff),
        cmocka_unit_test(test_memory_bound),
        cmocka_unit_test(test_small_batches_are_compact),
        cmocka_unit_test(test_lent_buffer_waits_for_give_back),
        cmocka_unit_test(test_resend_is_another_loan),
        cmocka_unit_test(test_loan_outlives_outbox),
        cmocka_unit_test(test_read_ahead),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
