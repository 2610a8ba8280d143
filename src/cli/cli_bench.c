/* `achilles bench`: times full training steps (forward, backward, clipping,
 * AdamW) of the paper's model on a batch of the paper's task (or uniform
 * random tokens), with the fast or the reference kernels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "backend.h"
#include "cli.h"
#include "family.h"
#include "init.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "step.h"
#include "task.h"
#include "threads.h"

const char *cli_bench_help =
    "usage: achilles bench [options]\n"
    "\n"
    "Times training steps (forward, backward, gradient clipping, AdamW) of the\n"
    "paper's model (docs/science.md §2.4: D 32, N 128, K 4, expand 2, head size 64,\n"
    "vocabulary 201) on one batch, after two warm-up steps. Prints training\n"
    "sequences/s, achieved GFLOP/s and peak memory (ru_maxrss), then one line\n"
    "'RESULT key=value ...' for scripts.\n"
    "\n"
    "  --arch mamba1|mamba2      mixer (default mamba2)\n"
    "  --layers N                residual blocks (default 2)\n"
    "  --batch B                 sequences per step (default 2048)\n"
    "  --length L                tokens per sequence (default 8)\n"
    "  --threads T               threads (default: ACHILLES_THREADS, else all CPUs)\n"
    "  --steps S                 timed steps (default 10)\n"
    "  --tokens task|uniform     the batch: sequences and labels of the composite\n"
    "                            preset's training split drawn at random, as a\n"
    "                            paper run's batches are (default; needs --length 8),\n"
    "                            or tokens and labels uniform over the vocabulary\n"
    "                            (~200 distinct tokens per batch: the slowest case\n"
    "                            for the per-token first block below)\n"
    "  --kernels fast|reference  CPU kernel table (default fast)\n"
    "  --isa avx512|avx2|generic the fast kernels' SIMD instance (default: the\n"
    "                            widest this CPU runs), e.g. AVX2's figures on an\n"
    "                            AVX-512 machine\n"
    "  --backend cpu|cuda        CPU kernels (default) or the GPU (achilles-cuda\n"
    "                            only); default $ACHILLES_BACKEND, else cpu\n"
    "\n"
    "FLOP count: 3x the forward pass's (backward does two products per forward\n"
    "product: the input and the weight gradient). Forward, R = B*L rows, per layer:\n"
    "matmuls 2*R*in*out each; conv 2*R*C*K; RMSNorm 4*R*C; SiLU 4 and gate 5 per\n"
    "element; Mamba-2 SSD per sequence and head N*L(L+1) (C.B) + P*L(L+1)\n"
    "(mixing) + 2*L*P (D skip); Mamba-1 scan 7*R*Di*N (exp, decay, input, output)\n"
    "+ 6*R*Di (softplus, D skip); head: 2*B*D*V + 4*B*D + 3*B*V. exp counts as one.\n"
    "The fast kernels run a Mamba-2 step's blocks and head fused, forward then\n"
    "backward, 512 rows at a time, as training does: no forward is computed twice.\n"
    "The loss reads the last block's output at the last position only, so that\n"
    "block's out_proj, gated norm, SSD output, z and C (in_proj columns, conv)\n"
    "run there only (C's in_proj also at the conv's window). Without a positional\n"
    "encoding the first block's input rows are embedding rows, so its pre-norm\n"
    "and in_proj run once per distinct token, forward and backward (84 distinct\n"
    "tokens in a composite batch, ~200 in a uniform one). Of the count, ~54% is\n"
    "not executed at 2 layers, ~22% at 5.\n"
    "\n"
    "Mamba-1 with the fast kernels also prints its derived limit (bench/RESULTS.md\n"
    "derives it): the sequences/s if the step did nothing but the selective scan's\n"
    "exps (2 per state element, token and layer: forward, and the backward's\n"
    "recomputation) and FMAs (15: 4 forward, 3 recomputing, 8 in the reverse walk)\n"
    "and the GEMMs' FMAs, at the exp and FMA rates measured on one core just before\n"
    "(ach_fast_rates, 50 ms of CPU time each), times the threads.\n";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* The timed batch, B sequences of L tokens and their labels: with
 * task_tokens, drawn at random (seed 7) from the composite preset's
 * training split, as a run's shuffled batches are; else uniform over the
 * vocabulary V. 0, or -1 with a message. */
