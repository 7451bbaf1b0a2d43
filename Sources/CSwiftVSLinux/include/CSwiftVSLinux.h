// Linux interfaces that Swift's Glibc module leaves out: epoll and eventfd, and accept4 (declared by glibc only
// under _GNU_SOURCE, which the Glibc module is built without). The director's relay engine uses them directly.
#ifndef CSWIFTVS_LINUX_H
#define CSWIFTVS_LINUX_H

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

extern int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);

#endif
