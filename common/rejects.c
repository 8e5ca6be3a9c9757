/*
 * rejects — a direct-mapped table of logged (peer, reason) keys (a key that
 * is pushed out may be logged again: bounded, never a flood), plus a budget
 * of lines per second.
 */
#include "rejects.h"

#include "log.h"

#include <inttypes.h>
#include <stdio.h>

#define S_LINES_PER_SECOND 20

void rejects_init(rejects_t *self, metrics_t *metrics, const char *metric)
{
    self->metrics = metrics;
    self->count[WIRE_OK] = -1;
    for (int e = 1; e < WIRE_ERR_COUNT_; e++) {
        char labels[64];
        snprintf(labels, sizeof labels, "reason=\"%s\"", wire_err_name((wire_err_t)e));
        self->count[e] = metrics_counter(metrics, metric,
                                         "Messages dropped because they break the protocol, by "
                                         "reason",
                                         labels);
    }
}

uint32_t rejects_peer(const frames_t *in)
{
    uint32_t h = 2166136261u;
    size_t n = in->framed ? in->envelope : (in->count > 0 ? 1 : 0);
    size_t i = 0;
    if (in->user_id[0]) {
        for (const char *p = in->user_id; *p; p++)
            h = (h ^ (uint8_t)*p) * 16777619u;
        h = (h ^ 0xfe) * 16777619u; /* a key, not a frame */
        i = 1;
    }
    for (; i < n; i++) {
        const uint8_t *p = zmq_msg_data((zmq_msg_t *)&in->part[i]);
        size_t len = zmq_msg_size((zmq_msg_t *)&in->part[i]);
        for (size_t j = 0; j < len; j++)
            h = (h ^ p[j]) * 16777619u;
        h = (h ^ 0xff) * 16777619u; /* frame boundary */
    }
    return h;
}

/* True when (peer, why) is to be logged now: not logged before, and the
 * line budget of this second allows it. */
static bool s_log_now(rejects_t *self, uint32_t peer, unsigned why, int64_t now_ms)
{
    uint64_t key = ((uint64_t)peer << 8 | (uint64_t)why) + 1; /* never 0 */
    uint64_t *slot = &self->seen[(key * 0x9E3779B97F4A7C15ull) >> 54];
    if (*slot == key)
        return false;
    if (now_ms - self->window_ms >= 1000) {
        self->window_ms = now_ms;
        self->lines = 0;
    }
    if (self->lines >= S_LINES_PER_SECOND) {
        self->suppressed++;
        return false; /* not remembered: it may be logged when the budget allows */
    }
    *slot = key;
    self->lines++;
    return true;
}

void rejects_drop(rejects_t *self, uint32_t peer, wire_err_t why, const char *detail,
                  int64_t now_ms)
{
    if (why > WIRE_OK && why < WIRE_ERR_COUNT_)
        metrics_add(self->metrics, self->count[why], 1);
    if (!s_log_now(self, peer, why, now_ms))
        return;
    if (self->suppressed)
        log_warn("dropped a message from peer %08x: %s%s%s (further ones from this peer for "
                 "this reason are only counted; %" PRIu64 " other drops not logged)",
                 peer, wire_err_name(why), detail ? ": " : "", detail ? detail : "",
                 self->suppressed);
    else
        log_warn("dropped a message from peer %08x: %s%s%s (further ones from this peer for "
                 "this reason are only counted)",
                 peer, wire_err_name(why), detail ? ": " : "", detail ? detail : "");
    self->suppressed = 0;
}

void rejects_note(rejects_t *self, uint32_t peer, rejects_reason_t why, const char *what,
                  int64_t now_ms)
{
    if (!s_log_now(self, peer, why, now_ms))
        return;
    char also[64] = "";
    if (self->suppressed)
        snprintf(also, sizeof also, "; %" PRIu64 " other drops not logged", self->suppressed);
    static const char *const names[] = {"identity", "peer_limit", "hello_rate", "full"};
    log_warn("refused a message from peer %08x: %s (%s; further ones from this peer for this "
             "reason are only counted%s)",
             peer, what, names[why - REJECTS_IDENTITY], also);
    self->suppressed = 0;
}
