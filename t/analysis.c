/* Blocking, substitution and hidden attention against independent
 * computations, on small random models of both mixers. */
#include <stdlib.h>
#include <string.h>

#include "analysis.h"
#include "init.h"
#include "mamba.h"
#include "rng.h"
#include "tap.h"

static int make_model(ach_model *m, ach_arch arch, int K, int layers)
{
    ach_config c;
    char err[256];
    cfg_default(&c, arch);
    c.n_layer = layers, c.d_model = 16, c.d_state = 8, c.d_conv = K, c.headdim = 8, c.vocab_size = 64;
    c.dt_rank = 1, c.gamma = 0.3, c.seed = 3;
    if (ach_model_create(m, &c, &ach_cpu_kernels, err, sizeof err) || ach_init_params(m)) {
        diag("%s", err);
        return -1;
    }
    /* larger dt so the SSM carries information visibly */
    ach_rng r;
    rng_init(&r, 9, 0);
    for (size_t i = 0; i < m->nweights; i++) m->w[i] += 0.1 * rng_normal(&r);
    return 0;
}

static int load_task(ach_task *t, const char *name)
{
    char err[512];
    if (task_load(t, name, err, sizeof err)) {
        diag("%s", err);
        return -1;
    }
    return 0;
}

/* y of layer l's SSM from the materialised S with blocked sources masked,
 * compared with what the kernels computed under the same blocking. */
static void check_blocking_vs_matrix(ach_arch arch)
{
    ach_model m;
    ach_task t;
    char err[256];
    const char *an = cfg_arch_name(arch);
    if (make_model(&m, arch, 4, 2) || load_task(&t, "t/data/small.json")) return;
    int L = t.seq_len, Di = cfg_d_inner(&m.cfg), label;
    int32_t tok[16];
    ach_seq_info info;
    task_sequence(&t, 0, TASK_TEST, 123, tok, &label, &info);
    ach_model_reserve(&m, 1, L, err, sizeof err);
    for (int blocked = 0; blocked < 2; blocked++) {
        ach_block_spec b;
        ach_block_parse(&b, blocked ? "key,anchors" : "none", "1", L, 2, err, sizeof err);
        unsigned char mask[16];
        ach_block_mask(&b, &info, 1, L, mask);
        ach_model_set_block(&m, blocked ? mask : NULL, 1, L, b.layers);
        ach_model_forward(&m, tok, &label, 1, L);
        /* per head (Mamba-2) or channel (Mamba-1): y_t = sum_s S(t,s) x_s + D x_t, masked */
        double S[256], worst = 0, scale = 0;
        const mamba_layer_acts *a = &mamba_of(&m)->layers[1];
        int nh = arch == ARCH_MAMBA2 ? cfg_nheads(&m.cfg) : Di, P = arch == ARCH_MAMBA2 ? m.cfg.headdim : 1;
        int Cd = cfg_conv_dim(&m.cfg);
        for (int h = 0; h < nh; h++) {
            /* ach_hidden_attention reruns the forward; use the same blocking */
            ach_model_set_block(&m, blocked ? mask : NULL, 1, L, b.layers);
            ach_hidden_attention(&m, tok, L, 1, h, S, err, sizeof err);
            for (int t2 = 0; t2 < L; t2++)
                for (int p = 0; p < P; p++) {
                    int ch = h * P + p;
                    double Dh = m.w[mamba_of(&m)->lp[1].D + h], want = Dh * a->act[t2 * Cd + ch];
                    for (int s = 0; s <= t2; s++)
                        if (!(blocked && mask[s] && s < t2)) want += S[t2 * L + s] * a->act[s * Cd + ch];
                    double got = a->y[t2 * Di + ch];
                    worst = fmax(worst, fabs(got - want));
                    scale = fmax(scale, fabs(want));
                }
        }
        ok(worst <= 1e-5 * scale, "%s: SSM output %s equals the materialised S%s (max err %.2g of %.2g)", an,
           blocked ? "with key and anchors blocked" : "unblocked", blocked ? ", masked" : "", worst, scale);
    }
    /* nothing blocked: exactly the ordinary forward */
    ach_block_spec none, all;
    ach_block_parse(&none, "none", "all", L, 2, err, sizeof err);
    ach_block_parse(&all, "key", "all", L, 2, err, sizeof err);
    int32_t p0, p1;
    double l0 = ach_model_forward(&m, tok, &label, 1, L);
    double l1 = ach_predict(&m, tok, &label, 1, L, 0, &none, &info, &p0);
    ok(l0 == l1, "%s: an empty block spec is exactly the ordinary forward (%.9g)", an, l1);
    double l2 = ach_predict(&m, tok, &label, 1, L, 0, &all, &info, &p1);
    ok(l2 != l0, "%s: blocking the key changes the loss (%.6g vs %.6g)", an, l2, l0);
    ach_model_free(&m);
    task_free(&t);
}

