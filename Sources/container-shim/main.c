// container-shim: runs one container process for Edged's process runtime and outlives edgecore.
//
//   container-shim --exit-file FILE --log FILE [--ready-file FILE] [--cwd DIR] [--cgroup DIR]...
//                  [--mount ro|rw SRC DST]... -- COMMAND [ARG...]
//   container-shim --enter PID [--cwd DIR] -- COMMAND [ARG...]
//
// It starts a session of its own, joins the given cgroups (v1 directories; the container
// inherits them), gives the container a private mount namespace with each SRC bound at DST
// (read-only for ro; missing mount points are created as empty directories or files), runs
// COMMAND with stdin from /dev/null and its stdout and stderr relayed to the log file in the
// CRI log format kubelet reads ("TIMESTAMP stdout|stderr F|P TEXT", one line per line of output,
// P for a piece of a line longer than 16 KiB), forwards
// SIGTERM/SIGINT/SIGHUP/SIGQUIT to it, and when it ends writes "exit CODE" or "signal NUMBER"
// to the exit file (atomically), so that an edgecore started later learns how the container
// ended. The ready file, when asked for, appears once the cgroups and mounts are in place and
// COMMAND has been started: until then an --enter would see the host's mounts. The environment
// is passed through unchanged.
//
// --enter runs COMMAND in the mount namespace of the shim PID (a running container's), in the
// foreground with the caller's stdio: exec probes.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sched.h>
#include <time.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_MOUNTS 64
#define MAX_CGROUPS 8

static volatile pid_t child = 0;

static void write_record(int log_fd, const char *name, char tag, const char *text, size_t length);

// A message of the shim's own, as a stderr record of the container's log.
#include <stdarg.h>
static void shim_message(int log_fd, const char *format, ...) {
    char text[1024];
    va_list arguments;
    va_start(arguments, format);
    int length = vsnprintf(text, sizeof text, format, arguments);
    va_end(arguments);
    if (length < 0) return;
    if ((size_t)length >= sizeof text) length = sizeof text - 1;
    while (length > 0 && text[length - 1] == '\n') length--;
    write_record(log_fd, "stderr", 'F', text, (size_t)length);
}

struct bind {
    const char *source, *destination;
    int read_only;
};

