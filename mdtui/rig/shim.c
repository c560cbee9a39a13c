/*
 * mdtui rig: what umockdev's preload cannot do for the simulated kernel, done in the client.
 * Preloaded ahead of umockdev's library; every other call goes straight to the next library.
 *
 * 1. sysfs bind/unbind writes.  umockdev emulates read/write/ioctl only for /dev nodes; a file
 *    under its mocked /sys is a plain file, so `echo 1-1:1.0 > .../au0828/unbind` would always
 *    succeed.  The fds opened for writing on /sys/bus/<bus>/drivers/<driver>/{bind,unbind}
 *    are remembered; a write() to one is sent to the rig's control socket ($MDTUI_RIG_CONTROL)
 *    as "sysfs-write OP DRIVER-HEX BYTES-HEX" (hex: the written bytes are one device name,
 *    whatever they contain, never words of a command line) and returns what the simulated
 *    driver core answered: the byte count, or -1 with errno set, as bind_store() and
 *    unbind_store() do.  A write of 0 bytes returns 0 without reaching the store, as sysfs does.
 *
 * 2. Bad ioctl pointers.  umockdev's preload lets the rig read and write the client's memory
 *    from inside the client; an unmapped address makes it print "emulation code requested
 *    invalid read" and exit.  The kernel answers EFAULT instead (copy_from_user/copy_to_user).
 *    An ioctl() with a media, V4L2, ALSA control or DVB frontend request (the types '|', 'V',
 *    'U', 'o') on an fd open on a node the rig answers (one that has an ioctl socket in the
 *    testbed: /dev/mediaN, the video/VBI nodes, the ALSA control nodes, the DVB frontends) is
 *    passed on as MDTUI_RIG_IOCTL, a request carrying the
 *    original one, its argument, and how many bytes are readable and writable at the argument
 *    (copied out and back with process_vm_readv/writev on the own pid) and at each user
 *    pointer inside it (read from /proc/self/maps: the arrays' lengths are the rig's to
 *    know).  The rig then touches only
 *    what is there, and answers EFAULT where the kernel would, in the kernel's order (ENOTTY,
 *    EIO for an unregistered device, EFAULT on copy-in, the call's own errors and partial array
 *    writes, EFAULT on copy-out).  MDTUI_RIG_IOCTL from the program itself gets ENOTTY: an
 *    unknown request, as on the real device.
 *
 * 3. Closes and exits.  A close() of an fd on such a node returns once the rig has closed the
 *    simulated file (the module pinned by the open is released then, as in the kernel).  The
 *    rig also closes the file of any process whose ioctl socket went away (an exit or a kill);
 *    an open of /sys/module/NAME/refcnt first asks the rig to do so ("reap"), so a parent that
 *    has waited for its child reads the refcnt the kernel would show: files are released at
 *    exit, before the parent can reap the child.
 *
 * 4. /dev/kmsg.  The testbed has no kernel log: an open() of "/dev/kmsg" (open, openat, fopen,
 *    their 64-bit and fortified forms; the path as written, not resolved) is connected to the
 *    rig's log instead, a SOCK_SEQPACKET socket at $MDTUI_RIG_KMSG (mdtui/rig/kmsg.py), after
 *    the testbed's /dev/kmsg (0644 root, like the kernel's) was found open-able with the same
 *    access mode.  O_NONBLOCK and O_CLOEXEC are the socket's.  The rig sends one message per
 *    record, so poll/select see the fd readable exactly when a record is there; read() here
 *    returns one record, EINVAL when the buffer is too small for it (the record stays),
 *    EAGAIN when none is left (O_NONBLOCK: the rig is asked, so a record it logged before
 *    is never missed), EPIPE after records were dropped unread.  lseek(fd, 0, SEEK_SET,
 *    SEEK_DATA or SEEK_END) moves the reader as devkmsg_llseek() does (ESPIPE for an offset,
 *    EINVAL for another whence); write() logs a line through the control socket
 *    ("kmsg-write HEX") and returns its answer (EBADF on a read-only fd, EINVAL over 1,024
 *    bytes).  The fds are remembered with their socket's inode, through dup/dup2/dup3/
 *    fcntl(F_DUPFD); an fd number reused behind the shim's back (fclose) is told apart.
 *
 * 5. /sys/kernel/debug/dynamic_debug/control opened for writing: connected to the rig's
 *    $MDTUI_RIG_DYNDBG socket, which applies each write() as a batch of queries and answers
 *    with the kernel's errno (EINVAL for a query it cannot parse, E2BIG over 4,095 bytes), then
 *    rewrites the listing that reading the file shows.  Writes through stdio reach the rig
 *    too (the fd is the socket); their refusal is printed by the rig.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/dvb/frontend.h>
#include <linux/media.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_FDS 256 /* remembered fds per process: bind/unbind files, /dev/kmsg, the control file */
#define PREFIX "/sys/bus/"
#define MAX_NAME 1024 /* bytes of a device name sent to the rig; no device has a longer one */

