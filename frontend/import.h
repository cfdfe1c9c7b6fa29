/* import.h: PyTorch checkpoints onto a model's param names (docs/weights.md,
 * "Importing checkpoints").
 *
 * A state_dict saved as safetensors by mamba_ssm (Mamba, Block,
 * MambaLMHeadModel) or by Hugging Face transformers (MambaModel,
 * MambaForCausalLM) is renamed to mixc's names and reshaped where layouts
 * differ (the depthwise conv's [E, 1, K] is [E, K]); a missing, extra or
 * mis-shaped tensor is refused with both names. */
#ifndef MX_IMPORT_H
#define MX_IMPORT_H

#include "mixc.h"

typedef enum { MX_IMPORT_MAMBA_SSM, MX_IMPORT_TRANSFORMERS, MX_IMPORT_MIXC, MX_IMPORT_COUNT } mx_import_source;

extern const char *const mx_import_source_names[MX_IMPORT_COUNT + 1]; /* "mamba_ssm", ..., NULL */
/* "mamba_ssm", "transformers" or "mixc"; an unknown name is an error listing them. */
mx_status mx_import_source_parse(const char *name, mx_import_source *out, mx_diag *d);

/* The checkpoint at state_dict (safetensors), written with mixc's names and
 * m's dtypes to out (a safetensors file, through a temp file and a rename). */
mx_status mx_import_weights(const mx_model *m, mx_import_source from, const char *state_dict, const char *out,
                            mx_diag *d);

#endif
