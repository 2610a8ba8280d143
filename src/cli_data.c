/* `achilles data`: look at a task preset's sequences and per-pair counts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "task.h"

const char *cli_data_help =
    "usage: achilles data [options]\n"
    "\n"
    "Prints sequences of a task preset's split, the key in [brackets] and the anchors\n"
    "in <angle brackets>, with their pair and label (a held-out pair shows both its\n"
    "composite and symmetric answers).\n"
    "\n"
    "  --preset P               a name in the data directory or a path to a JSON file\n"
    "                           (default composite)\n"
    "  --split train|test       which split (default train)\n"
    "  --seed S                 data seed (default 0)\n"
    "  --show N                 sequences to print, evenly spaced through the split\n"
    "                           (default one per pair)\n"
    "  --counts                 generate the whole split and print the sequences per pair\n";

/* "key + 10", "key - 6 mod 100" */
static void rule_text(const ach_task *t, int shift, char *buf, size_t n)
{
    snprintf(buf, n, "key %c %d%s", shift < 0 ? '-' : '+', abs(shift), t->label_modulus ? " mod " : "");
    if (t->label_modulus) snprintf(buf + strlen(buf), n - strlen(buf), "%d", t->label_modulus);
}

static void print_header(const ach_task *t, int split, uint64_t seed)
{
    static const char *const names[] = {"train", "test"};
    const ach_split *s = &t->split[split];
    printf("preset %s (%s)\n  %s\n", t->name, t->path, t->description);
    printf("split %s, seed %llu: %llu sequences, %d pairs x %llu; ", names[split], (unsigned long long)seed,
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

int cli_data(int argc, char **argv)
{
    const char *preset = "composite";
    int split = TASK_TRAIN, show = -1, counts = 0;
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
        if (strcmp(a, "--preset") && strcmp(a, "--split") && strcmp(a, "--seed") && strcmp(a, "--show"))
            return cli_usage_error(cli_data_help, "data: unknown option '%s'", a);
        if (!v) return cli_usage_error(cli_data_help, "data: option %s needs a value", a);
        i++;
        int bad = 0;
        if (!strcmp(a, "--preset")) preset = v;
        else if (!strcmp(a, "--split")) {
            if (!strcmp(v, "train")) split = TASK_TRAIN;
            else if (!strcmp(v, "test")) split = TASK_TEST;
            else bad = 1;
        } else if (!strcmp(a, "--show")) bad = cli_parse_int(v, &show) || show < 0;
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
    ach_task t;
    char err[600];
    if (task_load(&t, preset, err, sizeof err)) {
        fprintf(stderr, "achilles: data: %s\n", err);
        return 1;
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
