#define _GNU_SOURCE
#include "ksrsys.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__)
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sched.h>

static _Thread_local uint64_t random_pool[64];
static _Thread_local unsigned random_left = 0;

unsigned long long ksr_random64(void) {
    if (random_left == 0) {
        size_t got = 0;
        while (got < sizeof random_pool) {
            ssize_t n = getrandom((char *)random_pool + got, sizeof random_pool - got, 0);
            if (n > 0) got += (size_t)n;
            else if (n < 0 && errno != EINTR) abort();  /* no kernel randomness: nothing safe to hand out */
        }
        random_left = 64;
    }
    uint64_t v = random_pool[--random_left];
    random_pool[random_left] = 0;  /* a drawn value does not stay in memory */
    return v;
}

int ksr_recv_datagrams(int fd, ksr_datagram *slots, unsigned n) {
    struct mmsghdr msgs[64];
    struct iovec iov[64];
    if (n > 64) n = 64;
    memset(msgs, 0, sizeof(struct mmsghdr) * n);
    for (unsigned i = 0; i < n; i++) {
        iov[i].iov_base = slots[i].buffer;
        iov[i].iov_len = slots[i].capacity;
        msgs[i].msg_hdr.msg_name = &slots[i].from;
        msgs[i].msg_hdr.msg_namelen = sizeof(slots[i].from);
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int got;
    do {
        got = recvmmsg(fd, msgs, n, MSG_DONTWAIT, NULL);
    } while (got < 0 && errno == EINTR);
    for (int i = 0; i < got; i++) {
        slots[i].length = msgs[i].msg_len;
        slots[i].truncated = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
    }
    return got;
}

int ksr_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

void ksr_eventfd_signal(int fd) {
    uint64_t one = 1;
    while (write(fd, &one, sizeof one) < 0 && errno == EINTR) {}
}

void ksr_eventfd_clear(int fd) {
    uint64_t value;
    while (read(fd, &value, sizeof value) < 0 && errno == EINTR) {}
}

int ksr_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int ksr_epoll_add(int epfd, int fd, int exclusive) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | (exclusive ? EPOLLEXCLUSIVE : 0);
    ev.data.fd = fd;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

int ksr_epoll_remove(int epfd, int fd) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev);
}

static _Atomic int no_pwait2 = 0;  /* set once by whichever thread first finds ENOSYS */

int ksr_epoll_wait(int epfd, int *fds, int max, long long timeout_ns) {
    struct epoll_event events[32];
    if (max > 32) max = 32;
    int n = -1;
#ifdef SYS_epoll_pwait2
    if (!no_pwait2 && timeout_ns > 0) {
        struct timespec ts = { (time_t)(timeout_ns / 1000000000LL), (long)(timeout_ns % 1000000000LL) };
        n = (int)syscall(SYS_epoll_pwait2, epfd, events, max, &ts, NULL, 0);
        if (n < 0 && errno == ENOSYS) no_pwait2 = 1;
    }
    if (no_pwait2 || timeout_ns <= 0)
#endif
    {
        int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999LL) / 1000000LL);
        n = epoll_wait(epfd, events, max, ms);
    }
    for (int i = 0; i < n; i++) fds[i] = events[i].data.fd;
    return n;
}

static inline unsigned long long monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

void ksr_spin_until(unsigned long long deadline_ns) {
    while (monotonic_ns() < deadline_ns) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield");
#endif
    }
}

/* The kernel's struct sched_attr (include/uapi/linux/sched/types.h), first version. */
struct ksr_sched_attr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;  /* SCHED_OTHER: the requested slice (6.6+) */
    uint64_t sched_deadline;
    uint64_t sched_period;
};

int ksr_set_sched_slice_ns(unsigned long long slice_ns) {
#if defined(SYS_sched_getattr) && defined(SYS_sched_setattr)
    struct ksr_sched_attr attr;
    memset(&attr, 0, sizeof attr);
    if (syscall(SYS_sched_getattr, 0, &attr, (unsigned)sizeof attr, 0) != 0) return -1;
    if (attr.sched_policy != SCHED_OTHER) { errno = EPERM; return -1; }  /* leave other policies alone */
    attr.size = sizeof attr;
    attr.sched_flags = 0;
    attr.sched_runtime = slice_ns;
    return (int)syscall(SYS_sched_setattr, 0, &attr, 0);
#else
    (void)slice_ns;
    errno = ENOSYS;
    return -1;
#endif
}