/* what the rig's ioctl handler receives (mdtui/rig/ioctls.py: RigCall) */
struct rig_call {
    uint64_t request;  /* the caller's media request */
    uint64_t arg;      /* the caller's argument: the rig resolves it at this offset */
    uint64_t readable; /* bytes readable at arg, up to the request's size */
    uint64_t writable; /* bytes writable at arg, up to the request's size */
    uint64_t ptr[4];   /* the user pointers inside the argument, as read here */
    uint64_t room[4];  /* bytes writable at each, up to ROOM_CAP */
};
#define MDTUI_RIG_IOCTL _IOWR('|', 0xF0, struct rig_call)
#define ROOM_CAP (64u << 20)

#define KMSG_PATH "/dev/kmsg"
#define DYNDBG_PATH "/sys/kernel/debug/dynamic_debug/control"
#define MAGIC "\0mdtui-rig\0" /* starts every message of the shim's own on those sockets */
#define MAGIC_LEN 11
#define RECORD_MAX 1024 /* PRINTKRB_RECORD_MAX: the longest write() /dev/kmsg takes */
#define QUERY_MAX 4095  /* USER_BUF_PAGE - 1: the longest write() the control file takes */

enum kind { SYSFS_OP, KMSG, DYNDBG };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int fd;
    enum kind kind;
    char op[8];       /* SYSFS_OP: "bind" or "unbind" */
    char driver[128]; /* SYSFS_OP */
    int accmode;      /* KMSG, DYNDBG: O_RDONLY, O_WRONLY or O_RDWR */
    dev_t dev;        /* KMSG, DYNDBG: the socket's inode, to tell a reused fd number apart */
    ino_t ino;
} tracked[MAX_FDS];
static int ntracked;

/* ---- sysfs bind/unbind fds ------------------------------------------------------------ */

/* "/sys/bus/usb/drivers/au0828/unbind" opened for writing -> op "unbind", driver "au0828" */
static void track(int fd, const char *path, int flags)
{
    const char *p, *drv, *slash;
    size_t len;

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
    if (len == 0 || len >= sizeof tracked[0].driver)
        return;
    pthread_mutex_lock(&lock);
    if (ntracked < MAX_FDS) {
        tracked[ntracked].fd = fd;
        tracked[ntracked].kind = SYSFS_OP;
        snprintf(tracked[ntracked].op, sizeof tracked[0].op, "%s", slash + 1);
        memcpy(tracked[ntracked].driver, drv, len);
        tracked[ntracked].driver[len] = '\0';
        ntracked++;
    }
    pthread_mutex_unlock(&lock);
}

/* callers hold the lock */
static int find(int fd)
{
    for (int i = 0; i < ntracked; i++)
        if (tracked[i].fd == fd)
            return i;
    return -1;
}

static void forget(int fd)
{
    pthread_mutex_lock(&lock);
    int i = find(fd);
    if (i >= 0)
        tracked[i] = tracked[--ntracked];
    pthread_mutex_unlock(&lock);
}

static void copy_tracking(int oldfd, int newfd)
{
    pthread_mutex_lock(&lock);
    int i = find(newfd);
    if (i >= 0)
        tracked[i] = tracked[--ntracked];
    i = find(oldfd);
    if (i >= 0 && ntracked < MAX_FDS) { /* the shell's `> file` dup2()s onto fd 1 */
        tracked[ntracked] = tracked[i];
        tracked[ntracked++].fd = newfd;
    }
    pthread_mutex_unlock(&lock);
}

/* ---- the control socket -------------------------------------------------------------- */

/* Send one line to the rig; return the errno it answers with (0: "ok"). */
static int ask_rig(const char *line)
{
    const char *path = getenv("MDTUI_RIG_CONTROL");
    char reply[512];
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t used = 0, len = strlen(line);
    ssize_t got;
    int sock, err = EIO, saved = errno;

    if (path == NULL)
        return EIO;
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return EIO;
    if (connect(sock, (struct sockaddr *)&addr, sizeof addr) == 0 && send(sock, line, len, MSG_NOSIGNAL) == (ssize_t)len) {
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
    syscall(SYS_close, sock);
    errno = saved;
    return err;
}

static char *hex(char *out, const void *data, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++) {
        *out++ = digits[b[i] >> 4];
        *out++ = digits[b[i] & 15];
    }
    *out = '\0';
    return out;
}

/* bind_store()/unbind_store(): the whole write is one device name, a C string (it ends at
 * a NUL); the rig looks it up */
