#!/usr/bin/env python3
"""Writes the test data of tests/nn/test_packed.cpp, by hand, with PyTorch 1.13 (python3-torch):

  /usr/bin/python3 tests/data/torch_rnn/make.py

For a GRU and an LSTM (input 3, hidden 4, two layers, bidirectional, float64, seeded) and a
ragged batch of 4 sequences of lengths 5, 2, 4, 1 (not sorted: enforce_sorted=False), padded to
T = 5 with garbage in the padding (it must not matter):
- the parameters, by PyTorch's names;
- x (4, 5, 3), lengths (4), h0 (4, 4, 4) (and c0 for the LSTM);
- the outputs pad_packed_sequence gives back, batch first (4, 5, 8), and the final h (and c);
- the gradients of loss = sum(out * u) + sum(h * v) (+ sum(c * w)), u, v, w fixed, with respect to
  x, h0, c0 and every parameter (grad_<name>).

The files are committed; the test never runs Python.
"""
import os

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

here = os.path.dirname(os.path.abspath(__file__))
torch.set_default_dtype(torch.float64)

for kind in ("gru", "lstm"):
    torch.manual_seed(1 if kind == "gru" else 2)
    layer = (torch.nn.GRU if kind == "gru" else torch.nn.LSTM)(
        3, 4, num_layers=2, bidirectional=True, batch_first=True)
    lengths = torch.tensor([5, 2, 4, 1])
    x = torch.randn(4, 5, 3)
    for b, n in enumerate(lengths.tolist()):
        x[b, n:] = 1e3  # padding that must not reach any output or gradient
    x.requires_grad_(True)
    h0 = torch.randn(4, 4, 4, requires_grad=True)
    c0 = torch.randn(4, 4, 4, requires_grad=True)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    if kind == "gru":
        out, h = layer(packed, h0)
        c = None
    else:
        out, (h, c) = layer(packed, (h0, c0))
    out, out_lengths = pad_packed_sequence(out, batch_first=True)
    u, v, w = torch.randn(out.shape), torch.randn(h.shape), torch.randn(4, 4, 4)
    loss = (out * u).sum() + (h * v).sum() + ((c * w).sum() if c is not None else 0)
    loss.backward()
    data = {name: p.detach().numpy() for name, p in layer.named_parameters()}
    data.update({"grad_" + name: p.grad.numpy() for name, p in layer.named_parameters()})
    data.update(x=x.detach().numpy(), lengths=lengths.numpy(), h0=h0.detach().numpy(),
                out=out.detach().numpy(), h=h.detach().numpy(), u=u.numpy(), v=v.numpy(),
                grad_x=x.grad.numpy(), grad_h0=h0.grad.numpy())
    if kind == "lstm":
        data.update(c0=c0.detach().numpy(), c=c.detach().numpy(), w=w.numpy(),
                    grad_c0=c0.grad.numpy())
    np.savez(os.path.join(here, kind + ".npz"), **data)
print("torch", torch.__version__)

# attention.npz: MultiheadAttention(8, 2) and a pre-norm TransformerEncoderLayer (norm_first, gelu,
# feed-forward 16: xgrad's TransformerBlock) over a batch of 3 sequences of lengths 5, 3, 2 with a
# key padding mask (true at the padding); outputs and gradients of sum(out * u).
torch.manual_seed(3)
mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)
block = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, activation="gelu",
                                         batch_first=True, norm_first=True)
with torch.no_grad():  # layer norms away from their initial 1 and 0
    for norm in (block.norm1, block.norm2):
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
mha.train()  # the slow paths: PyTorch's fast path is for inference
block.train()
x = torch.randn(3, 5, 8)
padding = torch.tensor([[False] * 5, [False] * 3 + [True] * 2, [False] * 2 + [True] * 3])
data = {"x": x.numpy(), "key_padding_mask": padding.numpy()}
for name, module in (("mha", mha), ("block", block)):
    xs = x.clone().requires_grad_(True)
    if name == "mha":
        out = module(xs, xs, xs, key_padding_mask=padding, need_weights=False)[0]
    else:
        out = module(xs, src_key_padding_mask=padding)
    u = torch.randn(out.shape)
    (out * u).sum().backward()
    data.update({name + "." + k: p.detach().numpy() for k, p in module.named_parameters()})
    data.update({name + ".grad." + k: p.grad.numpy() for k, p in module.named_parameters()})
    data.update({name + ".out": out.detach().numpy(), name + ".u": u.numpy(),
                 name + ".grad_x": xs.grad.numpy()})
np.savez(os.path.join(here, "attention.npz"), **data)
