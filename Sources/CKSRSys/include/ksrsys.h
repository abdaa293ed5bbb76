/*
 * CKSRSys: the Linux calls Swift's Glibc module does not import (recvmmsg, eventfd,
 * EPOLLEXCLUSIVE, epoll_pwait2), behind plain C functions. Elsewhere they fail with ENOSYS.
 */
#ifndef KSR_SYS_H
#define KSR_SYS_H

#include <stddef.h>
#include <sys/socket.h>

/* One datagram slot of ksr_recv_datagrams: the caller's buffer in, what arrived out. */
typedef struct {
    void *buffer;                 /* in: where the datagram goes */
    size_t capacity;              /* in: its size */
    size_t length;                /* out: bytes stored */
    int truncated;                /* out: the datagram was longer than capacity */
    struct sockaddr_storage from; /* out: the sender */
} ksr_datagram;

/* Reads up to n (at most 64) datagrams without blocking (recvmmsg, MSG_DONTWAIT). Returns how
   many, or -1 with errno (EAGAIN: none waiting). */
int ksr_recv_datagrams(int fd, ksr_datagram *slots, unsigned n);

/* A non-blocking, close-on-exec eventfd; -1 with errno. */
int ksr_eventfd(void);
/* Adds 1 to an eventfd (wakes its reader); clears it. */
void ksr_eventfd_signal(int fd);
void ksr_eventfd_clear(int fd);

/* A close-on-exec epoll instance; -1 with errno. */
int ksr_epoll_create(void);
/* Watches fd for input; exclusive: of several epoll instances waiting on the same file, one
   is woken per event (EPOLLEXCLUSIVE). 0, or -1 with errno. */
int ksr_epoll_add(int epfd, int fd, int exclusive);
int ksr_epoll_remove(int epfd, int fd);
/* Waits up to timeout_ns (negative: forever) for input; stores the ready descriptors in fds.
   Nanosecond timeouts (epoll_pwait2) where the kernel has them, else rounded up to a
   millisecond. Returns how many, 0 on timeout, -1 with errno (EINTR). */
int ksr_epoll_wait(int epfd, int *fds, int max, long long timeout_ns);

/* Busy-waits until CLOCK_MONOTONIC reaches deadline_ns (the last few microseconds before a
   timer deadline, which a timed wait cannot hit reliably), with a CPU pause between reads. */
void ksr_spin_until(unsigned long long deadline_ns);

/* Asks the scheduler for a short time slice for the calling thread (Linux 6.6+, EEVDF: a
   SCHED_OTHER thread with a short slice gets an early virtual deadline, so when it wakes it
   runs before CPU-bound tasks instead of waiting for their slice to end; its CPU share is
   unchanged). Keeps the policy and nice value; needs no privilege. 0, or -1 with errno
   (EINVAL before 6.6, ENOSYS elsewhere). */
int ksr_set_sched_slice_ns(unsigned long long slice_ns);

/* 64 bits from the kernel's cryptographic generator (getrandom), served from a per-thread
   buffer refilled 512 bytes at a time: one system call per 64 draws instead of one each. */
unsigned long long ksr_random64(void);

/* Caps glibc's malloc arenas at n (mallopt M_ARENA_MAX) unless MALLOC_ARENA_MAX is set in
   the environment or n <= 0: 1 when set, 0 when left alone, -1 on failure. Call it before a
   second thread allocates (glibc fixes its arena limit when the first extra arena is made). */
int ksr_malloc_arena_max(int n);

/* Lets go of the resident pages of the read-only and code mappings of files (the executable
   and its shared libraries): after startup they are mostly code that never runs again
   (argument parsing, configuration, module setup). Mappings whose pages are all the file's own
   get MADV_DONTNEED: the pages stay in the page cache, so what runs later comes back with a
   minor fault, no disk read; mappings with private copies (relocated pages) get MADV_PAGEOUT,
   which keeps those. Returns the bytes advised, -1 when not possible. */
long ksr_page_out_executable(void);
/* The same, once, from a short-lived thread `ms` milliseconds from now (when the first
   callbacks have run). 0, or -1 if the thread could not be started. */
int ksr_page_out_executable_after(unsigned ms);

#endif