static int bench_batch(int task_tokens, int B, int L, int V, int *tok, int *lab, char *err, size_t errlen)
{
    ach_rng r;
    rng_init(&r, 7, 0);
    if (!task_tokens) {
        for (size_t i = 0; i < (size_t)B * L; i++) tok[i] = (int)rng_below(&r, V);
        for (int b = 0; b < B; b++) lab[b] = (int)rng_below(&r, V);
        return 0;
    }
    ach_task t;
    if (task_load(&t, "composite", err, errlen)) return -1;
    int rc = -1;
    if (t.seq_len != L)
        snprintf(err, errlen, "--tokens task: the composite preset's sequences have %d tokens, not --length %d "
                 "(--tokens uniform takes any length)", t.seq_len, L);
    else if (t.vocab_size > V)
        snprintf(err, errlen, "--tokens task: the composite preset's vocabulary of %d exceeds the model's %d",
                 t.vocab_size, V);
    else {
        uint64_t n = task_split_size(&t, TASK_TRAIN);
        for (int b = 0; b < B; b++)
            task_sequence(&t, 0, TASK_TRAIN, rng_below(&r, n), tok + (size_t)b * L, &lab[b], NULL);
        rc = 0;
    }
    task_free(&t);
    return rc;
}

/* Distinct values of tok[0, n) below V */
static int distinct(const int *tok, size_t n, int V)
{
    unsigned char *seen = calloc((size_t)V, 1);
    int d = 0;
    if (!seen) return -1;
    for (size_t i = 0; i < n; i++) d += !seen[tok[i]], seen[tok[i]] = 1;
    free(seen);
    return d;
}

/* Per state element, token and layer of a Mamba-1 training step: the
 * selective scan's exps and FMAs (vector lanes), as counted in the help
 * text and bench/RESULTS.md */
#define M1_SCAN_EXPS 2
#define M1_SCAN_FMAS 15

/* Mamba-1's derived limit in sequences/s on nt threads (the help text),
 * or 0 when k has no rates; the rates measured are returned. */
static double mamba1_limit(const ach_config *c, const ach_kernels *k, int B, int L, int nt, double *exps_per_s,
                           double *fmas_per_s)
{
    double R = (double)B * L, D = c->d_model, N = c->d_state, V = c->vocab_size, Di = cfg_d_inner(c);
    double Rk = c->dt_rank, X = Rk + 2 * N;
    ach_fast_rates(k, exps_per_s, fmas_per_s);
    if (*exps_per_s <= 0 || *fmas_per_s <= 0) return 0;
    double elems = c->n_layer * R * Di * N;
    /* forward and the two backward products: in_proj, x_proj, dt_proj, out_proj, the head's logits */
    double gemm_fmas = 3 * (c->n_layer * R * (D * 2 * Di + Di * X + Rk * Di + Di * D) + B * D * V);
    double sec = elems * (M1_SCAN_EXPS / *exps_per_s + M1_SCAN_FMAS / *fmas_per_s) + gemm_fmas / *fmas_per_s;
    return nt * B / sec;
}

