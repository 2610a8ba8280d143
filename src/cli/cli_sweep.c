/* `achilles sweep`: expand a grid into a sweep directory and run it with
 * local workers, one run per Slurm array task, or report its state. */
#define _DEFAULT_SOURCE /* realpath */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "fsutil.h"
#include "strbuf.h"
#include "sweep.h"
#include "sweep_exec.h"

const char *cli_sweep_help =
    "usage: achilles sweep SPEC.json|key=v1,v2,... [key=value ...] [--out DIR] [--workers N] [--dry-run]\n"
    "       achilles sweep DIR [--workers N] [--dry-run]\n"
    "       achilles sweep --status DIR\n"
    "       achilles sweep --run-index I DIR\n"
    "       achilles sweep --emit slurm DIR [--partition P] [--time T] [--cpus N] [--mem M]\n"
    "\n"
    "Expands a grid over run settings (the keys of 'achilles train --help') into\n"
    "run directories under one sweep directory with DIR/manifest.json, and trains\n"
    "them with N local worker processes. Finished runs are skipped, stopped ones\n"
    "resume, new ones start; a lock per run keeps two processes off one run, so\n"
    "running a sweep again (or twice at once) finishes every run exactly once.\n"
    "\n"
    "  SPEC.json        {\"name\": ..., \"base\": {key: value}, \"grid\": {key: [values]}}\n"
    "  key=v1,v2,...    a grid axis (the first key varies slowest); key=value is\n"
    "                   fixed for all runs. block, block_layers, gamma_tensors and\n"
    "                   no_decay take comma lists: separate their values with ';'\n"
    "  DIR              an existing sweep directory: continue it\n"
    "  --out DIR        the sweep directory (default sweeps/NAME; NAME is the spec's\n"
    "                   name, or the grid keys joined by '-')\n"
    "  --workers N      training processes at once (default 1); runs that do not\n"
    "                   set threads get threads = CPUs / N\n"
    "  --dry-run        print the runs and what would happen to each; write nothing\n"
    "  --until-epoch N  train each run up to epoch N of its own schedule, save it\n"
    "                   and leave it stopped (a look at the first N epochs of a\n"
    "                   long recipe); run the sweep again to go on\n"
    "  --status DIR     each run's state, epoch and latest pair-43 accuracies\n"
    "  --run-index I    run only run I (a Slurm array task), under the same rules;\n"
    "                   if another process holds it, leave it to that one\n"
    "  --emit slurm     write DIR/sweep.sbatch, a job array with one task per run\n"
    "                   (task i runs 'achilles sweep --run-index i DIR'); with a\n"
    "                   SPEC or key=value grid, also write the manifest first\n"
    "  --partition P, --time T, --cpus N, --mem M\n"
    "                   the job's #SBATCH --partition, --time (e.g. 04:00:00),\n"
    "                   --cpus-per-task (default 1) and --mem (e.g. 4G)\n"
    "\n"
    "SIGINT or SIGTERM is forwarded to the workers, which save their state; the\n"
    "sweep then exits with status 130. Exit status 0: every run done; 1: some\n"
    "run failed (see its train.log); 2: bad usage.\n";

static volatile sig_atomic_t stop_sig;
static void on_signal(int sig) { stop_sig = sig; }

typedef struct {
    const char *out, *status, *emit, *partition, *time, *mem;
    int workers, dry, run_index, cpus, until;
    int npos;
    char **pos;
} opts;

static int usage(const char *fmt, const char *arg) { return cli_usage_error(cli_sweep_help, fmt, arg); }

static int fail(const char *msg)
{
    fprintf(stderr, "achilles: sweep: %s\n", msg);
    return 1;
}

static int is_dir(const char *p)
{
    struct stat st;
    return !stat(p, &st) && S_ISDIR(st.st_mode);
}

/* Safe in an #SBATCH line and in a shell word: no quoting needed. */
static int plain_word(const char *s, const char *extra)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr(extra, *s)))
            return 0;
    return 1;
}

static void sh_quote(strbuf *b, const char *s)
{
    sb_puts(b, "'");
    for (; *s; s++) {
        if (*s == '\'') sb_puts(b, "'\\''");
        else sb_printf(b, "%c", *s);
    }
    sb_puts(b, "'");
}