static int sysfs_write(const char *op, const char *driver, const void *buf, size_t count)
{
    char line[32 + 2 * sizeof tracked[0].driver + 2 * MAX_NAME], *p;
    const char *nul = memchr(buf, '\0', count);
    size_t n = nul != NULL ? (size_t)(nul - (const char *)buf) : count;

    if (n > MAX_NAME)
        return ENODEV; /* nothing the driver core could find by that name */
    p = line + snprintf(line, sizeof line, "sysfs-write %s ", op);
    p = hex(p, driver, strlen(driver));
    *p++ = ' ';
    p = hex(p, buf, n);
    strcpy(p, "\n");
    return ask_rig(line);
}

/* ---- which fds are nodes the rig answers ------------------------------------------------ */

/* Is fd open on a node of the testbed that the rig answers: a file under $UMOCKDEV_DIR/dev
 * with an ioctl socket at $UMOCKDEV_DIR/ioctl/dev/... (umockdev's own test for a node with a
 * handler)?  Asked of the kernel (not umockdev's wrappers). */
static int is_rig_fd(int fd)
{
    const char *root = getenv("UMOCKDEV_DIR");
    char link[64], target[4096], sock[4096 + 16];
    long n;
    size_t len;

    if (fd < 0 || root == NULL)
        return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = syscall(SYS_readlinkat, AT_FDCWD, link, target, sizeof target - 1);
    if (n <= 0)
        return 0;
    target[n] = '\0';
    len = strlen(root);
    if (strncmp(target, root, len) != 0 || strncmp(target + len, "/dev/", 5) != 0)
        return 0;
    if ((size_t)snprintf(sock, sizeof sock, "%s/ioctl%s", root, target + len) >= sizeof sock)
        return 0;
    return syscall(SYS_faccessat, AT_FDCWD, sock, F_OK, 0) == 0;
}

static int is_refcnt(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    return n > 19 && strncmp(path, "/sys/module/", 12) == 0 && strcmp(path + n - 7, "/refcnt") == 0;
}

/* ---- the memory an ioctl may touch ----------------------------------------------------- */

struct span {
    uint64_t start, want, reach; /* reach: accessible up to here, contiguously from start */
    int write, open;             /* need 'w' (else 'r'); still being extended */
};

static uint64_t parse_hex(const char **s)
{
    uint64_t v = 0;
    for (;; (*s)++) {
        char c = **s;
        if (c >= '0' && c <= '9')
            v = v * 16 + (uint64_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (uint64_t)(c - 'a' + 10);
        else
            return v;
    }
}

/* One line of /proc/self/maps ("lo-hi rwxp ...") against every span still open: mappings
 * come in address order, so a span ends at its first gap or its first mapping without the
 * permission it needs. */
static void maps_line(const char *line, struct span *spans, int n)
{
    const char *s = line;
    uint64_t lo = parse_hex(&s), hi;
    if (*s++ != '-')
        return;
    hi = parse_hex(&s);
    if (*s++ != ' ' || strlen(s) < 4)
        return;
    int readable = s[0] == 'r', writable = s[1] == 'w';
    for (int i = 0; i < n; i++) {
        struct span *sp = &spans[i];
        if (!sp->open || hi <= sp->reach)
            continue;
        if (lo > sp->reach || !(sp->write ? writable : readable))
            sp->open = 0;
        else
            sp->reach = hi;
        if (sp->reach - sp->start >= sp->want)
            sp->open = 0;
    }
}

/* How many bytes, up to each span's want, are accessible from its start: /proc/self/maps
 * read with raw syscalls (no wrapper, no allocation). */
static void measure(struct span *spans, int n)
{
    char buf[8192];
    size_t have = 0;
    long got;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);

    for (int i = 0; i < n; i++) {
        spans[i].reach = spans[i].start;
        spans[i].open = spans[i].start != 0 && spans[i].want > 0 && spans[i].start + spans[i].want > spans[i].start;
    }
    while (fd >= 0 && (got = syscall(SYS_read, fd, buf + have, sizeof buf - 1 - have)) > 0) {
        char *line = buf, *nl;
        have += (size_t)got;
        buf[have] = '\0';
        while ((nl = memchr(line, '\n', have - (size_t)(line - buf))) != NULL) {
            *nl = '\0';
            maps_line(line, spans, n);
            line = nl + 1;
        }
        have -= (size_t)(line - buf);
        memmove(buf, line, have);
        if (have == sizeof buf - 1) /* a line longer than the buffer: drop it */
            have = 0;
    }
    if (fd >= 0)
        syscall(SYS_close, fd);
    for (int i = 0; i < n; i++) {
        uint64_t got_bytes = spans[i].start ? spans[i].reach - spans[i].start : 0;
        spans[i].reach = got_bytes < spans[i].want ? got_bytes : spans[i].want; /* now: bytes */
    }
}

/* The user pointers inside an ioctl's argument: their offsets (the rig knows the element
 * sizes).  G_TOPOLOGY's four arrays; ENUM_LINKS' pads and links; FE_GET_PROPERTY's
 * properties (read and written back). */
