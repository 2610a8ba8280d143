/* `achilles data`: look at a task preset's sequences and per-pair counts,
 * or export a split; a dense_ar preset is described and its vectors shown. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dense_ar.h"
#include "fsutil.h"
#include "safetensors.h"
#include "kind.h"
#include "strbuf.h"
#include "task.h"

const char *cli_data_help =
    "usage: achilles data [options]\n"
    "\n"
    "Prints sequences of a task preset's split, the key in [brackets] and the anchors\n"
    "in <angle brackets>, with their pair and label (a held-out pair shows both its\n"
    "composite and symmetric answers). A dense_ar preset (vectors) is described:\n"
    "its process, its splits, and the first coordinates of some sequences' vectors.\n"
    "\n"
    "  --preset P               a name in the data directory or a path to a JSON file\n"
    "                           (default composite)\n"
    "  --split NAME             which split, by the name the preset's kind gives it\n"
    "                           (composite: train or test; dense_ar: train, val or\n"
    "                           test; default train)\n"
    "  --seed S                 data seed (default 0; a dense_ar preset has its own)\n"
    "  --show N                 sequences to print, evenly spaced through the split\n"
    "                           (default one per pair; dense_ar: 3)\n"
    "  --counts                 generate the whole split and print the sequences per pair\n"
    "                           (token kinds)\n"
    "  --export FILE            write the whole split to FILE instead, for other tools;\n"
    "                           the extension picks the format: .safetensors (int32\n"
    "                           tensors tokens [N, L], labels, pair, key_pos, label_comp,\n"
    "                           label_sym [N]; pair names in the metadata; dense_ar:\n"
    "                           float32 vectors [N, L, D]), .csv (a header, then a row\n"
    "                           per sequence) or .jsonl (an object per line); the last\n"
    "                           two for token kinds\n";

/* "key + 10", "key - 6 mod 100" */
static void rule_text(const ach_task *t, int shift, char *buf, size_t n)
{
    snprintf(buf, n, "key %c %d%s", shift < 0 ? '-' : '+', abs(shift), t->label_modulus ? " mod " : "");
    if (t->label_modulus) snprintf(buf + strlen(buf), n - strlen(buf), "%d", t->label_modulus);
}

static void print_header(const ach_task *t, int split, uint64_t seed)
{
    const ach_split *s = &t->split[split];
    printf("preset %s (%s)\n  %s\n", t->name, t->path, t->description);
    printf("split %s, seed %llu: %llu sequences, %d pairs x %llu; ", task_split_name(t, split), (unsigned long long)seed,
           (unsigned long long)task_split_size(t, split), s->npairs, (unsigned long long)s->per_pair);
    const char *pos = t->key_offset ? "(p %+d)" : "p";
    char p[32];
    snprintf(p, sizeof p, pos, t->key_offset);
    if (s->key_rule == KEY_ANY) printf("any key\n");
    else printf("key mod %d %s %s mod %d\n", t->key_mod, s->key_rule == KEY_EQUALS ? "==" : "!=", p, t->key_mod);
}

static void print_sequence(const ach_task *t, uint64_t seed, int split, uint64_t i, int32_t *tok)
{
    int32_t label;
    ach_seq_info in;
    char name[32];
    task_sequence(t, seed, split, i, tok, &label, &in);
    task_pair_name(t, in.pair, name, sizeof name);
    printf("%10llu  %-6s %3d %4d %6d  ", (unsigned long long)i, name, in.pos, in.key, (int)label);
    for (int j = 0; j < t->seq_len; j++) {
        const char *fmt = j == in.pos ? "[%d]" : j == in.pos + 1 || j == in.pos + 2 ? "<%d>" : "%d";
        if (j) putchar(' ');
        printf(fmt, (int)tok[j]);
    }
    if (t->pairs[in.pair].held_out) printf("   (composite %d, symmetric %d)", (int)in.label_comp, (int)in.label_sym);
    putchar('\n');
}