static void check_blocking_eval(void)
{
    ach_model m;
    ach_task t;
    ach_pair_report rep;
    char err[256];
    if (make_model(&m, ARCH_MAMBA2, 4, 2) || load_task(&t, "t/data/small.json")) return;
    ach_block_spec b;
    ach_block_parse(&b, "key,anchors", "all", t.seq_len, 2, err, sizeof err);
    ok(ach_blocking_eval(&m, &t, 0, &b, 20, &rep, err, sizeof err) == 0, "blocking eval runs");
    ok(rep.npairs == 16 && rep.n[0] == 20, "16 pairs, 20 sequences each");
    int in_range = 1;
    for (int i = 0; i < rep.npairs; i++) in_range &= rep.value[i] >= 0 && rep.value[i] <= 1;
    ok(in_range, "agreements are fractions (overall %.3f)", rep.overall);
    ach_block_parse(&b, "none", "all", t.seq_len, 2, err, sizeof err);
    ok(ach_blocking_eval(&m, &t, 0, &b, 20, &rep, err, sizeof err) == -1 && strstr(err, "no positions"),
       "blocking nothing is refused: %s", err);
    ok(ach_block_parse(&b, "key", "3", t.seq_len, 2, err, sizeof err) == -1 && strstr(err, "3 is beyond"),
       "a layer that does not exist: %s", err);
    ok(ach_block_parse(&b, "6", "all", t.seq_len, 2, err, sizeof err) == -1 && strstr(err, "beyond the sequence"),
       "a position beyond the sequence: %s", err);
    ok(ach_block_parse(&b, "keys", "all", t.seq_len, 2, err, sizeof err) == -1 && strstr(err, "'keys'"),
       "an unknown role: %s", err);
    ach_model_free(&m);
    task_free(&t);
}

