/* The task presets and the generator, over whole splits: counts, layout, key
 * rules, labels (checked against docs/science.md §1's numbers written out here, not
 * against the loader's tables), and determinism across order and threads. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "task.h"
#include "tap.h"

#define L 8

typedef struct {
    const char *name;
    int vocab, modulus;                 /* modulus 0: none */
    uint64_t per_pair[TASK_NSPLITS];
    int npairs[TASK_NSPLITS];           /* pairs in train, test */
    int a_lo, nanch;                    /* the anchors are tokens a_lo..4 */
    int idx34, idx43;                   /* their places in t->pairs (a1-major) */
    int sym43;                          /* pair 43's symmetric answer: key + sym43 */
    int test_only_43;                   /* composite-mod100 */
    int fs;                             /* fully-symmetric: the paper's two shift sets */
} expect;

static const expect presets[] = {
    {"composite", 201, 0, {16800, 1800}, {15, 16}, 1, 4, 11, 14, -6, 0, 0},
    {"composite-mod100", 100, 100, {20000, 1800}, {15, 1}, 1, 4, 11, 14, -6, 1, 0},
    {"fully-symmetric", 201, 0, {13500, 1500}, {19, 20}, 0, 5, 19, 23, -10, 0, 1},
};

/* The anchors' shifts: composite's for tokens 1-4, which are the paper's
 * set 1 (docs/science.md §1.6); token 0 is an anchor of fully-symmetric only. */
static int shift1(int a) { return a == 0 ? 2 : a == 1 ? 5 : a == 2 ? 1 : a == 3 ? -2 : -8; }

/* fully-symmetric (docs/science.md §1.6): set 2, with anchor 4's -4 our choice
 * (the paper gives none), and which pairs add their shifts from which set. */
static const int fs_set2[5] = {-9, 6, -7, 3, -4};
static const int fs_pairs1[10][2] = {{0, 1}, {0, 2}, {1, 0}, {2, 0}, {1, 4}, {4, 1}, {2, 3}, {3, 2}, {3, 4}, {4, 3}};
static const int fs_pairs2[10][2] = {{0, 3}, {3, 0}, {0, 4}, {4, 0}, {1, 2}, {2, 1}, {1, 3}, {3, 1}, {2, 4}, {4, 2}};

/* The set pair (a, b) takes its shift from: 1, 2, or 0 for none. */
static int fs_set(int a, int b)
{
    for (int k = 0; k < 10; k++) {
        if (fs_pairs1[k][0] == a && fs_pairs1[k][1] == b) return 1;
        if (fs_pairs2[k][0] == a && fs_pairs2[k][1] == b) return 2;
    }
    return 0;
}

/* The trained shift of (a, b) under the preset; (4,3) is never trained. A
 * pair fully-symmetric lacks gets 1000, which no label matches. */
static int trained_shift(const expect *e, int a, int b)
{
    if (e->fs) {
        int set = fs_set(a, b);
        return set == 1 ? shift1(a) + shift1(b) : set == 2 ? fs_set2[a] + fs_set2[b] : 1000;
    }
    return a == 3 && b == 4 ? -6 : shift1(a) + shift1(b);
}

static int mod(const expect *e, int v) { return e->modulus ? (v % e->modulus + e->modulus) % e->modulus : v; }

typedef struct {
    const ach_task *t;
    uint64_t seed, n;
    int split, parity;
    int32_t *tok, *lab;
} job;

static void *gen_parity(void *arg)
{
    job *j = arg;
    for (uint64_t i = (uint64_t)j->parity; i < j->n; i += 2)
        task_sequence(j->t, j->seed, j->split, i, j->tok + i * L, j->lab + i, NULL);
    return NULL;
}

static uint64_t fnv(const int32_t *v, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) h = (h ^ (uint32_t)v[i]) * 0x100000001b3ULL;
    return h;
}

