/*
 * scrape — GET /metrics of every service tapmesh-top watches, all at once
 * (libcurl's multi interface), each within a time limit. Owns one curl
 * handle and one body buffer per service, made once and reused: a refresh
 * allocates nothing once the buffers have grown to the bodies' size.
 */
#ifndef TAPMESH_SCRAPE_H
#define TAPMESH_SCRAPE_H

#include <stddef.h>

#define SCRAPE_BODY_MAX (8u << 20) /* a larger body is an error, not read on */

typedef struct scrape_t scrape_t;

/* What one service answered: `body` (its /metrics text, `len` bytes) when
 * `error` is NULL, else `error` says why there is none ("Couldn't connect
 * to server", "HTTP 404", "body larger than 8 MiB"). `at` is when the
 * answer came, in seconds of CLOCK_MONOTONIC. Valid during the call. */
typedef void (*scrape_fn)(void *arg, size_t i, const char *body, size_t len, const char *error,
                          double at);

/* Makes the URL of an address as the operator gives it: HOST:PORT, :PORT
 * or PORT (127.0.0.1), [V6]:PORT, or a URL (http://host:port/path, taken
 * as it is). Returns 0, or -EINVAL with the reason in `why`. */
int scrape_url(const char *addr, char *url, size_t urllen, char *why, size_t whylen);

/* A scraper of `n` URLs (copied); NULL with the reason in `err`. */
scrape_t *scrape_new(const char *const *urls, size_t n, long timeout_ms, char *err, size_t errlen);

void scrape_destroy(scrape_t **self_p);

/* Fetches every URL at once and calls `fn` once for each, in the order
 * they finish, within about the time limit. Returns 0, or -EIO when libcurl
 * itself failed (then no call was made). */
int scrape_run(scrape_t *self, scrape_fn fn, void *arg);

#endif
