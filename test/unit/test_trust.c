/*
 * test_trust — the allow-list of CURVE keys: node ids exact and as
 * patterns, the relay role, keys not in the list, bad metadata, and a
 * directory of certificates read, read again after it changed (SIGHUP),
 * and left as it was when it no longer reads cleanly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "tmpdir.h"
#include "trust.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A fresh key pair; its public key's text goes to `key` (41 bytes). */
static zcert_t *s_cert(char *key)
{
    zcert_t *c = zcert_new();
    assert_non_null(c);
    snprintf(key, TRUST_KEY_LEN + 1, "%s", zcert_public_txt(c));
    return c;
}

static void test_patterns_and_roles(void **state)
{
    (void)state;
    char agent[41], site[41], relay[41], nobody[41], stranger[41], err[256];
    zcert_t *c[5] = {s_cert(agent), s_cert(site), s_cert(relay), s_cert(nobody), s_cert(stranger)};
    trust_t *t = trust_new();
    assert_int_equal(trust_add(t, agent, "edge1", false, err, sizeof err), 0);
    assert_int_equal(trust_add(t, site, "site2-*, lab[0-9] ,core", false, err, sizeof err), 0);
    assert_int_equal(trust_add(t, relay, NULL, true, err, sizeof err), 0);
    assert_int_equal(trust_add(t, nobody, "", false, err, sizeof err), 0);
    assert_int_equal(trust_count(t), 4);

    /* an agent's key: its own node id only */
    assert_true(trust_allows(t, agent, "edge1"));
    assert_false(trust_allows(t, agent, "edge10"));
    assert_false(trust_allows(t, agent, "edge"));
    assert_false(trust_allows(t, agent, "site2-a"));
    /* patterns, blanks around items ignored */
    assert_true(trust_allows(t, site, "site2-a"));
    assert_true(trust_allows(t, site, "site2-"));
    assert_false(trust_allows(t, site, "site3-a"));
    assert_true(trust_allows(t, site, "lab7"));
    assert_false(trust_allows(t, site, "lab77"));
    assert_true(trust_allows(t, site, "core"));
    assert_false(trust_allows(t, site, "edge1"));
    /* a relay passes on anyone */
    assert_true(trust_allows(t, relay, "edge1"));
    assert_true(trust_allows(t, relay, "whatever.else"));
    /* in the list, speaking for nobody */
    assert_true(trust_known(t, nobody));
    assert_false(trust_allows(t, nobody, "edge1"));
    /* not in the list: nothing, whatever the source */
    assert_false(trust_known(t, stranger));
    assert_false(trust_allows(t, stranger, "edge1"));
    assert_false(trust_allows(t, "", "edge1"));
    assert_false(trust_allows(t, NULL, "edge1"));
    /* a key one character off is another key */
    char off[41];
    memcpy(off, agent, sizeof off);
    off[0] = off[0] == 'a' ? 'b' : 'a';
    assert_false(trust_allows(t, off, "edge1"));

    trust_destroy(&t);
    assert_null(t);
    for (int i = 0; i < 5; i++)
        zcert_destroy(&c[i]);
}

static void test_bad_entries(void **state)
{
    (void)state;
    char key[41], err[256];
    zcert_t *c = s_cert(key);
    trust_t *t = trust_new();
    assert_int_equal(trust_add(t, "not a key", "a", false, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "Z85"));
    assert_int_equal(trust_add(t, key, "a,,b", false, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "empty"));
    assert_int_equal(trust_add(t, key, "a/b", false, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "a/b"));
    assert_int_equal(trust_add(t, key, "a", true, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "relay"));
    assert_int_equal(trust_count(t), 0);
    /* the same key again: fine with the same rights, refused with others */
    assert_int_equal(trust_add(t, key, "a", false, err, sizeof err), 0);
    assert_int_equal(trust_add(t, key, "a", false, err, sizeof err), 0);
    assert_int_equal(trust_count(t), 1);
    assert_int_equal(trust_add(t, key, "b", false, err, sizeof err), -EINVAL);
    assert_false(trust_allows(t, key, "b"));

    char why[128];
    assert_int_equal(trust_patterns_check("edge1,site-*,x?[0-9]", why, sizeof why), 0);
    assert_int_equal(trust_patterns_check("edge 1", why, sizeof why), -EINVAL);
    char longid[80];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    assert_int_equal(trust_patterns_check(longid, why, sizeof why), -EINVAL);
    trust_destroy(&t);
    zcert_destroy(&c);
}

static void s_save(zcert_t *c, const char *dir, const char *name, const char *ids, bool relay)
{
    if (ids)
        zcert_set_meta(c, "node-id", "%s", ids);
    if (relay)
        zcert_set_meta(c, "role", "relay");
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(zcert_save(c, path), 0); /* public and _secret */
}

static void test_load_and_reload(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_trust.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char a[41], b[41], r[41], err[512];
    zcert_t *ca = s_cert(a), *cb = s_cert(b), *cr = s_cert(r);
    s_save(ca, dir, "edge1.key", "edge1", false);
    s_save(cr, dir, "relay1.key", NULL, true);

    trust_t *t = trust_new();
    /* the _secret files beside them are skipped, not counted */
    assert_int_equal(trust_load(t, dir, err, sizeof err), 2);
    assert_true(trust_allows(t, a, "edge1"));
    assert_false(trust_allows(t, a, "edge2"));
    assert_true(trust_allows(t, r, "edge2"));
    assert_false(trust_known(t, b));

    /* the directory changes: a key comes, one goes (revoked) */
    s_save(cb, dir, "edge2.key", "edge2,edge3", false);
    char path[256];
    snprintf(path, sizeof path, "%s/relay1.key", dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(trust_load(t, dir, err, sizeof err), 2);
    assert_true(trust_allows(t, b, "edge3"));
    assert_false(trust_known(t, r));
    assert_false(trust_allows(t, r, "edge2"));

    /* a file that is no certificate: an error naming it; the list stays */
    snprintf(path, sizeof path, "%s/README", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("hello world\n", f);
    fclose(f);
    assert_true(trust_load(t, dir, err, sizeof err) < 0);
    assert_non_null(strstr(err, "README"));
    assert_int_equal(trust_count(t), 2);
    assert_true(trust_allows(t, b, "edge2"));
    assert_int_equal(unlink(path), 0);

    /* bad metadata: named */
    zcert_t *cx = zcert_new();
    s_save(cx, dir, "bad.key", "edge 9", false);
    assert_true(trust_load(t, dir, err, sizeof err) < 0);
    assert_non_null(strstr(err, "bad.key"));
    assert_int_equal(trust_count(t), 2);

    /* no such directory */
    assert_true(trust_load(t, "/nonexistent/tapmesh", err, sizeof err) < 0);
    assert_non_null(strstr(err, "/nonexistent/tapmesh"));
    assert_int_equal(trust_count(t), 2);

    trust_destroy(&t);
    zcert_destroy(&ca);
    zcert_destroy(&cb);
    zcert_destroy(&cr);
    zcert_destroy(&cx);
    tmpdir_remove(dir);
}

int main(void)
{
    zsys_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patterns_and_roles),
        cmocka_unit_test(test_bad_entries),
        cmocka_unit_test(test_load_and_reload),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    zsys_shutdown();
    return rc;
}