static int print_counts(const ach_task *t, uint64_t seed, int split, int32_t *tok)
{
    uint64_t n = task_split_size(t, split), *count = calloc((size_t)t->npairs, sizeof *count);
    if (!count) {
        fprintf(stderr, "achilles: data: out of memory\n");
        return 1;
    }
    for (uint64_t i = 0; i < n; i++) {
        int32_t label;
        ach_seq_info in;
        task_sequence(t, seed, split, i, tok, &label, &in);
        count[in.pair]++;
    }
    printf("\n%-6s %10s  %s\n", "pair", "count", "label");
    for (int k = 0; k < t->npairs; k++) {
        const ach_pair *p = &t->pairs[k];
        char name[32], r[64], c[64], s[64];
        if (!count[k] && !p->in_split[split]) continue;
        task_pair_name(t, k, name, sizeof name);
        rule_text(t, p->shift, r, sizeof r);
        rule_text(t, p->comp_shift, c, sizeof c);
        rule_text(t, p->sym_shift, s, sizeof s);
        printf("%-6s %10llu  %s", name, (unsigned long long)count[k], r);
        if (p->held_out) printf(" (held out: composite %s, symmetric %s)", c, s);
        else if (p->special) printf(" (special; composite %s)", c);
        putchar('\n');
    }
    printf("%-6s %10llu\n", "total", (unsigned long long)n);
    free(count);
    return 0;
}

enum { EXPORT_SAFETENSORS, EXPORT_CSV, EXPORT_JSONL, EXPORT_NFORMATS };
static const char *const export_ext[EXPORT_NFORMATS] = {".safetensors", ".csv", ".jsonl"};

/* The format PATH's extension names, or -1. */
static int export_format(const char *path)
{
    size_t n = strlen(path);
    for (int f = 0; f < EXPORT_NFORMATS; f++) {
        size_t k = strlen(export_ext[f]);
        if (n > k && !strcmp(path + n - k, export_ext[f])) return f;
    }
    return -1;
}

/* The whole split as int32 tensors, in one st_save (the composite train split
 * is 8 MB of tokens). Pair indices are t->pairs' a1-major numbering; the
 * metadata's pair_names (a JSON array) maps them to names. */
static int export_safetensors(const ach_task *t, uint64_t seed, int split, const char *path, char *err,
                              size_t errlen)
{
    uint64_t n = task_split_size(t, split);
    size_t len = (size_t)t->seq_len, ncol = 5;
    if (n > SIZE_MAX / sizeof(int32_t) / (len + ncol)) {
        snprintf(err, errlen, "%s: the split is too large to hold in memory", path);
        return -1;
    }
    /* + 1: a split may be empty (per_pair 0), and malloc(0) may return NULL. */
    int32_t *tok = malloc((size_t)n * len * sizeof *tok + 1), *col = malloc((size_t)n * ncol * sizeof *col + 1);
    strbuf names = {0}, held = {0};
    char *meta_names = NULL, *meta_held = NULL;
    int rc = -1;
    if (!tok || !col) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    int32_t *label = col, *pair = col + n, *pos = col + 2 * n, *comp = col + 3 * n, *sym = col + 4 * n;
    for (uint64_t i = 0; i < n; i++) {
        ach_seq_info in;
        task_sequence(t, seed, split, i, tok + i * len, &label[i], &in);
        pair[i] = in.pair;
        pos[i] = in.pos;
        comp[i] = in.label_comp;
        sym[i] = in.label_sym;
    }
    sb_puts(&names, "[");
    sb_puts(&held, "[");
    for (int k = 0; k < t->npairs; k++) {
        char name[32];
        task_pair_name(t, k, name, sizeof name);
        sb_printf(&names, "%s\"%s\"", k ? "," : "", name);
        if (t->pairs[k].held_out) sb_printf(&held, "%s\"%s\"", held.len > 1 ? "," : "", name);
    }
    sb_puts(&names, "]");
    sb_puts(&held, "]");
    if (!(meta_names = sb_take(&names)) || !(meta_held = sb_take(&held))) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    const int64_t N = (int64_t)n;
    const st_entry e[] = {
        {"tokens", ST_I32, 2, {N, (int64_t)len}, tok}, {"labels", ST_I32, 1, {N}, label},
        {"pair", ST_I32, 1, {N}, pair},                {"key_pos", ST_I32, 1, {N}, pos},
        {"label_comp", ST_I32, 1, {N}, comp},          {"label_sym", ST_I32, 1, {N}, sym},
    };
    char seed_text[32], vocab[16];
    snprintf(seed_text, sizeof seed_text, "%llu", (unsigned long long)seed);
    snprintf(vocab, sizeof vocab, "%d", t->vocab_size);
    const char *mk[] = {"preset", "split", "seed", "vocab_size", "pair_names", "held_out"};
    const char *mv[] = {t->name, task_split_name(t, split), seed_text, vocab, meta_names, meta_held};
    rc = st_save(path, e, (int)(sizeof e / sizeof e[0]), mk, mv, (int)(sizeof mk / sizeof mk[0]), err, errlen);
out:
    free(tok);
    free(col);
    free(meta_names);
    free(meta_held);
    sb_free(&names);
    sb_free(&held);
    return rc;
}

