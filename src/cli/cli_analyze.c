/* `achilles analyze`: the paper's analyses (docs/science.md §4) of a
 * checkpoint or a run directory, as tables and text heatmaps, or as one JSON object. The numbers
 * come from the library (analysis.h) so the workbench shows the same ones. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "analysis.h"
#include "backend.h"
#include "checkpoint.h"
#include "cli.h"
#include "family.h"
#include "runcfg.h"
#include "safetensors.h"
#include "textplot.h"

const char *cli_analyze_help =
    "usage: achilles analyze CKPT_OR_RUN_DIR cosine|attention|blocking|substitution [options]\n"
    "\n"
    "The paper's analyses (docs/science.md §4) of a checkpoint file or of a run\n"
    "directory (its state.safetensors, and ckpt/epoch_0000.safetensors for epoch 0;\n"
    "the task and the seed are the run's preset.json and config.json). A mamba_ssm\n"
    "state_dict saved without our config loads too (the config from config.json\n"
    "beside it, else from the tensor shapes).\n"
    "\n"
    "  cosine        per layer, the K x K cosine similarities of the conv taps\n"
    "                (a run directory: epoch 0 beside now)\n"
    "  attention     the SSM matrix S(t,s) of one sequence\n"
    "  blocking      per pair, the fraction of test predictions unchanged when the\n"
    "                SSM contributions of chosen positions to later ones are removed\n"
    "  substitution  per pair, the fraction of predictions that collapse to the\n"
    "                (4,3) twin's when its post-convolution states are swapped in,\n"
    "                and the fraction the swap leaves unchanged\n"
    "\n"
    "  --epoch N            run directory: analyse ckpt/epoch_NNNN.safetensors, not\n"
    "                       the latest state\n"
    "  --preset P           task preset (default: the run's, or composite)\n"
    "  --seed S             data seed (default: the run's, or 0)\n"
    "  --layer L            cosine: one layer (default all); attention and\n"
    "                       substitution: the layer (default 0)\n"
    "  --head H             attention: Mamba-2 head or Mamba-1 channel; -1 (default)\n"
    "                       is the mean over heads, or the mean |S| over channels\n"
    "  --split train|test   attention: the split of the sequence (default test)\n"
    "  --index I            attention: its index in the split (default 0)\n"
    "  --tokens T,T,...     attention: this sequence instead\n"
    "  --positions SPEC     blocking: key, anchor1, anchor2, anchors, indices or a\n"
    "                       comma mix (default key,anchors)\n"
    "  --layers all|L,...   blocking: the layers blocked (default all)\n"
    "  --from WHERE         substitution: after (default; the positions after the\n"
    "                       anchors), anchors (the anchors and after) or indices\n"
    "  --per-pair N         blocking, substitution: test sequences per pair\n"
    "                       (default 480, the paper's; 0 = all)\n"
    "  --ascii              heatmaps in ASCII even in a UTF-8 locale\n"
    "  --json               the result as one JSON object on stdout\n"
    "  --backend cpu|cuda   the kernels: CPU (default) or GPU (achilles-cuda only);\n"
    "                       default $ACHILLES_BACKEND, else cpu\n";

enum { COSINE, ATTENTION, BLOCKING, SUBST, NANALYSES };
static const char *const analysis_name[NANALYSES] = {"cosine", "attention", "blocking", "substitution"};
#define ALL ((1u << NANALYSES) - 1)
#define BIT(a) (1u << (a))

/* Options and the analyses they apply to: a stray one is an error, not a
 * silent no-op. */
enum { O_EPOCH, O_PRESET, O_SEED, O_LAYER, O_HEAD, O_SPLIT, O_INDEX, O_TOKENS, O_POSITIONS, O_LAYERS, O_FROM,
       O_PERPAIR, O_ASCII, O_JSON, NOPTS };
static const struct {
    const char *name;
    unsigned applies;
    int value;
} opt_table[NOPTS] = {
    {"--epoch", ALL, 1},
    {"--preset", BIT(ATTENTION) | BIT(BLOCKING) | BIT(SUBST), 1},
    {"--seed", BIT(ATTENTION) | BIT(BLOCKING) | BIT(SUBST), 1},
    {"--layer", BIT(COSINE) | BIT(ATTENTION) | BIT(SUBST), 1},
    {"--head", BIT(ATTENTION), 1},
    {"--split", BIT(ATTENTION), 1},
    {"--index", BIT(ATTENTION), 1},
    {"--tokens", BIT(ATTENTION), 1},
    {"--positions", BIT(BLOCKING), 1},
    {"--layers", BIT(BLOCKING), 1},
    {"--from", BIT(SUBST), 1},
    {"--per-pair", BIT(BLOCKING) | BIT(SUBST), 1},
    {"--ascii", BIT(COSINE) | BIT(ATTENTION), 0},
    {"--json", ALL, 0},
};

typedef struct {
    const char *src;
    int what;
    const char *val[NOPTS]; /* NULL: not given ("" for flags given) */
    int epoch, layer, head, split, index, per_pair, json, utf8;
    uint64_t seed;
} opts;