static void check_split(const ach_task *t, const expect *e, int split)
{
    const char *sn = split ? "test" : "train", *pn = e->name;
    uint64_t n = task_split_size(t, split), per = e->per_pair[split];
    int npairs = e->npairs[split];
    if (!ok(n == per * (uint64_t)npairs, "%s %s: %d pairs x %llu = %llu sequences", pn, sn, npairs,
            (unsigned long long)per, (unsigned long long)n))
        return;
    int32_t *tok = malloc(n * L * sizeof *tok), *lab = malloc(n * sizeof *lab);
    int32_t *tok2 = malloc(n * L * sizeof *tok), *lab2 = malloc(n * sizeof *lab);
    uint64_t count[5][5] = {{0}}, pos_count[L] = {0};
    int key_seen[256] = {0};
    long bad_parse = 0, bad_rule = 0, bad_label = 0, bad_info = 0, bad_tok = 0, bad_layout = 0, bad_ho = 0, wrapped = 0,
         bad_mirror = 0;

    /* The expected pair order: a1-major over the anchors, 43 left out of
     * train; fully-symmetric never repeats an anchor. */
    int order[20][2], no = 0;
    for (int a = e->a_lo; a <= 4; a++)
        for (int b = e->a_lo; b <= 4; b++)
            if (!(split == TASK_TRAIN && a == 4 && b == 3) && !(split == TASK_TEST && e->test_only_43 && !(a == 4 && b == 3)) &&
                !(e->fs && a == b))
                order[no][0] = a, order[no][1] = b, no++;
    if (!ok(no == npairs, "%s %s: the expected layout has %d pairs", pn, sn, no)) return;

    for (uint64_t i = 0; i < n; i++) {
        int32_t *s = tok + i * L;
        ach_seq_info in;
        task_sequence(t, 0, split, i, s, &lab[i], &in);
        /* Parse the sequence from its tokens alone: anchors are the only tokens below 20. */
        int q = -1, nanch = 0;
        for (int j = 0; j < L; j++) {
            if (s[j] < 0 || s[j] >= e->vocab) bad_tok++;
            if (s[j] >= e->a_lo && s[j] <= 4) {
                if (q < 0) q = j;
                nanch++;
            } else if (s[j] < 20 || s[j] >= 100) bad_tok++;
        }
        if (nanch != 2 || q < 1 || q + 1 >= L || s[q + 1] < e->a_lo || s[q + 1] > 4) {
            bad_parse++;
            continue;
        }
        int p = q - 1, key = s[p], a = s[q], b = s[q + 1];
        if (p > 5) bad_parse++;
        count[a][b]++;
        pos_count[p]++;
        key_seen[key] = 1;
        if (split == TASK_TRAIN ? key % 8 == p % 8 : key % 8 != p % 8) bad_rule++;
        uint64_t slot = i / per;
        if (slot >= (uint64_t)no || order[slot][0] != a || order[slot][1] != b) bad_layout++;
        int held = a == 4 && b == 3;
        int comp = mod(e, key + shift1(a) + shift1(b)), sym = mod(e, key + trained_shift(e, b, a));
        int want = held ? comp : mod(e, key + trained_shift(e, a, b));
        wrapped += e->modulus && lab[i] != key + trained_shift(e, a, b);
        if (lab[i] != want || (e->modulus && (lab[i] < 0 || lab[i] >= e->modulus))) bad_label++;
        if (e->fs && lab[i] != key + trained_shift(e, b, a)) bad_mirror++;
        if (held && (in.label_comp != mod(e, key - 10) || in.label_sym != mod(e, key + e->sym43))) bad_ho++;
        if (in.key != key || in.pos != p || in.a1 != a || in.a2 != b || in.label != lab[i] ||
            t->pairs[in.pair].a1 != a || t->pairs[in.pair].a2 != b || in.label_comp != comp || in.label_sym != sym)
            bad_info++;
    }
    ok(!bad_tok, "%s %s: every token is an anchor or in [20, 100), inside the vocabulary of %d (%ld bad)", pn, sn,
       e->vocab, bad_tok);
    ok(!bad_parse, "%s %s: key at p in [0, 5], anchors at p+1 and p+2, noise elsewhere (%ld bad)", pn, sn, bad_parse);
    ok(!bad_rule, "%s %s: key mod 8 %s p mod 8 for every sequence (%ld bad)", pn, sn, split ? "==" : "!=", bad_rule);
    ok(!bad_layout, "%s %s: sequence i has pair i / %llu in a1-major order (%ld bad)", pn, sn, (unsigned long long)per,
       bad_layout);
    ok(!bad_label, "%s %s: every label is key + its pair's shift%s (%ld bad)", pn, sn, e->modulus ? " mod 100" : "",
       bad_label);
    if (e->modulus && split == TASK_TRAIN) ok(wrapped > 0, "%s %s: labels past 99 wrap around (%ld did)", pn, sn, wrapped);
    if (e->fs) ok(!bad_mirror, "%s %s: every label is also key + the mirror pair's shift (%ld bad)", pn, sn, bad_mirror);
    ok(!bad_info, "%s %s: the info matches the tokens and both answers (%ld bad)", pn, sn, bad_info);
    int counts_ok = 1;
    for (int j = 0; j < no; j++) counts_ok &= count[order[j][0]][order[j][1]] == per;
    ok(counts_ok, "%s %s: %llu sequences of each of its %d pairs", pn, sn, (unsigned long long)per, no);
    if (split == TASK_TRAIN) {
        ok(count[4][3] == 0 && !task_split_has_pair(t, TASK_TRAIN, 4, 3), "%s train: pair 43 never appears", pn);
        ok(count[3][4] == per, "%s train: pair 34 is trained (with key - %d, checked above)", pn, -e->sym43);
    } else {
        ok(count[4][3] == per && task_has_pair(t, 4, 3), "%s test: pair 43 appears %llu times", pn,
           (unsigned long long)per);
        ok(!bad_ho, "%s test: pair 43's composite answer is key - 10, its symmetric answer key - %d", pn, -e->sym43);
    }
    /* Every position is used about equally; the keys are exactly those the rule allows. */
    int pos_ok = 1, keys_ok = 1;
    for (int p = 0; p < 6; p++) pos_ok &= pos_count[p] > n / 6 * 9 / 10 && pos_count[p] < n / 6 * 11 / 10;
    for (int k = 0; k < 256; k++) {
        int allowed = k >= 20 && k < 100 && (split == TASK_TRAIN || k % 8 <= 5);
        if (n >= 20000) keys_ok &= key_seen[k] == allowed;
        else keys_ok &= !key_seen[k] || allowed;
    }
    ok(pos_ok, "%s %s: p is spread evenly over [0, 5]", pn, sn);
    ok(keys_ok, "%s %s: the keys seen are exactly those in [20, 100) the rule allows", pn, sn);

    /* The same sequences in reverse order, and from two threads. */
    for (uint64_t i = n; i-- > 0;) task_sequence(t, 0, split, i, tok2 + i * L, &lab2[i], NULL);
    ok(!memcmp(tok, tok2, n * L * sizeof *tok) && !memcmp(lab, lab2, n * sizeof *lab),
       "%s %s: generated in reverse, every sequence is the same", pn, sn);
    memset(tok2, 0, n * L * sizeof *tok);
    memset(lab2, 0, n * sizeof *lab);
    pthread_t th[2];
    job jobs[2];
    for (int k = 0; k < 2; k++) {
        jobs[k] = (job){t, 0, n, split, k, tok2, lab2};
        pthread_create(&th[k], NULL, gen_parity, &jobs[k]);
    }
    for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    ok(!memcmp(tok, tok2, n * L * sizeof *tok) && !memcmp(lab, lab2, n * sizeof *lab),
       "%s %s: generated by 2 threads (odd and even), every sequence is the same", pn, sn);
    /* Another seed gives other sequences (the same 8 tokens by chance: ~never). */
    uint64_t same = 0;
    for (uint64_t i = 0; i < n; i++) {
        int32_t s[L], l;
        task_sequence(t, 1, split, i, s, &l, NULL);
        same += !memcmp(s, tok + i * L, sizeof s);
    }
    ok(same < n / 1000 + 1, "%s %s: seed 1 differs from seed 0 (%llu of %llu identical)", pn, sn,
       (unsigned long long)same, (unsigned long long)n);
    if (!strcmp(pn, "composite") && split == TASK_TRAIN) {
        /* Pinned: a change here changes every experiment's data. */
        uint64_t h = fnv(lab, n, fnv(tok, n * L, 0xcbf29ce484222325ULL));
        if (!ok(h == 0x2a411b6a42fa4655ULL, "composite train, seed 0: the split's hash is pinned")) diag("hash 0x%016llx", (unsigned long long)h);
    }
    free(tok), free(lab), free(tok2), free(lab2);
}

