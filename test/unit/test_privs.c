/*
 * test_privs — the capture agent's drop of privileges: RUN_AS_USER read as
 * a name or a uid (root refused, unknown users named in the error);
 * directories made 0750 and, as root, handed to the user (only those
 * made now); and, in child processes (a drop cannot be undone), the drop
 * itself: the new uid and gid, no supplementary group, setuid(0)
 * refused, and every capability cleared in every thread, also in a thread
 * started before the drop and in a process that was never root but held
 * capabilities (as with setcap or AmbientCapabilities). The parts that
 * change user need root, and are skipped without it.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "privs.h"
#include "tmpdir.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_NOBODY 65534u

static bool s_have_nobody(void)
{
    struct passwd *pw = getpwnam("nobody");
    return pw && pw->pw_uid == S_NOBODY;
}

/* ---- RUN_AS_USER ------------------------------------------------------------ */

static void test_lookup(void **state)
{
    (void)state;
    char err[256];
    privs_user_t u;
    if (s_have_nobody()) {
        struct passwd *pw = getpwnam("nobody");
        assert_int_equal(privs_lookup("nobody", &u, err, sizeof err), 0);
        assert_int_equal(u.uid, S_NOBODY);
        assert_int_equal(u.gid, pw->pw_gid);
        assert_string_equal(u.name, "nobody");
        assert_int_equal(privs_lookup("65534", &u, err, sizeof err), 0);
        assert_int_equal(u.uid, S_NOBODY);
        assert_int_equal(u.gid, pw->pw_gid);
    }
    /* a uid no one named (containers): its own number as group */
    assert_null(getpwuid(3999999));
    assert_int_equal(privs_lookup("3999999", &u, err, sizeof err), 0);
    assert_int_equal(u.uid, 3999999);
    assert_int_equal(u.gid, 3999999);

    assert_int_equal(privs_lookup("tapmesh-no-such-user", &u, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "RUN_AS_USER=tapmesh-no-such-user"));
    static const char *const bad[] = {"root", "0", "", "99999999999999999999", "4294967295"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        assert_int_equal(privs_lookup(bad[i], &u, err, sizeof err), -EINVAL);
        assert_non_null(strstr(err, "RUN_AS_USER"));
    }
}

/* ---- directories ------------------------------------------------------------- */

static unsigned s_mode(const char *path, uid_t *owner)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    if (owner)
        *owner = st.st_uid;
    return (unsigned)(st.st_mode & 07777);
}

/* mkdir -p with 0750 (the umask applied); as root with a user, what is
 * made now goes to the user, what was there stays. */
static void test_mkdirs(void **state)
{
    (void)state;
    char dir[64], path[160], mid[128], top[128], err[512];
    snprintf(dir, sizeof dir, "/tmp/test_privs.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(top, sizeof top, "%s/a", dir);
    snprintf(mid, sizeof mid, "%s/a/b", dir);
    snprintf(path, sizeof path, "%s/a/b/c/", dir);
    mode_t old = umask(022);
    assert_int_equal(mkdir(top, 0755), 0); /* there before */
    privs_user_t u = {.name = "test", .uid = 3999999, .gid = 3999998};
    assert_int_equal(privs_mkdirs("DLQ_DIR", path, &u, err, sizeof err), 0);
    uid_t owner;
    assert_int_equal(s_mode(top, &owner), 0755);
    assert_int_equal(owner, geteuid());
    assert_int_equal(s_mode(mid, &owner), 0750);
    if (geteuid() == 0)
        assert_int_equal(owner, 3999999);
    assert_int_equal(s_mode(path, &owner), 0750);
    if (geteuid() == 0) {
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_uid, 3999999);
        assert_int_equal(st.st_gid, 3999998);
    }
    /* again: nothing to do */
    assert_int_equal(privs_mkdirs("DLQ_DIR", path, &u, err, sizeof err), 0);
    /* no user: ours; a tighter umask is applied */
    umask(077);
    snprintf(path, sizeof path, "%s/x/y", dir);
    assert_int_equal(privs_mkdirs("STATE_DIR", path, NULL, err, sizeof err), 0);
    assert_int_equal(s_mode(path, &owner), 0700);
    assert_int_equal(owner, geteuid());
    umask(old);
    /* a file in the way: the error names the setting and the path */
    snprintf(path, sizeof path, "%s/file", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/file/sub", dir);
    assert_true(privs_mkdirs("STATE_DIR", path, NULL, err, sizeof err) < 0);
    assert_non_null(strstr(err, "STATE_DIR='"));
    assert_non_null(strstr(err, path));
    tmpdir_remove(dir);
}

/* ---- the drop, in a child ---------------------------------------------------- */

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t s_cond = PTHREAD_COND_INITIALIZER;
static bool s_quit;

/* A thread that exists before the drop, as the metrics server's does. */
static void *s_bystander(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&s_lock);
    while (!s_quit)
        pthread_cond_wait(&s_cond, &s_lock);
    pthread_mutex_unlock(&s_lock);
    return NULL;
}