/* What the source resolved to. */
typedef struct {
    int is_run;
    char model[1100], epoch0[1100], preset[1100];
    uint64_t seed;
} source;

/* "achilles: analyze: MESSAGE", then the help text if asked; returns status. */
static int vreport(int status, int with_help, const char *fmt, va_list ap)
{
    fprintf(stderr, "achilles: analyze: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    if (with_help) fprintf(stderr, "\n%s", cli_analyze_help);
    return status;
}

static int usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vreport(CLI_EXIT_USAGE, 1, fmt, ap);
    va_end(ap);
    return rc;
}

/* A request this model or preset cannot satisfy: bad usage too, but the
 * message says all there is to say. */
static int bad_request(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vreport(CLI_EXIT_USAGE, 0, fmt, ap);
    va_end(ap);
    return rc;
}

static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vreport(1, 0, fmt, ap);
    va_end(ap);
    return rc;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return errno || *end || end == s || s[0] == '-' ? -1 : 0;
}

/* 0, or the exit status of a usage error. */
static int parse_args(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    o->what = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !a[1]) {
            if (!o->src) o->src = a;
            else if (o->what < 0) {
                for (int k = 0; k < NANALYSES; k++)
                    if (!strcmp(a, analysis_name[k])) o->what = k;
                if (o->what < 0) return usage("unknown analysis '%s' (cosine, attention, blocking or substitution)", a);
            } else return usage("unexpected argument '%s'", a);
            continue;
        }
        int k = 0;
        while (k < NOPTS && strcmp(a, opt_table[k].name)) k++;
        if (k == NOPTS) return usage("unknown option '%s'", a);
        if (opt_table[k].value && i + 1 >= argc) return usage("option %s needs a value", a);
        o->val[k] = opt_table[k].value ? argv[++i] : "";
    }
    if (!o->src) return usage("which checkpoint or run directory?");
    if (o->what < 0) return usage("which analysis? cosine, attention, blocking or substitution");
    for (int k = 0; k < NOPTS; k++)
        if (o->val[k] && !(opt_table[k].applies & BIT(o->what)))
            return usage("%s does not apply to %s", opt_table[k].name, analysis_name[o->what]);
    if (o->val[O_TOKENS] && (o->val[O_SPLIT] || o->val[O_INDEX]))
        return usage("--tokens gives the sequence itself; drop --split and --index");
    /* numbers; checks that need the model or the task come later */
    o->epoch = -1, o->layer = o->what == COSINE ? -1 : 0, o->head = -1, o->split = TASK_TEST, o->per_pair = 480;
    const struct { int k, *dst, min; } ints[] = {
        {O_EPOCH, &o->epoch, 0}, {O_LAYER, &o->layer, 0}, {O_HEAD, &o->head, -1},
        {O_INDEX, &o->index, 0}, {O_PERPAIR, &o->per_pair, 0},
    };
    for (size_t j = 0; j < sizeof ints / sizeof ints[0]; j++) {
        const char *v = o->val[ints[j].k];
        if (v && (cli_parse_int(v, ints[j].dst) || *ints[j].dst < ints[j].min))
            return usage("bad value '%s' for %s (an integer >= %d)", v, opt_table[ints[j].k].name, ints[j].min);
    }
    if (o->val[O_SEED] && parse_u64(o->val[O_SEED], &o->seed))
        return usage("bad value '%s' for --seed (a non-negative integer)", o->val[O_SEED]);
    if (o->val[O_SPLIT]) {
        if (!strcmp(o->val[O_SPLIT], "train")) o->split = TASK_TRAIN;
        else if (strcmp(o->val[O_SPLIT], "test"))
            return usage("bad value '%s' for --split (train or test)", o->val[O_SPLIT]);
    }
    o->json = o->val[O_JSON] != NULL;
    return 0;
}

/* A run directory gives the model, epoch 0, the preset and the seed; a file
 * is the model itself. 0, 1 (bad source) or 2 (bad usage). */
static int resolve_source(const opts *o, source *s)
{
    struct stat st;
    char err[1100];
    memset(s, 0, sizeof *s);
    if (stat(o->src, &st)) return fail("%s: %s", o->src, strerror(errno));
    s->is_run = S_ISDIR(st.st_mode);
    if (!s->is_run && o->val[O_EPOCH]) return usage("--epoch needs a run directory, and %s is a file", o->src);
    if (s->is_run) {
        if (o->epoch >= 0) snprintf(s->model, sizeof s->model, "%s/ckpt/epoch_%04d.safetensors", o->src, o->epoch);
        else snprintf(s->model, sizeof s->model, "%s/state.safetensors", o->src);
        snprintf(s->epoch0, sizeof s->epoch0, "%s/ckpt/epoch_0000.safetensors", o->src);
        snprintf(s->preset, sizeof s->preset, "%s/preset.json", o->src);
        ach_runcfg cfg;
        char path[1100];
        snprintf(path, sizeof path, "%s/config.json", o->src);
        runcfg_defaults(&cfg);
        /* only the seed is needed, and only by analyses of the task */
        if (!o->val[O_SEED] && o->what != COSINE && runcfg_load_file(&cfg, path, err, sizeof err))
            return fail("%s", err);
        s->seed = cfg.seed;
    } else {
        snprintf(s->model, sizeof s->model, "%s", o->src);
        snprintf(s->preset, sizeof s->preset, "composite");
    }
    if (o->val[O_PRESET]) snprintf(s->preset, sizeof s->preset, "%s", o->val[O_PRESET]);
    if (o->val[O_SEED]) s->seed = o->seed;
    return 0;
}

