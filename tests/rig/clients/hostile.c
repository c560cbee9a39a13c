/*
 * A hostile client of the rig's /dev/media0 (tests/rig/test_hostile.py compiles and runs it).
 *
 *   hostile efault            every media ioctl with bad argument and user pointers: one line
 *                             per case, "NAME ERRNO-NAME", then "alive" if the fd still works
 *   hostile null              every media ioctl with a NULL argument (for a run without the
 *                             rig's shim: the rig itself must answer EFAULT)
 *   hostile loop N [MODE]     N rounds of open, DEVICE_INFO, G_TOPOLOGY twice (counts, then
 *                             arrays), close; prints "ok N SUM" (SUM: a digest of the arrays).
 *                             MODE "keep": G_TOPOLOGY rounds on one fd; "pause": 2 ms between
 *                             calls; "noclose": no close at all (the files go at exit).
 *   hostile leak N [_exit]    open N times, one DEVICE_INFO each, exit without close
 *                             (through exit(), or _exit() with "_exit")
 *
 * Wild pointers: NULL, 0x1, 0xdeadbeef000, a page unmapped again, a read-only page, and an
 * array that ends at an unmapped page (the kernel writes the whole elements that fit).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <linux/media.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define NODE "/dev/media0"
#define RIG_IOCTL _IOWR('|', 0xF0, char[96]) /* the shim's own request: ENOTTY from a program */

static long page;
static void *unmapped, *readonly, *tail; /* tail: the last page before an unmapped one */

static const char *ename(int e)
{
    switch (e) {
    case 0: return "OK";
    case EFAULT: return "EFAULT";
    case ENOTTY: return "ENOTTY";
    case EINVAL: return "EINVAL";
    case ENOSPC: return "ENOSPC";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    default: return "OTHER";
    }
}

static int call(int fd, unsigned long request, void *arg)
{
    return ioctl(fd, request, arg) == 0 ? 0 : errno;
}

static void report(const char *name, int err)
{
    printf("%s %s\n", name, ename(err));
    fflush(stdout);
}

/* one reservation, so that no later mapping lands in its holes: [unmapped][readonly][tail][unmapped] */
static void setup(void)
{
    page = sysconf(_SC_PAGESIZE);
    char *four = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unmapped = four, readonly = four + page, tail = four + 2 * page;
    munmap(four, page);
    mprotect(readonly, page, PROT_READ); /* zeros */
    munmap(four + 3 * page, page);
}

/* still unmapped (msync fails with ENOMEM): the cases really had a hole there */
static int holes_intact(void)
{
    return msync(unmapped, page, MS_ASYNC) != 0 && errno == ENOMEM && msync((char *)tail + page, page, MS_ASYNC) != 0 &&
           errno == ENOMEM;
}

static const struct { const char *name; void **where; uintptr_t value; } wild[] = {
    {"0x1", NULL, 0x1}, {"0xdeadbeef000", NULL, 0xdeadbeef000}, {"unmapped", &unmapped, 0}, {"readonly", &readonly, 0},
};
#define NWILD (sizeof wild / sizeof wild[0])

static void *wild_ptr(size_t i)
{
    return wild[i].where ? *wild[i].where : (void *)wild[i].value;
}

static const struct { const char *name; unsigned long request; } requests[] = {
    {"DEVICE_INFO", MEDIA_IOC_DEVICE_INFO}, {"ENUM_ENTITIES", MEDIA_IOC_ENUM_ENTITIES},
    {"ENUM_LINKS", MEDIA_IOC_ENUM_LINKS},   {"SETUP_LINK", MEDIA_IOC_SETUP_LINK},
    {"G_TOPOLOGY", MEDIA_IOC_G_TOPOLOGY},
};

