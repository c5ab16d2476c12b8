// What Edged's interactive processes need of glibc that Swift's Glibc module leaves out
// (it is declared only under _GNU_SOURCE / _XOPEN_SOURCE): pseudo-terminals, close-on-exec
// pipes and posix_spawn's new-session flag.
#ifndef C_PROCESS_SPAWN_H
#define C_PROCESS_SPAWN_H
#include <stddef.h>

/// Opens a pseudo-terminal master (close-on-exec, not the caller's controlling terminal) and
/// writes its slave's path into `slave` (of `length` bytes). Returns the master, or -1 with errno.
int cprocess_open_terminal(char *slave, size_t length);

/// pipe2(fds, O_CLOEXEC).
int cprocess_pipe(int fds[2]);

/// POSIX_SPAWN_SETSID.
extern const short cprocess_spawn_setsid;
#endif
