/* The rig's /proc view of emulated device files, spliced into umockdev 0.17's
 * src/libumockdev-preload.c by mdtui/rig/preload.py: this file goes in before STAT_ADJUST_MODE,
 * its readlink() and readlinkat() replace umockdev's, and umockdev's stat templates (WRAP_STAT,
 * WRAP_FSTATAT, WRAP_VERSTAT, WRAP_VERFSTATAT) and statx() call PROC_FD_STAT_ADJUST /
 * proc_fd_statx() after their own adjustment.
 *
 * umockdev emulates a device node as a regular file in $UMOCKDEV_DIR/dev and dresses it as a
 * node only for a path that begins with /dev/ (STAT_ADJUST_MODE: S_IFCHR, S_IFBLK for a file
 * with the sticky bit, and the number from $UMOCKDEV_DIR/dev/.node/NAME).  Seen through /proc,
 * a process's open file on it is what it really is: /proc/PID/fd/N links to
 * "$UMOCKDEV_DIR/dev/video0", and stat() through the link finds a regular empty file.  The
 * kernel shows "/dev/video0" there (d_path of the open file; "/dev/video0 (deleted)" once the
 * node has been unlinked), and stat() through the link reaches the open file's inode: a
 * character device with its i_rdev.  So, for a path that is a /proc fd link
 * (/proc/PID/fd/N, /proc/self/fd/N, /proc/thread-self/fd/N, /proc/PID/task/TID/fd/N, or the
 * same reached relative to a directory descriptor or the working directory, e.g. "N"
 * relative to an open /proc/PID/fd):
 *
 * - readlink(), readlinkat() (and the fortified __readlink_chk(), which umockdev lacks) give
 *   the target the process sees: $UMOCKDEV_DIR taken off a target in the testbed's /dev or
 *   /sys, " (deleted)" kept.  Like the kernel's, they copy at most bufsiz bytes of it, with
 *   no NUL, and return how many they copied.
 * - stat(), stat64(), fstatat(), fstatat64(), __xstat(), __xstat64(), statx() (and
 *   __fxstatat() where umockdev builds it) that followed such a link to a regular file in the
 *   testbed's /dev report what umockdev reports for the /dev path: S_IFCHR (S_IFBLK with the
 *   sticky bit), the rest of the mode kept, and the node's number.  lstat(), and fstatat() or
 *   statx() with AT_SYMLINK_NOFOLLOW, see the link itself (S_IFLNK) and are left alone, as
 *   the kernel shows the link.  A link to anything else (a regular file, a real /dev/null, a
 *   pipe) is never touched.
 *
 * Which name.  d_path names the dentry the file was opened through, so the rig's server keeps
 * a node's file in place while its device stays registered and unlinks it when the device
 * goes, as devtmpfs does (it used to swap a whole new /dev in at every change, after which
 * every open node read "$UMOCKDEV_DIR/.old-dev/video0 (deleted)").
 *
 * Which number.  The kernel's open file holds its inode, and the inode its i_rdev, after the
 * node is unlinked and after another device takes its name; in the rig, /dev/video0 goes when
 * au0828 is unbound, and its .node entry goes with it.  Keeping .node entries would not do:
 * they are by name, and a reset machine (or any device that takes the name) writes the new
 * node's number there.  An xattr on the file would die with the inode, but user xattrs depend
 * on the file system ($TMPDIR; tmpfs has them only since Linux 6.6).  So the number is looked
 * up by inode:
 * the rig's server (server.py, Rig._show_dev) records every node file it makes as the symlink
 * $UMOCKDEV_DIR/.rdev/ST_DEV:ST_INO -> "MAJOR:MINOR NAME" before the file appears in /dev, and
 * keeps the record after it unlinks the file.  The record is read only for a link whose
 * target lies in the testbed's /dev, under the inode stat() reached, and only when it names
 * the same node: a stale record cannot be taken for a file elsewhere (a regular file, even one
 * that got a freed inode number, is never looked up), an inode number is reused only once no
 * fd holds the old file (nothing is left to look through), and the server rewrites the record
 * of every node it makes, reused numbers included.  Without a record (a testbed the rig's
 * server did not make), a node still in /dev takes .node/NAME, as stat("/dev/NAME") does; an
 * unlinked one has no number left to give and gets 0, as umockdev gives a node without a .node
 * entry.
 *
 * Cost: a stat() pays only string checks unless it succeeded on a regular file and its path
 * can be a /proc fd link (last component a number; an absolute path under /proc/); only then
 * are the link (and, for a relative path, the directory's link) read.
 *
 * Not emulated: st_dev and st_ino through the link are the testbed file's (as umockdev's stat
 * of /dev/video0 gives them), and so are fdinfo's ino and mnt_id; fstat() of the process's own
 * fd and an open() of /proc/PID/fd/N (a new file on the testbed's regular file: no ioctls)
 * are umockdev's; /proc/PID/cwd, map_files and maps are left as they are; a readlink() into a
 * bad buffer of a link this file answers faults in the process instead of failing with
 * EFAULT; a program that makes the system calls itself (statically linked, or syscall())
 * sees what umockdev alone shows.
 */