/* A dense_ar split as one float32 tensor "vectors" [N, L, D], the
 * generator's floats unchanged; the metadata names the preset, the split
 * and the preset's data seed. */
static int export_vectors(const ach_task *t, int split, const char *path, char *err, size_t errlen)
{
    const ach_dense_ar *d = dense_ar_of(t);
    uint64_t n = task_nexamples(t, split);
    size_t len = (size_t)d->len * d->dim;
    if (n > SIZE_MAX / sizeof(float) / len) {
        snprintf(err, errlen, "%s: the split is too large to hold in memory", path);
        return -1;
    }
    float *x = malloc((size_t)n * len * sizeof *x + 1); /* + 1: an empty split */
    if (!x) {
        snprintf(err, errlen, "%s: out of memory (the split is %.3g GB)", path, (double)n * len * sizeof *x / 1e9);
        return -1;
    }
    for (uint64_t i = 0; i < n; i++) task_vectors(t, 0, split, i, x + i * len);
    const st_entry e[] = {{"vectors", ST_F32, 3, {(int64_t)n, d->len, d->dim}, x}};
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)d->seed);
    const char *mk[] = {"preset", "kind", "split", "seed"};
    const char *mv[] = {t->name, t->kind->name, task_split_name(t, split), seed};
    int rc = st_save(path, e, 1, mk, mv, 4, err, errlen);
    free(x);
    return rc;
}

/* CSV or JSONL, streamed a sequence at a time into PATH.tmp. Pair names can
 * hold a comma ("(12,3)"), so the CSV quotes them. */
static int export_text(const ach_task *t, uint64_t seed, int split, const char *path, int csv, char *err,
                       size_t errlen)
{
    int32_t *tok = malloc((size_t)t->seq_len * sizeof *tok);
    if (!tok) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    FILE *f = atomic_open(path, err, errlen);
    if (!f) {
        free(tok);
        return -1;
    }
    if (csv) {
        fputs("index,pair,key_pos,label,label_comp,label_sym", f);
        for (int j = 0; j < t->seq_len; j++) fprintf(f, ",tok%d", j);
        fputc('\n', f);
    }
    uint64_t n = task_split_size(t, split);
    for (uint64_t i = 0; i < n && !ferror(f); i++) {
        int32_t label;
        ach_seq_info in;
        char name[32];
        task_sequence(t, seed, split, i, tok, &label, &in);
        task_pair_name(t, in.pair, name, sizeof name);
        const char *fmt = csv ? "%llu,\"%s\",%d,%d,%d,%d"
                              : "{\"index\":%llu,\"pair\":\"%s\",\"key_pos\":%d,\"label\":%d,"
                                "\"label_comp\":%d,\"label_sym\":%d,\"tokens\":[";
        fprintf(f, fmt, (unsigned long long)i, name, in.pos, (int)label, (int)in.label_comp, (int)in.label_sym);
        for (int j = 0; j < t->seq_len; j++) fprintf(f, csv || j ? ",%d" : "%d", (int)tok[j]);
        fputs(csv ? "\n" : "]}\n", f);
    }
    free(tok);
    return atomic_commit(f, path, err, errlen);
}

