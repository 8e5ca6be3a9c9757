/*
 * test_auth — the CURVE authenticator over real sockets on loopback: a
 * ROUTER with CURVE, polled the way the services' loops poll it, with the
 * authenticator answering in the same loop. An allowed key's messages come
 * with its key as User-Id on every message (frames_recv), also those the
 * ROUTER fetched for a poll; a stranger's key and a peer without CURVE get
 * nothing through and are counted by reason; a key added to the list (as a
 * SIGHUP reloads it) is let in from its next connection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "auth.h"
#include "frames.h"
#include "metrics.h"
#include "trust.h"

#include <czmq.h>
#include <string.h>

typedef struct {
    trust_t *trust;
    metrics_t *metrics;
    auth_t *auth;
    zsock_t *router;
    zcert_t *server;
    int port;
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->trust = trust_new();
    f->metrics = metrics_new("collect", "test");
    char err[256];
    f->auth = auth_new("collect", f->trust, f->metrics, err, sizeof err);
    assert_non_null(f->auth);
    f->server = zcert_new();
    f->router = zsock_new(ZMQ_ROUTER);
    zcert_apply(f->server, f->router);
    zsock_set_curve_server(f->router, 1);
    zsock_set_zap_domain(f->router, AUTH_ZAP_DOMAIN);
    /* libzmq picks the port (czmq's own search of a range can fail when
     * other tests hold many ports) */
    assert_int_equal(zmq_bind(zsock_resolve(f->router), "tcp://127.0.0.1:*"), 0);
    char *last = zsock_last_endpoint(f->router);
    f->port = atoi(strrchr(last, ':') + 1);
    zstr_free(&last);
    assert_true(f->port > 0);
    assert_int_equal(auth_watch(f->auth, zsock_resolve(f->router), "test", err, sizeof err), 0);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    zsock_destroy(&f->router);
    auth_destroy(&f->auth);
    assert_null(f->auth);
    zcert_destroy(&f->server);
    metrics_destroy(&f->metrics);
    trust_destroy(&f->trust);
    free(f);
    return 0;
}

/* A DEALER towards the fixture's ROUTER: with CURVE and `cert`, or
 * without (NULL). Sends `n` messages [""] [command "hello i"]. */
static zsock_t *s_client(fixture_t *f, zcert_t *cert, int n)
{
    zsock_t *d = zsock_new(ZMQ_DEALER);
    zsock_set_linger(d, 0);
    if (cert) {
        zcert_apply(cert, d);
        zsock_set_curve_serverkey(d, zcert_public_txt(f->server));
    }
    assert_int_equal(zsock_connect(d, "tcp://127.0.0.1:%d", f->port), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(zstr_sendx(d, "", "hello", NULL), 0);
    return d;
}

/* Polls the ROUTER and the authenticator as a service's loop does for up to
 * `ms`, until `want` messages came (0: until a refusal is counted); their
 * User-Ids go to `users`. Returns the number received. */
static int s_loop(fixture_t *f, int want, char (*users)[FRAMES_USER_ID_MAX + 1], int64_t ms)
{
    int got = 0;
    int64_t end = zclock_mono() + ms;
    uint64_t refused = auth_refused(f->auth);
    /* want 0: until a refusal is counted */
    while ((want ? got < want : auth_refused(f->auth) == refused) && zclock_mono() < end) {
        zmq_pollitem_t items[8] = {{zsock_resolve(f->router), 0, ZMQ_POLLIN, 0}};
        size_t n = 1 + auth_pollitems(f->auth, items + 1, 7);
        zmq_poll(items, (int)n, 20);
        auth_handle(f->auth, zclock_mono());
        frames_t in;
        while (frames_recv(&in, zsock_resolve(f->router), ZMQ_DONTWAIT) == 0) {
            assert_true(in.framed);
            assert_true(got < want); /* nothing from a refused peer */
            snprintf(users[got++], FRAMES_USER_ID_MAX + 1, "%s", in.user_id);
            frames_close(&in);
        }
    }
    return got;
}

static double s_refused(fixture_t *f, const char *reason)
{
    size_t len;
    char *text = metrics_render(f->metrics, &len);
    char key[128];
    snprintf(key, sizeof key, "\ntapmesh_collect_auth_failures_total{reason=\"%s\"} ", reason);
    char *at = strstr(text, key);
    double v = at ? strtod(at + strlen(key), NULL) : -1;
    free(text);
    return v;
}

static void test_allowed_key_is_user_id(void **state)
{
    fixture_t *f = *state;
    zcert_t *agent = zcert_new();
    char err[256];
    assert_int_equal(trust_add(f->trust, zcert_public_txt(agent), "edge1", false, err, sizeof err),
                     0);
    zsock_t *d = s_client(f, agent, 5);
    char users[5][FRAMES_USER_ID_MAX + 1];
    assert_int_equal(s_loop(f, 5, users, 5000), 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(users[i], zcert_public_txt(agent));
    assert_int_equal(auth_refused(f->auth), 0);
    zsock_destroy(&d);
    zcert_destroy(&agent);
}

static void test_refused_and_reloaded(void **state)
{
    fixture_t *f = *state;
    zcert_t *stranger = zcert_new();
    char users[2][FRAMES_USER_ID_MAX + 1];
    zsock_t *d = s_client(f, stranger, 1);
    assert_int_equal(s_loop(f, 0, users, 10000), 0);
    assert_true(s_refused(f, "unknown_key") >= 1);
    zsock_destroy(&d);

    /* a peer without CURVE: refused in the handshake (a mismatch, or it
     * hangs up first) */
    d = s_client(f, NULL, 1);
    assert_int_equal(s_loop(f, 0, users, 10000), 0);
    assert_true(s_refused(f, "plaintext") + s_refused(f, "handshake") >= 1);
    zsock_destroy(&d);

    /* the stranger's key joins the list: its next connection is let in */
    char err[256];
    assert_int_equal(
        trust_add(f->trust, zcert_public_txt(stranger), "edge2", false, err, sizeof err), 0);
    d = s_client(f, stranger, 2);
    assert_int_equal(s_loop(f, 2, users, 5000), 2);
    assert_string_equal(users[0], zcert_public_txt(stranger));
    assert_string_equal(users[1], zcert_public_txt(stranger));
    zsock_destroy(&d);
    zcert_destroy(&stranger);
}

int main(void)
{
    zsys_init();
    /* one authenticator for the whole run, as in a service: libzmq closes
     * sockets in the background, and a second ZAP handler bound right
     * after the first one's close may not get its requests */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowed_key_is_user_id),
        cmocka_unit_test(test_refused_and_reloaded),
    };
    int rc = cmocka_run_group_tests(tests, s_setup, s_teardown);
    zsys_shutdown();
    return rc;
}