#define PROC_FD_RDEV_DIR ".rdev"
#define PROC_FD_LINK_MAX (PATH_MAX + 16)	/* a d_path: at most a page; a longer one is left to libc */
#define PROC_FD_PATH_MAX 256	/* any /proc fd link path is shorter: a longer one is not one */
#define PROC_FD_NONE (-2)	/* not a /proc fd link the rig has to answer: umockdev's way */

/* the link is a device node in the testbed's /dev: stat() turns the file into the node */
#define PROC_FD_STAT_ADJUST(dirfd_)						\
    if (ret == 0 && S_ISREG(st->st_mode) && proc_fd_maybe(path))		\
	proc_fd_adjust(dirfd_, path, &st->st_mode, &st->st_rdev, st->st_dev, st->st_ino)

static bool
proc_fd_number(const char *s, size_t n)
{
    if (n == 0)
	return false;
    for (size_t i = 0; i < n; ++i)
	if (s[i] < '0' || s[i] > '9')
	    return false;
    return true;
}

static bool
proc_fd_word(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && strncmp(s, word, n) == 0;
}

/* Whether PATH can name a /proc fd link at all: its last component is a number and, if it is
 * absolute, it is under /proc/.  No system call: all that any other stat() pays. */
static bool
proc_fd_maybe(const char *path)
{
    const char *last;

    if (path == NULL || path[0] == '\0' || (path[0] == '/' && strncmp(path, "/proc/", 6) != 0))
	return false;
    last = strrchr(path, '/');
    last = last != NULL ? last + 1 : path;
    return proc_fd_number(last, strlen(last));
}

/* Whether the absolute path FULL is /proc/{PID,self,thread-self}/fd/N or
 * /proc/{PID,self}/task/TID/fd/N (repeated slashes are one, as in a path walk). */
static bool
proc_fd_link_path(const char *full)
{
    const char *part[6];
    size_t len[6];
    int n = 0;

    for (const char *s = full; *s != '\0';) {
	if (*s == '/') {
	    ++s;
	    continue;
	}
	if (n == 6)
	    return false;
	part[n] = s;
	while (*s != '\0' && *s != '/')
	    ++s;
	len[n] = (size_t) (s - part[n]);
	++n;
    }
    if (n != 4 && n != 6)
	return false;
    if (!proc_fd_word(part[0], len[0], "proc"))
	return false;
    if (!proc_fd_number(part[1], len[1]) && !proc_fd_word(part[1], len[1], "self")
	&& !(n == 4 && proc_fd_word(part[1], len[1], "thread-self")))
	return false;
    if (n == 6 && !(proc_fd_word(part[2], len[2], "task") && proc_fd_number(part[3], len[3])))
	return false;
    return proc_fd_word(part[n - 2], len[n - 2], "fd") && proc_fd_number(part[n - 1], len[n - 1]);
}

/* PATH as an absolute path: relative to the directory DIRFD (or the working directory) as
 * the kernel names that directory.  False when it cannot be told. */