/* composite.json with the test split's pairs replaced by "seen". */
static void check_without_43(void)
{
    ach_task t;
    char err[600];
    FILE *f = fopen("data/composite.json", "rb");
    static char buf[1 << 16];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    cJSON *o = cJSON_Parse(buf);
    cJSON *test = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "splits"), "test");
    cJSON_ReplaceItemInObject(test, "pairs", cJSON_CreateString("seen"));
    char *s = cJSON_Print(o);
    int rc = task_from_json(&t, s, "no43.json", err, sizeof err);
    if (!ok(rc == 0, "a preset whose test split lacks 43 loads")) diag("%s", err);
    if (!rc) {
        ok(!task_has_pair(&t, 4, 3) && task_npairs(&t, TASK_TEST) == 15 && task_pair_index(&t, 4, 3) == 14,
           "... and task_has_pair(4, 3) says it is absent");
        task_free(&t);
    }
    free(s);
    cJSON_Delete(o);
}

/* composite-len9 is composite with one more noise token: the anchors never
 * end its sequences, and all else is the same, sequence for sequence. */
static void check_len9(void)
{
    ach_task a, b;
    char err[600];
    if (!ok(task_load(&a, "composite", err, sizeof err) == 0 && task_load(&b, "composite-len9", err, sizeof err) == 0,
            "composite-len9 loads")) {
        diag("%s", err);
        return;
    }
    int same = b.seq_len == L + 1, after = 1;
    for (int split = 0; split < TASK_NSPLITS; split++)
        for (uint64_t i = 0; i < task_split_size(&a, split) && same; i++) {
            int32_t ta[L], tb[L + 1], la, lb;
            ach_seq_info ia, ib;
            task_sequence(&a, 0, split, i, ta, &la, &ia);
            task_sequence(&b, 0, split, i, tb, &lb, &ib);
            same &= !memcmp(ta, tb, sizeof ta) && la == lb && !memcmp(&ia, &ib, sizeof ia) && tb[L] >= 20 && tb[L] < 100;
            after &= ib.pos + 2 < L;
        }
    ok(same && task_split_size(&a, TASK_TRAIN) == task_split_size(&b, TASK_TRAIN) &&
           task_split_size(&a, TASK_TEST) == task_split_size(&b, TASK_TEST),
       "composite-len9: composite's sequences, labels and splits, plus a noise token");
    ok(after, "composite-len9: a token always follows the anchors");
    task_free(&a);
    task_free(&b);
}