/* A dense_ar preset: its process and splits, then the first coordinates of
 * x_0, x_1 and x_{L-1} of `show` sequences spread over the split. */
static int describe_dense(const ach_task *t, int split, int show)
{
    const ach_dense_ar *d = dense_ar_of(t);
    printf("preset %s (%s)\n  %s\n", t->name, t->path, t->description);
    printf("kind dense_ar: %d unit vectors of dimension %d; %d matrices, sigma %g, gain %g, alpha %g; "
           "block shuffle in %d chunks of %d; data seed %llu\n",
           d->len, d->dim, d->nmat, d->sigma, d->gain, d->alpha, d->chunks, d->len / d->chunks,
           (unsigned long long)d->seed);
    for (int s = 0; s < t->kind->nsplits; s++)
        printf("split %-5s %10llu sequences, x_0[0] %s 0%s\n", task_split_name(t, s),
               (unsigned long long)task_nexamples(t, s), d->sign[s] > 0 ? ">" : "<", s == split ? "  (shown)" : "");
    uint64_t n = task_nexamples(t, split);
    if ((uint64_t)show > n) show = (int)n;
    if (!show) return 0;
    float *x = malloc((size_t)d->len * d->dim * sizeof *x);
    if (!x) {
        fprintf(stderr, "achilles: data: out of memory\n");
        return 1;
    }
    int k = d->dim < 4 ? d->dim : 4, rows[3] = {0, d->len > 1, d->len - 1};
    printf("\n%10s  %-7s %s\n", "seq", "vector", "first coordinates");
    for (int j = 0; j < show; j++) {
        uint64_t i = (uint64_t)j * (n / (uint64_t)show);
        task_vectors(t, 0, split, i, x);
        for (int r = 0; r < 3; r++) {
            if (r && rows[r] <= rows[r - 1]) continue;
            if (r) printf("%10s", "");
            else printf("%10llu", (unsigned long long)i);
            printf("  x_%-5d", rows[r]);
            for (int c = 0; c < k; c++) printf(" %+.4f", x[(size_t)rows[r] * d->dim + c]);
            printf("%s\n", k < d->dim ? " ..." : "");
        }
    }
    free(x);
    return 0;
}