static bool
proc_fd_full_path(int dirfd, const char *path, char *full, size_t size)
{
    libc_func(readlink, ssize_t, const char *, char *, size_t);
    char dir_link[64];
    size_t path_len = strlen(path);
    ssize_t n;

    if (path[0] == '/') {
	if (path_len >= size)
	    return false;
	memcpy(full, path, path_len + 1);
	return true;
    }
    if (dirfd == AT_FDCWD)
	snprintf(dir_link, sizeof dir_link, "/proc/self/cwd");
    else
	snprintf(dir_link, sizeof dir_link, "/proc/self/fd/%d", dirfd);
    n = _readlink(dir_link, full, size);
    if (n <= 0 || full[0] != '/' || (size_t) n + 1 + path_len + 1 > size)
	return false;
    full[n] = '/';
    memcpy(full + n + 1, path, path_len + 1);
    return true;
}

struct proc_fd_root {
    char *env;
    char *real;
};
static struct proc_fd_root *proc_fd_root_cache;

/* $UMOCKDEV_DIR with its symlinks resolved, as d_path shows it (NULL when it cannot be
 * resolved).  Worked out once per process and kept, without a lock (a signal handler may stat
 * too): a thread that loses the race to publish its copy frees it. */
static const char *
proc_fd_real_root(const char *env, char *buf)
{
    libc_func(realpath, char *, const char *, char *);
    struct proc_fd_root *cached = __atomic_load_n(&proc_fd_root_cache, __ATOMIC_ACQUIRE);
    struct proc_fd_root *made;

    if (cached != NULL && strcmp(cached->env, env) == 0)
	return cached->real;
    if (_realpath(env, buf) == NULL)
	return NULL;
    if (cached != NULL || (made = calloc(1, sizeof *made)) == NULL)
	return buf;
    made->env = strdup(env);
    made->real = strdup(buf);
    if (made->env == NULL || made->real == NULL
	|| !__atomic_compare_exchange_n(&proc_fd_root_cache, &cached, made, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE)) {
	free(made->env);
	free(made->real);
	free(made);
    }
    return buf;
}

/* Whether REST (a link target after the testbed's directory) is TOP ("/dev", "/sys"), in it,
 * or TOP itself deleted. */
static bool
proc_fd_in(const char *rest, const char *top)
{
    size_t n = strlen(top);
    return strncmp(rest, top, n) == 0
	&& (rest[n] == '\0' || rest[n] == '/' || strcmp(rest + n, " (deleted)") == 0);
}

/* The part of the link target TARGET after the testbed's directory when TARGET lies in the
 * testbed's /dev or /sys (what the process sees there: "/dev/video0"), else NULL. */
static const char *
proc_fd_in_testbed(const char *target, const char *env)
{
    char buf[PATH_MAX];
    const char *root = env;
    size_t n = strlen(env);

    if (target[0] != '/')	/* socket:[...], pipe:[...], anon_inode:[...] */
	return NULL;
    if (strncmp(target, root, n) != 0 || target[n] != '/') {
	root = proc_fd_real_root(env, buf);
	if (root == NULL)
	    return NULL;
	n = strlen(root);
	if (strncmp(target, root, n) != 0 || target[n] != '/')
	    return NULL;
    }
    if (proc_fd_in(target + n, "/dev") || proc_fd_in(target + n, "/sys"))
	return target + n;
    return NULL;
}

/* What the process sees as the target of the link PATH (relative to DIRFD), written to SEEN
 * with a NUL; its length.  *TESTBED tells whether it lies in the testbed (then SEEN is the
 * path under it: "/dev/video0", "/dev/video0 (deleted)").  PROC_FD_NONE when PATH is not a
 * /proc fd link this file answers for (umockdev's own answer stands: its testbed is disabled,
 * or it has a file of its own for that /proc path); -1 with errno when reading the link
 * fails. */
