/* `achilles init` and `achilles grad`: make a model, take its gradient. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "checkpoint.h"
#include "init.h"
#include "model.h"
#include "cli.h"
#include "family.h"
#include "safetensors.h"

const char *cli_init_help =
    "usage: achilles init [options] OUT.safetensors\n"
    "\n"
    "Writes a model checkpoint (safetensors, mamba_ssm parameter names, the config\n"
    "as JSON in __metadata__). Defaults are the paper's model (docs/science.md §2.4).\n"
    "\n"
    "  --arch mamba1|mamba2     mixer (default mamba2)\n"
    "  --layers N               residual blocks (default 2)\n"
    "  --d-model D              model width (default 32)\n"
    "  --d-state N              SSM state size (default 128)\n"
    "  --d-conv K               conv1d taps (default 4)\n"
    "  --expand E               d_inner = E * D (default 2)\n"
    "  --headdim P              Mamba-2 head size (default 64)\n"
    "  --dt-rank R              Mamba-1 dt rank (default ceil(D/16))\n"
    "  --vocab V                vocabulary size (default 201)\n"
    "  --init gamma|reference   the paper's gamma rule (default) or mamba_ssm's defaults\n"
    "  --gamma G                initialisation rate: weights ~ N(0, (fan^-G)^2) (default 0.5)\n"
    "  --gamma-tensors LIST     tensors gamma touches: all (default), none, or a comma list\n"
    "                           of embedding,in_proj,conv,x_proj,dt_proj,out_proj\n"
    "  --fan in|out|shape0      d1 of the gamma rule: torch's fan-in (default) or fan-out,\n"
    "                           or weight.shape[0] without the receptive field\n"
    "  --gamma-bias reference|zero\n"
    "                           under gamma, the dt bias as the reference inits it\n"
    "                           (default) or 0, like every other bias\n"
    "  --seed S                 random seed (default 0)\n";

const char *cli_grad_help =
    "usage: achilles grad [--backend cpu|cuda] CKPT BATCH OUT\n"
    "\n"
    "CKPT is a checkpoint; a mamba_ssm state_dict saved without our config loads\n"
    "too (the config from config.json beside it, else from the tensor shapes).\n"
    "BATCH is a safetensors file with int32 \"tokens\" [B, L] and int32 \"labels\" [B].\n"
    "OUT (safetensors) gets \"loss\" F32 [1] (mean cross-entropy at the last position),\n"
    "\"logits\" F32 [B, V] (last position) and \"grad.NAME\" F32 for every tensor NAME of\n"
    "the checkpoint (grad.lm_head.weight equals the tied embedding's gradient).\n"
    "\n"
    "  --backend cpu|cuda   the kernels: CPU (default) or GPU (achilles-cuda only);\n"
    "                       default $ACHILLES_BACKEND, else cpu\n";

int cli_init(int argc, char **argv)
{
    ach_config c;
    const char *out = NULL;
    char err[512];
    int have_dt_rank = 0;
    cfg_default(&c, ARCH_MAMBA2);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(cli_init_help, stdout);
            return 0;
        }
        if (a[0] != '-') {
            if (out) return cli_usage_error(cli_init_help, "init: more than one output file ('%s')", a);
            out = a;
            continue;
        }
        if (!v) return cli_usage_error(cli_init_help, "init: option %s needs a value", a);
        i++;
        int bad = 0;
        if (!strcmp(a, "--arch")) {
            c.arch = ach_family_arch(v);
            bad = c.arch == ACH_ARCH_NONE;
        } else if (!strcmp(a, "--layers")) bad = cli_parse_int(v, &c.n_layer);
        else if (!strcmp(a, "--d-model")) bad = cli_parse_int(v, &c.d_model);
        else if (!strcmp(a, "--d-state")) bad = cli_parse_int(v, &c.d_state);
        else if (!strcmp(a, "--d-conv")) bad = cli_parse_int(v, &c.d_conv);
        else if (!strcmp(a, "--expand")) bad = cli_parse_int(v, &c.expand);
        else if (!strcmp(a, "--headdim")) bad = cli_parse_int(v, &c.headdim);
        else if (!strcmp(a, "--vocab")) bad = cli_parse_int(v, &c.vocab_size);
        else if (!strcmp(a, "--dt-rank")) bad = cli_parse_int(v, &c.dt_rank), have_dt_rank = 1;
        else if (!strcmp(a, "--gamma")) bad = cli_parse_double(v, &c.gamma);
        else if (!strcmp(a, "--init")) {
            if (!strcmp(v, "gamma")) c.init = INIT_GAMMA;
            else if (!strcmp(v, "reference")) c.init = INIT_REFERENCE;
            else bad = 1;
        } else if (!strcmp(a, "--gamma-tensors")) bad = cfg_parse_kinds(v, &c.gamma_kinds);
        else if (!strcmp(a, "--fan")) {
            if (!strcmp(v, "in")) c.fan_rule = FAN_IN;
            else if (!strcmp(v, "out")) c.fan_rule = FAN_OUT;
            else if (!strcmp(v, "shape0")) c.fan_rule = FAN_SHAPE0;
            else bad = 1;
        } else if (!strcmp(a, "--gamma-bias")) {
            if (!strcmp(v, "reference")) c.dt_bias_zero = 0;
            else if (!strcmp(v, "zero")) c.dt_bias_zero = 1;
            else bad = 1;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            c.seed = strtoull(v, &end, 10);
            bad = errno || *end || end == v || v[0] == '-';
        } else return cli_usage_error(cli_init_help, "init: unknown option '%s'", a);
        if (bad) {
            fprintf(stderr, "achilles: init: bad value '%s' for %s\n\n%s", v, a, cli_init_help);
            return CLI_EXIT_USAGE;
        }
    }
    if (!out) return cli_usage_error(cli_init_help, "init: no output file given%s", "");
    if (!have_dt_rank) c.dt_rank = (c.d_model + 15) / 16;
    if (cfg_validate(&c, err, sizeof err)) {
        fprintf(stderr, "achilles: init: %s\n", err);
        return CLI_EXIT_USAGE;
    }
    ach_model m;
    if (ach_model_create(&m, &c, &ach_cpu_kernels, err, sizeof err) || ach_init_params(&m) ||
        ach_ckpt_save(&m, out, NULL, 0, NULL, NULL, 0, err, sizeof err)) {
        fprintf(stderr, "achilles: init: %s\n", err);
        ach_model_free(&m);
        return 1;
    }
    printf("wrote %s: %s, %d layers, %zu parameters\n", out, cfg_arch_name(c.arch), c.n_layer, m.nweights);
    ach_model_free(&m);
    return 0;
}

/* Reads the int32 tensor NAME of rank ndim from a batch file. */
static const int32_t *batch_tensor(const st_file *f, const char *path, const char *name, int ndim, char *err,
                                   size_t errlen)
{
    const st_tensor *t = st_find(f, name);
    if (!t) snprintf(err, errlen, "%s: missing tensor '%s'", path, name);
    else if (t->dtype != ST_I32) snprintf(err, errlen, "%s: tensor '%s': dtype %s, expected I32", path, name, t->dtype_name);
    else if (t->ndim != ndim) snprintf(err, errlen, "%s: tensor '%s': rank %d, expected %d", path, name, t->ndim, ndim);
    else if (t->shape[0] < 1 || (ndim == 2 && t->shape[1] < 1))
        snprintf(err, errlen, "%s: tensor '%s': empty", path, name);
    else return (const int32_t *)st_data(f, t);
    return NULL;
}

