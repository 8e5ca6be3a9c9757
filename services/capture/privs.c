/*
 * privs — RUN_AS_USER, directories for that user, and capabilities cleared
 * in every thread (privs.h).
 *
 * setgroups, setresgid and setresuid act on the whole process: glibc has
 * every thread make the call. Capabilities and no_new_privs are per
 * thread, and glibc has no such thing for them: each thread is sent a
 * signal whose handler clears its own, and the result is read back from
 * /proc for every thread.
 */
#define _GNU_SOURCE /* setresuid, setgroups, gettid */
#include "privs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Directories tapmesh creates: the owner writes, its group reads. */
#define S_DIR_MODE 0750
/* How long the other threads have to clear their capabilities. */
#define S_WAIT_MS 2000
/* Rounds of signals: a thread started during one is caught by the next. */
#define S_ROUNDS 3

/* ---- RUN_AS_USER ------------------------------------------------------------ */

int privs_lookup(const char *text, privs_user_t *user, char *err, size_t errlen)
{
    memset(user, 0, sizeof *user);
    snprintf(user->name, sizeof user->name, "%s", text);
    if (!*text) {
        snprintf(err, errlen, "RUN_AS_USER: empty: name a user, or a uid");
        return -EINVAL;
    }
    bool digits = true;
    for (const char *p = text; *p; p++)
        digits = digits && isdigit((unsigned char)*p);
    struct passwd pw, *found = NULL;
    char buf[16384];
    if (digits) {
        errno = 0;
        char *end;
        unsigned long long v = strtoull(text, &end, 10);
        if (errno || *end || v >= (uid_t)-1) {
            snprintf(err, errlen, "RUN_AS_USER=%s: not a uid", text);
            return -EINVAL;
        }
        user->uid = (uid_t)v;
        user->gid = (gid_t)v; /* a uid nobody named: its own number as group */
        if (getpwuid_r(user->uid, &pw, buf, sizeof buf, &found) == 0 && found)
            user->gid = found->pw_gid;
    } else {
        int rc = getpwnam_r(text, &pw, buf, sizeof buf, &found);
        if (rc != 0 || !found) {
            snprintf(err, errlen, "RUN_AS_USER=%s: %s", text,
                     rc ? strerror(rc) : "no such user (a user name, or a uid)");
            return rc ? -rc : -ENOENT;
        }
        user->uid = found->pw_uid;
        user->gid = found->pw_gid;
    }
    if (user->uid == 0) {
        snprintf(err, errlen,
                 "RUN_AS_USER=%s: that is root: name the user the agent runs as once its "
                 "source is open",
                 text);
        return -EINVAL;
    }
    return 0;
}

/* ---- directories ------------------------------------------------------------- */

/* mkdir: 1 when created now, 0 when it was there, or a negative errno. */
static int s_mkdir(const char *dir)
{
    if (mkdir(dir, S_DIR_MODE) == 0)
        return 1;
    return errno == EEXIST ? 0 : -errno;
}

/* Hands `dir` to `give`, through a descriptor, so that a name swapped for
 * a link in between is not followed. Root without CAP_CHOWN (a container
 * that dropped it) leaves it as it is: the check after the drop says
 * whether the user can write there. */
static int s_give(const char *dir, const privs_user_t *give)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fchown(fd, give->uid, give->gid) < 0 && errno != EPERM ? -errno : 0;
    close(fd);
    return rc;
}

int privs_mkdirs(const char *setting, const char *path, const privs_user_t *user, char *err,
                 size_t errlen)
{
    char p[4096];
    size_t len = strlen(path);
    if (len >= sizeof p) {
        snprintf(err, errlen, "%s='%.100s...': the path is too long", setting, path);
        return -ENAMETOOLONG;
    }
    memcpy(p, path, len + 1);
    /* the ends of the components created now, to be handed over deepest
     * first: root without CAP_DAC_OVERRIDE could not pass through a parent
     * already given away */
    static size_t made[sizeof p / 2];
    size_t nmade = 0;
    int rc = 0;
    for (size_t i = 1; i <= len && rc >= 0; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        rc = s_mkdir(p);
        if (rc == 1)
            made[nmade++] = i;
        p[i] = c;
    }
    if (rc >= 0 && user && geteuid() == 0) {
        for (size_t k = nmade; k-- > 0 && rc >= 0;) {
            p[made[k]] = '\0';
            rc = s_give(p, user);
        }
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s='%s': cannot create: %s", setting, path, strerror(-rc));
        return rc;
    }
    return 0;
}

/* ---- capabilities, thread by thread ------------------------------------------ */

static atomic_int s_done, s_failed;

/* Clears the calling thread's capabilities and sets its no_new_privs:
 * nothing it execs could gain any back. Async-signal-safe. */
static int s_clear_here(void)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
    memset(d, 0, sizeof d);
    if (syscall(SYS_capset, &h, d) < 0)
        return -errno;
    /* EINVAL: a kernel before ambient capabilities (4.3), so none to clear */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -errno;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    return 0;
}

static void s_on_signal(int sig)
{
    (void)sig;
    int e = errno;
    if (s_clear_here() < 0)
        atomic_fetch_add(&s_failed, 1);
    atomic_fetch_add(&s_done, 1);
    errno = e;
}

/* Sends the signal to every other thread; returns how many. */
static int s_signal_others(int sig)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -errno;
    pid_t pid = getpid(), self = (pid_t)syscall(SYS_gettid);
    int sent = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long tid = strtol(e->d_name, &end, 10);
        if (*end || tid <= 0 || (pid_t)tid == self)
            continue;
        if (syscall(SYS_tgkill, pid, (pid_t)tid, sig) == 0)
            sent++;
    }
    closedir(d);
    return sent;
}