static ssize_t
proc_fd_target(int dirfd, const char *path, char *seen, size_t size, bool *testbed)
{
    libc_func(readlinkat, ssize_t, int, const char *, char *, size_t);
    const char *env = getenv("UMOCKDEV_DIR");
    const char *rest;
    char full[PROC_FD_PATH_MAX];
    char probe[PATH_MAX];
    int saved = errno;
    ssize_t n;

    *testbed = false;
    if (env == NULL || env[0] == '\0' || !proc_fd_full_path(dirfd, path, full, sizeof full)
	|| !proc_fd_link_path(full)) {
	errno = saved;
	return PROC_FD_NONE;
    }
    /* what trap_path() does with the path first */
    if ((size_t) snprintf(probe, sizeof probe, "%s/disabled", env) >= sizeof probe || path_exists(probe) == 0)
	return PROC_FD_NONE;
    if (path[0] == '/' && ((size_t) snprintf(probe, sizeof probe, "%s%s", env, path) >= sizeof probe
			   || path_exists(probe) == 0))
	return PROC_FD_NONE;

    n = _readlinkat(dirfd, path, seen, size);
    if (n < 0)
	return -1;
    if ((size_t) n >= size) {	/* longer than any d_path: the kernel's own answer */
	errno = saved;
	return PROC_FD_NONE;
    }
    seen[n] = '\0';
    rest = proc_fd_in_testbed(seen, env);
    if (rest != NULL) {
	n = (ssize_t) strlen(rest);
	memmove(seen, rest, (size_t) n + 1);
	*testbed = true;
    }
    errno = saved;
    return n;
}

/* The number of the node NAME ("video0", "snd/controlC0") whose file is the inode FS_DEV:INO:
 * its record, else (for a node still in /dev) its .node entry, else 0.  See the top. */
static dev_t
proc_fd_rdev(const char *name, bool deleted, dev_t fs_dev, uint64_t ino)
{
    libc_func(readlink, ssize_t, const char *, char *, size_t);
    const char *env = getenv("UMOCKDEV_DIR");
    char link[PATH_MAX];
    char value[PATH_MAX + 32];
    unsigned major, minor;
    int at = 0;
    ssize_t n;
    int len;

    len = snprintf(link, sizeof link, "%s/" PROC_FD_RDEV_DIR "/%ju:%ju", env, (uintmax_t) fs_dev, (uintmax_t) ino);
    if (len > 0 && (size_t) len < sizeof link && (n = _readlink(link, value, sizeof value - 1)) > 0) {
	value[n] = '\0';
	if (sscanf(value, "%u:%u %n", &major, &minor, &at) == 2 && at > 0 && strcmp(value + at, name) == 0)
	    return makedev(major, minor);
    }
    if (deleted)
	return 0;
    len = snprintf(link, sizeof link, "%s/dev/.node/%s", env, name);
    if (len <= 0 || (size_t) len >= sizeof link)
	return 0;
    for (char *c = link + strlen(env) + strlen("/dev/.node/"); *c != '\0'; ++c)
	if (*c == '/')
	    *c = '_';
    n = _readlink(link, value, sizeof value - 1);
    if (n <= 0)
	return 0;
    value[n] = '\0';
    if (sscanf(value, "%u:%u", &major, &minor) != 2)
	return 0;
    return makedev(major, minor);
}

/* After a stat() of PATH (relative to DIRFD) that found a regular file, the inode FS_DEV:INO
 * with *MODE: when PATH is a /proc fd link to a node in the testbed's /dev, the node's type
 * and number.  True when it was one. */
static bool
proc_fd_device(int dirfd, const char *path, mode_t *mode, dev_t *rdev, dev_t fs_dev, uint64_t ino)
{
    static const char deleted_suffix[] = " (deleted)";
    const size_t suffix_len = sizeof deleted_suffix - 1;
    char seen[PROC_FD_LINK_MAX];
    bool testbed, deleted;
    ssize_t n;

    n = proc_fd_target(dirfd, path, seen, sizeof seen, &testbed);
    if (n <= 5 || !testbed || strncmp(seen, "/dev/", 5) != 0)
	return false;
    deleted = (size_t) n > suffix_len && strcmp(seen + n - suffix_len, deleted_suffix) == 0;
    if (deleted)
	seen[n - suffix_len] = '\0';
    if (seen[5] == '\0')
	return false;
    *mode = ((*mode & S_ISVTX) ? S_IFBLK : S_IFCHR) | (*mode & ~S_IFMT);
    *rdev = proc_fd_rdev(seen + 5, deleted, fs_dev, ino);
    DBG(DBG_PATH, "  %s is a /proc fd link to emulated device %s%s: %u:%u\n", path, seen,
	deleted ? deleted_suffix : "", major(*rdev), minor(*rdev));
    return true;
}

