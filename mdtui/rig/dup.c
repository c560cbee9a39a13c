/* The rig's replacement for umockdev 0.17's ioctl_emulate_close(), and wrappers of dup(),
 * dup2(), dup3() and fcntl(F_DUPFD*), spliced in by mdtui/rig/preload.py.
 *
 * In the kernel a descriptor made by dup() is one more reference to the same open file: the
 * file lives until its last descriptor closes, in whichever process (a shell's
 * `sleep 60 < /dev/video0` opens the node, dup2()s it to 0, closes the original and execs).
 * umockdev ties an emulated file to the descriptor number it was opened as: its ioctl socket
 * (which the rig sees as the open file, mdtui/rig/peers.py) is closed with that number, and a
 * dup of it is a plain file.  Here a dup shares the emulated file (the same socket), and the
 * socket is closed only when no descriptor of this process maps to it any more.  The socket
 * itself is not close-on-exec, so after an exec the new program keeps it as long as it keeps
 * the file (its own map is empty: ioctls on the inherited descriptor are not emulated). */

static int
ioctl_fd_info_shared(const void *info)
{
    size_t i;
    int shared = 0;
    pthread_mutex_lock(&fd_map_lock);
    for (i = 0; i < ioctl_wrapped_fds.cap && !shared; ++i)
	shared = ioctl_wrapped_fds.set[i] && ioctl_wrapped_fds.data[i] == info;
    pthread_mutex_unlock(&fd_map_lock);
    return shared;
}

static void
ioctl_emulate_close(int fd)
{
    libc_func(close, int, int);
    struct ioctl_fd_info *fdinfo;

    if (fd_map_get(&ioctl_wrapped_fds, fd, (const void **)&fdinfo)) {
	DBG(DBG_IOCTL, "ioctl_emulate_close: fd %i\n", fd);
	fd_map_remove(&ioctl_wrapped_fds, fd);
	if (ioctl_fd_info_shared(fdinfo))
	    return; /* another descriptor still holds the file */
	if (fdinfo->ioctl_sock >= 0)
	    _close(fdinfo->ioctl_sock);
	free(fdinfo->dev_path);
	pthread_mutex_destroy(&fdinfo->sock_lock);
	free(fdinfo);
    }
}

/* newfd now refers to oldfd's file: share oldfd's emulation (called with the dup's result;
 * for dup2/dup3, newfd's old emulation is dropped first: the call closed that file) */
static void
ioctl_emulate_dup(int oldfd, int newfd)
{
    const void *info;
    if (newfd >= 0 && newfd != oldfd && fd_map_get(&ioctl_wrapped_fds, oldfd, &info))
	fd_map_add(&ioctl_wrapped_fds, newfd, info);
}

int
dup(int oldfd)
{
    libc_func(dup, int, int);
    int r = _dup(oldfd);
    ioctl_emulate_dup(oldfd, r);
    return r;
}

static int
dup_onto(int oldfd, int newfd, int flags, int three)
{
    libc_func(dup2, int, int, int);
    libc_func(dup3, int, int, int, int);
    int r = three ? _dup3(oldfd, newfd, flags) : _dup2(oldfd, newfd);
    if (r >= 0 && oldfd != newfd) {
	ioctl_emulate_close(newfd); /* what newfd held was closed by the call */
	ioctl_emulate_dup(oldfd, r);
    }
    return r;
}

int
dup2(int oldfd, int newfd)
{
    return dup_onto(oldfd, newfd, 0, 0);
}

int
dup3(int oldfd, int newfd, int flags)
{
    return dup_onto(oldfd, newfd, flags, 1);
}

#define WRAP_FCNTL(name)							\
int name(int fd, int cmd, ...)							\
{										\
    libc_func(name, int, int, int, ...);					\
    va_list ap;									\
    void *arg;									\
    int r;									\
    va_start(ap, cmd);								\
    arg = va_arg(ap, void *); /* as glibc's own fcntl() reads it */		\
    va_end(ap);									\
    r = _ ## name(fd, cmd, arg);						\
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)				\
	ioctl_emulate_dup(fd, r);						\
    return r;									\
}

WRAP_FCNTL(fcntl)
WRAP_FCNTL(fcntl64)