int ksr_malloc_arena_max(int n) {
    if (getenv("MALLOC_ARENA_MAX") != NULL || n <= 0) return 0;  /* the user's setting wins */
    return mallopt(M_ARENA_MAX, n) == 1 ? 1 : -1;
}

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

/* Drops this process's page-table entries for the resident pages of read-only file mappings
   (the executable's and the libraries' code and constants) whose pages are all still the
   file's own (smaps `Anonymous: 0 kB`: no private copy, e.g. no relocated RELRO page, which
   MADV_DONTNEED would throw away). The pages stay in the page cache, so what runs later comes
   back with a minor fault (no disk read: a timer tick is not delayed); PSS drops at once.
   Mappings that hold private copies get MADV_PAGEOUT, which keeps those copies. */
long ksr_page_out_executable(void) {
    FILE *smaps = fopen("/proc/self/smaps", "re");
    if (smaps == NULL) return -1;
    char line[4608];
    long total = 0;
    unsigned long start = 0, end = 0;
    int candidate = 0;
    while (fgets(line, sizeof line, smaps) != NULL) {
        unsigned long a, b;
        char perms[8];
        int path_at = 0;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &a, &b, perms, &path_at) >= 3 && path_at > 0) {
            /* a mapping's header line: a file's read-only or code mapping is a candidate */
            start = a; end = b;
            candidate = line[path_at] == '/' && perms[1] != 'w';
            continue;
        }
        unsigned long anon_kb;
        if (!candidate || sscanf(line, "Anonymous: %lu kB", &anon_kb) != 1) continue;
        candidate = 0;
        int advice = anon_kb == 0 ? MADV_DONTNEED : MADV_PAGEOUT;
        if (madvise((void *)start, end - start, advice) == 0) total += (long)(end - start);
    }
    fclose(smaps);
    return total;
}

static void *page_out_later(void *arg) {
    unsigned ms = (unsigned)(uintptr_t)arg;
    struct timespec t = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {}
    (void)ksr_page_out_executable();
    return NULL;
}

int ksr_page_out_executable_after(unsigned ms) {
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) return -1;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_t t;
    int rc = pthread_create(&t, &attr, page_out_later, (void *)(uintptr_t)ms);
    pthread_attr_destroy(&attr);
    if (rc == 0) pthread_setname_np(t, "ksr-trim");
    return rc == 0 ? 0 : -1;
}

#else

#include <stdlib.h>
#include <time.h>
void ksr_spin_until(unsigned long long deadline_ns) {
    struct timespec ts;
    do { clock_gettime(CLOCK_MONOTONIC, &ts); }
    while ((unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec < deadline_ns);
}

int ksr_set_sched_slice_ns(unsigned long long slice_ns) { (void)slice_ns; errno = ENOSYS; return -1; }
unsigned long long ksr_random64(void) {
    unsigned long long v;
    arc4random_buf(&v, sizeof v);
    return v;
}
int ksr_recv_datagrams(int fd, ksr_datagram *slots, unsigned n) { (void)fd; (void)slots; (void)n; errno = ENOSYS; return -1; }
int ksr_eventfd(void) { errno = ENOSYS; return -1; }
void ksr_eventfd_signal(int fd) { (void)fd; }
void ksr_eventfd_clear(int fd) { (void)fd; }
int ksr_epoll_create(void) { errno = ENOSYS; return -1; }
int ksr_malloc_arena_max(int n) { (void)n; return 0; }
long ksr_page_out_executable(void) { return -1; }
int ksr_page_out_executable_after(unsigned ms) { (void)ms; return -1; }
int ksr_epoll_add(int epfd, int fd, int exclusive) { (void)epfd; (void)fd; (void)exclusive; errno = ENOSYS; return -1; }
int ksr_epoll_remove(int epfd, int fd) { (void)epfd; (void)fd; errno = ENOSYS; return -1; }
int ksr_epoll_wait(int epfd, int *fds, int max, long long timeout_ns) { (void)epfd; (void)fds; (void)max; (void)timeout_ns; errno = ENOSYS; return -1; }

#endif