// mkdir -p of path (which is changed in place and restored).
static int make_directories(char *path) {
    for (char *slash = strchr(path + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = 0;
        int failed = mkdir(path, 0755) != 0 && errno != EEXIST;
        *slash = '/';
        if (failed) return -1;
    }
    return mkdir(path, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

// A mount point like the source: a directory, or an empty file.
static int make_mount_point(const char *source, const char *destination) {
    struct stat info;
    if (stat(source, &info) != 0) return -1;
    char path[4096];
    snprintf(path, sizeof path, "%s", destination);
    if (S_ISDIR(info.st_mode)) return make_directories(path);
    char *slash = strrchr(path, '/');
    if (slash && slash != path) {
        *slash = 0;
        if (make_directories(path) != 0) return -1;
        *slash = '/';
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

// A private mount namespace with every bind in place; messages go to log_fd.
static int set_up_mounts(const struct bind *binds, int count, int log_fd) {
    if (count == 0) return 0;
    if (unshare(CLONE_NEWNS) != 0) {
        shim_message(log_fd, "container-shim: cannot create a mount namespace: %s\n", strerror(errno));
        return -1;
    }
    if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        shim_message(log_fd, "container-shim: cannot make mounts private: %s\n", strerror(errno));
        return -1;
    }
    for (int i = 0; i < count; i++) {
        const struct bind *bind = &binds[i];
        if (make_mount_point(bind->source, bind->destination) != 0
            || mount(bind->source, bind->destination, NULL, MS_BIND | MS_REC, NULL) != 0
            || (bind->read_only && mount(NULL, bind->destination, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, NULL) != 0)) {
            shim_message(log_fd, "container-shim: cannot mount %s at %s: %s\n", bind->source, bind->destination, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int join_cgroup(const char *directory, int log_fd) {
    char path[4096];
    snprintf(path, sizeof path, "%s/cgroup.procs", directory);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    char text[32];
    int length = snprintf(text, sizeof text, "%d\n", (int)getpid());
    if (fd < 0 || write(fd, text, (size_t)length) != length) {
        shim_message(log_fd, "container-shim: cannot join the cgroup %s: %s\n", directory, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

// --enter: the command in a running container's mount namespace, in the foreground.
static int enter(const char *pid, const char *cwd, char **command) {
    char path[256];
    snprintf(path, sizeof path, "/proc/%s/ns/mnt", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "container-shim: no container with PID %s: %s\n", pid, strerror(errno));
        return 125;
    }
    char own[256];
    ssize_t length = readlink("/proc/self/ns/mnt", own, sizeof own - 1);
    char theirs[256];
    ssize_t their_length = readlink(path, theirs, sizeof theirs - 1);
    // Only a different namespace is entered (setns needs privilege even for the same one).
    if (length < 0 || their_length != length || memcmp(own, theirs, (size_t)length) != 0) {
        if (setns(fd, CLONE_NEWNS) != 0) {
            fprintf(stderr, "container-shim: cannot enter the container's mounts: %s\n", strerror(errno));
            return 125;
        }
    }
    close(fd);
    if (cwd && chdir(cwd) != 0) {
        fprintf(stderr, "container-shim: cannot change to the working directory %s: %s\n", cwd, strerror(errno));
        return 126;
    }
    execvp(command[0], command);
    fprintf(stderr, "container-shim: cannot run %s: %s\n", command[0], strerror(errno));
    return errno == ENOENT ? 127 : 126;
}

// One stream of the container's output, relayed line by line.
struct relay {
    int fd;
    const char *name;
    char line[16384];
    size_t length;
};

// Appends "TIMESTAMP NAME TAG TEXT\n" in one write (O_APPEND keeps records whole).
static void write_record(int log_fd, const char *name, char tag, const char *text, size_t length) {
    static char record[16384 + 128];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm utc;
    gmtime_r(&now.tv_sec, &utc);
    int head = snprintf(record, 128, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ %s %c ", utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday,
                        utc.tm_hour, utc.tm_min, utc.tm_sec, now.tv_nsec, name, tag);
    memcpy(record + head, text, length);
    record[head + length] = '\n';
    ssize_t ignored = write(log_fd, record, (size_t)head + length + 1);
    (void)ignored;
}

static const char *log_path = NULL;
static ino_t log_inode = 0;

// Edged rotates a log by renaming it aside and creating an empty one: write to whatever file
// is at the log's path now (what was written before goes on in the renamed one).
static void reopen_if_rotated(int *log_fd) {
    struct stat at_path;
    if (stat(log_path, &at_path) == 0 && at_path.st_ino == log_inode) return;
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return;
    struct stat opened;
    fstat(fd, &opened);
    close(*log_fd);
    *log_fd = fd;
    log_inode = opened.st_ino;
}

// Reads what is there; returns 0 at end of file (the rest of a line is written as a full line).
static int relay_read(struct relay *relay, int *log_fd_pointer) {
    reopen_if_rotated(log_fd_pointer);
    int log_fd = *log_fd_pointer;
    ssize_t count = read(relay->fd, relay->line + relay->length, sizeof relay->line - relay->length);
    if (count < 0) return errno == EINTR || errno == EAGAIN ? 1 : 0;
    if (count == 0) {
        if (relay->length > 0) write_record(log_fd, relay->name, 'F', relay->line, relay->length);
        relay->length = 0;
        return 0;
    }
    relay->length += (size_t)count;
    size_t start = 0;
    for (size_t index = 0; index < relay->length; index++) {
        if (relay->line[index] != '\n') continue;
        write_record(log_fd, relay->name, 'F', relay->line + start, index - start);
        start = index + 1;
    }
    if (start == 0 && relay->length == sizeof relay->line) {
        write_record(log_fd, relay->name, 'P', relay->line, relay->length);
        relay->length = 0;
    } else if (start > 0) {
        memmove(relay->line, relay->line + start, relay->length - start);
        relay->length -= start;
    }
    return 1;
}

static void forward(int signal_number) {
    if (child > 0) kill(child, signal_number);
}

// path holds text whole or not at all.
static void write_atomically(const char *path, const char *text) {
    char temporary[4096];
    snprintf(temporary, sizeof temporary, "%s.tmp", path);
    int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    ssize_t ignored = write(fd, text, strlen(text));
    (void)ignored;
    fsync(fd);
    close(fd);
    rename(temporary, path);
}

int main(int argc, char **argv) {
    const char *exit_file = NULL, *log_file = NULL, *ready_file = NULL, *cwd = NULL, *enter_pid = NULL;
    struct bind binds[MAX_MOUNTS];
    const char *cgroups[MAX_CGROUPS];
    int bind_count = 0, cgroup_count = 0;
    int index = 1;
    for (; index < argc; index++) {
        if (strcmp(argv[index], "--") == 0) { index++; break; }
        if (index + 1 >= argc) break;
        if (strcmp(argv[index], "--exit-file") == 0) exit_file = argv[++index];
        else if (strcmp(argv[index], "--log") == 0) log_file = argv[++index];
        else if (strcmp(argv[index], "--ready-file") == 0) ready_file = argv[++index];
        else if (strcmp(argv[index], "--cwd") == 0) cwd = argv[++index];
        else if (strcmp(argv[index], "--enter") == 0) enter_pid = argv[++index];
        else if (strcmp(argv[index], "--cgroup") == 0 && cgroup_count < MAX_CGROUPS) cgroups[cgroup_count++] = argv[++index];
        else if (strcmp(argv[index], "--mount") == 0 && index + 3 < argc && bind_count < MAX_MOUNTS
                 && (strcmp(argv[index + 1], "ro") == 0 || strcmp(argv[index + 1], "rw") == 0)) {
            binds[bind_count].read_only = strcmp(argv[index + 1], "ro") == 0;
            binds[bind_count].source = argv[index + 2];
            binds[bind_count].destination = argv[index + 3];
            bind_count++;
            index += 3;
        } else { fprintf(stderr, "container-shim: unknown or malformed option %s\n", argv[index]); return 125; }
    }
    if (enter_pid && index < argc) return enter(enter_pid, cwd, &argv[index]);
    if (!exit_file || !log_file || index >= argc) {
        fprintf(stderr, "usage: container-shim --exit-file FILE --log FILE [--ready-file FILE] [--cwd DIR] [--cgroup DIR]... [--mount ro|rw SRC DST]... -- COMMAND [ARG...]\n"
                        "       container-shim --enter PID [--cwd DIR] -- COMMAND [ARG...]\n");
        return 125;
    }
    setsid();
    // Whatever the parent blocked or ignored, the container starts with the defaults.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int number = 1; number < 32; number++) {
        if (number != SIGKILL && number != SIGSTOP) signal(number, SIG_DFL);
    }
    int log_fd = open(log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    log_path = log_file;
    if (log_fd >= 0) {
        struct stat opened;
        fstat(log_fd, &opened);
        log_inode = opened.st_ino;
    }
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log_fd < 0 || null_fd < 0) {
        write_atomically(exit_file, "exit 125\n");
        return 125;
    }
    for (int i = 0; i < cgroup_count; i++) {
        if (join_cgroup(cgroups[i], log_fd) != 0) {
            write_atomically(exit_file, "exit 125\n");
            return 125;
        }
    }
    if (set_up_mounts(binds, bind_count, log_fd) != 0) {
        write_atomically(exit_file, "exit 125\n");
        return 125;
    }
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
        write_atomically(exit_file, "exit 125\n");
        return 125;
    }
    pid_t pid = fork();
    if (pid < 0) {
        write_atomically(exit_file, "exit 125\n");
        return 125;
    }
    if (pid == 0) {
        dup2(null_fd, 0);
        dup2(out_pipe[1], 1);
        dup2(err_pipe[1], 2);
        if (cwd && chdir(cwd) != 0) {
            dprintf(2, "container-shim: cannot change to the working directory %s: %s\n", cwd, strerror(errno));
            _exit(126);
        }
        execvp(argv[index], &argv[index]);
        int code = errno == ENOENT ? 127 : 126;
        dprintf(2, "container-shim: cannot run %s: %s\n", argv[index], strerror(errno));
        _exit(code);
    }
    child = pid;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = forward;
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGHUP, &action, NULL);
    sigaction(SIGQUIT, &action, NULL);
    close(null_fd);
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (ready_file) write_atomically(ready_file, "ready\n");
    static struct relay relays[2];
    relays[0].fd = out_pipe[0];
    relays[0].name = "stdout";
    relays[1].fd = err_pipe[0];
    relays[1].name = "stderr";
    int open_count = 2, status = 0, ended = 0;
    // Relay until the container has ended and its output is drained; a process it left behind
    // holding the pipes open does not keep the container running.
    while (!ended || open_count > 0) {
        struct pollfd polled[2];
        int polled_count = 0;
        for (int i = 0; i < 2; i++) {
            if (relays[i].fd >= 0) { polled[polled_count].fd = relays[i].fd; polled[polled_count].events = POLLIN; polled_count++; }
        }
        int ready = polled_count > 0 ? poll(polled, (nfds_t)polled_count, ended ? 0 : 200) : 0;
        if (ready < 0 && errno != EINTR) break;
        for (int i = 0, p = 0; i < 2; i++) {
            if (relays[i].fd < 0) continue;
            if (ready > 0 && (polled[p].revents & (POLLIN | POLLHUP | POLLERR)) && !relay_read(&relays[i], &log_fd)) {
                close(relays[i].fd);
                relays[i].fd = -1;
                open_count--;
            }
            p++;
        }
        if (ended && ready <= 0) break;
        if (!ended) {
            pid_t done = waitpid(pid, &status, WNOHANG);
            if (done == pid) ended = 1;
            else if (done < 0 && errno != EINTR) {
                write_atomically(exit_file, "exit 125\n");
                return 125;
            }
        }
    }
    reopen_if_rotated(&log_fd);
    for (int i = 0; i < 2; i++) {
        if (relays[i].fd >= 0 && relays[i].length > 0) write_record(log_fd, relays[i].name, 'F', relays[i].line, relays[i].length);
    }
    close(log_fd);
    char text[64];
    if (WIFSIGNALED(status)) {
        snprintf(text, sizeof text, "signal %d\n", WTERMSIG(status));
        write_atomically(exit_file, text);
        return 128 + WTERMSIG(status);
    }
    snprintf(text, sizeof text, "exit %d\n", WEXITSTATUS(status));
    write_atomically(exit_file, text);
    return WEXITSTATUS(status);
}