static const char *backend_name; /* --backend, NULL for the default */

/* Loads a checkpoint; *epoch is the run epoch its metadata records, or -1. */
static int load_model(ach_model *m, const char *path, int *epoch, char *err, size_t errlen)
{
    st_file f;
    *epoch = -1;
    if (st_load(path, &f, err, errlen)) return -1;
    const char *pos = st_meta(&f, "run_position");
    cJSON *j = pos ? cJSON_Parse(pos) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "epoch");
    if (cJSON_IsNumber(e)) *epoch = (int)e->valuedouble;
    else if (cJSON_IsString(e)) *epoch = atoi(e->valuestring); /* run.c writes numbers as exact strings */
    cJSON_Delete(j);
    const ach_kernels *k = ach_backend(backend_name, err, errlen);
    int rc = k ? ach_ckpt_load_st(m, k, &f, path, err, errlen) : -1;
    st_free(&f);
    return rc;
}

/* --- progress: a thread reports the elapsed time of long evaluations ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    int done, printed;
    char what[160];
} ticker;

static void *tick_main(void *p)
{
    ticker *tk = p;
    struct timespec t0;
    int tty = isatty(2);
    clock_gettime(CLOCK_REALTIME, &t0);
    pthread_mutex_lock(&tk->mu);
    for (int s = 1, next = 1; !tk->done; s++) {
        struct timespec dl = t0;
        dl.tv_sec += s;
        while (!tk->done && pthread_cond_timedwait(&tk->cv, &tk->mu, &dl) != ETIMEDOUT) {}
        if (tk->done) break;
        /* a terminal gets one line redrawn each second, a log 1, 2, 4, 8 s... */
        if (tty) fprintf(stderr, "\rachilles: analyze: %s: %ds", tk->what, s), tk->printed = 1;
        else if (s == next) fprintf(stderr, "achilles: analyze: %s: %ds\n", tk->what, s), next *= 2;
        fflush(stderr);
    }
    pthread_mutex_unlock(&tk->mu);
    return NULL;
}

static void tick_start(ticker *tk, const char *what)
{
    memset(tk, 0, sizeof *tk);
    snprintf(tk->what, sizeof tk->what, "%s", what);
    pthread_mutex_init(&tk->mu, NULL);
    pthread_cond_init(&tk->cv, NULL);
    if (pthread_create(&tk->th, NULL, tick_main, tk)) tk->done = -1; /* no progress, no harm */
}

static void tick_stop(ticker *tk)
{
    if (tk->done < 0) return;
    pthread_mutex_lock(&tk->mu);
    tk->done = 1;
    pthread_cond_signal(&tk->cv);
    pthread_mutex_unlock(&tk->mu);
    pthread_join(tk->th, NULL);
    if (tk->printed) fputc('\n', stderr);
    pthread_mutex_destroy(&tk->mu);
    pthread_cond_destroy(&tk->cv);
}

/* --- JSON -------------------------------------------------------------- */

/* NaN and infinities as strings, as in metrics.jsonl. */
static cJSON *num(double v)
{
    if (isnan(v)) return cJSON_CreateString("NaN");
    if (isinf(v)) return cJSON_CreateString(v > 0 ? "Inf" : "-Inf");
    return cJSON_CreateNumber(v);
}

/* Seeds as strings, as in config.json: a uint64 does not survive a double. */
static void add_seed(cJSON *j, uint64_t seed)
{
    char b[24];
    snprintf(b, sizeof b, "%llu", (unsigned long long)seed);
    cJSON_AddStringToObject(j, "seed", b);
}

static cJSON *matrix_json(const double *M, int rows, int cols)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < rows; i++) {
        cJSON *r = cJSON_CreateArray();
        for (int j = 0; j < cols; j++) cJSON_AddItemToArray(r, num(M[(size_t)i * cols + j]));
        cJSON_AddItemToArray(a, r);
    }
    return a;
}

static int print_json(cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return fail("out of memory");
    printf("%s\n", s);
    free(s);
    return 0;
}

static cJSON *json_head(const opts *o, const source *s, const ach_model *m, int epoch)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "analysis", analysis_name[o->what]);
    cJSON_AddStringToObject(j, "source", o->src);
    cJSON_AddStringToObject(j, "checkpoint", s->model);
    cJSON_AddItemToObject(j, "epoch", epoch >= 0 ? cJSON_CreateNumber(epoch) : cJSON_CreateNull());
    cJSON_AddStringToObject(j, "arch", cfg_arch_name(m->cfg.arch));
    cJSON_AddNumberToObject(j, "n_layer", m->cfg.n_layer);
    return j;
}

/* --- text output ---------------------------------------------------------- */

