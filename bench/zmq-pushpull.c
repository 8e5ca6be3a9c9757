/*
 * zmq-pushpull — the raw ZeroMQ reference for the relay row: how fast
 * libzmq alone moves bytes over one connection on this machine. A child
 * process binds a PULL socket and counts what arrives; the parent connects
 * a PUSH socket and sends BYTES in messages of MSG_BYTES (the last one
 * shorter), as libzmq's perf/remote_thr does (zmq_msg_init_size, contents
 * not filled in). Two processes, each with its own context and I/O
 * thread, like two services.
 *
 *   zmq-pushpull ENDPOINT BYTES [MSG_BYTES]     (MSG_BYTES: 262144)
 *
 * The clock runs from the parent's first send to the moment the child has
 * received the last byte (it says so on a pipe). Prints
 * "bytes=N messages=M seconds=S bytes_per_s=R" on standard output.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int s_pull(const char *endpoint, uint64_t bytes, int ready_fd, int done_fd)
{
    void *ctx = zmq_ctx_new();
    void *pull = zmq_socket(ctx, ZMQ_PULL);
    if (zmq_bind(pull, endpoint) != 0) {
        fprintf(stderr, "zmq-pushpull: %s: %s\n", endpoint, zmq_strerror(errno));
        return 1;
    }
    if (write(ready_fd, "r", 1) != 1)
        return 1;
    uint64_t got = 0;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (got < bytes) {
        if (zmq_msg_recv(&msg, pull, 0) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "zmq-pushpull: recv: %s\n", zmq_strerror(errno));
            return 1;
        }
        got += zmq_msg_size(&msg);
    }
    zmq_msg_close(&msg);
    if (write(done_fd, "d", 1) != 1)
        return 1;
    zmq_close(pull);
    zmq_ctx_term(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: zmq-pushpull ENDPOINT BYTES [MSG_BYTES]\n");
        return 2;
    }
    const char *endpoint = argv[1];
    uint64_t bytes = strtoull(argv[2], NULL, 10);
    size_t msg_bytes = argc == 4 ? (size_t)strtoull(argv[3], NULL, 10) : 262144;
    if (bytes == 0 || msg_bytes == 0) {
        fprintf(stderr, "zmq-pushpull: BYTES and MSG_BYTES must be positive\n");
        return 2;
    }
    int ready[2], done[2];
    if (pipe(ready) != 0 || pipe(done) != 0) {
        perror("zmq-pushpull: pipe");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("zmq-pushpull: fork");
        return 1;
    }
    if (child == 0)
        _exit(s_pull(endpoint, bytes, ready[1], done[1]));
    char c;
    if (read(ready[0], &c, 1) != 1) {
        fprintf(stderr, "zmq-pushpull: the puller did not start\n");
        return 1;
    }
    void *ctx = zmq_ctx_new();
    void *push = zmq_socket(ctx, ZMQ_PUSH);
    if (zmq_connect(push, endpoint) != 0) {
        fprintf(stderr, "zmq-pushpull: %s: %s\n", endpoint, zmq_strerror(errno));
        return 1;
    }
    uint64_t messages = 0;
    double t0 = s_now();
    for (uint64_t sent = 0; sent < bytes;) {
        size_t n = bytes - sent < msg_bytes ? (size_t)(bytes - sent) : msg_bytes;
        zmq_msg_t msg;
        zmq_msg_init_size(&msg, n);
        if (zmq_msg_send(&msg, push, 0) < 0) {
            zmq_msg_close(&msg);
            if (errno == EINTR)
                continue;
            fprintf(stderr, "zmq-pushpull: send: %s\n", zmq_strerror(errno));
            return 1;
        }
        sent += n;
        messages++;
    }
    if (read(done[0], &c, 1) != 1) {
        fprintf(stderr, "zmq-pushpull: the puller failed\n");
        return 1;
    }
    double secs = s_now() - t0;
    int status = 0;
    waitpid(child, &status, 0);
    zmq_close(push);
    zmq_ctx_term(ctx);
    printf("bytes=%llu messages=%llu seconds=%.6f bytes_per_s=%.0f\n", (unsigned long long)bytes,
           (unsigned long long)messages, secs, (double)bytes / secs);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
