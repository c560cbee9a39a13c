/* The floor of a /proc scan in C (bench/openers_bench.py compiles and runs it): per process
 * one openat of PID/fd and its listing, per fd one readlinkat and, for a link that is a path,
 * one fstatat: the calls mdtui/live/openers.py makes, with no interpreter around them.
 * Usage: openers_floor PROC RUNS; prints the median time in ms and the counts. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int runs = argc > 2 ? atoi(argv[2]) : 7;
    double times[64];
    long fds = 0, stats = 0;
    if (argc < 2 || runs < 1 || runs > 64) return 2;
    for (int run = 0; run <= runs; run++) { /* run 0 warms the caches */
        double t0 = now_ms();
        int root = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (root < 0) return 1;
        DIR *procs = fdopendir(dup(root));
        struct dirent *p;
        fds = stats = 0;
        while ((p = readdir(procs)) != NULL) {
            if (p->d_name[0] < '0' || p->d_name[0] > '9') continue;
            char path[300];
            snprintf(path, sizeof path, "%s/fd", p->d_name);
            int dir = openat(root, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
            if (dir < 0) continue;
            DIR *list = fdopendir(dir);
            struct dirent *f;
            while ((f = readdir(list)) != NULL) {
                char link[4096];
                struct stat st;
                if (f->d_name[0] == '.') continue;
                ssize_t n = readlinkat(dir, f->d_name, link, sizeof link);
                fds++;
                if (n > 0 && link[0] == '/') {
                    fstatat(dir, f->d_name, &st, 0);
                    stats++;
                }
            }
            closedir(list);
        }
        closedir(procs);
        close(root);
        if (run > 0) times[run - 1] = now_ms() - t0;
    }
    qsort(times, runs, sizeof times[0], cmp);
    printf("%.1f %ld %ld\n", times[runs / 2], fds, stats);
    return 0;
}