/* The child's verdict: exits 0, or 1 after saying what is wrong. */
#define S_CHILD_CHECK(cond, ...)                                                                   \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            _exit(1);                                                                              \
        }                                                                                          \
    } while (0)

/* Every thread's status line `key` is `want` (the part after the tab). */
static void s_child_expect_all(const char *key, const char *want)
{
    DIR *d = opendir("/proc/self/task");
    S_CHILD_CHECK(d, "/proc/self/task: %s", strerror(errno));
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char st[300], line[512];
        snprintf(st, sizeof st, "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(st, "r");
        S_CHILD_CHECK(f, "%s: %s", st, strerror(errno));
        bool found = false;
        size_t kl = strlen(key);
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, key, kl) != 0 || line[kl] != ':')
                continue;
            found = true;
            char *v = line + kl + 1;
            v += strspn(v, " \t");
            v[strcspn(v, "\n")] = '\0';
            S_CHILD_CHECK(strcmp(v, want) == 0, "thread %s: %s is '%s', expected '%s'", e->d_name,
                          key, v, want);
        }
        fclose(f);
        S_CHILD_CHECK(found, "thread %s: no %s", e->d_name, key);
        n++;
    }
    closedir(d);
    S_CHILD_CHECK(n >= 2, "%d threads: the bystander is not there", n);
}

static void s_child_expect_no_caps(void)
{
    s_child_expect_all("CapInh", "0000000000000000");
    s_child_expect_all("CapPrm", "0000000000000000");
    s_child_expect_all("CapEff", "0000000000000000");
    s_child_expect_all("CapAmb", "0000000000000000");
    s_child_expect_all("NoNewPrivs", "1");
}

/* Runs `setup` (unless NULL), starts a thread, then runs `body`, in a
 * child; asserts that the child exits 0. */
static void s_in_child(void (*setup)(void), void (*body)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setup)
            setup();
        pthread_t t;
        S_CHILD_CHECK(pthread_create(&t, NULL, s_bystander, NULL) == 0, "pthread_create");
        body();
        pthread_mutex_lock(&s_lock);
        s_quit = true;
        pthread_cond_broadcast(&s_cond);
        pthread_mutex_unlock(&s_lock);
        pthread_join(t, NULL);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* A supplementary group to be cleared. */
static void s_extra_group(void)
{
    S_CHILD_CHECK(setgroups(1, (gid_t[]){4242}) == 0, "setgroups: %s", strerror(errno));
}

static void s_drop_to_nobody(void)
{
    char err[512];
    privs_user_t u;
    S_CHILD_CHECK(privs_lookup("nobody", &u, err, sizeof err) == 0, "%s", err);
    s_child_expect_all("Groups", "4242 ");
    S_CHILD_CHECK(privs_drop(&u, err, sizeof err) == 0, "privs_drop: %s", err);
    char ids[64];
    snprintf(ids, sizeof ids, "%u\t%u\t%u\t%u", u.uid, u.uid, u.uid, u.uid);
    s_child_expect_all("Uid", ids);
    snprintf(ids, sizeof ids, "%u\t%u\t%u\t%u", u.gid, u.gid, u.gid, u.gid);
    s_child_expect_all("Gid", ids);
    s_child_expect_all("Groups", "");
    s_child_expect_no_caps();
    S_CHILD_CHECK(getuid() == u.uid && geteuid() == u.uid && getgid() == u.gid, "ids");
    S_CHILD_CHECK(setuid(0) < 0 && errno == EPERM, "setuid(0) succeeded after the drop");
    S_CHILD_CHECK(setgid(0) < 0, "setgid(0) succeeded after the drop");
    char why[512];
    S_CHILD_CHECK(privs_dropped(&u, why, sizeof why), "privs_dropped: %s", why);
    /* a thread started after the drop has nothing either */
    pthread_t t;
    S_CHILD_CHECK(pthread_create(&t, NULL, s_bystander, NULL) == 0, "pthread_create");
    s_child_expect_no_caps();
    pthread_mutex_lock(&s_lock);
    s_quit = true;
    pthread_cond_broadcast(&s_cond);
    pthread_mutex_unlock(&s_lock);
    pthread_join(t, NULL);
}