int cli_data(int argc, char **argv)
{
    const char *preset = "composite", *split_name = "train";
    const char *export = NULL;
    int split = 0, show = -1, counts = 0;
    uint64_t seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(cli_data_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--counts")) {
            counts = 1;
            continue;
        }
        if (strcmp(a, "--preset") && strcmp(a, "--split") && strcmp(a, "--seed") && strcmp(a, "--show") &&
            strcmp(a, "--export"))
            return cli_usage_error(cli_data_help, "data: unknown option '%s'", a);
        if (!v) return cli_usage_error(cli_data_help, "data: option %s needs a value", a);
        i++;
        int bad = 0;
        if (!strcmp(a, "--preset")) preset = v;
        else if (!strcmp(a, "--export")) {
            if (export_format(v) < 0)
                return cli_usage_error(cli_data_help,
                                       "data: --export '%s': the file name must end in .safetensors, .csv or .jsonl",
                                       v);
            export = v;
        }
        else if (!strcmp(a, "--split")) split_name = v;
        else if (!strcmp(a, "--show")) bad = cli_parse_int(v, &show) || show < 0;
        else {
            char *end;
            errno = 0;
            seed = strtoull(v, &end, 10);
            bad = errno || *end || end == v || v[0] == '-';
        }
        if (bad) {
            fprintf(stderr, "achilles: data: bad value '%s' for %s\n\n%s", v, a, cli_data_help);
            return CLI_EXIT_USAGE;
        }
    }
    if (export && (counts || show >= 0))
        return cli_usage_error(cli_data_help, "data: %s does not combine with --export", counts ? "--counts" : "--show");
    ach_task t;
    char err[600];
    if (task_load(&t, preset, err, sizeof err)) {
        fprintf(stderr, "achilles: data: %s\n", err);
        return 1;
    }
    /* the split names are the kind's */
    while (split < t.kind->nsplits && strcmp(task_split_name(&t, split), split_name)) split++;
    if (split == t.kind->nsplits) {
        char names[200] = "";
        for (int s = 0; s < t.kind->nsplits; s++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", s ? ", " : "", task_split_name(&t, s));
        fprintf(stderr, "achilles: data: bad value '%s' for --split: %s (a %s task) has the splits %s\n\n%s",
                split_name, t.name, t.kind->name, names, cli_data_help);
        task_free(&t);
        return CLI_EXIT_USAGE;
    }
    if (t.kind->shape == EXAMPLE_VECTORS) {
        int f = export ? export_format(export) : -1, rc;
        if (counts || (export && f != EXPORT_SAFETENSORS)) {
            fprintf(stderr, "achilles: data: %s: %s is a %s preset, of vectors: %s\n\n%s", counts ? "--counts" : export,
                    t.name, t.kind->name, counts ? "it has no pairs to count" : "it exports as .safetensors only",
                    cli_data_help);
            task_free(&t);
            return CLI_EXIT_USAGE;
        }
        if (!export) rc = describe_dense(&t, split, show < 0 ? 3 : show);
        else if ((rc = export_vectors(&t, split, export, err, sizeof err))) fprintf(stderr, "achilles: data: %s\n", err);
        else
            printf("wrote %s: %llu sequences of %s's %s split (data seed %llu) as safetensors\n", export,
                   (unsigned long long)task_nexamples(&t, split), t.name, task_split_name(&t, split),
                   (unsigned long long)dense_ar_of(&t)->seed);
        task_free(&t);
        return rc ? 1 : 0;
    }
    if (export) {
        int f = export_format(export);
        int rc = f == EXPORT_SAFETENSORS ? export_safetensors(&t, seed, split, export, err, sizeof err)
                                         : export_text(&t, seed, split, export, f == EXPORT_CSV, err, sizeof err);
        if (rc) fprintf(stderr, "achilles: data: %s\n", err);
        else
            printf("wrote %s: %llu sequences of %s's %s split (seed %llu) as %s\n", export,
                   (unsigned long long)task_split_size(&t, split), t.name, task_split_name(&t, split),
                   (unsigned long long)seed, export_ext[f] + 1);
        task_free(&t);
        return rc ? 1 : 0;
    }
    int32_t *tok = malloc((size_t)t.seq_len * sizeof *tok);
    if (!tok) {
        task_free(&t);
        fprintf(stderr, "achilles: data: out of memory\n");
        return 1;
    }
    uint64_t n = task_split_size(&t, split);
    if (show < 0) show = task_npairs(&t, split);
    if ((uint64_t)show > n) show = (int)n;
    print_header(&t, split, seed);
    if (show) printf("\n%10s  %-6s %3s %4s %6s  %s\n", "seq", "pair", "p", "key", "label", "tokens: [key] <anchors>");
    for (int j = 0; j < show; j++) print_sequence(&t, seed, split, (uint64_t)j * (n / (uint64_t)show), tok);
    int rc = counts ? print_counts(&t, seed, split, tok) : 0;
    free(tok);
    task_free(&t);
    return rc;
}
