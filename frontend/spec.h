/* spec.h: a model spec, read from JSON (docs/spec.md) and checked, in plain
 * structs; the block builders (model.c, blocks.c) turn it into a graph. */
#ifndef MX_SPEC_H
#define MX_SPEC_H

#include <stdbool.h>

#include "ir.h"

#define MX_MAX_STAGES 8
#define MX_MAX_SCANS 16

typedef enum { MX_TASK_SEQUENCE, MX_TASK_VISION, MX_TASK_SERIES, MX_TASK_LANGUAGE } mx_task;
typedef enum { MX_MIXER_NONE, MX_MIXER_SELECTIVE, MX_MIXER_QS } mx_mixer_kind;
typedef enum { MX_NORM_LAYERNORM, MX_NORM_RMSNORM, MX_NORM_NONE } mx_norm_kind;
/* A language model's output layer: logits through the embedding's own
 * matrix (tied), through a matrix of its own, or none (the final hidden
 * states, as transformers' MambaModel gives them). */
typedef enum { MX_LM_HEAD_TIED, MX_LM_HEAD_UNTIED, MX_LM_HEAD_NONE } mx_lm_head;

/* One token or channel mixer: its core (selective or quasi-separable scans)
 * and, for a channel mixer, what it scans: with cw, each token's channels
 * (MODELS.md's reading of the paper's CW-S6); else the other token axis
 * (TSM2's variates), with the token mixer's machinery. */
typedef struct {
    mx_mixer_kind kind;
    bool cw;
    double expand;     /* E = expand * width (cw: features per position) */
    int d_state;       /* N */
    int dt_rank;       /* R; 0 means ceil(width / 16) */
    int d_conv;        /* conv kernel; 0: no conv */
    bool conv2d;       /* k x k "same" over the image grid, not causal 1D */
    int n_scans;       /* traversal orders (mx_scan_order) */
    int scans[MX_MAX_SCANS];
    bool shared_conv;  /* one conv before all scans (SS2D) or one per scan (Vim) */
    bool out_norm;     /* LayerNorm(E) on the merged scans, before the gate */
    bool switch_scans; /* Switch of Scans: softmax-weighted merge of the orders */
    bool bias;         /* bias on the in / out projections */
    double width_factor; /* cw: w = width_factor * width channel positions */
} mx_mixer_spec;

typedef struct {
    int width;         /* C (d_model of the stage) */
    int depth;         /* token mixers */
    int channel_every; /* a channel mixer after every k-th token mixer; 0: none */
    bool merge;        /* patch merging first (vision) */
    mx_norm_kind norm; /* pre-norm of each mixer */
    double norm_eps;   /* its epsilon */
    bool residual;     /* residual around each mixer */
    bool weighted_average;
    mx_mixer_spec token, channel;
} mx_stage_spec;

typedef struct {
    char name[64];
    mx_task task;
    int batch;
    mx_dtype dtype;
    /* sequence: [batch, length, width] in, same out */
    int length;
    /* vision: [batch, channels, size, size] in, [batch, classes] out */
    int image_size, channels, patch, classes;
    /* series: [batch, variates, lookback] in, [batch, variates, horizon] out */
    int variates, lookback, horizon, patch_len, patch_stride;
    bool revin;
    /* language: token ids [batch, length] in, [batch, length, vocab] logits out */
    int vocab;
    mx_norm_kind head_norm; /* the final norm (eps: the last stage's norm_eps) */
    mx_lm_head lm_head;
    bool batch_free; /* batch not given: a caller may take it from the input data */
    int n_stages;
    mx_stage_spec stages[MX_MAX_STAGES];
} mx_spec;

extern const char *const mx_task_names[];
extern const char *const mx_mixer_names[];
extern const char *const mx_norm_names[];
extern const char *const mx_lm_head_names[];

/* Reads a spec from JSON text after applying overrides ("path=value"); every
 * error names its JSON path. */
mx_status mx_spec_parse(const char *json, const char *source, const char *const *overrides,
                        int n_overrides, mx_spec *spec, mx_diag *diag);

/* R of a mixer at a given width. */
int mx_mixer_dt_rank(const mx_mixer_spec *m, int width);

#endif
