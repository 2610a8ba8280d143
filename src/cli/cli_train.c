/* `achilles train`: one run, headless, with a progress line per epoch. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "cli.h"
#include "run.h"

const char *cli_train_help =
    "usage: achilles train [--config FILE] [--out DIR] [--quiet | --json] [key=value ...]\n"
    "       achilles train --resume DIR [--quiet | --json]\n"
    "\n"
    "Trains one model on a task preset with the paper's recipe (docs/science.md §3):\n"
    "AdamW (0.9, 0.999, eps 1e-8, weight decay 0.01), learning rate 1e-5 warmed up\n"
    "to 2.5e-4 over 10 epochs then cosine back to 1e-5 at the last epoch, batch\n"
    "2048, clipping at norm 1, 200 epochs. Every epoch evaluates the test split and\n"
    "appends to DIR/metrics.jsonl and DIR/training_log.csv; checkpoints go to\n"
    "DIR/ckpt/, the resumable state to DIR/state.safetensors.\n"
    "\n"
    "  --config FILE   a JSON object of keys (e.g. a run's config.json); key=value\n"
    "                  arguments after it override it\n"
    "  --out DIR       the run directory (default runs/ARCH-L<n_layer>-g<gamma>-s<seed>)\n"
    "  --resume DIR    continue a stopped run exactly where it stopped\n"
    "  --quiet         no progress lines\n"
    "  --json          one JSON record per epoch on stdout instead of progress lines\n"
    "  --backend cpu|cuda\n"
    "                  the kernels: CPU (default) or GPU (achilles-cuda only);\n"
    "                  default $ACHILLES_BACKEND, else cpu\n"
    "  --stop-after-epochs N, --stop-after-steps N\n"
    "                  save the state and exit (status 0) after N more epochs or\n"
    "                  optimizer steps: for time-sliced jobs; --resume continues\n"
    "\n"
    "Ctrl-C or SIGTERM stops after the current step and saves the state.\n"
    "Keys marked (live) may also change on a running run (the workbench's set);\n"
    "a key marked (mamba1 only) or (mamba2 only) is ignored by the other family.\n"
    "Keys (key=value) [default]; 'man achilles' has the details:\n";

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { stop_requested = sig; }

static void print_help(FILE *f)
{
    ach_runcfg d;
    char v[300], help[300];
    runcfg_defaults(&d);
    fputs(cli_train_help, f);
    for (int i = 0; i < runcfg_nkeys(); i++) {
        runcfg_get(&d, i, v, sizeof v);
        runcfg_key_describe(i, help, sizeof help);
        fprintf(f, "  %-16s %s [%s]\n", runcfg_key_name(i), help, v);
    }
}

static void fmt_duration(double s, char *buf, size_t n)
{
    if (s < 0 || s != s) snprintf(buf, n, "?");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%.0fm%02.0fs", s / 60 - 0.5, s - 60 * (int)(s / 60));
    else snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

static void progress(const ach_run *r, double epoch_wall)
{
    const ach_metrics *m = &r->last;
    char eta[32];
    fmt_duration(epoch_wall * (r->cfg.epochs - r->epoch), eta, sizeof eta);
    printf("epoch %3d/%d  train %.4f", m->epoch, r->cfg.epochs, m->train_loss);
    const ach_task_kind *k = m->eval.kind;
    for (int i = 0; k && i < k->nmetrics; i++) printf("  %s %.*f", k->metrics[i].label, k->metrics[i].decimals, m->eval.value[i]);
    printf("  lr %.2e  %.0f seq/s  ETA %s\n", m->lr, m->seq_per_s, eta);
    fflush(stdout);
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int cli_train(int argc, char **argv)
{
    ach_runcfg cfg;
    const char *out = NULL, *resume = NULL;
    int quiet = 0, json = 0, settings = 0, stop_epochs = -1, stop_steps = -1;
    char err[1024], dir[1024];
    const char *backend = NULL;
    if (ach_backend_arg(&argc, argv, &backend, err, sizeof err))
        return cli_usage_error(cli_train_help, "train: %s", err);
    runcfg_defaults(&cfg);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_help(stdout);
            return 0;
        } else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--stop-after-epochs") || !strcmp(a, "--stop-after-steps")) {
            int *dst = a[13] == 'e' ? &stop_epochs : &stop_steps;
            if (i + 1 >= argc || cli_parse_int(argv[i + 1], dst) || *dst < 1)
                return cli_usage_error(cli_train_help, "train: %s needs a positive count", a);
            i++;
        } else if (!strcmp(a, "--out") || !strcmp(a, "--resume") || !strcmp(a, "--config")) {
            if (i + 1 >= argc) return cli_usage_error(cli_train_help, "train: %s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--out")) out = v;
            else if (!strcmp(a, "--resume")) resume = v;
            else if (settings++, runcfg_load_file(&cfg, v, err, sizeof err)) {
                fprintf(stderr, "achilles: train: %s\n", err);
                return CLI_EXIT_USAGE;
            }
        } else if (a[0] == '-') return cli_usage_error(cli_train_help, "train: unknown option '%s'", a);
        else if (settings++, runcfg_assign(&cfg, a, err, sizeof err)) {
            fprintf(stderr, "achilles: train: %s\n", err);
            return CLI_EXIT_USAGE;
        }
    }
    if (resume && (out || settings))
        return cli_usage_error(cli_train_help, "train: --resume continues with the run's own settings; drop --out, "
                               "--config and key=value%s", "");
    if (!resume && runcfg_validate(&cfg, err, sizeof err)) {
        fprintf(stderr, "achilles: train: %s\n", err);
        return CLI_EXIT_USAGE;
    }
    if (!resume && !out) {
        char gamma[32];
        snprintf(gamma, sizeof gamma, "%g", cfg.model.gamma);
        snprintf(dir, sizeof dir, "runs/%s-L%d-g%s-s%llu", cfg_arch_name(cfg.model.arch), cfg.model.n_layer, gamma,
                 (unsigned long long)cfg.seed);
        out = dir;
    }
    /* from here on a signal stops the run at a step boundary with its state saved */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    ach_run r;
    double t0 = wall();
    const ach_kernels *k = ach_backend(backend, err, sizeof err);
    if (!k) {
        fprintf(stderr, "achilles: train: %s\n", err);
        return 1;
    }
    int rc = resume ? ach_run_resume(&r, resume, k, err, sizeof err)
                    : ach_run_create(&r, &cfg, out, k, err, sizeof err);
    if (rc) {
        fprintf(stderr, "achilles: train: %s\n", err);
        return 1;
    }
    if (!quiet && !json) {
        printf("run %s: %s, %d layers, gamma %g, preset %s, %llu train / %llu test sequences, %d steps per epoch\n",
               r.dir, cfg_arch_name(r.model.cfg.arch), r.model.cfg.n_layer, r.model.cfg.gamma, r.task.name,
               (unsigned long long)r.ntrain, (unsigned long long)r.ntest, r.nbatches);
        if (resume) printf("resuming at epoch %d, step %d of the epoch\n", r.epoch, r.batch);
        else progress(&r, 0);
    }
    if (json && !resume) {
        char *js = ach_metrics_json(&r.last);
        printf("%s\n", js);
        free(js);
    }
    double epoch_start = wall(), epoch_wall = 0;
    int status = 0, epochs_done = 0;
    for (long steps = 0;; steps++) {
        if (stop_epochs == epochs_done || stop_steps == steps) {
            if (ach_run_save_state(&r, err, sizeof err)) {
                fprintf(stderr, "achilles: train: %s\n", err);
                status = 1;
            } else if (!quiet && !json)
                printf("paused at epoch %d, step %d of the epoch; state saved. Resume with: achilles train --resume %s\n",
                       r.epoch, r.batch, r.dir);
            break;
        }
        if (stop_requested) {
            if (ach_run_save_state(&r, err, sizeof err)) {
                fprintf(stderr, "achilles: train: %s\n", err);
                status = 1;
            } else {
                fprintf(stderr, "achilles: train: stopped by signal at epoch %d, step %d of the epoch; state saved. "
                        "Resume with: achilles train --resume %s\n", r.epoch, r.batch, r.dir);
                status = 130;
            }
            break;
        }
        ach_run_status s = ach_run_advance(&r, err, sizeof err);
        if (s == RUN_ERROR) {
            fprintf(stderr, "achilles: train: %s\n", err);
            status = 1;
            break;
        }
        if (s == RUN_EPOCH || s == RUN_DONE) {
            double now = wall();
            epochs_done++;
            epoch_wall = now - epoch_start;
            epoch_start = now;
            if (json) {
                char *js = ach_metrics_json(&r.last);
                printf("%s\n", js);
                fflush(stdout);
                free(js);
            } else if (!quiet) progress(&r, epoch_wall);
        }
        if (s == RUN_DONE) {
            if (!quiet && !json) printf("done: %s (%.1fs); results in %s\n", r.stop_reason, wall() - t0, r.dir);
            break;
        }
    }
    ach_run_close(&r);
    return status;
}
