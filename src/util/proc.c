/*
 * proc: bounded shell commands. See proc.h.
 *
 * The caller may have threads (libzmq's): between fork and exec the child
 * only calls async-signal-safe functions, so the environment is built
 * before fork.
 */
#include "util/proc.h"
#include "util/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

int cohort_proc_run(const char *cmd, const void *in, size_t in_len, size_t out_max, int timeout_ms,
                    const char *const *env_extra, cohort_proc_result_t *res, cohort_err_t *err)
{
    memset(res, 0, sizeof *res);
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    size_t n_env = 0, n_extra = 0;
    while (environ[n_env])
        n_env++;
    while (env_extra && env_extra[n_extra])
        n_extra++;
    char **envp = cohort_calloc(n_env + n_extra + 1, sizeof *envp);
    memcpy(envp, environ, n_env * sizeof *envp);
    for (size_t i = 0; i < n_extra; i++)
        envp[n_env + i] = (char *)(uintptr_t)env_extra[i]; /* execve does not write */
    size_t cap = 4096;
    res->out = cohort_malloc(cap);
    int rc = -1;
    /* A command that exits without reading its stdin makes our write fail
     * with EPIPE; the SIGPIPE that comes with it must not kill the caller.
     * Block it here and take back only one we caused. */
    sigset_t pipe_set, old_mask, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    bool pipe_was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
    if (pipe2(pin, O_CLOEXEC) != 0 || pipe2(pout, O_CLOEXEC) != 0 || pipe2(perr, O_CLOEXEC) != 0) {
        cohort_err_set(err, "%s: pipe: %s", cmd, strerror(errno));
        goto out;
    }
    pid_t pid = fork();
    if (pid < 0) {
        cohort_err_set(err, "%s: fork: %s", cmd, strerror(errno));
        goto out;
    }
    if (pid == 0) {
        setpgid(0, 0); /* its own group, so a kill reaches its children too */
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        dup2(pin[0], STDIN_FILENO);
        dup2(pout[1], STDOUT_FILENO);
        dup2(perr[1], STDERR_FILENO);
        char *argv[] = {(char *)(uintptr_t) "sh", (char *)(uintptr_t) "-c", (char *)(uintptr_t)cmd,
                        NULL};
        execve("/bin/sh", argv, envp);
        _exit(127);
    }
    setpgid(pid, pid); /* also here: whichever runs first */
    s_close(&pin[0]);
    s_close(&pout[1]);
    s_close(&perr[1]);
    fcntl(pin[1], F_SETFL, O_NONBLOCK);
    if (in_len == 0)
        s_close(&pin[1]);
    size_t written = 0, err_len = 0;
    int64_t deadline = s_now_ms() + timeout_ms;
    bool kill_it = false;
    while (pout[0] >= 0 || perr[0] >= 0) {
        struct pollfd fds[3];
        nfds_t n = 0;
        int idx_in = -1, idx_out = -1, idx_err = -1;
        if (pin[1] >= 0) {
            fds[n] = (struct pollfd){pin[1], POLLOUT, 0};
            idx_in = (int)n++;
        }
        if (pout[0] >= 0) {
            fds[n] = (struct pollfd){pout[0], POLLIN, 0};
            idx_out = (int)n++;
        }
        if (perr[0] >= 0) {
            fds[n] = (struct pollfd){perr[0], POLLIN, 0};
            idx_err = (int)n++;
        }
        int64_t left = deadline - s_now_ms();
        if (left <= 0) {
            res->timed_out = kill_it = true;
            break;
        }
        if (poll(fds, n, (int)(left > 1000 ? 1000 : left)) < 0) {
            if (errno == EINTR)
                continue;
            kill_it = true;
            break;
        }
        if (idx_in >= 0 && fds[idx_in].revents) {
            ssize_t w = write(pin[1], (const char *)in + written, in_len - written);
            if (w > 0)
                written += (size_t)w;
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                s_close(&pin[1]); /* EPIPE: it does not read its input; fine */
            else if (written == in_len)
                s_close(&pin[1]);
        }
        if (idx_out >= 0 && fds[idx_out].revents) {
            if (res->out_len + 4096 + 1 > cap) {
                cap = cap * 2 > out_max + 4096 + 1 ? out_max + 4096 + 1 : cap * 2;
                res->out = cohort_realloc(res->out, cap);
            }
            ssize_t r = read(pout[0], res->out + res->out_len, cap - res->out_len - 1);
            if (r > 0)
                res->out_len += (size_t)r;
            else if (r == 0 || (errno != EAGAIN && errno != EINTR))
                s_close(&pout[0]);
            if (res->out_len > out_max) {
                res->too_large = kill_it = true;
                break;
            }
        }
        if (idx_err >= 0 && fds[idx_err].revents) {
            char buf[1024];
            ssize_t r = read(perr[0], buf, sizeof buf);
            if (r > 0) {
                size_t keep = sizeof res->err - 1 - err_len;
                keep = (size_t)r < keep ? (size_t)r : keep;
                memcpy(res->err + err_len, buf, keep);
                err_len += keep;
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                s_close(&perr[0]);
            }
        }
    }
    if (kill_it)
        kill(-pid, SIGKILL);
    /* It may still run with its output closed: the deadline holds. */
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, kill_it ? 0 : WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR))
            break;
        if (w == 0 && s_now_ms() >= deadline) {
            res->timed_out = kill_it = true;
            kill(-pid, SIGKILL);
        } else if (w == 0) {
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
        }
    }
    if (WIFEXITED(status)) {
        res->exit_code = WEXITSTATUS(status);
    } else {
        res->exit_code = -1;
        res->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
    res->out[res->out_len < cap ? res->out_len : cap - 1] = '\0';
    res->err[err_len] = '\0';
    rc = 0;
out:
    if (!pipe_was_pending)
        sigtimedwait(&pipe_set, NULL, &(struct timespec){0, 0});
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    s_close(&pin[0]);
    s_close(&pin[1]);
    s_close(&pout[0]);
    s_close(&pout[1]);
    s_close(&perr[0]);
    s_close(&perr[1]);
    free(envp);
    if (rc < 0) {
        free(res->out);
        res->out = NULL;
    }
    return rc;
}
