/* The task-kind interface over the composite kind: the generator through
 * the kind's ops gives the same sequences as before kinds existed (digests
 * captured from the generator of commit c84a317), a preset's "kind" field
 * picks the kind, and the scorer's named metrics hold the values and the
 * names records have always used. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kind.h"
#include "run.h"
#include "runcfg.h"
#include "tap.h"

static uint64_t fnv(const int32_t *v, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (uint32_t)v[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* About 1000 sequences spread over the split: tokens, label, pair and both
 * answers, folded into one FNV-1a digest. */
static uint64_t split_digest(const ach_task *t, uint64_t seed, int split)
{
    uint64_t n = task_nexamples(t, split), step = n / 997 ? n / 997 : 1, h = 1469598103934665603ULL;
    int32_t tok[64], lab;
    ach_seq_info in;
    for (uint64_t i = 0; i < n; i += step) {
        task_example(t, seed, split, i, tok, &lab, &in);
        int32_t x[3] = {in.pair, in.label_comp, in.label_sym};
        h = fnv(x, 3, fnv(&lab, 1, fnv(tok, (size_t)t->seq_len, h)));
    }
    return h;
}

static const struct {
    const char *preset;
    uint64_t seed;
    int split;
    uint64_t digest;
} before[] = {
    {"composite", 0, 0, 0xb42c92d8d5dc1ca9ULL},        {"composite", 0, 1, 0x1c0b0b8736cf7ba2ULL},
    {"composite", 42, 0, 0x3c5464b626b1a119ULL},       {"composite", 42, 1, 0xc6715e0016e811a1ULL},
    {"composite", 123456789, 0, 0x40de506472c7298dULL}, {"composite", 123456789, 1, 0x2fb5b3853c5bbda2ULL},
    {"composite-mod100", 0, 0, 0xc4dcef6c2bdb567eULL}, {"composite-mod100", 0, 1, 0x0a39316b1c941618ULL},
    {"composite-mod100", 42, 0, 0x14c0c25820a32306ULL}, {"composite-mod100", 42, 1, 0x4358b1a2753e72cdULL},
    {"composite-mod100", 123456789, 0, 0x6fb7bcecbb064fccULL},
    {"composite-mod100", 123456789, 1, 0x937cef25ad210faaULL},
    {"fully-symmetric", 0, 0, 0x9ba492efb1c3c30fULL},  {"fully-symmetric", 0, 1, 0xaaa074097f931695ULL},
    {"fully-symmetric", 42, 0, 0xc209278fc099fcfeULL}, {"fully-symmetric", 42, 1, 0xac1289666821c5d5ULL},
    {"fully-symmetric", 123456789, 0, 0x0c9f13d6234b0aeaULL},
    {"fully-symmetric", 123456789, 1, 0x73d384bbd54f1050ULL},
    {"composite-len9", 0, 0, 0xf2acaf68e7fa26bfULL},   {"composite-len9", 0, 1, 0xbd7d6791026da9fbULL},
    {"composite-len9", 42, 0, 0xe5240d3340c9f8a4ULL},  {"composite-len9", 42, 1, 0xcd4c722773884b13ULL},
    {"composite-len9", 123456789, 0, 0xcca50401bb22c9f2ULL},
    {"composite-len9", 123456789, 1, 0xfe6650bf41fbbe75ULL},
};

static void generator_unchanged(void)
{
    for (size_t k = 0; k < sizeof before / sizeof before[0]; k++) {
        ach_task t;
        char err[512];
        if (!ok(!task_load(&t, before[k].preset, err, sizeof err), "%s loads", before[k].preset)) {
            diag("%s", err);
            continue;
        }
        uint64_t d = split_digest(&t, before[k].seed, before[k].split);
        ok(t.kind == &task_kind_composite && d == before[k].digest,
           "%s seed %llu %s: composite kind, the same sequences as before kinds", before[k].preset,
           (unsigned long long)before[k].seed, task_split_name(&t, before[k].split));
        if (d != before[k].digest) diag("digest %016llx", (unsigned long long)d);
        task_free(&t);
    }
    /* Two sequences written out, as the old generator made them. */
    ach_task t;
    char err[512];
    if (task_load(&t, "composite", err, sizeof err)) return;
    int32_t tok[8], lab;
    ach_seq_info in;
    static const int32_t want1[8] = {93, 22, 35, 63, 44, 1, 1, 26}, want2[8] = {98, 76, 33, 65, 30, 1, 1, 66};
    task_example(&t, 42, TASK_TEST, 1234, tok, &lab, &in);
    ok(!memcmp(tok, want1, sizeof tok) && lab == 54 && in.pair == 0 && in.label_comp == 54 && in.label_sym == 54,
       "composite seed 42 test 1234: 93 22 35 63 44 1 1 26, label 54 (pair 11)");
    task_example(&t, 7, TASK_TRAIN, 9999, tok, &lab, &in);
    ok(!memcmp(tok, want2, sizeof tok) && lab == 40, "composite seed 7 train 9999: 98 76 33 65 30 1 1 66, label 40");
    task_free(&t);
}

