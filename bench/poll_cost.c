// What one wakeup costs when one thread polls many connections the way libssh's ssh_event
// does (poll(2) over every descriptor, no epoll), against a thread that polls only its own
// connection's two sockets. One descriptor of N is made ready, polled and read, many times.
// This decided thread-per-connection over one ssh_event loop for all sessions (issue 10).
//
//   gcc -O2 -o /tmp/poll_cost bench/poll_cost.c && (ulimit -n 4096; /tmp/poll_cost)
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

// Seconds per wakeup (write one byte, poll all N, read it) over N socket pairs.
static double wakeup_cost(int n, int rounds) {
    struct pollfd *fds = calloc(n, sizeof *fds);
    int (*pairs)[2] = calloc(n, sizeof *pairs);
    if (fds == NULL || pairs == NULL) { perror("calloc"); exit(1); }
    for (int i = 0; i < n; i++) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, pairs[i]) != 0) { perror("socketpair"); exit(1); }
        fds[i].fd = pairs[i][0];
        fds[i].events = POLLIN;
    }
    char byte = 'x';
    double start = now();
    for (int r = 0; r < rounds; r++) {
        int k = r % n;
        if (write(pairs[k][1], &byte, 1) != 1) { perror("write"); exit(1); }
        if (poll(fds, n, 1000) != 1) { fprintf(stderr, "poll did not report exactly one ready descriptor\n"); exit(1); }
        if (read(pairs[k][0], &byte, 1) != 1) { perror("read"); exit(1); }
    }
    double per = (now() - start) / rounds;
    for (int i = 0; i < n; i++) { close(pairs[i][0]); close(pairs[i][1]); }
    free(fds);
    free(pairs);
    return per;
}

int main(void) {
    const int sizes[] = {2, 100, 500, 1000};
    double base = 0;
    for (int i = 0; i < 4; i++) {
        double per = wakeup_cost(sizes[i], sizes[i] >= 500 ? 20000 : 200000);
        if (i == 0) base = per;
        printf("%5d descriptors: %8.2f us per wakeup (%.1fx the 2-descriptor poll)\n", sizes[i], per * 1e6, per / base);
    }
    return 0;
}