static int parse(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    o->workers = 1, o->run_index = -1, o->cpus = 0;
    o->pos = calloc(argc, sizeof *o->pos);
    if (!o->pos) return fail("out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !a[1]) {
            o->pos[o->npos++] = argv[i];
            continue;
        }
        if (!strcmp(a, "--dry-run")) {
            o->dry = 1;
            continue;
        }
        static const char *const valued[] = {"--out", "--workers", "--status", "--run-index", "--emit",
                                             "--partition", "--time", "--cpus", "--mem", "--until-epoch"};
        size_t k;
        for (k = 0; k < sizeof valued / sizeof valued[0] && strcmp(a, valued[k]); k++) continue;
        if (k == sizeof valued / sizeof valued[0]) return usage("sweep: unknown option '%s'", a);
        if (i + 1 >= argc) return usage("sweep: %s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--status")) o->status = v;
        else if (!strcmp(a, "--emit")) o->emit = v;
        else if (!strcmp(a, "--partition")) o->partition = v;
        else if (!strcmp(a, "--time")) o->time = v;
        else if (!strcmp(a, "--mem")) o->mem = v;
        else {
            int *dst = !strcmp(a, "--workers") ? &o->workers : !strcmp(a, "--cpus") ? &o->cpus
                     : !strcmp(a, "--until-epoch") ? &o->until : &o->run_index;
            int min = dst == &o->run_index ? 0 : 1;
            if (cli_parse_int(v, dst) || *dst < min)
                return cli_usage_error(cli_sweep_help, min ? "sweep: %s needs a positive integer" :
                                       "sweep: %s needs a run index (0, 1, ...)", a);
        }
    }
    int modes = !!o->status + (o->run_index >= 0) + !!o->emit;
    if (modes > 1) return usage("sweep: --status, --run-index and --emit are separate modes; give one%s", "");
    if (o->emit && strcmp(o->emit, "slurm")) return usage("sweep: --emit '%s': the one scheduler is slurm", o->emit);
    if (!o->emit && (o->partition || o->time || o->mem || o->cpus))
        return usage("sweep: --partition, --time, --cpus and --mem go with --emit slurm%s", "");
    if (o->partition && !plain_word(o->partition, "_.,-"))
        return usage("sweep: --partition '%s': letters, digits and _.,- only", o->partition);
    if (o->time && !plain_word(o->time, ":-"))
        return usage("sweep: --time '%s': a Slurm time such as 30, 04:00:00 or 1-00:00:00", o->time);
    if (o->mem && !plain_word(o->mem, ""))
        return usage("sweep: --mem '%s': a Slurm size such as 4000M or 4G", o->mem);
    if (o->status || o->run_index >= 0) {
        const char *d = o->status ? o->status : o->npos == 1 ? o->pos[0] : NULL;
        if (!d || o->npos > (o->status ? 0 : 1))
            return usage("sweep: %s takes one sweep directory and nothing else", o->status ? "--status" : "--run-index");
        if (o->out || o->dry) return usage("sweep: --out and --dry-run do not go with %s", o->status ? "--status" : "--run-index");
    }
    if (!o->status && !o->npos) return usage("sweep: what to sweep? a SPEC.json, key=v1,v2,... or a sweep DIR%s", "");
    return 0;
}

/* The plan from a sweep directory, a SPEC.json or key=value words; *dir
 * tells whether it came from an existing directory. */