static void check_substitution(void)
{
    ach_model m;
    ach_task t;
    ach_pair_report rep;
    char err[256];
    if (make_model(&m, ARCH_MAMBA2, 4, 2) || load_task(&t, "t/data/small.json")) return;
    ok(ach_substitution_eval(&m, &t, 0, 0, "after", 30, &rep, err, sizeof err) == 0, "substitution runs");
    ok(rep.npairs == 16 && isnan(rep.value[task_pair_index(&t, 4, 3)]) && rep.overall >= 0 && rep.overall <= 1,
       "16 pairs reported, 43 (the twin itself) left out; overall collapse %.3f", rep.overall);
    ach_substitution_eval(&m, &t, 0, 0, "anchors", 30, &rep, err, sizeof err);
    ok(rep.unchanged_overall < 1, "the twin's anchor states change some predictions (unchanged %.3f)",
       rep.unchanged_overall);
    /* the twin equal to the sequence itself: every position substituted
     * by its own state, so every prediction "collapses" */
    {
        int L = t.seq_len, nb = 64;
        int32_t *tok = malloc(nb * L * sizeof *tok), lab, pt[64], ps[64];
        unsigned char *mask = malloc(nb * L);
        for (int s = 0; s < nb; s++) task_sequence(&t, 0, TASK_TEST, s * 7, tok + s * L, &lab, NULL);
        memset(mask, 1, nb * L);
        ach_model_reserve(&m, nb, L, err, sizeof err);
        ach_substitute(&m, tok, tok, mask, nb, L, 0, pt, ps);
        int same = 0;
        for (int s = 0; s < nb; s++) same += pt[s] == ps[s];
        ok(same == nb, "twin = the sequence itself: 100%% collapse (%d/%d)", same, nb);
        free(tok);
        free(mask);
    }
    ok(ach_substitution_eval(&m, &t, 0, 2, "after", 30, &rep, err, sizeof err) == -1 && strstr(err, "layer 2"),
       "a layer that does not exist: %s", err);
    ach_model_free(&m);

    /* With K = 1 the convolution cannot carry the anchors forward, so the
     * states after the anchors are the same in the twin: substitution
     * changes nothing and "collapse" is exactly pred(seq) == pred(twin). */
    if (make_model(&m, ARCH_MAMBA2, 1, 2)) return;
    ach_substitution_eval(&m, &t, 0, 0, "after", 40, &rep, err, sizeof err);
    const ach_split *sp = &t.split[TASK_TEST];
    int L = t.seq_len, held = task_pair_index(&t, 4, 3), worst_pair = -1;
    long skipped = 0;
    double worst = 0;
    for (int i = 0; i < sp->npairs; i++) {
        if (sp->pairs[i] == held) continue;
        long same = 0, n = 0;
        for (int j = 0; j < 40; j++) {
            int32_t tok[16], twin[16], lab;
            int32_t p0, p1;
            ach_seq_info info;
            task_sequence(&t, 0, TASK_TEST, i * sp->per_pair + j, tok, &lab, &info);
            if (info.pos + 3 >= L) {
                skipped++;
                continue;
            }
            memcpy(twin, tok, sizeof tok);
            twin[info.pos + 1] = 4, twin[info.pos + 2] = 3;
            ach_predict(&m, tok, &lab, 1, L, 1, NULL, NULL, &p0);
            ach_predict(&m, twin, &lab, 1, L, 1, NULL, NULL, &p1);
            same += p0 == p1, n++;
        }
        double d = fabs((double)same / n - rep.value[i]);
        if (d > worst) worst = d, worst_pair = i;
    }
    ok(worst == 0, "K = 1: collapse equals the direct agreement of sequence and twin on every pair (worst %g at %d)",
       worst, worst_pair);
    ok(rep.skipped == skipped, "sequences with nothing after the anchors are counted as skipped (%ld)", rep.skipped);
    int all_kept = rep.unchanged_overall == 1;
    for (int i = 0; i < sp->npairs; i++) all_kept &= sp->pairs[i] == held || rep.unchanged[i] == 1;
    ok(all_kept, "K = 1: the replaced states equal the sequence's own, so every prediction is unchanged (%.3f)",
       rep.unchanged_overall);
    ach_model_free(&m);
    task_free(&t);

    /* a preset without anchors 4 and 3 */
    const char *json =
        "{\"name\":\"two\",\"description\":\"anchors 1 and 2 only\",\"seq_len\":5,\"vocab_size\":64,"
        "\"key_tokens\":{\"from\":20,\"below\":40},\"noise_tokens\":{\"from\":20,\"below\":40},"
        "\"key_positions\":{\"from\":0,\"below\":3},\"anchors\":[{\"token\":1,\"shift\":5},{\"token\":2,\"shift\":1}],"
        "\"label_modulus\":null,\"special_pairs\":[],\"held_out\":[],\"key_rule\":{\"modulus\":4,\"position_offset\":0},"
        "\"splits\":{\"train\":{\"pairs\":\"all\",\"per_pair\":10,\"key_vs_position\":\"any\"},"
        "\"test\":{\"pairs\":\"all\",\"per_pair\":10,\"key_vs_position\":\"any\"}}}";
    if (task_from_json(&t, json, "two", err, sizeof err)) {
        diag("%s", err);
        ok(0, "the two-anchor preset loads");
        return;
    }
    make_model(&m, ARCH_MAMBA2, 4, 2);
    ok(ach_substitution_eval(&m, &t, 0, 0, "after", 5, &rep, err, sizeof err) == -1 && strstr(err, "no anchors 4 and 3"),
       "substitution on a preset without pair 43: %s", err);
    ach_model_free(&m);
    task_free(&t);
}

static void check_attention(void)
{
    ach_model m;
    char err[256];
    double S[64];
    int32_t tok[8] = {30, 31, 1, 2, 33, 34, 35, 36};
    for (int arch = ARCH_MAMBA1; arch <= ARCH_MAMBA2; arch++) {
        if (make_model(&m, (ach_arch)arch, 4, 2)) return;
        ok(ach_hidden_attention(&m, tok, 8, 1, -1, S, err, sizeof err) == 0, "%s: hidden attention",
           cfg_arch_name((ach_arch)arch));
        int upper_zero = 1, diag_nonzero = 1;
        for (int t = 0; t < 8; t++) {
            diag_nonzero &= S[t * 8 + t] != 0;
            for (int s = t + 1; s < 8; s++) upper_zero &= S[t * 8 + s] == 0;
        }
        ok(upper_zero && diag_nonzero, "%s: causal (zero above the diagonal), non-zero diagonal",
           cfg_arch_name((ach_arch)arch));
        ok(ach_hidden_attention(&m, tok, 8, 5, 0, S, err, sizeof err) == -1 && strstr(err, "layer 5"),
           "%s: a layer that does not exist: %s", cfg_arch_name((ach_arch)arch), err);
        ach_model_free(&m);
    }
}

int main(void)
{
    check_blocking_vs_matrix(ARCH_MAMBA2);
    check_blocking_vs_matrix(ARCH_MAMBA1);
    check_blocking_eval();
    check_substitution();
    check_attention();
    return done_testing();
}
