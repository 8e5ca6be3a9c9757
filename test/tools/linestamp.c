/*
 * linestamp — copies standard input to standard output line by line,
 * each line prefixed with the wall-clock time it arrived, in nanoseconds
 * since the Unix epoch: when did a reader downstream of a pipe see it?
 */
#include <stdio.h>
#include <time.h>

int main(void)
{
    char line[65536];
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof line, stdin)) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        printf("%lld%09ld %s", (long long)now.tv_sec, now.tv_nsec, line);
    }
    return 0;
}