/* A malloc'd rendering of the heatmap (NULL when out of memory). */
static char *render_heatmap(const double *M, int rows, int cols, const tp_heatmap_opts *ho)
{
    size_t n = tp_heatmap(NULL, 0, M, rows, cols, ho) + 1;
    char *b = malloc(n);
    if (b) tp_heatmap(b, n, M, rows, cols, ho);
    return b;
}

static void print_side_by_side(const char *left, const char *right, int gap)
{
    int w = 0;
    for (const char *p = left; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
        if (tp_width(p) > w) w = tp_width(p);
    size_t n = tp_side_by_side(NULL, 0, left, right, w, gap) + 1;
    char *b = malloc(n);
    if (!b) return;
    tp_side_by_side(b, n, left, right, w, gap);
    fputs(b, stdout);
    free(b);
}

/* The off-diagonal extremes of a K x K matrix. */
static void offdiag(const double *C, int K, double *lo, double *hi)
{
    *lo = INFINITY, *hi = -INFINITY;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++)
            if (i != j) *lo = fmin(*lo, C[i * K + j]), *hi = fmax(*hi, C[i * K + j]);
    if (K < 2) *lo = *hi = NAN;
}

/* "model: PATH (mamba2, 2 layers, epoch 12)" */
static void print_model_line(const source *s, const ach_model *m, int epoch)
{
    printf("model: %s (%s, %d layer%s", s->model, cfg_arch_name(m->cfg.arch), m->cfg.n_layer,
           m->cfg.n_layer == 1 ? "" : "s");
    if (epoch >= 0) printf(", epoch %d", epoch);
    printf(")\n");
}

/* --- cosine --------------------------------------------------------------- */

static void cosine_table(char *buf, size_t n, const double *C, int K, const char *title)
{
    size_t k = (size_t)snprintf(buf, n, "%s\n    ", title);
    for (int j = 0; j < K && k < n; j++) k += (size_t)snprintf(buf + k, n - k, "%7s%d", "k", j);
    for (int i = 0; i < K && k < n; i++) {
        k += (size_t)snprintf(buf + k, n - k, "\n  k%d", i);
        for (int j = 0; j < K && k < n; j++) k += (size_t)snprintf(buf + k, n - k, " %7.3f", C[i * K + j]);
    }
    if (k < n) snprintf(buf + k, n - k, "\n");
}

