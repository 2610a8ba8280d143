/* Worker processes for a sweep (sweep_exec.h). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "sweep_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"

typedef enum { Q_QUEUED, Q_WAITING, Q_RUNNING, Q_DONE, Q_FAILED, Q_STOPPED, Q_ELSEWHERE, Q_SKIP, Q_HELD } qstate;

typedef struct {
    qstate q;
    pid_t pid;
    double t0, retry_at;
    double frac0;         /* fraction of the run done when this process started it */
    int noted_wait;
} slot;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void sweep_fmt_duration(double s, char *buf, size_t n)
{
    if (!(s >= 0) || isinf(s)) snprintf(buf, n, "?");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

void sweep_self_exe(const char *argv0, char *buf, size_t n)
{
    ssize_t k = readlink("/proc/self/exe", buf, n - 1);
    if (k > 0) buf[k] = 0;
    else snprintf(buf, n, "%s", argv0);
}

int sweep_cpu_count(void)
{
    cpu_set_t set;
    if (!sched_getaffinity(0, sizeof set, &set) && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* How much of its work a run has done: of its epochs, or up to until_epoch. */
static double run_frac(const sweep_run *r, const sweep_exec_opts *o)
{
    if (r->state == SWEEP_DONE) return 1;
    int end = o->until_epoch > 0 && o->until_epoch < r->epochs ? o->until_epoch : r->epochs;
    if (!r->have_last || end <= 0) return 0;
    double f = (double)r->last.epoch / end;
    return f < 0 ? 0 : f > 1 ? 1 : f;
}

static void stamp(FILE *out)
{
    time_t t = time(NULL);
    struct tm tm;
    char b[16];
    localtime_r(&t, &tm);
    strftime(b, sizeof b, "%H:%M:%S", &tm);
    fprintf(out, "[%s] ", b);
}

/* One event line: time, the run, what happened. */
static void say(const sweep_exec_opts *o, const sweep_run *r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(const sweep_exec_opts *o, const sweep_run *r, const char *fmt, ...)
{
    char label[600];
    va_list ap;
    stamp(o->out);
    sweep_run_label(r, label, sizeof label);
    fprintf(o->out, "run %d (%s): ", r->index, label);
    va_start(ap, fmt);
    vfprintf(o->out, fmt, ap);
    va_end(ap);
    fputc('\n', o->out);
    fflush(o->out);
}

/* What an aborted start leaves (config.json but no state): removed, so the
 * fresh start writes every record exactly once. The log and lock stay. */
static void clear_partial(const sweep_run *r)
{
    static const char *const files[] = {"config.json", "preset.json", "metrics.jsonl", "training_log.csv",
                                        "summary.json", "interventions.jsonl", "state.safetensors.tmp",
                                        "config.json.tmp", "preset.json.tmp", "summary.json.tmp"};
    char p[4400];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%.4000s/%s", r->dir, files[i]);
        unlink(p);
    }
    for (int e = 0; e <= r->cfg.epochs; e++) { /* the only checkpoint before the state is epoch 0's */
        snprintf(p, sizeof p, "%.4000s/ckpt/epoch_%04d.safetensors", r->dir, e);
        if (unlink(p) && e > 0) break;
        snprintf(p, sizeof p, "%.4000s/ckpt/epoch_%04d.safetensors.tmp", r->dir, e);
        unlink(p);
    }
    snprintf(p, sizeof p, "%.4000s/ckpt/epoch_0000.safetensors.tmp", r->dir);
    unlink(p);
    snprintf(p, sizeof p, "%.4000s/ckpt", r->dir);
    rmdir(p);
}

static void log_line(const sweep_run *r, const char *what)
{
    char p[4400], line[256], err[256];
    time_t t = time(NULL);
    struct tm tm;
    char when[32];
    localtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(p, sizeof p, "%.4000s/" SWEEP_LOG, r->dir);
    snprintf(line, sizeof line, "== achilles sweep: %s, %s", what, when);
    append_line(p, line, err, sizeof err); /* the log is for people; no reason to stop the run */
}

/* Starts `achilles train` on run r, which the caller has locked with fd.
 * The child keeps fd across exec: the lock lives exactly as long as the
 * training process. */
static pid_t launch(const ach_sweep *s, const sweep_run *r, int fd, int resume, const sweep_exec_opts *o)
{
    int n = 0, cap = 10 + s->nbase + r->nset;
    char **argv = calloc(cap, sizeof *argv), threads[32], epochs[32];
    if (!argv) return -1;
    argv[n++] = (char *)o->exe;
    argv[n++] = "train";
    if (o->until_epoch > 0) { /* train counts the epochs it runs itself */
        snprintf(epochs, sizeof epochs, "%d", o->until_epoch - (resume && r->have_last ? r->last.epoch : 0));
        argv[n++] = "--stop-after-epochs";
        argv[n++] = epochs;
    }
    argv[n++] = resume ? "--resume" : "--out";
    argv[n++] = (char *)r->dir;
    /* key=value words, built before fork: the child only execs */
    char **kv = calloc(s->nbase + r->nset + 1, sizeof *kv);
    int nkv = 0, bad = !kv;
    if (!resume && !bad) {
        if (o->threads > 0) {
            snprintf(threads, sizeof threads, "threads=%d", o->threads);
            argv[n++] = threads;
        }
        for (int i = 0; i < s->nbase + r->nset && !bad; i++) {
            const sweep_kv *p = i < s->nbase ? &s->base[i] : &r->set[i - s->nbase];
            size_t len = strlen(p->key) + strlen(p->val) + 2;
            if (!(kv[nkv] = malloc(len))) bad = 1;
            else snprintf(kv[nkv], len, "%s=%s", p->key, p->val), argv[n++] = kv[nkv++];
        }
    }
    char logp[4400];
    snprintf(logp, sizeof logp, "%.4000s/" SWEEP_LOG, r->dir);
    pid_t pid = bad ? -1 : fork();
    if (pid == 0) {
        int lg = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644), nul = open("/dev/null", O_RDONLY);
        if (lg >= 0) dup2(lg, 1), dup2(lg, 2);
        if (nul >= 0) dup2(nul, 0);
        fcntl(fd, F_SETFD, 0); /* keep the lock across exec */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execv(o->exe, argv);
        fprintf(stderr, "achilles: sweep: cannot run %s: %s\n", o->exe, strerror(errno));
        _exit(127);
    }
    if (pid > 0) sweep_lock_note(fd, (long)pid);
    for (int i = 0; i < nkv; i++) free(kv[i]);
    free(kv);
    free(argv);
    return pid;
}

/* The last non-empty line of the run's log: usually the error. */
static void last_log_line(const sweep_run *r, char *buf, size_t n)
{
    char p[4400], err[256];
    snprintf(p, sizeof p, "%.4000s/" SWEEP_LOG, r->dir);
    buf[0] = 0;
    size_t len;
    char *text = read_file(p, 1u << 26, &len, err, sizeof err);
    if (!text) return;
    while (len && (text[len - 1] == '\n' || text[len - 1] == ' ')) text[--len] = 0;
    char *l = strrchr(text, '\n');
    snprintf(buf, n, "%s", l ? l + 1 : text);
    free(text);
}

typedef struct {
    int done, running, queued, failed, stopped, held;
    double remaining;  /* whole runs' worth of work left */
} tally;

/* unit_sum / frac_sum: seconds per whole run, from the work this sweep has
 * seen done; the running runs' progress counts too, so a sweep that resumes
 * long runs has an ETA before the first of them finishes. */
static void progress(const ach_sweep *s, const slot *sl, const sweep_exec_opts *o, double unit_sum, double frac_sum,
                     double now_s)
{
    tally t = {0};
    for (int i = 0; i < s->nruns; i++) {
        double f;
        switch (sl[i].q) {
        case Q_DONE: t.done++; break;
        case Q_RUNNING:
            f = run_frac(&s->runs[i], o);
            t.running++, t.remaining += 1 - f;
            if (f > sl[i].frac0) unit_sum += now_s - sl[i].t0, frac_sum += f - sl[i].frac0;
            break;
        case Q_QUEUED: case Q_WAITING: t.queued++, t.remaining += 1 - run_frac(&s->runs[i], o); break;
        case Q_FAILED: t.failed++; break;
        case Q_STOPPED: t.stopped++; break;
        case Q_HELD: t.held++; break;
        default: break;
        }
    }
    int n = o->only >= 0 ? 1 : s->nruns;
    char eta[32] = "?";
    int par = t.running + t.queued < o->workers ? t.running + t.queued : o->workers;
    if (frac_sum > 0 && par > 0) sweep_fmt_duration(unit_sum / frac_sum * t.remaining / par, eta, sizeof eta);
    else if (!t.running && !t.queued) snprintf(eta, sizeof eta, "0s");
    stamp(o->out);
    fprintf(o->out, "%d/%d done, %d running, %d queued", t.done, n, t.running, t.queued);
    if (t.stopped) fprintf(o->out, ", %d stopped", t.stopped);
    if (t.held) fprintf(o->out, ", %d held at epoch %d", t.held, o->until_epoch);
    if (t.failed) fprintf(o->out, ", %d failed", t.failed);
    fprintf(o->out, "; ETA %s\n", eta);
    fflush(o->out);
}

/* Takes run i if its lock is free: skips it if done, clears a partial
 * start, launches. Returns 1 if something changed. */
static int try_start(ach_sweep *s, slot *sl, int i, const sweep_exec_opts *o, sweep_exec_result *res, double t)
{
    sweep_run *r = &s->runs[i];
    char err[1024];
    int fd;
    int rc = sweep_run_lock(r, &fd, err, sizeof err);
    if (rc < 0) {
        say(o, r, "failed: %s", err);
        sl[i].q = Q_FAILED;
        res->failed++;
        return 1;
    }
    if (rc == 1) {
        sweep_run_refresh(r);
        char who[128];
        snprintf(who, sizeof who, "pid %ld on %s", r->lock_pid, r->lock_host[0] ? r->lock_host : "?");
        if (o->only >= 0) {
            say(o, r, "held by another process (%s); leaving it to that one", who);
            sl[i].q = Q_ELSEWHERE;
            res->elsewhere++;
            return 1;
        }
        int first = !sl[i].noted_wait;
        if (first) say(o, r, "held by another process (%s); waiting for it", who);
        sl[i].noted_wait = 1;
        sl[i].q = Q_WAITING;
        sl[i].retry_at = t + 2;
        return first;
    }
    sweep_run_refresh_locked(r);
    if (r->state == SWEEP_DONE) {
        close(fd);
        if (sl[i].noted_wait) say(o, r, "finished by the other process");
        sl[i].q = Q_DONE;
        res->done++;
        return 1;
    }
    if (r->state == SWEEP_PARTIAL) {
        say(o, r, "its start was interrupted before any state was saved; starting over");
        clear_partial(r);
        log_line(r, "cleared an interrupted start");
        r->state = SWEEP_NEW;
    }
    int resume = r->state == SWEEP_STOPPED;
    if (resume && o->until_epoch > 0 && r->have_last && r->last.epoch >= o->until_epoch) {
        close(fd);
        sl[i].q = Q_HELD;
        res->held++;
        return 1;
    }
    char what[64];
    snprintf(what, sizeof what, "%s (pid %ld)", resume ? "resuming" : "starting", (long)getpid());
    log_line(r, what);
    pid_t pid = launch(s, r, fd, resume, o);
    close(fd);
    if (pid < 0) {
        say(o, r, "failed: cannot start a process: %s", strerror(errno));
        sl[i].q = Q_FAILED;
        res->failed++;
        return 1;
    }
    res->started++;
    sl[i].q = Q_RUNNING, sl[i].pid = pid, sl[i].t0 = t, sl[i].frac0 = run_frac(r, o);
    if (resume) {
        say(o, r, "resuming at epoch %d/%d in %s", r->have_last ? r->last.epoch : 0, r->epochs, r->rel);
    } else say(o, r, "starting in %s", r->rel);
    return 1;
}

/* A worker exited: what became of its run. */
static void finished(ach_sweep *s, slot *sl, int i, int wst, const sweep_exec_opts *o, sweep_exec_result *res,
                     double t, double *unit_sum, double *frac_sum)
{
    sweep_run *r = &s->runs[i];
    /* Not sweep_run_refresh: its lock probe would call the run still running
     * while another sweep on this directory holds the lock for a moment to
     * look at it; the worker that held it for us has exited. */
    sweep_run_refresh_locked(r);
    int code = WIFEXITED(wst) ? WEXITSTATUS(wst) : -1, sig = WIFSIGNALED(wst) ? WTERMSIG(wst) : 0;
    char a[64], b[600];
    double comp = task_metric(&r->last.eval, TASK_METRIC_ACC43_COMP), sym = task_metric(&r->last.eval, TASK_METRIC_ACC43_SYM),
           seen = task_metric(&r->last.eval, TASK_METRIC_ACC_SEEN);
    if (r->state == SWEEP_DONE) { /* also a run that diverged: it is over, and says why */
        double frac = 1 - sl[i].frac0;
        if (frac > 0 && code == 0) *unit_sum += t - sl[i].t0, *frac_sum += frac;
        sweep_fmt_duration(t - sl[i].t0, a, sizeof a);
        int plain = !strncmp(r->stop_reason, "finished", 8);
        say(o, r, "finished in %s: comp43 %.3f  sym43 %.3f  seen %.3f%s%s%s", a, comp, sym, seen, plain ? "" : " (",
            plain ? "" : r->stop_reason, plain ? "" : ")");
        sl[i].q = Q_DONE;
        res->done++;
    } else if (o->until_epoch > 0 && code == 0 && r->state == SWEEP_STOPPED && !*o->stop) {
        if (1 - sl[i].frac0 > 0) *unit_sum += t - sl[i].t0, *frac_sum += 1 - sl[i].frac0;
        say(o, r, "held at epoch %d/%d (--until-epoch %d): comp43 %.3f  sym43 %.3f  seen %.3f",
            r->have_last ? r->last.epoch : 0, r->epochs, o->until_epoch, comp, sym, seen);
        sl[i].q = Q_HELD;
        res->held++;
    } else if (*o->stop && (code == 130 || code == 0 || sig)) {
        say(o, r, "stopped at epoch %d/%d%s", r->have_last ? r->last.epoch : 0, r->epochs,
            r->state == SWEEP_STOPPED ? "; state saved" : " before its first state; it will start over");
        sl[i].q = Q_STOPPED;
        res->stopped++;
    } else {
        if (sig) snprintf(a, sizeof a, "killed by signal %d", sig);
        else snprintf(a, sizeof a, "exit status %d", code);
        last_log_line(r, b, sizeof b);
        say(o, r, "failed, %s: %s (%s/" SWEEP_LOG ")", a, b, r->dir);
        sl[i].q = Q_FAILED;
        res->failed++;
    }
}

int sweep_execute(ach_sweep *s, const sweep_exec_opts *o, sweep_exec_result *res)
{
    memset(res, 0, sizeof *res);
    slot *sl = calloc(s->nruns ? s->nruns : 1, sizeof *sl);
    if (!sl) {
        fprintf(o->out, "achilles: sweep: out of memory\n");
        return 1;
    }
    int todo = 0;
    for (int i = 0; i < s->nruns; i++) {
        sweep_run *r = &s->runs[i];
        if (o->only >= 0 && i != o->only) {
            sl[i].q = Q_SKIP;
            continue;
        }
        sweep_run_refresh(r);
        if (r->state == SWEEP_DONE) sl[i].q = Q_DONE, res->done++;
        else sl[i].q = Q_QUEUED, todo++;
    }
    stamp(o->out);
    if (o->only >= 0)
        fprintf(o->out, "sweep %s: run %d of %d: %s\n", s->name, o->only, s->nruns,
                todo ? "to run" : "already done");
    else
        fprintf(o->out, "sweep %s: %d runs, %d done, %d to run with %d worker%s\n", s->name, s->nruns, res->done, todo,
                o->workers, o->workers == 1 ? "" : "s");
    fflush(o->out);
    double unit_sum = 0, frac_sum = 0, last_print = now();
    int forwarded = 0, changed = 0;
    for (;;) {
        double t = now();
        int running = 0;
        if (*o->stop && !forwarded) {
            int k = 0;
            for (int i = 0; i < s->nruns; i++)
                if (sl[i].q == Q_RUNNING) kill(sl[i].pid, (int)*o->stop), k++;
            char a[64];
            snprintf(a, sizeof a, "signal %d", (int)*o->stop);
            stamp(o->out);
            fprintf(o->out, "stopping: %s forwarded to %d worker%s; each saves its state\n", a, k, k == 1 ? "" : "s");
            fflush(o->out);
            forwarded = 1;
        }
        for (int i = 0; i < s->nruns; i++) {
            if (sl[i].q != Q_RUNNING) continue;
            int wst;
            pid_t w = waitpid(sl[i].pid, &wst, WNOHANG);
            if (w == sl[i].pid) finished(s, sl, i, wst, o, res, t, &unit_sum, &frac_sum), changed = 1;
            else if (w < 0 && errno != EINTR) { /* not our child any more: cannot happen, but never spin */
                sl[i].q = Q_FAILED, res->failed++, changed = 1;
            } else running++;
        }
        int waiting = 0, queued = 0;
        for (int i = 0; i < s->nruns; i++) {
            if (!*o->stop && running < o->workers &&
                (sl[i].q == Q_QUEUED || (sl[i].q == Q_WAITING && t >= sl[i].retry_at))) {
                changed |= try_start(s, sl, i, o, res, t);
                running += sl[i].q == Q_RUNNING;
            }
            waiting += sl[i].q == Q_WAITING;
            queued += sl[i].q == Q_QUEUED;
        }
        if (changed || t - last_print > 30) {
            for (int i = 0; i < s->nruns; i++)
                if (sl[i].q == Q_RUNNING) sweep_run_refresh(&s->runs[i]); /* their progress, for the ETA */
            progress(s, sl, o, unit_sum, frac_sum, t);
            last_print = t, changed = 0;
        }
        if (!running && (*o->stop || (!queued && !waiting))) break;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL); /* a signal cuts it short */
    }
    free(sl);
    int want = o->only >= 0 ? 1 : s->nruns;
    return res->done + res->held == want ? 0 : 1;
}