static int pointer_fields(unsigned int request, size_t offsets[4])
{
    if (request == MEDIA_IOC_G_TOPOLOGY) {
        offsets[0] = offsetof(struct media_v2_topology, ptr_entities);
        offsets[1] = offsetof(struct media_v2_topology, ptr_interfaces);
        offsets[2] = offsetof(struct media_v2_topology, ptr_pads);
        offsets[3] = offsetof(struct media_v2_topology, ptr_links);
        return 4;
    }
    if (request == MEDIA_IOC_ENUM_LINKS) {
        offsets[0] = offsetof(struct media_links_enum, pads);
        offsets[1] = offsetof(struct media_links_enum, links);
        return 2;
    }
    if (request == FE_GET_PROPERTY) {
        offsets[0] = offsetof(struct dtv_properties, props);
        return 1;
    }
    return 0;
}

/* A request of the media, V4L2, ALSA control or DVB frontend ioctls (by its type). */
static int is_rig_request(unsigned int request)
{
    unsigned int type = _IOC_TYPE(request);
    return type == '|' || type == 'V' || type == 'U' || type == 'o';
}

/* Bytes readable, then writable, at the argument: copied out of it and back in by the kernel
 * (process_vm_readv/writev on this process), as the ioctl itself will; -1 when those calls
 * are not allowed here (then /proc/self/maps answers). */
static int probe_arg(void *arg, size_t size, uint64_t *readable, uint64_t *writable)
{
    char copy[_IOC_SIZEMASK + 1];
    struct iovec local = {copy, size}, remote = {arg, size};
    ssize_t got, put;

    if (arg == NULL) {
        *readable = *writable = 0;
        return 0;
    }
    got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    if (got < 0 && errno != EFAULT)
        return -1;
    *readable = got < 0 ? 0 : (uint64_t)got;
    local.iov_len = remote.iov_len = *readable;
    put = *readable ? process_vm_writev(getpid(), &local, 1, &remote, 1, 0) : 0; /* the same bytes */
    *writable = put < 0 ? 0 : (uint64_t)put;
    return 0;
}

/* Describe the caller's ioctl for the rig: its argument and what memory is there. */
static void describe(struct rig_call *call, unsigned int request, void *arg)
{
    struct span spans[4] = {0};
    size_t offsets[4];
    size_t size = _IOC_SIZE(request);
    int nptr = pointer_fields(request, offsets), any = 0;

    memset(call, 0, sizeof *call);
    call->request = request;
    call->arg = (uint64_t)(uintptr_t)arg;
    if (probe_arg(arg, size, &call->readable, &call->writable) < 0) {
        spans[0] = (struct span){.start = call->arg, .want = size};
        spans[1] = (struct span){.start = call->arg, .want = size, .write = 1};
        measure(spans, 2);
        call->readable = spans[0].reach;
        call->writable = spans[1].reach;
    }
    if (call->readable < size || nptr == 0)
        return;
    for (int i = 0; i < nptr; i++) {
        memcpy(&call->ptr[i], (const char *)arg + offsets[i], sizeof call->ptr[i]);
        spans[i] = (struct span){.start = call->ptr[i], .want = ROOM_CAP, .write = 1};
        any |= call->ptr[i] != 0;
    }
    if (!any) /* no array asked for (the count-only call): no memory to look at */
        return;
    measure(spans, nptr);
    for (int i = 0; i < nptr; i++)
        call->room[i] = spans[i].reach;
}

int ioctl(int fd, unsigned long request, ...)
{
    static int (*next)(int, unsigned long, ...);
    struct rig_call call;
    va_list ap;
    void *arg;

    va_start(ap, request);
    arg = va_arg(ap, void *);
    va_end(ap);
    if (next == NULL)
        next = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
    unsigned int cmd = (unsigned int)request; /* the kernel's ioctl takes an unsigned int */
    if (!is_rig_request(cmd) || !is_rig_fd(fd))
        return next(fd, request, arg);
    if (cmd == MDTUI_RIG_IOCTL) {
        errno = ENOTTY; /* not a request the media device knows */
        return -1;
    }
    describe(&call, cmd, arg);
    return next(fd, (unsigned long)MDTUI_RIG_IOCTL, &call);
}

/* ---- /dev/kmsg and the dynamic debug control file ------------------------------------ */

/* Is the fd still the socket the rig connected for entry i?  (An fd number closed behind
 * the shim's back, by fclose or close_range, may have been reused since.)  Drops the entry
 * when it is not. */