static int run_cosine(const opts *o, const source *s, ach_model *m, int epoch)
{
    int K = m->cfg.d_conv, nl = m->cfg.n_layer;
    int l0 = o->layer < 0 ? 0 : o->layer, l1 = o->layer < 0 ? nl : o->layer + 1;
    char err[1200];
    if (o->layer >= nl) return bad_request("layer %d does not exist (the model has layers 0..%d)", o->layer, nl - 1);
    ach_model m0;
    int e0, have0 = 0;
    if (s->is_run) {
        if (load_model(&m0, s->epoch0, &e0, err, sizeof err)) return fail("%s", err);
        have0 = 1;
        if (m0.cfg.d_conv != K || m0.cfg.n_layer != nl) {
            ach_model_free(&m0);
            return fail("%s: %d layers with K = %d, but %s has %d with K = %d", s->epoch0, m0.cfg.n_layer,
                        m0.cfg.d_conv, s->model, nl, K);
        }
    }
    double *now = malloc((size_t)nl * K * K * sizeof *now), *ep0 = malloc((size_t)nl * K * K * sizeof *ep0);
    int rc = 0;
    if (!now || !ep0) rc = fail("out of memory");
    for (int l = l0; !rc && l < l1; l++)
        if (ach_conv_cosine(m, l, now + (size_t)l * K * K, err, sizeof err) ||
            (have0 && ach_conv_cosine(&m0, l, ep0 + (size_t)l * K * K, err, sizeof err)))
            rc = fail("%s", err);
    if (rc) goto out;
    const char *gam = o->utf8 ? "\u03b3" : "gamma", *minus = o->utf8 ? "\u2212" : "-";
    if (o->json) {
        cJSON *j = json_head(o, s, m, epoch), *layers = cJSON_CreateArray();
        cJSON_AddNumberToObject(j, "d_conv", K);
        for (int l = l0; l < l1; l++) {
            cJSON *lj = cJSON_CreateObject();
            double lo, hi;
            cJSON_AddNumberToObject(lj, "layer", l);
            cJSON_AddItemToObject(lj, "now", matrix_json(now + (size_t)l * K * K, K, K));
            offdiag(now + (size_t)l * K * K, K, &lo, &hi);
            cJSON_AddItemToObject(lj, "now_offdiag_min", num(lo));
            cJSON_AddItemToObject(lj, "now_offdiag_max", num(hi));
            if (have0) {
                cJSON_AddItemToObject(lj, "epoch0", matrix_json(ep0 + (size_t)l * K * K, K, K));
                offdiag(ep0 + (size_t)l * K * K, K, &lo, &hi);
                cJSON_AddItemToObject(lj, "epoch0_offdiag_min", num(lo));
                cJSON_AddItemToObject(lj, "epoch0_offdiag_max", num(hi));
            }
            cJSON_AddItemToArray(layers, lj);
        }
        cJSON_AddItemToObject(j, "layers", layers);
        cJSON *p = cJSON_AddObjectToObject(j, "paper");
        cJSON_AddStringToObject(p, "setting", "2 layers, gamma 1");
        cJSON_AddNumberToObject(p, "offdiag_min", -0.11);
        cJSON_AddNumberToObject(p, "offdiag_max", 0.35);
        rc = print_json(j);
        goto out;
    }
    char now_title[64];
    if (!s->is_run) snprintf(now_title, sizeof now_title, "checkpoint");
    else if (epoch >= 0)
        snprintf(now_title, sizeof now_title, "%s (epoch %d)", o->epoch >= 0 ? "checkpoint" : "now", epoch);
    else snprintf(now_title, sizeof now_title, "now");
    printf("conv tap cosine similarity cos(w[:,0,i], w[:,0,j]), K = %d\n", K);
    print_model_line(s, m, epoch);
    const char *klab[64];
    char kbuf[64][8];
    for (int i = 0; i < K && i < 64; i++) snprintf(kbuf[i], sizeof kbuf[i], "k%d", i), klab[i] = kbuf[i];
    tp_heatmap_opts ho = {.row_labels = K <= 64 ? klab : NULL, .col_labels = K <= 64 ? klab : NULL,
                          .lo = -1, .hi = 1, .utf8 = o->utf8, .cell = 3};
    for (int l = l0; l < l1; l++) {
        const double *Cn = now + (size_t)l * K * K, *C0 = ep0 + (size_t)l * K * K;
        size_t tn = 64 + (size_t)K * (16 + 9 * K);
        char *tnow = malloc(tn), *t0 = malloc(tn), *hnow = render_heatmap(Cn, K, K, &ho);
        char *h0 = have0 ? render_heatmap(C0, K, K, &ho) : NULL;
        if (!tnow || !t0 || !hnow || (have0 && !h0)) rc = fail("out of memory");
        else {
            double lo, hi;
            printf("\nlayer %d\n", l);
            cosine_table(tnow, tn, Cn, K, now_title);
            if (have0) {
                cosine_table(t0, tn, C0, K, "epoch 0");
                print_side_by_side(t0, tnow, 6);
                putchar('\n');
                print_side_by_side(h0, hnow, 6);
                offdiag(C0, K, &lo, &hi);
                printf("off-diagonal: epoch 0 %.3f to %.3f, %s ", lo, hi, now_title);
            } else {
                fputs(tnow, stdout);
                putchar('\n');
                fputs(hnow, stdout);
                printf("off-diagonal: ");
            }
            offdiag(Cn, K, &lo, &hi);
            printf("%.3f to %.3f\n", lo, hi);
        }
        free(tnow), free(t0), free(hnow), free(h0);
        if (rc) goto out;
    }
    printf("\npaper (docs/science.md §4.5): 2 layers, %s = 1: off-diagonal entries between %s0.11 and 0.35 (nearly orthogonal)\n",
           gam, minus);
out:
    free(now), free(ep0);
    if (have0) ach_model_free(&m0);
    return rc;
}

/* --- attention -------------------------------------------------------------- */

static int is_anchor(const ach_task *t, int tok)
{
    for (int a = 0; a < t->nanchors; a++)
        if (t->anchor[a] == tok) return 1;
    return 0;
}

/* The sequence to look at: --tokens, or sequence --index of --split. */
static int attention_tokens(const opts *o, const ach_task *t, const ach_model *m, uint64_t seed, int32_t **tok, int *L,
                            ach_seq_info *info, int *have_info)
{
    *have_info = 0;
    if (o->val[O_TOKENS]) {
        const char *p = o->val[O_TOKENS];
        int n = 1;
        for (const char *q = p; *q; q++) n += *q == ',';
        *tok = malloc((size_t)n * sizeof **tok);
        if (!*tok) return fail("out of memory");
        for (int i = 0; i < n; i++) {
            char *end;
            errno = 0;
            long v = strtol(p, &end, 10);
            if (errno || end == p || (*end && *end != ',') || v < 0 || v >= m->cfg.vocab_size) {
                free(*tok);
                return bad_request("--tokens: item %d is not a token of the model's vocabulary [0, %d)", i + 1,
                             m->cfg.vocab_size);
            }
            (*tok)[i] = (int32_t)v;
            p = end + (*end == ',');
        }
        *L = n;
        return 0;
    }
    uint64_t n = task_split_size(t, o->split);
    if ((uint64_t)o->index >= n)
        return bad_request("--index %d is beyond the %s split (0..%llu)", o->index, o->split ? "test" : "train",
                     (unsigned long long)n - 1);
    *L = t->seq_len;
    *tok = malloc((size_t)*L * sizeof **tok);
    if (!*tok) return fail("out of memory");
    int32_t label;
    task_sequence(t, seed, o->split, (uint64_t)o->index, *tok, &label, info);
    *have_info = 1;
    return 0;
}