static void s_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Every thread clears its own; checked from /proc. */
static int s_clear_all(const privs_user_t *user, char *err, size_t errlen)
{
    int rc = s_clear_here();
    if (rc < 0) {
        snprintf(err, errlen, "cannot clear capabilities: %s", strerror(-rc));
        return rc;
    }
    int sig = SIGRTMIN + 2;
    struct sigaction sa = {.sa_handler = s_on_signal, .sa_flags = SA_RESTART}, old;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, &old) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot clear the capabilities of other threads: %s", strerror(-rc));
        return rc;
    }
    char why[512] = "";
    bool clean = false;
    for (int round = 0; round < S_ROUNDS && !clean; round++) {
        atomic_store(&s_done, 0);
        atomic_store(&s_failed, 0);
        int sent = s_signal_others(sig);
        for (long waited = 0; sent > 0 && atomic_load(&s_done) < sent && waited < S_WAIT_MS;
             waited++)
            s_sleep_ms(1);
        clean = privs_dropped(user, why, sizeof why);
    }
    sigaction(sig, &old, NULL);
    if (!clean) {
        snprintf(err, errlen, "capabilities not cleared: %s", why);
        return -EPERM;
    }
    return 0;
}

/* ---- the drop ---------------------------------------------------------------- */

static bool s_is(const privs_user_t *user)
{
    uid_t r, e, s;
    gid_t rg, eg, sg;
    return getresuid(&r, &e, &s) == 0 && getresgid(&rg, &eg, &sg) == 0 && r == user->uid &&
           e == user->uid && s == user->uid && rg == user->gid && eg == user->gid &&
           sg == user->gid;
}

static int s_become(const privs_user_t *user, char *err, size_t errlen)
{
    static const char hint[] = "changing user takes root, or CAP_SETUID and CAP_SETGID";
    if (s_is(user))
        return 0; /* started as that user already (its own groups are its own) */
    if (setgroups(0, NULL) < 0) {
        int e = errno;
        snprintf(err, errlen, "RUN_AS_USER=%s: cannot clear the supplementary groups: %s (%s)",
                 user->name, strerror(e), hint);
        return -e;
    }
    if (setresgid(user->gid, user->gid, user->gid) < 0) {
        int e = errno;
        snprintf(err, errlen, "RUN_AS_USER=%s: cannot change to group %u: %s (%s)", user->name,
                 (unsigned)user->gid, strerror(e), hint);
        return -e;
    }
    if (setresuid(user->uid, user->uid, user->uid) < 0) {
        int e = errno;
        snprintf(err, errlen, "RUN_AS_USER=%s: cannot change to uid %u: %s (%s)", user->name,
                 (unsigned)user->uid, strerror(e), hint);
        return -e;
    }
    if (!s_is(user) || getgroups(0, NULL) != 0) {
        snprintf(err, errlen, "RUN_AS_USER=%s: the change of user did not take", user->name);
        return -EPERM;
    }
    /* a way back would make all of this worthless */
    if (setuid(0) == 0 || setgid(0) == 0) {
        snprintf(err, errlen, "RUN_AS_USER=%s: root can still be had back after the change",
                 user->name);
        return -EPERM;
    }
    return 0;
}

int privs_drop(const privs_user_t *user, char *err, size_t errlen)
{
    int rc = user ? s_become(user, err, errlen) : 0;
    if (rc == 0)
        rc = s_clear_all(user, err, errlen);
    return rc;
}

/* ---- checking ---------------------------------------------------------------- */

/* One /proc/.../status: the ids and capabilities as privs_drop leaves them. */
static bool s_status_ok(const char *path, const privs_user_t *user, char *why, size_t whylen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return errno == ENOENT; /* a thread that has ended */
    }
    char line[512];
    bool ok = true;
    int seen = 0;
    while (ok && fgets(line, sizeof line, f)) {
        char key[32];
        unsigned long long a, b, c, d;
        if (sscanf(line, "%31[^:]: %llx", key, &a) == 2 &&
            (strcmp(key, "CapInh") == 0 || strcmp(key, "CapPrm") == 0 ||
             strcmp(key, "CapEff") == 0 || strcmp(key, "CapAmb") == 0)) {
            seen++;
            ok = a == 0;
        } else if (sscanf(line, "NoNewPrivs: %llu", &a) == 1) {
            seen++;
            ok = a == 1;
        } else if (user && sscanf(line, "Uid: %llu %llu %llu %llu", &a, &b, &c, &d) == 4) {
            seen++;
            ok = a == user->uid && b == user->uid && c == user->uid && d == user->uid;
        } else if (user && sscanf(line, "Gid: %llu %llu %llu %llu", &a, &b, &c, &d) == 4) {
            seen++;
            ok = a == user->gid && b == user->gid && c == user->gid && d == user->gid;
        }
    }
    fclose(f);
    if (!ok)
        snprintf(why, whylen, "%s: %.*s", path, (int)strcspn(line, "\n"), line);
    else if (seen < (user ? 7 : 5))
        snprintf(why, whylen, "%s: does not say all of Uid, Gid, Cap*, NoNewPrivs", path);
    return ok && seen >= (user ? 7 : 5);
}

bool privs_dropped(const privs_user_t *user, char *why, size_t whylen)
{
    DIR *d = opendir("/proc/self/task");
    if (!d) {
        snprintf(why, whylen, "/proc/self/task: %s", strerror(errno));
        return false;
    }
    bool ok = true;
    struct dirent *e;
    while (ok && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        ok = s_status_ok(path, user, why, whylen);
    }
    closedir(d);
    return ok;
}