static int efault(void)
{
    char name[128];
    int fd = open(NODE, O_RDWR);
    if (fd < 0) {
        perror(NODE);
        return 1;
    }
    setup();
    /* the argument itself; a read-only one is also called as a zeroed writable one: the
     * kernel answers the same, except that a call that succeeds then fails to copy out */
    static char zeroed[4096];
    for (size_t r = 0; r < sizeof requests / sizeof requests[0]; r++) {
        snprintf(name, sizeof name, "%s arg NULL", requests[r].name);
        report(name, call(fd, requests[r].request, NULL));
        for (size_t w = 0; w < NWILD; w++) {
            snprintf(name, sizeof name, "%s arg %s", requests[r].name, wild[w].name);
            report(name, call(fd, requests[r].request, wild_ptr(w)));
        }
        memset(zeroed, 0, sizeof zeroed);
        snprintf(name, sizeof name, "%s arg zeroed", requests[r].name);
        report(name, call(fd, requests[r].request, zeroed));
    }
    report("RIG_IOCTL arg 0x1", call(fd, RIG_IOCTL, (void *)0x1));

    /* G_TOPOLOGY's four arrays: the counts first, then one array pointer wild at a time */
    struct media_v2_topology counts = {0};
    report("G_TOPOLOGY counts", call(fd, MEDIA_IOC_G_TOPOLOGY, &counts));
    size_t sizes[4] = {sizeof(struct media_v2_entity), sizeof(struct media_v2_interface), sizeof(struct media_v2_pad),
                       sizeof(struct media_v2_link)};
    unsigned nums[4] = {counts.num_entities, counts.num_interfaces, counts.num_pads, counts.num_links};
    const char *arrays[4] = {"ptr_entities", "ptr_interfaces", "ptr_pads", "ptr_links"};
    void *bufs[4];
    for (int a = 0; a < 4; a++)
        bufs[a] = calloc(nums[a] + 1, sizeof(struct media_v2_interface));
    for (int a = 0; a < 4; a++) {
        for (size_t w = 0; w < NWILD + 1; w++) {
            struct media_v2_topology t = counts;
            size_t at[4] = {offsetof(struct media_v2_topology, ptr_entities),
                            offsetof(struct media_v2_topology, ptr_interfaces),
                            offsetof(struct media_v2_topology, ptr_pads), offsetof(struct media_v2_topology, ptr_links)};
            for (int b = 0; b < 4; b++) {
                uint64_t v = b == a ? (w < NWILD ? (uintptr_t)wild_ptr(w) : 0) : (uintptr_t)bufs[b];
                memcpy((char *)&t + at[b], &v, sizeof v);
            }
            snprintf(name, sizeof name, "G_TOPOLOGY %s %s", arrays[a], w < NWILD ? wild[w].name : "NULL");
            report(name, call(fd, MEDIA_IOC_G_TOPOLOGY, &t));
        }
    }
    /* entities into the last page before a hole: the whole entities that fit are written */
    {
        struct media_v2_topology good = counts, cut = counts;
        good.ptr_entities = (uintptr_t)bufs[0];
        call(fd, MEDIA_IOC_G_TOPOLOGY, &good);
        size_t fit = (size_t)page / sizes[0];
        memset(tail, 0xAA, (size_t)page);
        cut.ptr_entities = (uintptr_t)tail;
        report("G_TOPOLOGY ptr_entities end-of-mapping", call(fd, MEDIA_IOC_G_TOPOLOGY, &cut));
        int same = memcmp(tail, bufs[0], fit * sizes[0]) == 0;
        int rest = 1;
        for (size_t i = fit * sizes[0]; i < (size_t)page; i++)
            rest &= ((unsigned char *)tail)[i] == 0xAA;
        report("G_TOPOLOGY partial-whole-elements", same && rest ? 0 : EIO);
    }

    /* ENUM_LINKS: an entity with pads and links, and one without outbound links */
    struct media_entity_desc e = {.id = MEDIA_ENT_ID_FLAG_NEXT};
    uint32_t with = 0, without = 0;
    while (call(fd, MEDIA_IOC_ENUM_ENTITIES, &e) == 0) {
        if (!with && e.pads && e.links)
            with = e.id;
        if (!without && !e.links)
            without = e.id;
        e.id |= MEDIA_ENT_ID_FLAG_NEXT;
    }
    struct media_pad_desc pads[64];
    struct media_link_desc links[1024];
    for (int f = 0; f < 2; f++) {
        for (size_t w = 0; w < NWILD + 1; w++) {
            struct media_links_enum l = {.entity = with, .pads = pads, .links = links};
            void *p = w < NWILD ? wild_ptr(w) : NULL;
            if (f == 0)
                l.pads = p;
            else
                l.links = p;
            snprintf(name, sizeof name, "ENUM_LINKS %s %s", f == 0 ? "pads" : "links", w < NWILD ? wild[w].name : "NULL");
            report(name, call(fd, MEDIA_IOC_ENUM_LINKS, &l));
        }
    }
    if (without) {
        struct media_links_enum l = {.entity = without, .pads = pads, .links = (void *)0x1};
        report("ENUM_LINKS no-links links 0x1", call(fd, MEDIA_IOC_ENUM_LINKS, &l));
    }
    report("holes-intact", holes_intact() ? 0 : EIO);
    struct media_device_info info;
    if (call(fd, MEDIA_IOC_DEVICE_INFO, &info) == 0 && strcmp(info.driver, "au0828") == 0)
        puts("alive");
    close(fd);
    return 0;
}