static int run_attention(const opts *o, const source *s, ach_model *m, int epoch, const ach_task *t)
{
    const ach_config *c = &m->cfg;
    if (!m->fam->mixing_matrix) return bad_request("a %s model has no mixing matrix", m->fam->name);
    int nh = m->fam->mixing_units(c), L = 0, have_info = 0, rc = 0;
    const char *unit = m->fam->mixing_unit;
    if (o->layer >= c->n_layer)
        return bad_request("layer %d does not exist (the model has layers 0..%d)", o->layer, c->n_layer - 1);
    if (o->head >= nh) return bad_request("%s %d does not exist (0..%d, or -1 for the summary)", unit, o->head, nh - 1);
    int32_t *tok = NULL;
    ach_seq_info info;
    if ((rc = attention_tokens(o, t, m, s->seed, &tok, &L, &info, &have_info))) return rc;
    /* marks: the preset's key and anchors, or for --tokens the anchor tokens
     * and the position before the first two in a row */
    int key = have_info ? info.pos : -1;
    for (int p = 0; !have_info && p + 2 < L; p++)
        if (is_anchor(t, tok[p + 1]) && is_anchor(t, tok[p + 2])) {
            key = p;
            break;
        }
    unsigned char *anchor = calloc((size_t)L, 1);
    double *S = malloc((size_t)L * L * sizeof *S);
    char err[600], summary[64], pair[16] = "";
    if (!anchor || !S) {
        rc = fail("out of memory");
        goto out;
    }
    for (int p = 0; p < L; p++) anchor[p] = have_info ? p == info.pos + 1 || p == info.pos + 2 : is_anchor(t, tok[p]);
    if (ach_hidden_attention(m, tok, L, o->layer, o->head, S, err, sizeof err)) {
        rc = fail("%s: %s", s->model, err);
        goto out;
    }
    if (o->head >= 0) snprintf(summary, sizeof summary, "%s %d", unit, o->head);
    else snprintf(summary, sizeof summary, "%s %d %ss", m->fam->mixing_summary, nh, unit);
    if (have_info) task_pair_name(t, info.pair, pair, sizeof pair);
    if (o->json) {
        cJSON *j = json_head(o, s, m, epoch), *tj = cJSON_CreateArray(), *aj = cJSON_CreateArray();
        cJSON_AddNumberToObject(j, "layer", o->layer);
        cJSON_AddNumberToObject(j, "head", o->head);
        cJSON_AddStringToObject(j, "summary", summary);
        if (have_info) {
            cJSON_AddStringToObject(j, "preset", t->name);
            add_seed(j, s->seed);
            cJSON_AddStringToObject(j, "split", o->split ? "test" : "train");
            cJSON_AddNumberToObject(j, "index", o->index);
            cJSON_AddStringToObject(j, "pair", pair);
            cJSON_AddNumberToObject(j, "label", info.label);
        }
        for (int p = 0; p < L; p++) {
            cJSON_AddItemToArray(tj, cJSON_CreateNumber(tok[p]));
            if (anchor[p]) cJSON_AddItemToArray(aj, cJSON_CreateNumber(p));
        }
        cJSON_AddItemToObject(j, "tokens", tj);
        cJSON_AddItemToObject(j, "key", key >= 0 ? cJSON_CreateNumber(key) : cJSON_CreateNull());
        cJSON_AddItemToObject(j, "anchors", aj);
        cJSON_AddItemToObject(j, "S", matrix_json(S, L, L));
        rc = print_json(j);
        goto out;
    }
    printf("hidden attention S(t,s), layer %d, %s\n", o->layer, summary);
    print_model_line(s, m, epoch);
    if (have_info)
        printf("%s sequence %d of preset %s, seed %llu: pair %s, key %d at position %d, label %d\n",
               o->split ? "test" : "train", o->index, t->name, (unsigned long long)s->seed, pair, info.key, info.pos,
               (int)info.label);
    /* labels: "[31]" for the key, "<1>" for anchors */
    char (*lab)[40] = malloc((size_t)L * sizeof *lab), (*col)[12] = malloc((size_t)L * sizeof *col);
    const char **rl = malloc((size_t)L * sizeof *rl), **cl = malloc((size_t)L * sizeof *cl);
    if (!lab || !col || !rl || !cl) {
        free(lab), free(col), free(rl), free(cl);
        rc = fail("out of memory");
        goto out;
    }
    /* row labels "position token", padded to one width so they line up */
    int pw = snprintf(NULL, 0, "%d", L - 1), tw = 0;
    char tk[16];
    printf("tokens ([key] <anchor>):");
    for (int pass = 0; pass < 2; pass++)
        for (int p = 0; p < L; p++) {
            int k = snprintf(tk, sizeof tk, p == key ? "[%d]" : anchor[p] ? "<%d>" : "%d", (int)tok[p]);
            if (!pass) {
                printf(" %s", tk);
                tw = k > tw ? k : tw;
                continue;
            }
            snprintf(lab[p], sizeof lab[p], "%*d %-*s", pw, p, tw, tk);
            snprintf(col[p], sizeof col[p], "%d", p);
            rl[p] = lab[p], cl[p] = col[p];
        }
    printf("\n\nrows t (position, token) attend to columns s <= t\n");
    if (L <= 32) {
        int w = 0;
        for (int p = 0; p < L; p++) w = tp_width(lab[p]) > w ? tp_width(lab[p]) : w;
        printf("%*s", w, "");
        for (int p = 0; p < L; p++) printf(" %9d", p);
        for (int r = 0; r < L; r++) {
            printf("\n%*s%s", w - tp_width(lab[r]), "", lab[r]);
            for (int p = 0; p <= r; p++) printf(" %9.3g", S[(size_t)r * L + p]);
        }
        printf("\n\n");
    } else printf("(the table of numbers is left out for L > 32; --json has it)\n\n");
    tp_heatmap_opts ho = {.row_labels = rl, .col_labels = cl, .utf8 = o->utf8, .cell = 2, .blank_upper = 1};
    char *h = render_heatmap(S, L, L, &ho);
    if (h) fputs(h, stdout);
    else rc = fail("out of memory");
    free(h), free(lab), free(col), free(rl), free(cl);
out:
    free(tok), free(anchor), free(S);
    return rc;
}

