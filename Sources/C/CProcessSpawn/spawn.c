#define _GNU_SOURCE
#include "CProcessSpawn.h"
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cprocess_open_terminal(char *slave, size_t length) {
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) return -1;
    if (grantpt(master) != 0 || unlockpt(master) != 0 || ptsname_r(master, slave, length) != 0) {
        close(master);
        return -1;
    }
    return master;
}

int cprocess_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

const short cprocess_spawn_setsid = POSIX_SPAWN_SETSID;
