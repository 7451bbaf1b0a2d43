// Linux interfaces that Swift's Glibc module leaves out: epoll and eventfd, and accept4 (declared by glibc only
// under _GNU_SOURCE, which the Glibc module is built without). The director's relay engine uses them directly.
// posix_spawn_file_actions_addclosefrom_np (glibc 2.34): the spawn helper closes every inherited descriptor in the
// child, since not every library marks its sockets close-on-exec; and posix_spawn_file_actions_addchdir_np.
#ifndef CSWIFTVS_LINUX_H
#define CSWIFTVS_LINUX_H

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spawn.h>

extern int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
// posix_spawn_file_actions_addchdir_np (glibc 2.29): a child started in its own working directory.
extern int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path);

#endif