/* --- blocking and substitution ------------------------------------------- */

/* The paper's pairs are those of anchors 1..4 ("11".."44"). */
static int paper_pair(const char *name)
{
    return strlen(name) == 2 && name[0] >= '1' && name[0] <= '4' && name[1] >= '1' && name[1] <= '4';
}

static int pair_report(const opts *o, const source *s, const ach_model *m, int epoch, const ach_task *t,
                       const ach_pair_report *r, const char *spec, const char *layers)
{
    int subst = o->what == SUBST;
    const char *col = subst ? "collapse" : "unchanged";
    if (o->json) {
        cJSON *j = json_head(o, s, m, epoch), *pairs = cJSON_CreateArray();
        cJSON_AddStringToObject(j, "preset", t->name);
        add_seed(j, s->seed);
        cJSON_AddNumberToObject(j, "per_pair", o->per_pair);
        if (subst) {
            cJSON_AddNumberToObject(j, "layer", o->layer);
            cJSON_AddStringToObject(j, "from", spec);
        } else {
            cJSON_AddStringToObject(j, "positions", spec);
            cJSON_AddStringToObject(j, "layers", layers);
        }
        for (int i = 0; i < r->npairs; i++) {
            if (subst && !strcmp(r->pair_name[i], "43")) continue; /* the twin itself */
            cJSON *p = cJSON_CreateObject();
            cJSON_AddStringToObject(p, "pair", r->pair_name[i]);
            cJSON_AddNumberToObject(p, "n", (double)r->n[i]);
            cJSON_AddItemToObject(p, col, num(r->value[i]));
            if (subst) cJSON_AddItemToObject(p, "unchanged", num(r->unchanged[i]));
            cJSON_AddItemToArray(pairs, p);
        }
        cJSON_AddItemToObject(j, "pairs", pairs);
        cJSON_AddItemToObject(j, "overall", num(r->overall));
        if (subst) {
            cJSON_AddItemToObject(j, "unchanged", num(r->unchanged_overall));
            cJSON_AddNumberToObject(j, "skipped", (double)r->skipped);
        }
        cJSON *p = cJSON_AddObjectToObject(j, "paper");
        cJSON_AddNumberToObject(p, "per_pair", 480);
        if (subst) {
            cJSON_AddStringToObject(p, "setting", "layer 0, the states after the anchors, 15 pairs");
            cJSON_AddNumberToObject(p, "collapse_min", 0.983);
            cJSON_AddNumberToObject(p, "collapse_max", 1.0);
        } else {
            cJSON_AddStringToObject(p, "setting", "key and both anchors, every layer");
            cJSON_AddNumberToObject(p, "pair43", 0.994);
            cJSON_AddNumberToObject(p, "other_pairs", 1.0);
        }
        return print_json(j);
    }
    if (subst)
    {
        char where[160];
        if (!strcmp(spec, "after")) snprintf(where, sizeof where, "after the anchors");
        else if (!strcmp(spec, "anchors")) snprintf(where, sizeof where, "from the anchors on");
        else snprintf(where, sizeof where, "at positions %s", spec);
        printf("substitution in layer %d: the post-convolution states %s replaced by the twin's\n"
               "(anchors 4,3); collapse: the prediction becomes the twin's; unchanged: it stays\n"
               "what it was without substitution\n", o->layer, where);
    }
    else
        printf("blocking %s in layers %s: predictions unchanged when the SSM drops those\n"
               "positions' contributions to later positions\n", spec, layers);
    print_model_line(s, m, epoch);
    if (o->per_pair)
        printf("preset %s, seed %llu, test split: up to %d sequences per pair (n: how many were used)\n\n",
               t->name, (unsigned long long)s->seed, o->per_pair);
    else printf("preset %s, seed %llu, test split: every sequence\n\n", t->name, (unsigned long long)s->seed);
    printf("%-8s %6s  %9s  %s%s\n", "pair", "n", col, subst ? "unchanged  " : "", "paper");
    for (int i = 0; i < r->npairs; i++) {
        const char *nm = r->pair_name[i];
        if (subst && !strcmp(nm, "43")) continue;
        const char *paper = !paper_pair(nm) ? "" : subst ? "0.983-1.0" : !strcmp(nm, "43") ? "0.994" : "1.00";
        printf("%-8s %6ld  %9.3f  ", nm, r->n[i], r->value[i]);
        if (subst) printf("%9.3f  ", r->unchanged[i]);
        printf("%s\n", paper);
    }
    long total = 0;
    for (int i = 0; i < r->npairs; i++) total += r->n[i];
    printf("%-8s %6ld  %9.3f  ", "overall", total, r->overall);
    if (subst) printf("%9.3f  ", r->unchanged_overall);
    printf("%s\n", subst ? "0.983-1.0 for all 15 pairs" : "");
    if (subst) printf("skipped: %ld sequences with nothing to substitute\n", r->skipped);
    printf("\npaper (docs/science.md §4.%d): %s, 480 sequences per pair\n", subst ? 4 : 3,
           subst ? "layer 0, the states after the anchors; collapse 0.983-1.0 for all 15 pairs"
                 : "key and both anchors blocked in every layer; pair 43 0.994, every other pair 1.00");
    return 0;
}