int cli_grad(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(cli_grad_help, stdout);
        return 0;
    }
    char err[512];
    const char *backend = NULL;
    if (ach_backend_arg(&argc, argv, &backend, err, sizeof err))
        return cli_usage_error(cli_grad_help, "grad: %s", err);
    if (argc != 4) return cli_usage_error(cli_grad_help, "grad: expected CKPT BATCH OUT%s", "");
    const char *ckpt = argv[1], *batch = argv[2], *out = argv[3];
    ach_model m;
    st_file bf;
    int rc = 1;
    const ach_kernels *k = ach_backend(backend, err, sizeof err);
    if (!k || ach_ckpt_load(&m, k, ckpt, err, sizeof err)) {
        fprintf(stderr, "achilles: grad: %s\n", err);
        return 1;
    }
    if (st_load(batch, &bf, err, sizeof err)) {
        fprintf(stderr, "achilles: grad: %s\n", err);
        ach_model_free(&m);
        return 1;
    }
    const int32_t *tok = batch_tensor(&bf, batch, "tokens", 2, err, sizeof err);
    const int32_t *lab = tok ? batch_tensor(&bf, batch, "labels", 1, err, sizeof err) : NULL;
    int B = 0, L = 0, V = m.cfg.vocab_size;
    int *tokens = NULL, *labels = NULL;
    float *buf = NULL;
    st_entry *e = NULL;
    if (!lab) goto fail;
    B = (int)st_find(&bf, "tokens")->shape[0], L = (int)st_find(&bf, "tokens")->shape[1];
    if (st_find(&bf, "labels")->shape[0] != B) {
        snprintf(err, sizeof err, "%s: tensor 'labels': %lld entries for %d sequences", batch,
                 (long long)st_find(&bf, "labels")->shape[0], B);
        goto fail;
    }
    tokens = malloc((size_t)B * L * sizeof *tokens);
    labels = malloc((size_t)B * sizeof *labels);
    if (!tokens || !labels) goto oom;
    for (size_t i = 0; i < (size_t)B * L; i++) {
        memcpy(&tokens[i], (const char *)tok + 4 * i, 4);
        if (tokens[i] < 0 || tokens[i] >= V) {
            snprintf(err, sizeof err, "%s: tensor 'tokens': value %d at index %zu outside the vocabulary [0, %d)", batch,
                     tokens[i], i, V);
            goto fail;
        }
    }
    for (int b = 0; b < B; b++) {
        memcpy(&labels[b], (const char *)lab + 4 * b, 4);
        if (labels[b] < 0 || labels[b] >= V) {
            snprintf(err, sizeof err, "%s: tensor 'labels': value %d at index %d outside the vocabulary [0, %d)", batch,
                     labels[b], b, V);
            goto fail;
        }
    }
    if (ach_model_reserve(&m, B, L, err, sizeof err)) goto fail;
    float loss = (float)ach_model_forward_lean(&m, tokens, labels, B, L);
    ach_model_backward(&m);

    /* loss, logits, then grad.NAME in the checkpoint's order and the tied head */
    int n = 2 + m.nparams + 1;
    size_t nbuf = (size_t)B * V + m.nweights;
    buf = malloc(nbuf * sizeof *buf);
    real *host = malloc(nbuf * sizeof *host);
    e = calloc(n, sizeof *e);
    char(*names)[ACH_NAME_MAX + 8] = calloc(n, sizeof *names);
    if (!buf || !host || !e || !names) {
        free(host);
        free(names);
        goto oom;
    }
    m.k->to_host(host, m.logits, (size_t)B * V * sizeof(real));
    m.k->to_host(host + (size_t)B * V, m.g, m.nweights * sizeof(real));
    for (size_t i = 0; i < nbuf; i++) buf[i] = (float)host[i];
    free(host);
    e[0] = (st_entry){.name = "loss", .dtype = ST_F32, .ndim = 1, .shape = {1}, .data = &loss};
    e[1] = (st_entry){.name = "logits", .dtype = ST_F32, .ndim = 2, .shape = {B, V}, .data = buf};
    const float *g = buf + (size_t)B * V;
    for (int i = 0; i < m.nparams; i++) {
        const ach_param *p = &m.params[i];
        snprintf(names[2 + i], sizeof names[0], "grad.%s", p->name);
        e[2 + i] = (st_entry){.name = names[2 + i], .dtype = ST_F32, .ndim = p->ndim, .data = g + p->offset};
        for (int d = 0; d < p->ndim; d++) e[2 + i].shape[d] = p->shape[d];
    }
    e[n - 1] = e[2];
    e[n - 1].name = "grad.lm_head.weight";
    if (st_save(out, e, n, NULL, NULL, 0, err, sizeof err)) {
        free(names);
        goto fail;
    }
    free(names);
    printf("loss %.6f  batch %d x %d  wrote %s\n", loss, B, L, out);
    rc = 0;
    goto done;
oom:
    snprintf(err, sizeof err, "out of memory");
fail:
    fprintf(stderr, "achilles: grad: %s\n", err);
done:
    free(e);
    free(buf);
    free(tokens);
    free(labels);
    st_free(&bf);
    ach_model_free(&m);
    return rc;
}