static int make_plan(const opts *o, ach_sweep *s, int *existing, char *err, size_t errlen)
{
    sweep_init(s);
    *existing = 0;
    const char *first = o->pos[0];
    int from = 0;
    if (!strchr(first, '=') && is_dir(first)) {
        if (o->npos > 1) {
            snprintf(err, errlen, "%s is a sweep directory: its settings are in its manifest; drop '%s'", first, o->pos[1]);
            return 2;
        }
        if (o->out) {
            snprintf(err, errlen, "%s is a sweep directory already; drop --out", first);
            return 2;
        }
        *existing = 1;
        return sweep_load(s, first, err, errlen) ? 1 : 0;
    }
    if (!strchr(first, '=')) {
        char *text = read_file(first, 1 << 20, NULL, err, errlen);
        if (!text) return 1;
        int rc = sweep_parse_spec(s, text, first, err, errlen);
        free(text);
        if (rc) return 1;
        if (!s->name[0]) { /* the file's base name */
            const char *b = strrchr(first, '/');
            snprintf(s->name, sizeof s->name, "%s", b ? b + 1 : first);
            char *dot = strrchr(s->name, '.');
            if (dot && dot != s->name) *dot = 0;
        }
        from = 1;
    }
    for (int i = from; i < o->npos; i++)
        if (sweep_parse_arg(s, o->pos[i], err, errlen)) return 2;
    if (o->out) snprintf(s->dir, sizeof s->dir, "%s", o->out);
    else if (s->name[0]) snprintf(s->dir, sizeof s->dir, "sweeps/%.120s", s->name);
    else {
        size_t k = snprintf(s->dir, sizeof s->dir, "sweeps/");
        for (int i = 0; i < s->naxes; i++) k += snprintf(s->dir + k, sizeof s->dir - k, "%s%s", i ? "-" : "", s->axes[i].key);
        if (!s->naxes) snprintf(s->dir, sizeof s->dir, "sweeps/sweep");
    }
    for (size_t n = strlen(s->dir); n > 1 && s->dir[n - 1] == '/'; n--) s->dir[n - 1] = 0;
    if (!s->name[0]) {
        const char *b = strrchr(s->dir, '/');
        snprintf(s->name, sizeof s->name, "%.127s", b ? b + 1 : s->dir);
    }
    return sweep_expand(s, err, errlen) ? 2 : 0;
}

/* A new plan into DIR: written, or matched against the manifest there. */
static int settle_dir(ach_sweep *s, char *err, size_t errlen)
{
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%.4000s/" SWEEP_MANIFEST, s->dir);
    if (stat(path, &st)) return sweep_write_manifest(s, err, errlen) ? 1 : 0;
    ach_sweep old;
    if (sweep_load(&old, s->dir, err, errlen)) return 1;
    int same = sweep_same_plan(&old, s);
    sweep_free(&old);
    if (!same) {
        snprintf(err, errlen, "%s holds a different sweep (its manifest.json differs from these settings); choose "
                 "another --out, or continue it with 'achilles sweep %s'", s->dir, s->dir);
        return 1;
    }
    return 0;
}

static void print_status(ach_sweep *s, FILE *f)
{
    int count[5] = {0};
    for (int i = 0; i < s->nruns; i++) count[s->runs[i].state]++;
    fprintf(f, "sweep %s (%s): %d run%s:", s->name, s->dir, s->nruns, s->nruns == 1 ? "" : "s");
    for (int k = SWEEP_DONE, first = 1; k >= SWEEP_NEW; k--)
        if (count[k]) fprintf(f, "%s %d %s", first ? "" : ",", count[k], sweep_state_name(k)), first = 0;
    fprintf(f, "\n%5s  %-8s %9s  %6s  %6s  %6s  %s\n", "run", "state", "epoch", "comp43", "sym43", "seen",
            "settings, directory");
    for (int i = 0; i < s->nruns; i++) {
        sweep_run *r = &s->runs[i];
        char ep[32], label[600], c[16] = "-", y[16] = "-", n[16] = "-";
        if (r->have_last) {
            snprintf(ep, sizeof ep, "%d/%d", r->last.epoch, r->epochs);
            const ach_named_metrics *e = &r->last.eval;
            snprintf(c, sizeof c, "%.3f", task_metric(e, TASK_METRIC_ACC43_COMP));
            snprintf(y, sizeof y, "%.3f", task_metric(e, TASK_METRIC_ACC43_SYM));
            snprintf(n, sizeof n, "%.3f", task_metric(e, TASK_METRIC_ACC_SEEN));
        } else snprintf(ep, sizeof ep, "-/%d", r->epochs);
        sweep_run_label(r, label, sizeof label);
        fprintf(f, "%5d  %-8s %9s  %6s  %6s  %6s  %s  %s", r->index, sweep_state_name(r->state), ep, c, y, n, label,
                r->rel);
        if (r->state == SWEEP_RUNNING && r->lock_pid)
            fprintf(f, "  (pid %ld on %s)", r->lock_pid, r->lock_host[0] ? r->lock_host : "?");
        if (r->state == SWEEP_DONE && r->stop_reason[0] && strncmp(r->stop_reason, "finished", 8))
            fprintf(f, "  (%s)", r->stop_reason);
        fputc('\n', f);
    }
}

