/*
 * render — the table (render.h).
 */
#include "render.h"

#include <math.h>

#define S_ADDR_W 21

/* A rate ("-" while there is none) in a column of `w`. */
static void s_rate(FILE *out, int w, int prec, bool have, double v)
{
    if (!have || !isfinite(v))
        fprintf(out, " %*s", w, "-");
    else
        fprintf(out, " %*.*f", w, prec, v);
}

static void s_count(FILE *out, int w, double v)
{
    if (!isfinite(v))
        fprintf(out, " %*s", w, "-");
    else
        fprintf(out, " %*.0f", w, v);
}

static const char *s_state(const render_target_t *t)
{
    return t->up ? "up" : "down";
}

static bool s_any(const render_target_t *t, size_t n, snap_kind_t kind)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].kind == kind)
            return true;
    return false;
}

static void s_sources(FILE *out, const render_target_t *t, size_t n)
{
    fprintf(out, "%-16s %-*s %-5s %9s %8s %12s %9s %8s %7s %8s %4s\n", "SOURCE", S_ADDR_W,
            "ADDRESS", "STATE", "PKT/S", "MBIT/S", "PACKETS", "KDROPS", "KDROP/S", "RESENT",
            "DEADLTR", "HOP");
    for (size_t i = 0; i < n; i++) {
        const render_target_t *r = &t[i];
        if (r->kind != SNAP_CAPTURE)
            continue;
        const snap_t *s = &r->cur;
        bool rates = r->up && r->has_rates;
        fprintf(out, "%-16s %-*s %-5s", *s->source ? s->source : "?", S_ADDR_W, r->addr,
                s_state(r));
        s_rate(out, 9, 1, rates, r->rates.pps);
        s_rate(out, 8, 2, rates, r->rates.mbps);
        s_count(out, 12, s->packets);
        s_count(out, 9, s->live ? s->kernel_drops : NAN);
        s_rate(out, 8, 1, rates && s->live, r->rates.kernel_drops_ps);
        s_count(out, 7, s->resent_batches);
        s_count(out, 8, s->dead_letter_batches);
        fprintf(out, " %4s\n",
                !r->up               ? "-"
                : s->next_hop_up < 0 ? "?"
                : s->next_hop_up     ? "up"
                                     : "DOWN");
    }
}

static void s_relays(FILE *out, const render_target_t *t, size_t n)
{
    fprintf(out, "%-16s %-*s %-5s %9s %9s %12s %12s %7s\n", "RELAY", S_ADDR_W, "ADDRESS", "STATE",
            "IN PKT/S", "OUT PKT/S", "IN PACKETS", "OUT PACKETS", "HOPS UP");
    for (size_t i = 0; i < n; i++) {
        const render_target_t *r = &t[i];
        if (r->kind != SNAP_RELAY)
            continue;
        const snap_t *s = &r->cur;
        bool rates = r->up && r->has_rates;
        fprintf(out, "%-16s %-*s %-5s", "relay", S_ADDR_W, r->addr, s_state(r));
        s_rate(out, 9, 1, rates, r->rates.in_pps);
        s_rate(out, 9, 1, rates, r->rates.out_pps);
        s_count(out, 12, s->packets_in);
        s_count(out, 12, s->packets_out);
        char hops[32] = "-";
        if (r->up)
            snprintf(hops, sizeof hops, "%u/%u", s->hops_up, s->hops);
        fprintf(out, " %7s\n", hops);
    }
}

static void s_collectors(FILE *out, const render_target_t *t, size_t n)
{
    fprintf(out, "%-16s %-*s %-5s %9s %8s %12s %7s %8s %8s %14s\n", "COLLECTOR", S_ADDR_W,
            "ADDRESS", "STATE", "PKT/S", "MBIT/S", "PACKETS", "SOURCES", "QUEUED", "LATE",
            "OUTPUT BYTES");
    for (size_t i = 0; i < n; i++) {
        const render_target_t *r = &t[i];
        if (r->kind != SNAP_COLLECT)
            continue;
        const snap_t *s = &r->cur;
        bool rates = r->up && r->has_rates;
        fprintf(out, "%-16s %-*s %-5s", "collect", S_ADDR_W, r->addr, s_state(r));
        s_rate(out, 9, 1, rates, r->rates.pps);
        s_rate(out, 8, 2, rates, r->rates.mbps);
        s_count(out, 12, s->packets);
        s_count(out, 7, r->up ? s->sources_live : NAN);
        s_count(out, 8, r->up ? s->queued_packets : NAN);
        s_count(out, 8, s->late_packets);
        s_count(out, 14, s->output_bytes);
        fputc('\n', out);
    }
}

void render_block(FILE *out, const render_target_t *t, size_t n, const char *title)
{
    size_t down = 0;
    for (size_t i = 0; i < n; i++)
        down += !t[i].up;
    fprintf(out, "%s  %zu service%s, %zu down\n", title, n, n == 1 ? "" : "s", down);
    if (s_any(t, n, SNAP_CAPTURE)) {
        fputc('\n', out);
        s_sources(out, t, n);
    }
    if (s_any(t, n, SNAP_RELAY)) {
        fputc('\n', out);
        s_relays(out, t, n);
    }
    if (s_any(t, n, SNAP_COLLECT)) {
        fputc('\n', out);
        s_collectors(out, t, n);
    }
    /* never seen: no kind to file them under */
    if (s_any(t, n, SNAP_UNKNOWN)) {
        fputc('\n', out);
        fprintf(out, "%-16s %-*s %-5s %s\n", "UNKNOWN", S_ADDR_W, "ADDRESS", "STATE", "WHY");
        for (size_t i = 0; i < n; i++)
            if (t[i].kind == SNAP_UNKNOWN)
                fprintf(out, "%-16s %-*s %-5s %s\n", "?", S_ADDR_W, t[i].addr, "down", t[i].error);
    }
    /* why the known ones are down, and what could not be read */
    bool notes = false;
    for (size_t i = 0; i < n; i++) {
        const render_target_t *r = &t[i];
        bool why = !r->up && r->kind != SNAP_UNKNOWN;
        if (!why && !r->parse.bad_lines)
            continue;
        if (!notes)
            fputc('\n', out);
        notes = true;
        if (why)
            fprintf(out, "%s: down: %s\n", r->addr, r->error);
        if (r->parse.bad_lines)
            fprintf(out, "%s: %zu line%s of /metrics not understood (%lu in all; line %zu: %s)\n",
                    r->addr, r->parse.bad_lines, r->parse.bad_lines == 1 ? "" : "s",
                    r->bad_lines_total, r->parse.first_bad, r->parse.why);
    }
}