/* "kind": "composite" is the same task as no kind field; a kind that does
 * not exist is an error naming the file and the field. */
static void kind_field(void)
{
    ach_task a, b;
    char err[512], *text = NULL;
    if (task_load_with(&a, "composite", 0, -1, &text, err, sizeof err)) {
        ok(0, "composite loads: %s", err);
        return;
    }
    size_t n = strlen(text);
    char *with = malloc(n + 64);
    const char *brace = strchr(text, '{');
    snprintf(with, n + 64, "{\"kind\": \"composite\", %s", brace + 1);
    int rc = task_from_json(&b, with, "with-kind.json", err, sizeof err);
    ok(!rc && b.kind == &task_kind_composite && split_digest(&a, 42, 1) == split_digest(&b, 42, 1),
       "\"kind\": \"composite\" gives the same task as no kind field");
    if (!rc) task_free(&b);
    snprintf(with, n + 64, "{\"kind\": \"nonsense\", %s", brace + 1);
    rc = task_from_json(&b, with, "bad-kind.json", err, sizeof err);
    ok(rc && strstr(err, "bad-kind.json: field 'kind': 'nonsense' is not a task kind ('composite', 'dense_ar')"),
       "\"kind\": \"nonsense\" is an error naming the file and the field");
    diag("%s", err);
    snprintf(with, n + 64, "{\"kind\": 3, %s", brace + 1);
    rc = task_from_json(&b, with, "num-kind.json", err, sizeof err);
    ok(rc && strstr(err, "num-kind.json: field 'kind': expected a string"), "\"kind\": 3 is an error too");
    ok(task_kind_find("composite") == &task_kind_composite && task_kind_find("dense_ar") == &task_kind_dense_ar &&
       !task_kind_find("nonsense"), "task_kind_find");
    free(with);
    free(text);
    task_free(&a);
}

/* A record of these metrics: the keys and columns runs have always
 * written, in their order, and the JSON reads back to the same record. */
static void records(const ach_named_metrics *e)
{
    ach_metrics m = {.epoch = 3, .step = 30, .lr = 1e-4, .train_loss = 1.5, .eval = *e, .grad_norm = 0.5,
                     .seq_per_s = 100, .elapsed_s = 2, .pos_enc = "none", .block = "none", .block_layers = "all",
                     .block_agree = NAN};
    char *js = ach_metrics_json(&m), *hdr = ach_metrics_csv_header(&m), *row = ach_metrics_csv_row(&m);
    ok(js && !strncmp(js, "{\"epoch\":3,\"step\":30,\"lr\":0.0001,\"train_loss\":1.5,\"test_loss\":2.5,"
                         "\"acc43_comp\":0,\"acc43_sym\":1,\"acc_seen\":0.9333333333333333,\"grad_norm\":0.5,"
                         "\"seq_per_s\":100,\"elapsed_s\":2,\"acc_pair\":{\"11\":0,\"12\":1,", 150),
       "metrics.jsonl record: today's keys in today's order");
    ok(hdr && !strncmp(hdr, "epoch,step,lr,train_loss,test_loss,acc43_comp,acc43_sym,acc_seen,grad_norm,seq_per_s,"
                            "elapsed_s,all_one_conv,pos_enc,block,block_layers,block_train,block_agree,acc_11,acc_12,", 140) &&
           strstr(hdr, ",acc_43,acc_44") && !strcmp(hdr + strlen(hdr) - 7, ",acc_44"),
       "training_log.csv header: today's columns");
    ok(row && !strncmp(row, "3,30,0.0001,1.5,2.5,0,1,0.933333,0.5,100,2.000,0,none,\"none\",\"all\",0,nan,0,1,", 60),
       "training_log.csv row: %.60s", row ? row : "");
    cJSON *o = js ? cJSON_Parse(js) : NULL;
    ach_metrics back;
    ach_metrics_from_json(o, &task_kind_composite, &back);
    char *again = ach_metrics_json(&back);
    ok(again && !strcmp(again, js), "the record reads back to the same record");
    cJSON_Delete(o);
    free(js);
    free(hdr);
    free(row);
    free(again);
}