static int same_socket(int fd, int i)
{
    struct stat st;
    int same;

    if (syscall(SYS_fstat, fd, &st) != 0)
        return 0;
    pthread_mutex_lock(&lock);
    i = find(fd);
    same = i >= 0 && S_ISSOCK(st.st_mode) && tracked[i].dev == st.st_dev && tracked[i].ino == st.st_ino;
    if (i >= 0 && !same)
        tracked[i] = tracked[--ntracked];
    pthread_mutex_unlock(&lock);
    return same;
}

/* /dev/kmsg, or the control file opened for writing, inside a rig that serves them */
static int rig_path(const char *path, int flags, enum kind *kind)
{
    if (path == NULL)
        return 0;
    if (strcmp(path, KMSG_PATH) == 0 && getenv("MDTUI_RIG_KMSG") != NULL) {
        *kind = KMSG;
        return 1;
    }
    if (strcmp(path, DYNDBG_PATH) == 0 && (flags & O_ACCMODE) != O_RDONLY && getenv("MDTUI_RIG_DYNDBG") != NULL) {
        *kind = DYNDBG;
        return 1;
    }
    return 0;
}

/* fopen()'s mode as open() flags */
static int fopen_flags(const char *mode)
{
    int flags = mode[0] == 'r' ? O_RDONLY : O_WRONLY;
    if (mode[0] == 'w')
        flags |= O_CREAT | O_TRUNC;
    else if (mode[0] == 'a')
        flags |= O_CREAT | O_APPEND;
    for (const char *m = mode + 1; *m && *m != ','; m++) {
        if (*m == '+')
            flags = (flags & ~O_ACCMODE) | O_RDWR;
        else if (*m == 'e')
            flags |= O_CLOEXEC;
        else if (*m == 'x')
            flags |= O_EXCL;
    }
    return flags;
}

static int next_close(int fd)
{
    static int (*next)(int);
    if (next == NULL)
        next = (int (*)(int))dlsym(RTLD_NEXT, "close");
    return next(fd);
}

/* Wait for the next message of the shim's own on a rig socket (the records before it are
 * dropped, the caller having asked for them to be), into buf; its length, or -1 with errno. */
static ssize_t await_reply(int sock, char *buf, size_t size, const char *want)
{
    size_t wlen = strlen(want);
    for (;;) {
        struct pollfd p = {.fd = sock, .events = POLLIN};
        ssize_t n = recv(sock, buf, size - 1, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (poll(&p, 1, -1) < 0 && errno != EINTR)
                return -1;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            errno = EIO; /* the rig went away */
            return -1;
        }
        buf[n] = '\0';
        if (n >= (ssize_t)(MAGIC_LEN + wlen) && memcmp(buf, MAGIC, MAGIC_LEN) == 0 &&
            memcmp(buf + MAGIC_LEN, want, wlen) == 0)
            return n;
    }
}

/* Connect a rig path's socket in place of the testbed's file: `checked` is the testbed's file
 * opened with the caller's access mode (or -1 and errno: that is the answer), closed here. */