static int null_args(void)
{
    char name[64];
    int fd = open(NODE, O_RDWR);
    if (fd < 0) {
        perror(NODE);
        return 1;
    }
    for (size_t r = 0; r < sizeof requests / sizeof requests[0]; r++) {
        snprintf(name, sizeof name, "%s arg NULL", requests[r].name);
        report(name, call(fd, requests[r].request, NULL));
    }
    struct media_device_info info;
    if (call(fd, MEDIA_IOC_DEVICE_INFO, &info) == 0 && strcmp(info.driver, "au0828") == 0)
        puts("alive");
    close(fd);
    return 0;
}

static unsigned long digest(const void *p, size_t n, unsigned long h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = h * 131 + b[i];
    return h;
}

static int topology(int fd, unsigned long *sum)
{
    struct media_v2_topology t = {0};
    if (ioctl(fd, MEDIA_IOC_G_TOPOLOGY, &t) != 0)
        return errno;
    void *e = calloc(t.num_entities + 1, sizeof(struct media_v2_entity));
    void *i = calloc(t.num_interfaces + 1, sizeof(struct media_v2_interface));
    void *p = calloc(t.num_pads + 1, sizeof(struct media_v2_pad));
    void *l = calloc(t.num_links + 1, sizeof(struct media_v2_link));
    t.ptr_entities = (uintptr_t)e, t.ptr_interfaces = (uintptr_t)i, t.ptr_pads = (uintptr_t)p, t.ptr_links = (uintptr_t)l;
    int err = ioctl(fd, MEDIA_IOC_G_TOPOLOGY, &t) != 0 ? errno : 0;
    if (!err) {
        *sum = digest(e, t.num_entities * sizeof(struct media_v2_entity), *sum);
        *sum = digest(i, t.num_interfaces * sizeof(struct media_v2_interface), *sum);
        *sum = digest(p, t.num_pads * sizeof(struct media_v2_pad), *sum);
        *sum = digest(l, t.num_links * sizeof(struct media_v2_link), *sum);
    }
    free(e), free(i), free(p), free(l);
    return err;
}

static int loop(int n, const char *mode)
{
    int keep = strcmp(mode, "keep") == 0, pause = strcmp(mode, "pause") == 0, noclose = strcmp(mode, "noclose") == 0;
    unsigned long sum = 0;
    struct media_device_info info;
    int fd = -1;
    for (int round = 0; round < n; round++) {
        if (fd < 0 || !keep)
            fd = open(NODE, O_RDWR);
        if (fd < 0 || ioctl(fd, MEDIA_IOC_DEVICE_INFO, &info) != 0) {
            printf("fail %d %s\n", round, strerror(errno));
            return 1;
        }
        if (pause)
            usleep(2000);
        unsigned long one = 0;
        int err = topology(fd, &one);
        if (err) {
            printf("fail %d %s\n", round, strerror(err));
            return 1;
        }
        if (round && one != sum) {
            printf("fail %d topology changed\n", round);
            return 1;
        }
        sum = one;
        if (pause)
            usleep(2000);
        if (!keep && !noclose) {
            close(fd);
            fd = -1;
        }
    }
    printf("ok %d %lu\n", n, sum);
    return 0;
}

static int leak(int n, int hard)
{
    struct media_device_info info;
    for (int i = 0; i < n; i++) {
        int fd = open(NODE, O_RDWR);
        if (fd < 0 || ioctl(fd, MEDIA_IOC_DEVICE_INFO, &info) != 0)
            return 1;
    }
    if (hard)
        _exit(0);
    exit(0);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "efault") == 0)
        return efault();
    if (argc >= 2 && strcmp(argv[1], "null") == 0)
        return null_args();
    if (argc >= 3 && strcmp(argv[1], "loop") == 0)
        return loop(atoi(argv[2]), argc >= 4 ? argv[3] : "");
    if (argc >= 3 && strcmp(argv[1], "leak") == 0)
        return leak(atoi(argv[2]), argc >= 4 && strcmp(argv[3], "_exit") == 0);
    fprintf(stderr, "usage: hostile efault | null | loop N [keep|pause|noclose] | leak N [_exit]\n");
    return 2;
}
