/*
 * slowcat — copies standard input to standard output at no more than
 * RATE bytes per second: a deliberately slow reader at the end of a pipe.
 *
 *   slowcat RATE
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: slowcat BYTES_PER_SECOND\n");
        return 2;
    }
    double rate = atof(argv[1]);
    static char buf[16384];
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    double sent = 0;
    ssize_t n;
    while ((n = read(STDIN_FILENO, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(STDOUT_FILENO, buf + off, (size_t)(n - off));
            if (w < 0)
                return 1;
            off += w;
        }
        sent += (double)n;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double elapsed = (double)(now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
        double ahead = sent / rate - elapsed;
        if (ahead > 0) {
            struct timespec d = {(time_t)ahead, (long)((ahead - (double)(time_t)ahead) * 1e9)};
            nanosleep(&d, NULL);
        }
    }
    return n < 0;
}