static void print_dry(ach_sweep *s, int existing)
{
    if (!existing) printf("sweep %s: %d runs into %s (dry run: nothing written)\n", s->name, s->nruns, s->dir);
    else printf("sweep %s: %d runs in %s (dry run: nothing started)\n", s->name, s->nruns, s->dir);
    for (int i = 0; i < s->nruns; i++) {
        sweep_run *r = &s->runs[i];
        char label[600];
        sweep_run_label(r, label, sizeof label);
        const char *what = "start";
        if (r->state == SWEEP_DONE) what = "skip (done)";
        else if (r->state == SWEEP_STOPPED) what = "resume";
        else if (r->state == SWEEP_RUNNING) what = "wait (running elsewhere)";
        else if (r->state == SWEEP_PARTIAL) what = "start over (interrupted start)";
        printf("%5d  %-28s %s  %s\n", r->index, what, r->rel, label);
    }
}

static int emit_slurm(ach_sweep *s, const opts *o, const char *argv0)
{
    char exe[4096], absdir[4096], err[4400], path[4200];
    sweep_self_exe(argv0, exe, sizeof exe);
    if (!realpath(s->dir, absdir)) {
        snprintf(err, sizeof err, "%s: %s", s->dir, strerror(errno));
        return fail(err);
    }
    snprintf(path, sizeof path, "%.4000s/slurm", absdir);
    if (make_dirs(path, err, sizeof err)) return fail(err);
    strbuf b = {0};
    sb_printf(&b, "#!/bin/bash\n");
    sb_printf(&b, "# achilles sweep '%s': %d runs as a Slurm job array, one run per task.\n", s->name, s->nruns);
    sb_printf(&b, "# Written by 'achilles sweep --emit slurm'. Submit with: sbatch %s/sweep.sbatch\n", absdir);
    sb_printf(&b, "# Resubmitting is safe: finished runs are skipped, stopped ones resume from\n"
                  "# their state, and a lock keeps two tasks off one run. At the time limit Slurm\n"
                  "# sends SIGTERM, the run saves its state, and the next submission resumes it.\n");
    char jobname[160];
    snprintf(jobname, sizeof jobname, "achilles-%s", s->name);
    for (char *p = jobname; *p; p++)
        if (!plain_word((char[]){*p, 0}, "_.-")) *p = '_';
    sb_printf(&b, "#SBATCH --job-name=%s\n", jobname);
    sb_printf(&b, "#SBATCH --array=0-%d\n", s->nruns - 1);
    sb_printf(&b, "#SBATCH --ntasks=1\n");
    sb_printf(&b, "#SBATCH --cpus-per-task=%d\n", o->cpus ? o->cpus : 1);
    if (o->partition) sb_printf(&b, "#SBATCH --partition=%s\n", o->partition);
    if (o->time) sb_printf(&b, "#SBATCH --time=%s\n", o->time);
    if (o->mem) sb_printf(&b, "#SBATCH --mem=%s\n", o->mem);
    /* %A job, %a task: one log per task, next to the runs */
    int plain_dir = plain_word(absdir, "/_.,+-=");
    if (plain_dir) sb_printf(&b, "#SBATCH --chdir=%s\n#SBATCH --output=%s/slurm/%%A_%%a.out\n", absdir, absdir);
    else sb_printf(&b, "# (the sweep path holds characters #SBATCH cannot take: logs go to Slurm's default)\n");
    sb_printf(&b, "\nexec ");
    sh_quote(&b, exe);
    sb_printf(&b, " sweep --run-index \"$SLURM_ARRAY_TASK_ID\" ");
    sh_quote(&b, absdir);
    sb_printf(&b, "\n");
    char *text = sb_take(&b);
    if (!text) return fail("out of memory");
    snprintf(path, sizeof path, "%.4000s/sweep.sbatch", absdir);
    int rc = write_file_atomic(path, text, strlen(text), err, sizeof err);
    free(text);
    if (rc) return fail(err);
    chmod(path, 0755);
    printf("wrote %s: %d array tasks (0-%d)\nsubmit with: sbatch %s\nfollow with: achilles sweep --status %s\n", path,
           s->nruns, s->nruns - 1, path, absdir);
    return 0;
}