static int run_blocking(const opts *o, const source *s, ach_model *m, int epoch, const ach_task *t)
{
    ach_block_spec b;
    char err[600], pos[128], lay[128], what[200];
    const char *ps = o->val[O_POSITIONS] ? o->val[O_POSITIONS] : "key,anchors";
    if (ach_block_parse(&b, ps, o->val[O_LAYERS] ? o->val[O_LAYERS] : "all", t->seq_len, m->cfg.n_layer, err,
                        sizeof err))
        return bad_request("%s", err);
    if (!ach_block_active(&b)) return bad_request("--positions %s blocks nothing", ps);
    ach_block_format(&b, pos, sizeof pos, lay, sizeof lay);
    ach_pair_report r;
    ticker tk;
    snprintf(what, sizeof what, "blocking, %d pairs", t->split[TASK_TEST].npairs);
    tick_start(&tk, what);
    int bad = ach_blocking_eval(m, t, s->seed, &b, o->per_pair, &r, err, sizeof err);
    tick_stop(&tk);
    if (bad) return fail("%s: %s", s->model, err);
    return pair_report(o, s, m, epoch, t, &r, pos, lay);
}

/* --from: after, anchors, or positions inside the sequence. */
static int check_from(const char *from, int L)
{
    if (!strcmp(from, "after") || !strcmp(from, "anchors")) return 0;
    for (const char *p = from;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || (*end && *end != ',') || !isdigit((unsigned char)*p))
            return bad_request("--from: '%s' is not after, anchors or a comma list of positions", from);
        if (v >= L || v >= 64) return bad_request("--from: position %ld is beyond the sequence (0..%d)", v, L - 1);
        if (!*end) return 0;
        p = end + 1;
    }
}

static int run_substitution(const opts *o, const source *s, ach_model *m, int epoch, const ach_task *t)
{
    const char *from = o->val[O_FROM] ? o->val[O_FROM] : "after";
    char err[600], what[200];
    int rc;
    if (o->layer >= m->cfg.n_layer)
        return bad_request("layer %d does not exist (the model has layers 0..%d)", o->layer, m->cfg.n_layer - 1);
    if ((rc = check_from(from, t->seq_len))) return rc;
    ach_pair_report r;
    ticker tk;
    snprintf(what, sizeof what, "substitution, %d pairs", t->split[TASK_TEST].npairs - 1);
    tick_start(&tk, what);
    int bad = ach_substitution_eval(m, t, s->seed, o->layer, from, o->per_pair, &r, err, sizeof err);
    tick_stop(&tk);
    if (bad) return fail("%s: %s", s->model, err);
    return pair_report(o, s, m, epoch, t, &r, from, "");
}

int cli_analyze(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(cli_analyze_help, stdout);
            return 0;
        }
    opts o;
    source s;
    char berr[200];
    if (ach_backend_arg(&argc, argv, &backend_name, berr, sizeof berr)) return usage("%s", berr);
    int rc = parse_args(argc, argv, &o);
    if (rc || (rc = resolve_source(&o, &s))) return rc;
    o.utf8 = !o.val[O_ASCII] && tp_locale_utf8();
    ach_model m;
    ach_task t;
    int epoch, have_task = 0;
    char err[1200];
    if (load_model(&m, s.model, &epoch, err, sizeof err)) return fail("%s", err);
    if (o.what != COSINE) {
        if (task_load(&t, s.preset, err, sizeof err)) {
            ach_model_free(&m);
            return fail("%s", err);
        }
        have_task = 1;
        if (t.vocab_size != m.cfg.vocab_size) {
            rc = fail("preset '%s' (%s) has vocabulary %d but the model in %s has %d; --preset names the task the "
                      "model was trained on", t.name, t.path, t.vocab_size, s.model, m.cfg.vocab_size);
            goto out;
        }
    }
    switch (o.what) {
    case COSINE: rc = run_cosine(&o, &s, &m, epoch); break;
    case ATTENTION: rc = run_attention(&o, &s, &m, epoch, &t); break;
    case BLOCKING: rc = run_blocking(&o, &s, &m, epoch, &t); break;
    default: rc = run_substitution(&o, &s, &m, epoch, &t); break;
    }
out:
    if (have_task) task_free(&t);
    ach_model_free(&m);
    return rc;
}
