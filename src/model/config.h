/* Model configuration: architecture sizes and initialisation settings.
 * The JSON form follows mamba_ssm's MambaConfig so checkpoints interoperate. */
#ifndef ACH_CONFIG_H
#define ACH_CONFIG_H
#include <stddef.h>
#include <stdint.h>

/* The model family (family.h): the built-in ids; families registered at
 * run time take the next ones. */
typedef enum { ACH_ARCH_NONE = 0, ARCH_MAMBA1 = 1, ARCH_MAMBA2 = 2 } ach_arch;
typedef enum { INIT_GAMMA = 0, INIT_REFERENCE = 1 } ach_init_mode;
typedef enum { FAN_IN = 0, FAN_OUT = 1, FAN_SHAPE0 = 2 } ach_fan_rule;

/* Tensor kinds, used for the set of tensors γ touches and for weight decay. */
enum {
    KIND_EMBEDDING = 1 << 0,
    KIND_IN_PROJ   = 1 << 1,
    KIND_CONV      = 1 << 2,
    KIND_X_PROJ    = 1 << 3,
    KIND_DT_PROJ   = 1 << 4,
    KIND_OUT_PROJ  = 1 << 5,
    KIND_BIAS      = 1 << 6,  /* conv1d.bias: zero at init */
    KIND_DT_BIAS   = 1 << 7,  /* dt_proj.bias (Mamba-1) or dt_bias (Mamba-2) */
    KIND_A_LOG     = 1 << 8,
    KIND_D         = 1 << 9,
    KIND_NORM      = 1 << 10, /* every RMSNorm weight */
    KIND_POS       = 1 << 11, /* the learned positional table (starts at zero) */
};

/* Positional encoding added to the embeddings (an Achilles extension; the
 * mamba_ssm models have none). */
typedef enum { POS_NONE = 0, POS_SINUSOIDAL = 1, POS_LEARNED = 2 } ach_pos_enc;
#define GAMMA_DEFAULT_KINDS \
    (KIND_EMBEDDING | KIND_IN_PROJ | KIND_CONV | KIND_X_PROJ | KIND_DT_PROJ | KIND_OUT_PROJ)

typedef struct {
    ach_arch arch;
    int n_layer, d_model, d_state, d_conv, expand;
    int headdim, ngroups; /* Mamba-2 */
    int dt_rank;          /* Mamba-1 */
    int vocab_size;
    double norm_eps;
    ach_pos_enc pos_enc;
    int pos_max_len;      /* rows of backbone.pos_embedding.weight; 0 = no table */
    /* initialisation */
    ach_init_mode init;
    double gamma;
    unsigned gamma_kinds;
    ach_fan_rule fan_rule;
    int dt_bias_zero;     /* under γ: dt bias 0 (softplus(0) = 0.69) instead of the reference's */
    double dt_min, dt_max, dt_init_floor;
    uint64_t seed;
} ach_config;

/* Derived sizes. */
int cfg_d_inner(const ach_config *c);
int cfg_nheads(const ach_config *c);   /* Mamba-2 heads (Mamba-1: 0) */
int cfg_conv_dim(const ach_config *c); /* channels through conv1d */
int cfg_in_proj_dim(const ach_config *c);

/* The paper's model (docs/science.md §2.4) for the given architecture. */
void cfg_default(ach_config *c, ach_arch arch);
/* mamba_ssm's defaults: MambaConfig's (d_model 2560, 64 layers, vocabulary
 * 50277) and the mixer's (Mamba: d_state 16; Mamba2: d_state 128, headdim
 * 64), with its reference initialisation. */
void cfg_mamba_ssm_default(ach_config *c, ach_arch arch);
/* Checks sizes and settings; on error writes a message naming the field. */
int cfg_validate(const ach_config *c, char *err, size_t errlen);
/* MambaConfig-style JSON (malloc'd string) and back. `where` names the
 * source in error messages. Fields absent from the JSON keep c's values; the
 * vocabulary is rounded up to a multiple of pad_vocab_size_multiple, as
 * mamba_ssm sizes its embedding. */
char *cfg_to_json(const ach_config *c);
int cfg_from_json(ach_config *c, const char *json, const char *where, char *err, size_t errlen);
/* The same from mamba_ssm's config.json (MambaLMHeadModel.save_pretrained
 * writes its MambaConfig): ssm_cfg and its layer may be absent (Mamba1), and
 * absent fields take cfg_mamba_ssm_default's values, not c's. Options that
 * change the model this engine runs are errors naming them. */
int cfg_from_mamba_json(ach_config *c, const char *json, const char *where, char *err, size_t errlen);
/* "in_proj,conv,..." <-> kind mask; names as in the man page. */
int cfg_parse_kinds(const char *s, unsigned *mask);
const char *cfg_arch_name(ach_arch a); /* the family's name: "mamba1", "mamba2", ... */
#endif
