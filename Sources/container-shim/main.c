// container-shim: runs one container process for Edged's process runtime and outlives edgecore.
//
//   container-shim --exit-file FILE --log FILE [--cwd DIR] -- COMMAND [ARG...]
//
// It starts a session of its own, runs COMMAND with stdin from /dev/null and stdout/stderr
// appended to the log file, forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT to it, and when it ends
// writes "exit CODE" or "signal NUMBER" to the exit file (atomically), so that an edgecore
// started later learns how the container ended. The environment is passed through unchanged.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t child = 0;

static void forward(int signal_number) {
    if (child > 0) kill(child, signal_number);
}

static void write_exit(const char *path, const char *text) {
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
    const char *exit_file = NULL, *log_file = NULL, *cwd = NULL;
    int index = 1;
    for (; index < argc; index++) {
        if (strcmp(argv[index], "--") == 0) { index++; break; }
        if (index + 1 >= argc) break;
        if (strcmp(argv[index], "--exit-file") == 0) exit_file = argv[++index];
        else if (strcmp(argv[index], "--log") == 0) log_file = argv[++index];
        else if (strcmp(argv[index], "--cwd") == 0) cwd = argv[++index];
        else { fprintf(stderr, "container-shim: unknown option %s\n", argv[index]); return 125; }
    }
    if (!exit_file || !log_file || index >= argc) {
        fprintf(stderr, "usage: container-shim --exit-file FILE --log FILE [--cwd DIR] -- COMMAND [ARG...]\n");
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
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log_fd < 0 || null_fd < 0) {
        write_exit(exit_file, "exit 125\n");
        return 125;
    }
    pid_t pid = fork();
    if (pid < 0) {
        write_exit(exit_file, "exit 125\n");
        return 125;
    }
    if (pid == 0) {
        dup2(null_fd, 0);
        dup2(log_fd, 1);
        dup2(log_fd, 2);
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
    close(log_fd);
    close(null_fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            write_exit(exit_file, "exit 125\n");
            return 125;
        }
    }
    char text[64];
    if (WIFSIGNALED(status)) {
        snprintf(text, sizeof text, "signal %d\n", WTERMSIG(status));
        write_exit(exit_file, text);
        return 128 + WTERMSIG(status);
    }
    snprintf(text, sizeof text, "exit %d\n", WEXITSTATUS(status));
    write_exit(exit_file, text);
    return WEXITSTATUS(status);
}