static void
proc_fd_adjust(int dirfd, const char *path, mode_t *mode, dev_t *rdev, dev_t fs_dev, uint64_t ino)
{
    int saved = errno;
    proc_fd_device(dirfd, path, mode, rdev, fs_dev, ino);
    errno = saved;
}

/* statx()'s: the same, for a result that has the file's type */
static void
proc_fd_statx(int r, int dirfd, const char *path, struct statx *stx)
{
    int saved = errno;
    mode_t mode;
    dev_t rdev;

    if (r != 0 || !(stx->stx_mask & STATX_TYPE) || !S_ISREG(stx->stx_mode) || !proc_fd_maybe(path))
	return;
    mode = stx->stx_mode;
    if (proc_fd_device(dirfd, path, &mode, &rdev, makedev(stx->stx_dev_major, stx->stx_dev_minor), stx->stx_ino)) {
	stx->stx_mode = (uint16_t) mode;
	stx->stx_rdev_major = major(rdev);
	stx->stx_rdev_minor = minor(rdev);
    }
    errno = saved;
}

/* readlink() of a /proc fd link: the target the process sees, cut at BUFSIZ as the kernel cuts
 * it (no NUL); PROC_FD_NONE for any other path, and for a bufsiz of 0 (the kernel's EINVAL). */
static ssize_t
proc_fd_readlink(int dirfd, const char *path, char *buf, size_t bufsiz)
{
    char seen[PROC_FD_LINK_MAX];
    bool testbed;
    ssize_t n;

    if (bufsiz == 0 || !proc_fd_maybe(path))
	return PROC_FD_NONE;
    n = proc_fd_target(dirfd, path, seen, sizeof seen, &testbed);
    if (n < 0)
	return n;
    if (buf == NULL) {
	errno = EFAULT;
	return -1;
    }
    if ((size_t) n > bufsiz)
	n = (ssize_t) bufsiz;
    memcpy(buf, seen, (size_t) n);
    return n;
}

/* umockdev's readlink() (WRAP_3ARGS) and readlinkat(), after the /proc fd link check; a
 * readlink() is the readlinkat() of the working directory, as in the kernel */
ssize_t
readlink(const char *path, char *buf, size_t bufsiz)
{
    return readlinkat(AT_FDCWD, path, buf, bufsiz);
}

ssize_t
readlinkat(int dirfd, const char *pathname, char *buf, size_t bufsiz)
{
    libc_func(readlinkat, ssize_t, int, const char *, char *, size_t);
    const char *p;
    ssize_t r = proc_fd_readlink(dirfd, pathname, buf, bufsiz);

    if (r != PROC_FD_NONE)
	return r;
    TRAP_PATH_LOCK;
    p = trap_path(pathname);
    DBG(DBG_PATH, "testbed wrapped readlinkat (%s) -> %s\n", pathname, p ?: "NULL");
    if (p == NULL)
	r = -1;
    else
	r = _readlinkat(dirfd, p, buf, bufsiz);
    TRAP_PATH_UNLOCK;
    return r;
}

/* readlink() of a program built with _FORTIFY_SOURCE and a buffer of known size: glibc's
 * would read the link itself, past every wrapper (umockdev wraps only __readlinkat_chk) */
ssize_t __readlink_chk(const char *path, char *buf, size_t bufsiz, size_t buflen);
ssize_t
__readlink_chk(const char *path, char *buf, size_t bufsiz, size_t buflen)
{
    extern void __chk_fail(void) __attribute__((noreturn));

    if (bufsiz > buflen)
	__chk_fail();
    return readlink(path, buf, bufsiz);
}