/* The composite's table: today's keys in today's order; and its scorer on
 * predictions whose accuracy is known. */
static void scorer(void)
{
    const ach_task_kind *k = &task_kind_composite;
    char names[200];
    task_metric_names(k, names, sizeof names);
    ok(!strcmp(names, "test_loss|acc43_comp|acc43_sym|acc_seen"), "composite metrics: %s", names);
    ok(!k->metrics[0].higher_better && k->metrics[1].higher_better && k->metrics[2].higher_better &&
           k->metrics[3].higher_better,
       "lower is better for test_loss only");
    ok(!strcmp(k->split_names[0], "train") && !strcmp(k->split_names[1], "test") && k->nsplits == 2, "splits train, test");
    /* patience_metric's choices (runcfg's table) are the composite's metrics:
     * the run checks the choice against the preset's kind */
    const char *choices = NULL;
    for (int i = 0; i < runcfg_nkeys(); i++)
        if (!strcmp(runcfg_key_name(i), "patience_metric")) choices = runcfg_key_choices(i);
    int same = choices && strlen(choices) == strlen(names);
    for (int i = 0; same && i < k->nmetrics; i++) {
        const char *at = strstr(choices, k->metrics[i].name);
        size_t len = strlen(k->metrics[i].name);
        same = at && (at == choices || at[-1] == '|') && (at[len] == '|' || !at[len]);
    }
    ok(same, "patience_metric's choices are the composite's metrics: %s", choices ? choices : "(no such key)");

    ach_task t;
    char err[512];
    if (task_load(&t, "composite", err, sizeof err)) return;
    uint64_t n = task_nexamples(&t, TASK_TEST);
    int32_t *tok = malloc(n * 8 * sizeof *tok), *lab = malloc(n * sizeof *lab), *pred = malloc(n * sizeof *pred);
    ach_seq_info *info = malloc(n * sizeof *info);
    for (uint64_t i = 0; i < n; i++) task_example(&t, 3, TASK_TEST, i, tok + i * 8, &lab[i], &info[i]);
    /* pair 43 answered with its symmetric label, every other pair right
     * except pair 11, always wrong */
    int p11 = task_pair_index(&t, 1, 1), p43 = task_pair_index(&t, 4, 3);
    for (uint64_t i = 0; i < n; i++)
        pred[i] = info[i].pair == p43 ? info[i].label_sym : info[i].pair == p11 ? -1 : lab[i];
    void *acc = calloc(1, k->score_size);
    ach_named_metrics m;
    for (uint64_t i = 0; i < n; i += 1000) {
        int nb = n - i < 1000 ? (int)(n - i) : 1000;
        k->score_add(&t, acc, lab + i, info + i, pred + i, nb, 2.5 * nb);
    }
    k->score_end(&t, TASK_TEST, acc, &m);
    /* 16 test pairs of 1800: 15 seen, one of them (11) always wrong */
    ok(m.kind == k && m.value[0] == 2.5 && task_metric(&m, "test_loss") == 2.5, "test_loss: the mean of the losses given");
    ok(task_metric(&m, "acc43_comp") == 0 && task_metric(&m, "acc43_sym") == 1, "pair 43: sym 1, comp 0");
    is_close(task_metric(&m, "acc_seen"), 14.0 / 15, 1e-15, 0, "acc_seen 14/15");
    ok(isnan(task_metric(&m, "no_such")), "an unknown name reads NaN");
    int groups_ok = m.ngroups == 16;
    for (int g = 0; g < m.ngroups; g++) {
        int pair = t.split[TASK_TEST].pairs[g];
        char name[12];
        task_pair_name(&t, pair, name, sizeof name);
        double want = pair == p11 || pair == p43 ? 0 : 1;
        groups_ok &= !strcmp(m.group_name[g], name) && m.group_value[g] == want;
    }
    ok(groups_ok && !strcmp(m.group_name[0], "11"), "acc_pair: 16 pairs in layout order, 11 and 43 at 0, others 1");
    records(&m);
    free(acc);
    free(tok);
    free(lab);
    free(pred);
    free(info);
    task_free(&t);
}

int main(void)
{
    generator_unchanged();
    kind_field();
    scorer();
    return done_testing();
}
