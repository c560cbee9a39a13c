/*
 * mdtui rig: sysfs bind/unbind writes that act on the simulation and fail with its errno,
 * and closes of /dev/mediaN that reach the simulation before close() returns.
 *
 * umockdev's preload emulates read/write/ioctl only for /dev nodes; a file under its mocked
 * /sys is a plain file, so `echo 1-1:1.0 > /sys/bus/usb/drivers/au0828/unbind` would always
 * succeed.  This library, preloaded ahead of umockdev's, remembers the fds opened on
 * /sys/bus/<bus>/drivers/<driver>/{bind,unbind}; a write() to one is sent to the rig's
 * control socket ($MDTUI_RIG_CONTROL) as "unbind <driver> <device>" and returns what the
 * simulated driver core answered: the byte count, or -1 with errno set (ENODEV, EBUSY, ...),
 * as bind_store()/unbind_store() do.
 *
 * A close() of an fd on /dev/mediaN returns once the rig has closed the simulated file (the
 * module pinned by the open is released then, as in the kernel); umockdev would tell the rig
 * only on its next main-loop turn, and a refcnt read right after the close would be stale.
 * Every other call goes straight to the next library.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_FDS 64
#define PREFIX "/sys/bus/"

static struct {
    int fd;
    char op[8];       /* "bind", "unbind", or "closed" for a /dev/mediaN fd */
    char driver[128]; /* the driver; for "closed", the node */
} tracked[MAX_FDS];
static int ntracked;

/* "/sys/bus/usb/drivers/au0828/unbind" -> op "unbind", driver "au0828" */
static void track(int fd, const char *path, int flags)
{
    if (fd < 0)
        return;
    const char *p, *drv, *slash;
    size_t len;

    if (fd >= 0 && path != NULL && strncmp(path, "/dev/media", 10) == 0 && strlen(path) < 32) {
        if (ntracked < MAX_FDS) {
            tracked[ntracked].fd = fd;
            snprintf(tracked[ntracked].op, sizeof tracked[0].op, "closed");
            snprintf(tracked[ntracked].driver, sizeof tracked[0].driver, "%s", path);
            ntracked++;
        }
        return;
    }
    if (fd < 0 || path == NULL || (flags & O_ACCMODE) == O_RDONLY || strncmp(path, PREFIX, strlen(PREFIX)) != 0)
        return;
    p = strchr(path + strlen(PREFIX), '/');
    if (p == NULL || strncmp(p, "/drivers/", 9) != 0)
        return;
    drv = p + 9;
    slash = strchr(drv, '/');
    if (slash == NULL || (strcmp(slash + 1, "bind") != 0 && strcmp(slash + 1, "unbind") != 0))
        return;
    len = (size_t)(slash - drv);
    if (len == 0 || len >= sizeof tracked[0].driver || ntracked >= MAX_FDS)
        return;
    tracked[ntracked].fd = fd;
    snprintf(tracked[ntracked].op, sizeof tracked[0].op, "%s", slash + 1);
    memcpy(tracked[ntracked].driver, drv, len);
    tracked[ntracked].driver[len] = '\0';
    ntracked++;
}

static int find(int fd)
{
    for (int i = 0; i < ntracked; i++)
        if (tracked[i].fd == fd)
            return i;
    return -1;
}

static void forget(int fd)
{
    int i = find(fd);
    if (i >= 0)
        tracked[i] = tracked[--ntracked];
}

/* Send one line to the rig; return the errno it answers with (0: done). */
static int ask_rig(const char *op, const char *driver, const char *buf, size_t count)
{
    const char *path = getenv("MDTUI_RIG_CONTROL");
    char line[512], reply[512];
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t n = count, used = 0;
    ssize_t got;
    int sock, err = EIO;

    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        n--;
    if (path == NULL || n > 200 || (n == 0 && strcmp(op, "closed") != 0) || memchr(buf, '\n', n) != NULL)
        return ENODEV; /* nothing the driver core could find by that name */
    snprintf(line, sizeof line, "%s %s %.*s\n", op, driver, (int)n, buf);
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return EIO;
    if (connect(sock, (struct sockaddr *)&addr, sizeof addr) == 0 && send(sock, line, strlen(line), 0) > 0) {
        while (used < sizeof reply - 1 && (got = recv(sock, reply + used, sizeof reply - 1 - used, 0)) > 0) {
            used += (size_t)got;
            if (memchr(reply, '\n', used) != NULL)
                break;
        }
        reply[used] = '\0';
        if (strncmp(reply, "ok", 2) == 0)
            err = 0;
        else if (sscanf(reply, "error %d", &err) != 1 || err <= 0)
            err = EIO;
    }
    close(sock);
    return err;
}

