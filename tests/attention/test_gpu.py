"""Exactness test 4: the FlexAttention path == the dense path, on the GPU (skipped without CUDA).

Run on the lent H200 with `python -m pytest tests/attention/test_gpu.py -m gpu`; fp32 with TF32 off, so
the 1e-4 bound is about the kernels, not about reduced-precision matmuls.
"""

import pytest
import torch

from blockattn.attention import BlockSinks, block_forward, pack_batch, pack_sequence
from blockattn.models.tiny import ARCHITECTURES, tiny_model

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("strict_fp32"),
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
TOL = 1e-4
# The real model's logits reach ~43 in magnitude, and fp32 summation order alone moves them by more than 1e-4:
# on the H200, dense-on-GPU vs dense-on-CPU differed by 2.2e-4 while flex vs dense differed by 1.7e-4. So the
# real-model bound is relative to the logit scale (1e-5 of it, ~4e-4), the tiny-model bound stays absolute.
REAL_MODEL_REL_TOL = 1e-5


def _blocks(lengths, vocab=500, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths]


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("lengths", [(300, 129, 77, 40), (1000, 1000, 1000, 64), (5, 3, 2)])
def test_flex_equals_dense_on_cuda(arch, lengths):
    model = tiny_model(arch).cuda()
    sinks = BlockSinks(model.config.hidden_size, per_block=2, shared=1).cuda()
    ids, layout = pack_batch([pack_sequence(_blocks(lengths), sinks_per_block=2, shared_sink=1),
                              pack_sequence(_blocks(lengths[::-1], seed=1), sinks_per_block=2, shared_sink=1)])
    ids = ids.cuda()
    with torch.no_grad():
        dense = block_forward(model, ids, layout, sinks=sinks, backend="dense").logits
        flex = block_forward(model, ids, layout, sinks=sinks, backend="flex").logits
    real = layout.kinds.cuda() != 0
    assert (dense - flex)[real].abs().max().item() <= TOL


def test_flex_backward_matches_dense_backward():
    model = tiny_model("llama").cuda().train()
    ids, layout = pack_sequence(_blocks((200, 150, 64)))
    grads = {}
    for backend in ("dense", "flex"):
        model.zero_grad()
        block_forward(model, ids.cuda(), layout, backend=backend).logits.float().logsumexp(-1).mean().backward()
        grads[backend] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    assert (grads["dense"] - grads["flex"]).abs().max().item() <= 1e-4


@pytest.mark.slow
def test_flex_equals_dense_on_real_smollm2(smollm2):
    model = smollm2.model.cuda()
    tok = smollm2.tokenizer
    texts = ["The Bell Rock Lighthouse stands on a reef in the North Sea. " * 12,
             "Marie Curie was born in Warsaw in 1867 and moved to Paris in 1891. " * 9,
             "Question: Who was born in Warsaw?\nAnswer:"]
    ids, layout = pack_sequence([tok(t, add_special_tokens=False)["input_ids"] for t in texts])
    with torch.no_grad():
        dense = block_forward(model, ids.cuda(), layout, backend="dense").logits
        flex = block_forward(model, ids.cuda(), layout, backend="flex").logits
    model.cpu()
    scale = dense.abs().max().item()
    assert (dense - flex).abs().max().item() <= REAL_MODEL_REL_TOL * scale