int cli_bench(int argc, char **argv)
{
    ach_config cfg;
    ach_arch arch = ARCH_MAMBA2;
    int layers = 2, B = 2048, L = 8, threads = 0, steps = 10, fast = 1, kernels_given = 0, task_tokens = 1;
    const char *backend = NULL, *isa = NULL;
    char err[512];
    if (ach_backend_arg(&argc, argv, &backend, err, sizeof err))
        return cli_usage_error(cli_bench_help, "bench: %s", err);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(cli_bench_help, stdout);
            return 0;
        }
        if (!v) return cli_usage_error(cli_bench_help, "bench: option %s needs a value", a);
        i++;
        int bad = 0;
        if (!strcmp(a, "--arch")) {
            arch = ach_family_arch(v);
            bad = arch == ACH_ARCH_NONE;
        } else if (!strcmp(a, "--kernels")) {
            kernels_given = 1;
            if (!strcmp(v, "fast")) fast = 1;
            else if (!strcmp(v, "reference")) fast = 0;
            else bad = 1;
        } else if (!strcmp(a, "--isa")) {
            isa = v;
            bad = strcmp(v, "avx512") && strcmp(v, "avx2") && strcmp(v, "generic");
        } else if (!strcmp(a, "--tokens")) {
            if (!strcmp(v, "task")) task_tokens = 1;
            else if (!strcmp(v, "uniform")) task_tokens = 0;
            else bad = 1;
        } else if (!strcmp(a, "--layers")) bad = cli_parse_int(v, &layers) || layers < 1;
        else if (!strcmp(a, "--batch")) bad = cli_parse_int(v, &B) || B < 1;
        else if (!strcmp(a, "--length")) bad = cli_parse_int(v, &L) || L < 1;
        else if (!strcmp(a, "--threads")) bad = cli_parse_int(v, &threads) || threads < 1;
        else if (!strcmp(a, "--steps")) bad = cli_parse_int(v, &steps) || steps < 1;
        else return cli_usage_error(cli_bench_help, "bench: unknown option '%s'", a);
        if (bad) {
            fprintf(stderr, "achilles: bench: bad value '%s' for %s\n\n%s", v, a, cli_bench_help);
            return CLI_EXIT_USAGE;
        }
    }
    if (threads) ach_threads_set(threads);
    cfg_default(&cfg, arch);
    cfg.n_layer = layers;
    cfg.seed = 1;
    const ach_kernels *k = fast ? ach_fast_kernels() : &ach_cpu_kernels;
    if (isa && !fast) return cli_usage_error(cli_bench_help, "bench: --isa picks the fast kernels' instance; drop "
                                             "it with --kernels reference%s", "");
    if (isa && !(k = ach_fast_kernels_isa(isa))) {
        fprintf(stderr, "achilles: bench: --isa %s: this CPU cannot run it (or this build has no such instance)\n",
                isa);
        return 1;
    }
    const ach_kernels *bk = ach_backend(backend, err, sizeof err);
    if (!bk) {
        fprintf(stderr, "achilles: bench: %s\n", err);
        return 1;
    }
    int gpu = bk != ach_fast_kernels();
    if (gpu && (kernels_given || isa))
        return cli_usage_error(cli_bench_help, "bench: --kernels and --isa pick CPU kernels; drop them with the cuda "
                               "backend%s", "");
    if (gpu) k = bk;
    int *tok = malloc((size_t)B * L * sizeof *tok), *lab = malloc((size_t)B * sizeof *lab);
    if (!tok || !lab || bench_batch(task_tokens, B, L, cfg.vocab_size, tok, lab, err, sizeof err)) {
        fprintf(stderr, "achilles: bench: %s\n", tok && lab ? err : "out of memory");
        free(tok);
        free(lab);
        return 1;
    }
    ach_model m;
    ach_optim o;
    ach_optim_cfg oc;
    if (ach_model_create(&m, &cfg, k, err, sizeof err) || ach_model_reserve(&m, B, L, err, sizeof err)) {
        fprintf(stderr, "achilles: bench: %s\n", err);
        ach_model_free(&m);
        free(tok);
        free(lab);
        return 1;
    }
    ach_init_params(&m);
    ach_optim_defaults(&oc);
    if (ach_optim_create(&o, &m, &oc)) {
        fprintf(stderr, "achilles: bench: out of memory\n");
        ach_model_free(&m);
        free(tok);
        free(lab);
        return 1;
    }

    /* whole steps, as training takes them (on a GPU the kernels run
     * asynchronously, so only a whole step's time means anything) */
    double loss = 0, gnorm, t0 = 0;
    for (int s = -2; s < steps; s++) { /* two untimed warm-ups: on a GPU the second records the step's graph */
        if (s == 0) t0 = now();
        loss = ach_train_step(&m, &o, tok, lab, B, L, 1e-4, &gnorm);
    }
    double per = (now() - t0) / steps, flops = 3 * m.fam->forward_flops(&cfg, B, L);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss = ru.ru_maxrss / 1024.0; /* KiB on Linux */
    int nt = gpu ? 1 : fast ? ach_threads_count() : 1; /* host threads */
    printf("bench: %s, %d layers, batch %d x %d, kernels %s, %d thread%s, %zu parameters\n", cfg_arch_name(arch),
           layers, B, L, k->name, nt, nt == 1 ? "" : "s", m.nweights);
    printf("  batch: %s, %d distinct tokens\n",
           task_tokens ? "the composite preset's training sequences" : "tokens uniform over the vocabulary",
           distinct(tok, (size_t)B * L, cfg.vocab_size));
    printf("  step %.2f ms (forward, backward, clipping, AdamW) over %d steps; loss %.4f\n", 1e3 * per, steps, loss);
    printf("  training sequences/s: %.0f\n", B / per);
    printf("  %.3f GFLOP/step, achieved %.1f GFLOP/s\n", flops * 1e-9, flops * 1e-9 / per);
    printf("  peak memory (ru_maxrss): %.0f MiB\n", rss);
    char limit[64] = "";
    double exps_per_s, fmas_per_s, lim = arch == ARCH_MAMBA1 && fast && !gpu
                                             ? mamba1_limit(&cfg, k, B, L, nt, &exps_per_s, &fmas_per_s)
                                             : 0;
    if (lim > 0) {
        printf("  derived limit: %.0f sequences/s (per core %.2f G exps/s, %.1f G FMA lanes/s); measured %.0f%% "
               "of it (1/%.2f)\n",
               lim, exps_per_s * 1e-9, fmas_per_s * 1e-9, 100 * B / per / lim, lim * per / B);
        snprintf(limit, sizeof limit, " limit_seq_per_s=%.1f", lim);
    }
    printf("RESULT impl=achilles-%s arch=%s layers=%d batch=%d length=%d threads=%d step_ms=%.3f seq_per_s=%.1f "
           "gflops=%.2f maxrss_mib=%.0f isa=%s%s tokens=%s\n",
           gpu ? "cuda" : fast ? "fast" : "reference", cfg_arch_name(arch), layers, B, L, nt, 1e3 * per, B / per,
           flops * 1e-9 / per, rss, gpu || !fast ? "-" : !strncmp(k->name, "fast-", 5) ? k->name + 5 : k->name, limit,
           task_tokens ? "task" : "uniform");
    free(tok);
    free(lab);
    ach_optim_free(&o, &m);
    ach_model_free(&m);
    return 0;
}
