#!/usr/bin/env python3
"""make_golden.py: golden checkpoints of the real peers, for tests/test_import.c.

Builds small randomly initialised Mamba models in PyTorch (no download: each
is made from a config), runs them on random inputs and writes, per case,
under tests/golden/:

    CASE.json                  the mixc spec of the same model
    CASE.state.safetensors     the PyTorch state_dict, its own names
    CASE.inputs.safetensors    the inputs, named as mixc's graph names them
    CASE.outputs.safetensors   what PyTorch computed

CI has no torch: it imports the state_dict with mixc's importer, runs mixc
on the inputs and compares with the outputs (within 1e-4).

The cases:
  hf_mamba_model      transformers' MambaModel: last_hidden_state
  hf_mamba_causal_lm  transformers' MambaForCausalLM: logits (tied head; the
                      state_dict keeps lm_head.weight, as torch.save does)
  mamba_ssm_block     a mamba_ssm Block(Mamba) with RMSNorm. mamba_ssm needs
                      CUDA to install, so the module here is a faithful pure
                      PyTorch copy: mamba_ssm's parameter names and shapes
                      and the math of its reference path (selective_scan_ref).
                      Block returns (mixer(norm(x)), x), leaving the residual
                      add to the next block; mixc's block adds it, so the
                      golden output is their sum.

Every parameter gets noise on top of its init, so no tensor is left at a
value (D = 1, a zero bias) that would hide a mapping mistake.

    python3 tools/make_golden.py            (needs torch, transformers, safetensors)
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "golden")

BATCH, LENGTH, WIDTH, VOCAB, D_STATE, LAYERS = 2, 12, 16, 64, 8, 2


def perturb(module, scale=0.1):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))


def save(case, spec, state, inputs, outputs):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, case + ".json"), "w") as f:
        json.dump(spec, f, indent=1)
        f.write("\n")
    # contiguous copies: safetensors refuses views and shared storage
    fix = lambda d: {k: v.detach().contiguous().clone() for k, v in d.items()}
    save_file(fix(state), os.path.join(OUT, case + ".state.safetensors"))
    save_file(fix(inputs), os.path.join(OUT, case + ".inputs.safetensors"))
    save_file(fix(outputs), os.path.join(OUT, case + ".outputs.safetensors"))
    print("wrote", case)


def language_spec(name, lm_head):
    return {
        "name": name, "task": "language", "batch": BATCH,
        "input": {"length": LENGTH, "vocab": VOCAB},
        "stages": [{"width": WIDTH, "depth": LAYERS, "norm": "rmsnorm", "norm_eps": 1e-5,
                    "weighted_average": False,
                    "token_mixer": {"d_state": D_STATE}, "channel_mixer": {"kind": "none"}}],
        "head": {"norm": "rmsnorm", "lm_head": lm_head},
    }


def transformers_cases():
    from transformers import MambaConfig, MambaForCausalLM, MambaModel

    config = MambaConfig(vocab_size=VOCAB, hidden_size=WIDTH, state_size=D_STATE, num_hidden_layers=LAYERS,
                         expand=2, conv_kernel=4, use_bias=False, use_conv_bias=True, layer_norm_epsilon=1e-5,
                         tie_word_embeddings=True)
    ids = torch.randint(0, VOCAB, (BATCH, LENGTH))

    model = MambaModel(config).eval()
    perturb(model)
    with torch.no_grad():
        hidden = model(input_ids=ids).last_hidden_state
    save("hf_mamba_model", language_spec("hf-mamba-model", "none"), model.state_dict(),
         {"token_ids": ids}, {"hidden": hidden})

    lm = MambaForCausalLM(config).eval()
    perturb(lm)
    with torch.no_grad():
        logits = lm(input_ids=ids).logits
    state = dict(lm.state_dict())
    assert state["lm_head.weight"].data_ptr() == state["backbone.embeddings.weight"].data_ptr(), "not tied"
    save("hf_mamba_causal_lm", language_spec("hf-mamba-causal-lm", "tied"), state,
         {"token_ids": ids.to(torch.int32)}, {"logits": logits})


# ---- mamba_ssm's Mamba and Block, in plain PyTorch -----------------------------------


class RMSNorm(nn.Module):
    """mamba_ssm.ops.triton.layer_norm.RMSNorm: x * rsqrt(mean(x^2) + eps) * weight."""

    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Mamba(nn.Module):
    """mamba_ssm.modules.mamba_simple.Mamba (its names, shapes and reference math)."""

    def __init__(self, d_model, d_state=16, d_conv=4, expand=2):
        super().__init__()
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        self.d_state = d_state
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1,
                                bias=True)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, hidden):  # [B, L, D]
        L = hidden.shape[1]
        x, z = self.in_proj(hidden).transpose(1, 2).chunk(2, dim=1)  # [B, E, L] each
        x = F.silu(self.conv1d(x)[..., :L])
        dt, Bm, Cm = torch.split(self.x_proj(x.transpose(1, 2)), [self.dt_rank, self.d_state, self.d_state], -1)
        dt = F.softplus(self.dt_proj(dt)).transpose(1, 2)  # [B, E, L], dt_proj.bias inside
        A = -torch.exp(self.A_log)
        h = x.new_zeros(x.shape[0], self.d_inner, self.d_state)
        ys = []
        for l in range(L):
            h = torch.exp(dt[:, :, l, None] * A) * h + dt[:, :, l, None] * Bm[:, None, l, :] * x[:, :, l, None]
            ys.append((h * Cm[:, None, l, :]).sum(-1))
        y = torch.stack(ys, dim=-1) + x * self.D[:, None]
        y = y * F.silu(z)
        return self.out_proj(y.transpose(1, 2))


class Block(nn.Module):
    """mamba_ssm.modules.block.Block: returns (mixer(norm(residual)), residual)."""

    def __init__(self, d_model, d_state):
        super().__init__()
        self.mixer = Mamba(d_model, d_state=d_state)
        self.norm = RMSNorm(d_model)

    def forward(self, hidden, residual=None):
        residual = hidden if residual is None else hidden + residual
        return self.mixer(self.norm(residual)), residual


def mamba_ssm_case():
    block = Block(WIDTH, D_STATE).eval()
    perturb(block)
    x = torch.randn(BATCH, LENGTH, WIDTH)
    with torch.no_grad():
        hidden, residual = block(x)
    spec = {
        "name": "mamba-ssm-block", "task": "sequence", "batch": BATCH, "input": {"length": LENGTH},
        "stages": [{"width": WIDTH, "depth": 1, "norm": "rmsnorm", "weighted_average": False,
                    "token_mixer": {"d_state": D_STATE}, "channel_mixer": {"kind": "none"}}],
    }
    save("mamba_ssm_block", spec, block.state_dict(), {"tokens": x}, {"hidden": hidden + residual})


def main():
    torch.manual_seed(0)
    transformers_cases()
    mamba_ssm_case()
    import transformers

    print("torch", torch.__version__, "transformers", transformers.__version__)


if __name__ == "__main__":
    main()