static int rig_open(enum kind kind, int checked, int flags)
{
    const char *path = getenv(kind == KMSG ? "MDTUI_RIG_KMSG" : "MDTUI_RIG_DYNDBG");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int accmode = flags & O_ACCMODE, sock, err;
    char hello[MAGIC_LEN + 16], reply[64];
    struct stat st;

    if (checked < 0)
        return -1;
    next_close(checked);
    if (accmode == O_ACCMODE) {
        errno = EINVAL;
        return -1;
    }
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    sock = socket(AF_UNIX, SOCK_SEQPACKET | ((flags & O_CLOEXEC) ? SOCK_CLOEXEC : 0), 0);
    if (sock < 0)
        return -1;
    memcpy(hello, MAGIC, MAGIC_LEN);
    int len = snprintf(hello + MAGIC_LEN, sizeof hello - MAGIC_LEN, "open %s",
                       accmode == O_RDONLY ? "r" : accmode == O_WRONLY ? "w" : "rw");
    if (connect(sock, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        send(sock, hello, MAGIC_LEN + (size_t)len, MSG_NOSIGNAL) < 0 ||
        await_reply(sock, reply, sizeof reply, "opened") < 0 || syscall(SYS_fstat, sock, &st) != 0) {
        err = errno == ENOENT || errno == ECONNREFUSED ? EIO : errno; /* the rig is gone */
        syscall(SYS_close, sock);
        errno = err;
        return -1;
    }
    if ((flags & O_NONBLOCK) && kind == KMSG)
        fcntl(sock, F_SETFL, O_NONBLOCK);
    pthread_mutex_lock(&lock);
    int i = find(sock); /* a stale entry for this number: gone */
    if (i >= 0)
        tracked[i] = tracked[--ntracked];
    if (ntracked < MAX_FDS) {
        tracked[ntracked].fd = sock;
        tracked[ntracked].kind = kind;
        tracked[ntracked].accmode = accmode;
        tracked[ntracked].dev = st.st_dev;
        tracked[ntracked].ino = st.st_ino;
        ntracked++;
    } else {
        pthread_mutex_unlock(&lock);
        syscall(SYS_close, sock);
        errno = EMFILE;
        return -1;
    }
    pthread_mutex_unlock(&lock);
    return sock;
}

static int is_mine(const char *buf, ssize_t n, const char *word)
{
    size_t wlen = strlen(word);
    return n >= (ssize_t)(MAGIC_LEN + wlen) && memcmp(buf, MAGIC, MAGIC_LEN) == 0 &&
           memcmp(buf + MAGIC_LEN, word, wlen) == 0;
}

/* devkmsg_read(): one record; the rig's own messages are answered here, never returned */
static ssize_t kmsg_read(int fd, void *buf, size_t count)
{
    static unsigned int syncs;
    int fl = fcntl(fd, F_GETFL), nonblock = fl >= 0 && (fl & O_NONBLOCK), waiting = 0;
    unsigned int id = 0;
    char head[64];

    for (;;) {
        ssize_t n = recv(fd, head, sizeof head - 1, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (nonblock && !waiting) { /* nothing here: ask whether the rig has more */
                char sync[MAGIC_LEN + 24];
                id = __atomic_add_fetch(&syncs, 1, __ATOMIC_RELAXED);
                memcpy(sync, MAGIC, MAGIC_LEN);
                int len = snprintf(sync + MAGIC_LEN, sizeof sync - MAGIC_LEN, "sync %u", id);
                if (send(fd, sync, MAGIC_LEN + (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
                    errno = EAGAIN;
                    return -1;
                }
                waiting = 1;
            }
            if (poll(&p, 1, -1) < 0)
                return -1; /* EINTR: a signal handler runs, as in the kernel's interruptible wait */
            continue;
        }
        if (n <= 0)
            return n; /* the rig went away: end of file */
        head[n < (ssize_t)sizeof head - 1 ? n : (ssize_t)sizeof head - 1] = '\0';
        if (n >= MAGIC_LEN && memcmp(head, MAGIC, MAGIC_LEN) == 0) {
            ssize_t got = recv(fd, head, sizeof head - 1, MSG_DONTWAIT); /* consumed */
            if (got > 0)
                head[got] = '\0';
            if (is_mine(head, got, "epipe")) {
                errno = EPIPE;
                return -1;
            }
            if (is_mine(head, got, "none ") && waiting && strtoul(head + MAGIC_LEN + 5, NULL, 10) == id) {
                errno = EAGAIN;
                return -1;
            }
            continue; /* an answer to an earlier call */
        }
        if ((size_t)n > count) {
            errno = EINVAL; /* the record stays for a read with room for it */
            return -1;
        }
        return recv(fd, buf, count, MSG_DONTWAIT);
    }
}

/* devkmsg_llseek() */
static long long kmsg_seek(int fd, int accmode, long long offset, int whence)
{
    char msg[MAGIC_LEN + 16], reply[8192];
    const char *where = whence == SEEK_SET ? "set" : whence == SEEK_END ? "end" : whence == SEEK_DATA ? "data" : NULL;

    if (accmode == O_WRONLY) {
        errno = EBADF;
        return -1;
    }
    if (offset != 0) {
        errno = ESPIPE;
        return -1;
    }
    if (where == NULL) {
        errno = EINVAL;
        return -1;
    }
    memcpy(msg, MAGIC, MAGIC_LEN);
    int len = snprintf(msg + MAGIC_LEN, sizeof msg - MAGIC_LEN, "seek %s", where);
    if (send(fd, msg, MAGIC_LEN + (size_t)len, MSG_NOSIGNAL) < 0 || await_reply(fd, reply, sizeof reply, "seeked") < 0) {
        errno = EIO;
        return -1;
    }
    return 0;
}

/* devkmsg_write(): the rig logs the line and answers */
static ssize_t kmsg_write(int accmode, const void *buf, size_t count)
{
    char line[32 + 2 * RECORD_MAX], *p;

    if (accmode == O_RDONLY) {
        errno = EBADF;
        return -1;
    }
    if (count > RECORD_MAX) {
        errno = EINVAL;
        return -1;
    }
    p = line + snprintf(line, sizeof line, "kmsg-write ");
    p = hex(p, buf, count);
    strcpy(p, "\n");
    int err = ask_rig(line);
    if (err) {
        errno = err;
        return -1;
    }
    return (ssize_t)count;
}

/* ddebug_proc_write(): one write() is one batch of queries, applied by the rig */
static ssize_t dyndbg_write(int fd, const void *buf, size_t count)
{
    char msg[MAGIC_LEN + 8 + QUERY_MAX], reply[64];
    int err;

    if (count == 0)
        return 0;
    if (count > QUERY_MAX) {
        errno = E2BIG;
        return -1;
    }
    memcpy(msg, MAGIC "write ", MAGIC_LEN + 6);
    memcpy(msg + MAGIC_LEN + 6, buf, count);
    if (send(fd, msg, MAGIC_LEN + 6 + count, MSG_NOSIGNAL) < 0)
        return -1;
    for (;;) {
        ssize_t n = await_reply(fd, reply, sizeof reply, "");
        if (n < 0)
            return -1;
        if (is_mine(reply, n, "ok"))
            return (ssize_t)count;
        if (is_mine(reply, n, "error ")) {
            err = atoi(reply + MAGIC_LEN + 6);
            errno = err > 0 ? err : EIO;
            return -1;
        }
    }
}

/* ---- write, close, dup ----------------------------------------------------------------- */

ssize_t write(int fd, const void *buf, size_t count)
{
    static ssize_t (*next)(int, const void *, size_t);
    char op[sizeof tracked[0].op], driver[sizeof tracked[0].driver];
    int i, accmode = 0;
    enum kind kind = SYSFS_OP;

    if (next == NULL)
        next = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    pthread_mutex_lock(&lock);
    i = find(fd);
    if (i >= 0) {
        kind = tracked[i].kind;
        accmode = tracked[i].accmode;
        memcpy(op, tracked[i].op, sizeof op);
        memcpy(driver, tracked[i].driver, sizeof driver);
    }
    pthread_mutex_unlock(&lock);
    if (i >= 0 && kind != SYSFS_OP && !same_socket(fd, i))
        i = -1;
    if (i < 0)
        return next(fd, buf, count);
    if (kind == KMSG)
        return kmsg_write(accmode, buf, count);
    if (kind == DYNDBG)
        return dyndbg_write(fd, buf, count);
    if (count == 0)
        return 0;
    int err = sysfs_write(op, driver, buf, count);
    if (err) {
        errno = err;
        return -1;
    }
    return (ssize_t)count;
}

int close(int fd)
{
    static int (*next)(int);
    int rig = is_rig_fd(fd), ret, saved;

    if (next == NULL)
        next = (int (*)(int))dlsym(RTLD_NEXT, "close");
    forget(fd);
    ret = next(fd);
    saved = errno;
    if (ret == 0 && rig)
        ask_rig("reap\n");
    errno = saved;
    return ret;
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

int dup(int oldfd)
{
    static int (*next)(int);
    if (next == NULL)
        next = (int (*)(int))dlsym(RTLD_NEXT, "dup");
    int fd = next(oldfd);
    if (fd >= 0)
        copy_tracking(oldfd, fd);
    return fd;
}

/* fcntl(F_DUPFD, F_DUPFD_CLOEXEC) is a dup (CPython's os.dup() is one); every other command
 * is passed on with its one argument, an int, a long or a pointer alike in the register */
#define WRAP_FCNTL(name)                                                                 \
    int name(int fd, int cmd, ...)                                                       \
    {                                                                                    \
        static int (*next)(int, int, ...);                                               \
        va_list ap;                                                                      \
        va_start(ap, cmd);                                                               \
        void *arg = va_arg(ap, void *);                                                  \
        va_end(ap);                                                                      \
        if (next == NULL)                                                                \
            next = (int (*)(int, int, ...))dlsym(RTLD_NEXT, #name);                      \
        int ret = next(fd, cmd, arg);                                                    \
        if (ret >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))                      \
            copy_tracking(fd, ret);                                                      \
        return ret;                                                                      \
    }

WRAP_FCNTL(fcntl)
WRAP_FCNTL(fcntl64)

/* ---- read, lseek ------------------------------------------------------------------------ */

ssize_t read(int fd, void *buf, size_t count)
{
    static ssize_t (*next)(int, void *, size_t);
    int i, accmode = 0;
    enum kind kind = SYSFS_OP;

    if (next == NULL)
        next = (ssize_t(*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
    if (__atomic_load_n(&ntracked, __ATOMIC_RELAXED) == 0) /* the common case: no lock taken */
        return next(fd, buf, count);
    pthread_mutex_lock(&lock);
    i = find(fd);
    if (i >= 0) {
        kind = tracked[i].kind;
        accmode = tracked[i].accmode;
    }
    pthread_mutex_unlock(&lock);
    if (i < 0 || kind == SYSFS_OP || !same_socket(fd, i))
        return next(fd, buf, count);
    if (accmode == O_WRONLY) {
        errno = EBADF;
        return -1;
    }
    if (kind == DYNDBG)
        return 0; /* reading the listing through an fd opened read-write: not emulated */
    return kmsg_read(fd, buf, count);
}

#define WRAP_LSEEK(name, off_type)                                                       \
    off_type name(int fd, off_type offset, int whence)                                   \
    {                                                                                    \
        static off_type (*next)(int, off_type, int);                                     \
        int i, accmode = 0;                                                              \
        enum kind kind = SYSFS_OP;                                                       \
        if (next == NULL)                                                                \
            next = (off_type(*)(int, off_type, int))dlsym(RTLD_NEXT, #name);             \
        if (__atomic_load_n(&ntracked, __ATOMIC_RELAXED) == 0)                           \
            return next(fd, offset, whence);                                             \
        pthread_mutex_lock(&lock);                                                       \
        i = find(fd);                                                                    \
        if (i >= 0) {                                                                    \
            kind = tracked[i].kind;                                                      \
            accmode = tracked[i].accmode;                                                \
        }                                                                                \
        pthread_mutex_unlock(&lock);                                                     \
        if (i < 0 || kind != KMSG || !same_socket(fd, i))                                \
            return next(fd, offset, whence);                                             \
        return (off_type)kmsg_seek(fd, accmode, (long long)offset, whence);              \
    }

WRAP_LSEEK(lseek, off_t)
WRAP_LSEEK(lseek64, off64_t)

/* ---- open ------------------------------------------------------------------------------ */

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
        if (is_refcnt(path))                                                             \
            ask_rig("reap\n");                                                           \
        int fd_ = (call); /* evaluated once: it is the open itself */                    \
        track(fd_, (path), (flags));                                                     \
        fd_;                                                                             \
    })

/* the open that checks the testbed's file may be opened so (its permissions, its presence),
 * without changing it: no O_TRUNC, no O_CREAT */
#define CHECK_FLAGS(flags) (((flags) & O_ACCMODE) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)

#define WRAP_OPEN(name)                                                                  \
    int name(const char *path, int flags, ...)                                          \
    {                                                                                    \
        static int (*next)(const char *, int, ...);                                      \
        enum kind kind_;                                                                 \
        if (next == NULL)                                                                \
            next = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, #name);             \
        if (rig_path(path, flags, &kind_))                                               \
            return rig_open(kind_, next(path, CHECK_FLAGS(flags)), flags);               \
        return TRACKED(next(path, flags, MODE_ARG(flags)), flags, path);                 \
    }

#define WRAP_OPENAT(name)                                                                \
    int name(int dirfd, const char *path, int flags, ...)                               \
    {                                                                                    \
        static int (*next)(int, const char *, int, ...);                                 \
        enum kind kind_;                                                                 \
        if (next == NULL)                                                                \
            next = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, #name);        \
        if (rig_path(path, flags, &kind_)) /* absolute: dirfd plays no part */           \
            return rig_open(kind_, next(dirfd, path, CHECK_FLAGS(flags)), flags);        \
        return TRACKED(next(dirfd, path, flags, MODE_ARG(flags)), flags, path);          \
    }

#define WRAP_FOPEN(name)                                                                 \
    FILE *name(const char *path, const char *mode)                                       \
    {                                                                                    \
        static FILE *(*next)(const char *, const char *);                                \
        static int (*next_open)(const char *, int, ...);                                 \
        enum kind kind_;                                                                 \
        int flags_ = fopen_flags(mode);                                                  \
        if (next == NULL)                                                                \
            next = (FILE * (*)(const char *, const char *)) dlsym(RTLD_NEXT, #name);     \
        if (next_open == NULL)                                                           \
            next_open = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");       \
        if (is_refcnt(path))                                                             \
            ask_rig("reap\n");                                                           \
        if (!rig_path(path, flags_, &kind_))                                             \
            return next(path, mode);                                                     \
        int fd_ = rig_open(kind_, next_open(path, CHECK_FLAGS(flags_)), flags_);         \
        FILE *f_ = fd_ < 0 ? NULL : fdopen(fd_, mode);                                   \
        if (fd_ >= 0 && f_ == NULL) {                                                    \
            int saved_ = errno;                                                          \
            forget(fd_);                                                                 \
            syscall(SYS_close, fd_);                                                     \
            errno = saved_;                                                              \
        }                                                                                \
        return f_;                                                                       \
    }

#define WRAP_OPEN_2(name)                                                                \
    int name(const char *path, int flags)                                                \
    {                                                                                    \
        static int (*next)(const char *, int);                                           \
        enum kind kind_;                                                                 \
        if (next == NULL)                                                                \
            next = (int (*)(const char *, int))dlsym(RTLD_NEXT, #name);                  \
        if (rig_path(path, flags, &kind_))                                               \
            return rig_open(kind_, next(path, CHECK_FLAGS(flags)), flags);               \
        return TRACKED(next(path, flags), flags, path);                                  \
    }

WRAP_OPEN(open)
WRAP_OPEN(open64)
WRAP_OPEN_2(__open_2)
WRAP_OPEN_2(__open64_2)
WRAP_OPENAT(openat)
WRAP_OPENAT(openat64)
WRAP_FOPEN(fopen)
WRAP_FOPEN(fopen64)
