/*
 * scrape — parallel HTTP GETs through libcurl's multi interface (scrape.h).
 */
#include "scrape.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    CURL *easy;
    char *url;
    char *body;
    size_t len, cap;
    bool too_large;
    char curl_err[CURL_ERROR_SIZE];
} s_target_t;

struct scrape_t {
    CURLM *multi;
    s_target_t *targets;
    size_t n;
};

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int scrape_url(const char *addr, char *url, size_t urllen, char *why, size_t whylen)
{
    if (!*addr || strpbrk(addr, " \t\r\n")) {
        snprintf(why, whylen, "'%s' is no HOST:PORT", addr);
        return -EINVAL;
    }
    int n;
    if (strncmp(addr, "http://", 7) == 0 || strncmp(addr, "https://", 8) == 0) {
        n = snprintf(url, urllen, "%s", addr);
    } else if (strspn(addr, "0123456789") == strlen(addr)) {
        n = snprintf(url, urllen, "http://127.0.0.1:%s/metrics", addr);
    } else {
        const char *colon = strrchr(addr, ':');
        const char *port = colon ? colon + 1 : "";
        if (!*port || strspn(port, "0123456789") != strlen(port) || atol(port) < 1 ||
            atol(port) > 65535) {
            snprintf(why, whylen, "'%s': no port (HOST:PORT, :PORT or a URL)", addr);
            return -EINVAL;
        }
        if (colon == addr)
            n = snprintf(url, urllen, "http://127.0.0.1%s/metrics", addr);
        else
            n = snprintf(url, urllen, "http://%s/metrics", addr);
    }
    if (n < 0 || (size_t)n >= urllen) {
        snprintf(why, whylen, "'%s': too long", addr);
        return -EINVAL;
    }
    return 0;
}

static size_t s_write(char *data, size_t size, size_t nmemb, void *arg)
{
    s_target_t *t = arg;
    size_t add = size * nmemb;
    if (t->len + add > SCRAPE_BODY_MAX) {
        t->too_large = true;
        return 0; /* libcurl stops this transfer */
    }
    if (t->len + add + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 64 * 1024;
        while (cap < t->len + add + 1)
            cap *= 2;
        char *b = realloc(t->body, cap);
        if (!b)
            return 0;
        t->body = b;
        t->cap = cap;
    }
    memcpy(t->body + t->len, data, add);
    t->len += add;
    t->body[t->len] = '\0';
    return add;
}

scrape_t *scrape_new(const char *const *urls, size_t n, long timeout_ms, char *err, size_t errlen)
{
    scrape_t *self = calloc(1, sizeof *self);
    if (!self)
        goto nomem;
    self->multi = curl_multi_init();
    self->targets = calloc(n ? n : 1, sizeof *self->targets);
    if (!self->multi || !self->targets)
        goto nomem;
    self->n = n;
    for (size_t i = 0; i < n; i++) {
        s_target_t *t = &self->targets[i];
        t->url = strdup(urls[i]);
        t->easy = curl_easy_init();
        if (!t->url || !t->easy)
            goto nomem;
        curl_easy_setopt(t->easy, CURLOPT_URL, t->url);
        curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, s_write);
        curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
        curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->curl_err);
        curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
        curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(t->easy, CURLOPT_USERAGENT, "tapmesh-top/" TAPMESH_VERSION);
        curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
    }
    return self;
nomem:
    snprintf(err, errlen, "out of memory");
    scrape_destroy(&self);
    return NULL;
}

void scrape_destroy(scrape_t **self_p)
{
    scrape_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; self->targets && i < self->n; i++) {
        s_target_t *t = &self->targets[i];
        if (t->easy)
            curl_easy_cleanup(t->easy);
        free(t->url);
        free(t->body);
    }
    free(self->targets);
    if (self->multi)
        curl_multi_cleanup(self->multi);
    free(self);
    *self_p = NULL;
}

static void s_done(scrape_t *self, CURLMsg *msg, scrape_fn fn, void *arg)
{
    s_target_t *t = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
    size_t i = (size_t)(t - self->targets);
    double at = s_now();
    char why[CURL_ERROR_SIZE + 32];
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (t->too_large)
        snprintf(why, sizeof why, "body larger than %u MiB", SCRAPE_BODY_MAX >> 20);
    else if (msg->data.result != CURLE_OK)
        snprintf(why, sizeof why, "%s",
                 *t->curl_err ? t->curl_err : curl_easy_strerror(msg->data.result));
    else if (status != 200)
        snprintf(why, sizeof why, "HTTP %ld", status);
    else
        *why = '\0';
    curl_multi_remove_handle(self->multi, t->easy);
    fn(arg, i, *why ? NULL : (t->body ? t->body : ""), *why ? 0 : t->len, *why ? why : NULL, at);
}

int scrape_run(scrape_t *self, scrape_fn fn, void *arg)
{
    for (size_t i = 0; i < self->n; i++) {
        s_target_t *t = &self->targets[i];
        t->len = 0;
        t->too_large = false;
        t->curl_err[0] = '\0';
        if (curl_multi_add_handle(self->multi, t->easy) != CURLM_OK)
            return -EIO;
    }
    int running = 1;
    while (running) {
        if (curl_multi_perform(self->multi, &running) != CURLM_OK)
            return -EIO;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(self->multi, &left)))
            if (msg->msg == CURLMSG_DONE)
                s_done(self, msg, fn, arg);
        if (running && curl_multi_poll(self->multi, NULL, 0, 100, NULL) != CURLM_OK)
            return -EIO;
    }
    return 0;
}
