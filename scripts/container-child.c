/* The container suite's test child (scripts/test-container.sh builds it with gcc -static): the
 * "app" that `healthd run -- /child MODE ...` supervises in a FROM-scratch image with no shell, and
 * the idle client of the Compose example. Every line it prints starts with "child: ".
 *
 *   child wait-term CODE       wait for SIGTERM, then exit CODE
 *   child exit CODE MS         exit CODE after MS milliseconds
 *   child orphans N MS         start N grandchildren that outlive their parents (so they are
 *                              re-parented to PID 1) and exit after MS milliseconds; then as wait-term 0
 *   child ready-after MS       after MS milliseconds write "ready" to $HEALTHD_READY_FILE (which
 *                              `healthd run` passes on); then as wait-term 0
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_term;

static void on_term(int sig) {
    (void)sig;
    got_term = 1;
}

static void say(const char *fmt, ...) {
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof line - 2) n = sizeof line - 2;
    line[n] = '\n';
    (void)!write(1, line, (size_t)n + 1);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR && !got_term) {
    }
}

static int wait_term(int code) {
    say("child: waiting for SIGTERM (pid %d)", (int)getpid());
    while (!got_term) pause();
    say("child: got SIGTERM, exiting %d", code);
    return code;
}

int main(int argc, char **argv) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);

    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "wait-term") == 0 && argc == 3) return wait_term(atoi(argv[2]));
    if (strcmp(mode, "exit") == 0 && argc == 4) {
        sleep_ms(atol(argv[3]));
        say("child: exiting %d", atoi(argv[2]));
        return atoi(argv[2]);
    }
    if (strcmp(mode, "orphans") == 0 && argc == 4) {
        int n = atoi(argv[2]);
        long ms = atol(argv[3]);
        for (int i = 0; i < n; i++) {
            pid_t p = fork();
            if (p == 0) {
                if (fork() == 0) {
                    sleep_ms(ms);
                    _exit(0);
                }
                _exit(0); /* the grandchild is now an orphan: PID 1 inherits it */
            }
            if (p > 0) waitpid(p, NULL, 0);
        }
        say("child: %d orphans started", n);
        return wait_term(0);
    }
    if (strcmp(mode, "ready-after") == 0 && argc == 3) {
        sleep_ms(atol(argv[2]));
        const char *file = getenv("HEALTHD_READY_FILE");
        if (!file) {
            say("child: HEALTHD_READY_FILE is not set");
            return 3;
        }
        int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, "ready\n", 6) != 6 || close(fd) != 0) {
            say("child: cannot write %s: %s", file, strerror(errno));
            return 3;
        }
        say("child: wrote ready to %s", file);
        return wait_term(0);
    }
    say("child: usage: wait-term CODE | exit CODE MS | orphans N MS | ready-after MS");
    return 2;
}
