/* The rig's replacement for umockdev 0.17's ioctl_emulate_open() (src/libumockdev-preload.c),
 * spliced in by mdtui/rig/preload.py.  umockdev connects a socket to the testbed for every
 * emulated /dev file the client opens; when that socket cannot be made (the process is out
 * of files: EMFILE) umockdev prints an error and ends the process with exit(1), and it even
 * tries when the open itself failed.  Here the open fails instead, as the kernel's open()
 * fails when the process is out of files: the file is closed again and open() returns -1
 * with socket()'s or connect()'s errno (the wrappers take the new return value).  A failed
 * open is passed through untouched. */

static int
ioctl_emulate_open(int fd, const char *dev_path, int must_exist)
{
    libc_func(socket, int, int, int, int);
    libc_func(connect, int, int, const struct sockaddr *, socklen_t);
    libc_func(close, int, int);
    int is_default = 0;
    int sock;
    int saved;
    struct ioctl_fd_info *fdinfo;
    struct sockaddr_un addr;

    if (fd < 0 || strncmp(dev_path, "/dev/", 5) != 0)
	return fd;

    addr.sun_family = AF_UNIX;
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/ioctl/%s", getenv("UMOCKDEV_DIR"), dev_path);
    if (path_exists(addr.sun_path) != 0) {
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/ioctl/_default", getenv("UMOCKDEV_DIR"));
	is_default = 1;
    }

    sock = _socket(AF_UNIX, SOCK_STREAM, 0);
    if (sock == -1 || _connect(sock, (const struct sockaddr *) &addr, sizeof(addr)) == -1) {
	saved = errno;
	if (sock != -1)
	    _close(sock);
	if (!must_exist)
	    return fd;
	_close(fd);
	errno = saved;
	return -1;
    }

    fdinfo = mallocx(sizeof(struct ioctl_fd_info));
    fdinfo->ioctl_sock = sock;
    fdinfo->dev_path = strdupx(dev_path);
    fdinfo->is_default = is_default;
    pthread_mutex_init(&fdinfo->sock_lock, NULL);
    fd_map_add(&ioctl_wrapped_fds, fd, fdinfo);
    return fd;
}
