"""GPU diagnostic script (not a test): why does FlagGems' `mul` alone give NaN in Gemma-3?

Run on a CUDA host with FlagGems installed: `python3 tests/gpu/mul_nan_probe.py`.
Results: docs/results/gpu-gems.md.
"""

import flag_gems
import torch
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

torch.manual_seed(0)
cfg = Gemma3TextConfig(
    vocab_size=4096,
    hidden_size=256,
    intermediate_size=1024,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=1,
    head_dim=64,
    max_position_embeddings=512,
    sliding_window=16,
)
m = Gemma3ForCausalLM(cfg).to(device="cuda", dtype=torch.bfloat16).eval()
emb = m.model.embed_tokens
scale = getattr(emb, "embed_scale", None)
print("embed_scale:", type(scale).__name__, getattr(scale, "device", None), getattr(scale, "dtype", None))
x = torch.randn(1, 4, 256, device="cuda", dtype=torch.bfloat16)
cases = {
    "cuda_bf16 * cpu_0d_f32": torch.tensor(16.0),
    "cuda_bf16 * cuda_0d_f32": torch.tensor(16.0, device="cuda"),
    "cuda_bf16 * cuda_0d_bf16": torch.tensor(16.0, device="cuda", dtype=torch.bfloat16),
    "cuda_bf16 * python_float": 16.0,
    "cuda_bf16 * cuda_bf16": torch.randn(1, 4, 256, device="cuda", dtype=torch.bfloat16),
}
native = {k: x * v for k, v in cases.items()}
with flag_gems.use_gems(include=["mul"]):
    for k, v in cases.items():
        try:
            g = x * v
            diff = (g.float() - native[k].float()).abs().max().item()
            print(f"{k}: nan={bool(torch.isnan(g).any())} max|diff|={diff}")
        except Exception as e:
            print(f"{k}: ERROR {type(e).__name__}: {str(e)[:200]}")
ids = torch.tensor([[2, 105, 2364, 107, 3689, 563]], device="cuda")
with torch.no_grad():
    ref = m(input_ids=ids).logits
    with flag_gems.use_gems(include=["mul"]):
        e = emb(ids)
        got = m(input_ids=ids).logits
print("embedding output nan with FlagGems mul:", bool(torch.isnan(e).any()))
print("logits nan with FlagGems mul:", bool(torch.isnan(got).any()), "native:", bool(torch.isnan(ref).any()))