/* Root to nobody: ids, groups, setuid(0), every thread's capabilities. */
static void test_drop_root_to_user(void **state)
{
    (void)state;
    if (geteuid() != 0 || !s_have_nobody())
        skip();
    s_quit = false;
    s_in_child(s_extra_group, s_drop_to_nobody);
}

/* Becomes uid nobody keeping CAP_NET_RAW (permitted, effective,
 * inheritable, ambient), as a process started by a non-root user with
 * `setcap cap_net_raw+ep` or systemd's AmbientCapabilities would be; the
 * thread s_in_child starts next inherits it. */
static void s_nonroot_with_caps(void)
{
    S_CHILD_CHECK(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) == 0, "PR_SET_KEEPCAPS");
    S_CHILD_CHECK(setresgid(S_NOBODY, S_NOBODY, S_NOBODY) == 0, "setresgid");
    S_CHILD_CHECK(setresuid(S_NOBODY, S_NOBODY, S_NOBODY) == 0, "setresuid");
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
    memset(d, 0, sizeof d);
    d[0].permitted = d[0].effective = d[0].inheritable = 1u << CAP_NET_RAW;
    S_CHILD_CHECK(syscall(SYS_capset, &h, d) == 0, "capset: %s", strerror(errno));
    S_CHILD_CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_RAW, 0, 0) == 0,
                  "ambient: %s", strerror(errno));
}

static void s_drop_caps_only(void)
{
    /* both threads hold CAP_NET_RAW */
    s_child_expect_all("CapEff", "0000000000002000");
    s_child_expect_all("CapAmb", "0000000000002000");
    char err[512], why[512];
    S_CHILD_CHECK(!privs_dropped(NULL, why, sizeof why), "privs_dropped before the drop");
    S_CHILD_CHECK(privs_drop(NULL, err, sizeof err) == 0, "privs_drop: %s", err);
    s_child_expect_no_caps();
    S_CHILD_CHECK(privs_dropped(NULL, why, sizeof why), "privs_dropped: %s", why);
    /* changing user now is refused, with a message that names the setting */
    privs_user_t other = {.name = "daemon", .uid = 1, .gid = 1};
    S_CHILD_CHECK(privs_drop(&other, err, sizeof err) == -EPERM, "became another user");
    S_CHILD_CHECK(strstr(err, "RUN_AS_USER=daemon") != NULL, "%s", err);
}

/* Not root, holding CAP_NET_RAW in two threads: privs_drop(NULL) clears
 * all of it everywhere. */
static void test_drop_caps_without_user(void **state)
{
    (void)state;
    if (geteuid() != 0 || !s_have_nobody())
        skip();
    s_quit = false;
    s_in_child(s_nonroot_with_caps, s_drop_caps_only);
}

/* Root that cannot override file permissions (a container with dropped
 * capabilities: CAP_CHOWN kept, CAP_DAC_OVERRIDE not) makes a/b/c for a
 * user: every level is made before any is given away, deepest first, since
 * root could not pass through a parent it no longer owns. */
static char s_deep[160];

static void s_root_without_dac(void)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
    S_CHILD_CHECK(syscall(SYS_capget, &h, d) == 0, "capget");
    d[0].effective &= ~(1u << CAP_DAC_OVERRIDE | 1u << CAP_DAC_READ_SEARCH | 1u << CAP_FOWNER);
    S_CHILD_CHECK(syscall(SYS_capset, &h, d) == 0, "capset: %s", strerror(errno));
}

static void s_mkdirs_for_nobody(void)
{
    char err[512];
    privs_user_t u = {.name = "nobody", .uid = S_NOBODY, .gid = S_NOBODY};
    S_CHILD_CHECK(privs_mkdirs("DLQ_DIR", s_deep, &u, err, sizeof err) == 0, "%s", err);
}

static void test_mkdirs_root_without_dac_override(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/test_privs.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(s_deep, sizeof s_deep, "%s/a/b/c", dir);
    s_quit = false;
    s_in_child(s_root_without_dac, s_mkdirs_for_nobody);
    /* looked at with every capability: a, b and c are nobody's */
    char p[160];
    snprintf(p, sizeof p, "%s", s_deep);
    for (int level = 0; level < 3; level++) {
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        if (st.st_uid != S_NOBODY || st.st_gid != S_NOBODY)
            fail_msg("%s: owner %u:%u", p, (unsigned)st.st_uid, (unsigned)st.st_gid);
        *strrchr(p, '/') = '\0';
    }
    tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_mkdirs),
        cmocka_unit_test(test_drop_root_to_user),
        cmocka_unit_test(test_drop_caps_without_user),
        cmocka_unit_test(test_mkdirs_root_without_dac_override),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