ssize_t write(int fd, const void *buf, size_t count)
{
    static ssize_t (*next)(int, const void *, size_t);
    int i = find(fd);

    if (next == NULL)
        next = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    if (i < 0 || strcmp(tracked[i].op, "closed") == 0)
        return next(fd, buf, count);
    int err = ask_rig(tracked[i].op, tracked[i].driver, buf, count);
    if (err) {
        errno = err;
        return -1;
    }
    return (ssize_t)count;
}

int close(int fd)
{
    static int (*next)(int);
    char node[sizeof tracked[0].driver] = "";
    int i = find(fd), ret, saved;

    if (next == NULL)
        next = (int (*)(int))dlsym(RTLD_NEXT, "close");
    if (i >= 0 && strcmp(tracked[i].op, "closed") == 0)
        snprintf(node, sizeof node, "%s", tracked[i].driver);
    forget(fd);
    ret = next(fd);
    saved = errno;
    if (ret == 0 && node[0] != '\0')
        ask_rig("closed", node, "", 0);
    errno = saved;
    return ret;
}

static void copy_tracking(int oldfd, int newfd)
{
    int i = find(oldfd);
    forget(newfd);
    if (i >= 0 && ntracked < MAX_FDS) { /* the shell's `> file` dup2()s onto fd 1 */
        tracked[ntracked] = tracked[i];
        tracked[ntracked++].fd = newfd;
    }
}

int dup2(int oldfd, int newfd)
{
    static int (*next)(int, int);
    if (next == NULL)
        next = (int (*)(int, int))dlsym(RTLD_NEXT, "dup2");
    int fd = next(oldfd, newfd);
    if (fd >= 0 && oldfd != newfd)
        copy_tracking(oldfd, fd);
    return fd;
}

int dup3(int oldfd, int newfd, int flags)
{
    static int (*next)(int, int, int);
    if (next == NULL)
        next = (int (*)(int, int, int))dlsym(RTLD_NEXT, "dup3");
    int fd = next(oldfd, newfd, flags);
    if (fd >= 0)
        copy_tracking(oldfd, fd);
    return fd;
}

/* the mode argument, present only when the flags create a file */
#define MODE_ARG(flags)                                                                  \
    ({                                                                                   \
        mode_t mode_ = 0;                                                                \
        if ((flags) & (O_CREAT | O_TMPFILE)) {                                           \
            va_list ap;                                                                  \
            va_start(ap, flags);                                                         \
            mode_ = va_arg(ap, mode_t);                                                  \
            va_end(ap);                                                                  \
        }                                                                                \
        mode_;                                                                           \
    })

#define TRACKED(call, flags, path)                                                       \
    ({                                                                                   \
        int fd_ = (call); /* evaluated once: it is the open itself */                    \
        track(fd_, (path), (flags));                                                     \
        fd_;                                                                             \
    })

#define WRAP_OPEN(name)                                                                  \
    int name(const char *path, int flags, ...)                                          \
    {                                                                                    \
        static int (*next)(const char *, int, ...);                                      \
        if (next == NULL)                                                                \
            next = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, #name);             \
        return TRACKED(next(path, flags, MODE_ARG(flags)), flags, path);                 \
    }

#define WRAP_OPENAT(name)                                                                \
    int name(int dirfd, const char *path, int flags, ...)                               \
    {                                                                                    \
        static int (*next)(int, const char *, int, ...);                                 \
        if (next == NULL)                                                                \
            next = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, #name);        \
        return TRACKED(next(dirfd, path, flags, MODE_ARG(flags)), flags, path);          \
    }

WRAP_OPEN(open)
WRAP_OPEN(open64)
WRAP_OPENAT(openat)
WRAP_OPENAT(openat64)
