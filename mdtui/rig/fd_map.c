/* The rig's replacement for umockdev 0.17's fd map (src/libumockdev-preload.c), spliced in by
 * mdtui/rig/preload.py when it builds the preload library.  umockdev's map is a fixed array of
 * 50 entries and aborts the client at the 51st emulated file ("fd_map_add(): overflow"), where
 * a kernel lets a process hold RLIMIT_NOFILE files; v4l2-compliance's multiple-open test and
 * `arecord -l` open more.  This one grows as needed (doubling), and takes a lock, since a
 * growing map moves under a reader in another thread.  Same functions, same behaviour
 * otherwise: fd_map_remove() of an unknown fd still aborts, as umockdev's does. */

typedef struct {
    size_t cap;
    int *set;
    int *fd;
    const void **data;
} fd_map;

static pthread_mutex_t fd_map_lock = PTHREAD_MUTEX_INITIALIZER;

static void
fd_map_grow(fd_map * map)
{
    size_t cap = map->cap ? 2 * map->cap : 64;
    int *set = calloc(cap, sizeof *set);
    int *fd = calloc(cap, sizeof *fd);
    const void **data = calloc(cap, sizeof *data);
    if (set == NULL || fd == NULL || data == NULL) {
	fprintf(stderr, "libumockdev-preload fd_map_add(): out of memory for %zu entries", cap);
	abort();
    }
    if (map->cap) {
	memcpy(set, map->set, map->cap * sizeof *set);
	memcpy(fd, map->fd, map->cap * sizeof *fd);
	memcpy(data, map->data, map->cap * sizeof *data);
    }
    free(map->set);
    free(map->fd);
    free((void *) map->data);
    map->set = set;
    map->fd = fd;
    map->data = data;
    map->cap = cap;
}

static void
fd_map_add(fd_map * map, int fd, const void *data)
{
    size_t i;
    pthread_mutex_lock(&fd_map_lock);
    for (i = 0; i < map->cap && map->set[i]; ++i)
	;
    if (i == map->cap)
	fd_map_grow(map);
    map->set[i] = 1;
    map->fd[i] = fd;
    map->data[i] = data;
    pthread_mutex_unlock(&fd_map_lock);
}

static void
fd_map_remove(fd_map * map, int fd)
{
    size_t i;
    pthread_mutex_lock(&fd_map_lock);
    for (i = 0; i < map->cap; ++i) {
	if (map->set[i] && map->fd[i] == fd) {
	    map->set[i] = 0;
	    pthread_mutex_unlock(&fd_map_lock);
	    return;
	}
    }
    pthread_mutex_unlock(&fd_map_lock);
    fprintf(stderr, "libumockdev-preload fd_map_remove(): did not find fd %i", fd);
    abort();
}

static int
fd_map_get(fd_map * map, int fd, const void **data_out)
{
    size_t i;
    const void *data = NULL;
    int found = 0;
    pthread_mutex_lock(&fd_map_lock);
    for (i = 0; i < map->cap; ++i) {
	if (map->set[i] && map->fd[i] == fd) {
	    data = map->data[i];
	    found = 1;
	    break;
	}
    }
    pthread_mutex_unlock(&fd_map_lock);
    if (data_out != NULL)
	*data_out = data;
    return found;
}