int main(void)
{
    char err[600];
    for (size_t k = 0; k < sizeof presets / sizeof presets[0]; k++) {
        const expect *e = &presets[k];
        ach_task t;
        if (!ok(task_load(&t, e->name, err, sizeof err) == 0, "%s loads by name", e->name)) {
            diag("%s", err);
            continue;
        }
        ok(t.seq_len == L && t.vocab_size == e->vocab && t.label_modulus == e->modulus && t.nanchors == e->nanch,
           "%s: seq_len 8, vocabulary %d, label modulus %d, %d anchors", e->name, e->vocab, e->modulus, e->nanch);
        int tokens_ok = 1;
        for (int j = 0; j < t.nanchors && j < e->nanch; j++)
            tokens_ok &= t.anchor[j] == e->a_lo + j && t.anchor_shift[j] == shift1(e->a_lo + j);
        ok(tokens_ok, "%s: the anchors are tokens %d..4, shifts %s", e->name, e->a_lo,
           e->fs ? "+2 +5 +1 -2 -8 (set 1)" : "+5 +1 -2 -8");
        ok(task_pair_index(&t, 4, 3) == e->idx43 && task_pair_index(&t, 3, 4) == e->idx34 &&
               task_pair_index(&t, e->a_lo, e->a_lo) == 0 && task_pair_index(&t, e->a_lo - 1, 1) == -1 &&
               task_pair_index(&t, 5, 1) == -1 && task_pair_index(&t, 1, 20) == -1,
           "%s: pair lookup", e->name);
        ok(t.pairs[e->idx43].held_out && !t.pairs[e->idx34].held_out && t.pairs[e->idx43].comp_shift == -10 &&
               t.pairs[e->idx43].sym_shift == e->sym43,
           "%s: 43 is held out with answers -10 and %d", e->name, e->sym43);
        int shared = 1;
        for (int p = 0; p < t.npairs; p++)
            if (t.pairs[p].in_split[TASK_TRAIN]) {
                const ach_pair *q = &t.pairs[p];
                shared &= e->fs ? q->shift == trained_shift(e, q->a1, q->a2) &&
                                      q->shift == t.pairs[task_pair_index(&t, q->a2, q->a1)].shift &&
                                      q->special == (fs_set(q->a1, q->a2) == 2)
                                : q->special == (p == 11);
            }
        ok(shared, "%s: %s", e->name,
           e->fs ? "every trained pair has its set's shift, shared with its mirror; only set-2 pairs are special"
                 : "only pair 34 has a special shift");
        if (e->fs) {
            /* The test's own tables: each of the 20 pairs in one set, with its mirror. */
            int sets_ok = 1;
            for (int a = 0; a <= 4; a++)
                for (int b2 = 0; b2 <= 4; b2++)
                    sets_ok &= a == b2 ? fs_set(a, b2) == 0 : fs_set(a, b2) != 0 && fs_set(a, b2) == fs_set(b2, a);
            ok(sets_ok, "%s: each of the 20 pairs takes set 1 or set 2, both orders the same", e->name);
        }
        char name[32];
        task_pair_name(&t, e->idx43, name, sizeof name);
        ok(!strcmp(name, "43"), "%s: pair %d is named '43'", e->name, e->idx43);
        check_split(&t, e, TASK_TRAIN);
        check_split(&t, e, TASK_TEST);
        task_free(&t);
    }
    ach_task t;
    ok(task_load(&t, "data/composite.json", err, sizeof err) == 0 && !strcmp(t.name, "composite"),
       "a path loads as is");
    task_free(&t);
    check_without_43();
    check_len9();
    return done_testing();
}