/* Threads for new runs: the CPUs shared among the workers, unless the
 * sweep sets threads itself. */
static int threads_for(const ach_sweep *s, int workers)
{
    for (int i = 0; i < s->nbase; i++)
        if (!strcmp(s->base[i].key, "threads")) return 0;
    for (int i = 0; i < s->naxes; i++)
        if (!strcmp(s->axes[i].key, "threads")) return 0;
    int t = sweep_cpu_count() / workers;
    return t > 0 ? t : 1;
}

int cli_sweep(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(cli_sweep_help, stdout);
            return 0;
        }
    opts o;
    char err[8192];
    int rc = parse(argc, argv, &o);
    if (rc) {
        free(o.pos);
        return rc;
    }
    ach_sweep s;
    sweep_init(&s);
    if (o.status || o.run_index >= 0) {
        const char *d = o.status ? o.status : o.pos[0];
        if (sweep_load(&s, d, err, sizeof err)) {
            free(o.pos);
            return fail(err);
        }
        if (o.status) {
            sweep_refresh(&s);
            print_status(&s, stdout);
            sweep_free(&s);
            free(o.pos);
            return 0;
        }
        if (!s.has_manifest || o.run_index >= s.nruns) {
            snprintf(err, sizeof err, "%.4000s: no manifest.json: not a sweep directory", d);
            if (s.has_manifest)
                snprintf(err, sizeof err, "--run-index %d: the sweep in %s has runs 0 to %d", o.run_index, d,
                         s.nruns - 1);
            sweep_free(&s);
            free(o.pos);
            fprintf(stderr, "achilles: sweep: %s\n", err);
            return CLI_EXIT_USAGE;
        }
    } else {
        int existing;
        rc = make_plan(&o, &s, &existing, err, sizeof err);
        if (!rc && existing && !s.has_manifest) {
            snprintf(err, sizeof err, "%.3000s: no manifest.json: not a sweep directory (make one with 'achilles "
                     "sweep key=v1,v2 --out %.3000s')", s.dir, s.dir);
            rc = 1;
        }
        if (rc) {
            fprintf(stderr, "achilles: sweep: %s\n", err);
            if (rc == 2) fprintf(stderr, "(see 'achilles sweep --help')\n");
            sweep_free(&s);
            free(o.pos);
            return rc;
        }
        if (o.dry) {
            sweep_refresh(&s); /* a grid into an existing sweep directory: its runs' states */
            print_dry(&s, existing);
            sweep_free(&s);
            free(o.pos);
            return 0;
        }
        if (!existing && settle_dir(&s, err, sizeof err)) {
            sweep_free(&s);
            free(o.pos);
            return fail(err);
        }
    }
    if (o.emit) {
        rc = emit_slurm(&s, &o, argv[0]);
        sweep_free(&s);
        free(o.pos);
        return rc;
    }
    char exe[4096];
    sweep_self_exe(argv[0], exe, sizeof exe);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sweep_exec_opts eo = {.workers = o.run_index >= 0 ? 1 : o.workers, .exe = exe, .only = o.run_index,
                          .stop = &stop_sig, .out = stdout, .until_epoch = o.until};
    eo.threads = threads_for(&s, eo.workers);
    sweep_exec_result res;
    sweep_execute(&s, &eo, &res);
    int n = o.run_index >= 0 ? 1 : s.nruns;
    if (stop_sig) rc = 130;
    else if (res.done + res.elsewhere + res.held == n && !res.failed) rc = 0;
    else rc = 1;
    if (o.run_index < 0) {
        if (rc == 0 && res.held)
            printf("sweep %s: %d of %d runs at epoch %d, %d done. Go on with: achilles sweep %s [--until-epoch N]\n",
                   s.name, res.held, n, o.until, res.done, s.dir);
        else if (rc == 0) printf("sweep %s: all %d runs done. Phase diagram: achilles phase %s\n", s.name, n, s.dir);
        else if (rc == 130)
            printf("sweep %s: stopped; %d of %d runs done. Continue with: achilles sweep %s\n", s.name, res.done, n,
                   s.dir);
        else printf("sweep %s: %d of %d runs done, %d failed. Continue with: achilles sweep %s\n", s.name, res.done, n,
                    res.failed, s.dir);
    }
    sweep_free(&s);
    free(o.pos);
    return rc;
}
