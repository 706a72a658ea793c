#!/usr/bin/env python3
"""Writes the test data of tests/nn/test_layers_more.cpp, by hand, with PyTorch 1.13
(python3-torch):

  /usr/bin/python3 tests/data/torch_layers/make.py

For each layer (float64, seeded): its parameters by PyTorch's names (prefixed with the layer's
key), a fixed input, the output, and the gradients of sum(out * u) with respect to the input and
the parameters. Layers: PReLU (one slope and one per channel), GroupNorm, InstanceNorm2d (affine),
MaxPool1d, AvgPool1d, AdaptiveAvgPool1d, Softmax, LogSoftmax, Unflatten, and
TransformerEncoderLayer post-norm (relu) and norm_first (gelu), and a TransformerEncoder of two
layers with a final LayerNorm, given a key padding mask.

The file is committed; the test never runs Python.
"""
import os

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
torch.set_default_dtype(torch.float64)
torch.manual_seed(5)
nn = torch.nn

padding = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
layers = {
    "prelu1": (nn.PReLU(), (2, 3, 4)),
    "prelu3": (nn.PReLU(3, init=0.1), (2, 3, 4)),
    "group_norm": (nn.GroupNorm(2, 4), (2, 4, 3, 3)),
    "instance_norm": (nn.InstanceNorm2d(3, affine=True), (2, 3, 4, 4)),
    "max_pool1d": (nn.MaxPool1d(3, stride=2, padding=1), (2, 3, 8)),
    "avg_pool1d": (nn.AvgPool1d(3, stride=2, padding=1), (2, 3, 8)),
    "adaptive_avg_pool1d": (nn.AdaptiveAvgPool1d(3), (2, 3, 8)),
    "softmax": (nn.Softmax(dim=1), (2, 3, 4)),
    "log_softmax": (nn.LogSoftmax(dim=-1), (2, 3, 4)),
    "unflatten": (nn.Unflatten(1, (2, 3)), (2, 6, 4)),
    "encoder_post": (nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                                batch_first=True), (2, 5, 8)),
    "encoder_pre": (nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                               activation="gelu", batch_first=True,
                                               norm_first=True), (2, 5, 8)),
    "encoder": (nn.TransformerEncoder(
        nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True),
        2, norm=nn.LayerNorm(8), enable_nested_tensor=False), (2, 5, 8)),
}
data = {"key_padding_mask": padding.numpy()}
for key, (layer, shape) in layers.items():
    layer.train()  # PyTorch's fast paths are for inference; dropout is 0
    with torch.no_grad():  # norms' affine parameters away from 1 and 0
        for name, p in layer.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name in (
                    "weight", "norm.weight") and "norm" in key + name:
                p.uniform_(0.5, 1.5)
            if name.endswith("norm1.bias") or name.endswith("norm2.bias") or name in (
                    "bias", "norm.bias") and "norm" in key + name:
                p.uniform_(-0.5, 0.5)
    x = torch.randn(shape)
    if key.startswith("max_pool"):
        x = torch.randperm(int(np.prod(shape))).reshape(shape).double() / 10  # no ties
    x.requires_grad_(True)
    out = layer(x, src_key_padding_mask=padding) if key.startswith("encoder") else layer(x)
    u = torch.randn(out.shape)
    (out * u).sum().backward()
    data[key + ".x"] = x.detach().numpy()
    data[key + ".out"] = out.detach().numpy()
    data[key + ".u"] = u.numpy()
    data[key + ".grad_x"] = x.grad.numpy()
    for name, p in layer.named_parameters():
        data[key + "." + name] = p.detach().numpy()
        data[key + ".grad." + name] = p.grad.numpy()
np.savez(os.path.join(here, "layers.npz"), **data)
print("torch", torch.__version__)

# conv.npz: ConvTranspose2d (stride 2, padding 1, output_padding 1; and grouped, dilated) and
# interpolate / Upsample (nearest and bilinear, align_corners both ways, sizes and factors).
torch.manual_seed(6)
data = {}
convs = {
    "deconv": nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1),
    "deconv_groups": nn.ConvTranspose2d(4, 2, (2, 3), groups=2, dilation=2, bias=False),
}
for key, layer in convs.items():
    x = torch.randn(2, layer.in_channels, 3, 4, requires_grad=True)
    out = layer(x)
    u = torch.randn(out.shape)
    (out * u).sum().backward()
    data.update({key + ".x": x.detach().numpy(), key + ".out": out.detach().numpy(),
                 key + ".u": u.numpy(), key + ".grad_x": x.grad.numpy()})
    for name, p in layer.named_parameters():
        data[key + "." + name] = p.detach().numpy()
        data[key + ".grad." + name] = p.grad.numpy()
ups = {
    "nearest_size": dict(size=(5, 7), mode="nearest"),
    "nearest_factor": dict(scale_factor=2, mode="nearest"),
    "bilinear": dict(size=(5, 7), mode="bilinear", align_corners=False),
    "bilinear_corners": dict(scale_factor=(2, 1.5), mode="bilinear", align_corners=True),
    "bilinear_down": dict(size=(2, 3), mode="bilinear", align_corners=False),
}
for key, kwargs in ups.items():
    x = torch.randn(2, 2, 3, 4, requires_grad=True)
    out = torch.nn.functional.interpolate(x, **kwargs)
    u = torch.randn(out.shape)
    (out * u).sum().backward()
    data.update({key + ".x": x.detach().numpy(), key + ".out": out.detach().numpy(),
                 key + ".u": u.numpy(), key + ".grad_x": x.grad.numpy()})
np.savez(os.path.join(here, "conv.npz"), **data)

# decoder.npz: TransformerDecoderLayer post-norm (relu) and norm_first (gelu), and a
# TransformerDecoder of two layers with a final LayerNorm; a causal target mask and a memory key
# padding mask; outputs and gradients of sum(out * u) with respect to the target, the memory and
# the parameters.
torch.manual_seed(7)
data = {}
causal = torch.triu(torch.full((4, 4), float("-inf")), 1)  # PyTorch's float mask: -inf above
memory_padding = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
decoders = {
    "decoder_post": nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                               batch_first=True),
    "decoder_pre": nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                              activation="gelu", batch_first=True,
                                              norm_first=True),
    "decoder": nn.TransformerDecoder(
        nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True), 2,
        norm=nn.LayerNorm(8)),
}
for key, layer in decoders.items():
    layer.train()
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.uniform_(0.5, 1.5)
            if "norm" in name and name.endswith("bias"):
                p.uniform_(-0.5, 0.5)
    tgt = torch.randn(2, 4, 8, requires_grad=True)
    memory = torch.randn(2, 5, 8, requires_grad=True)
    out = layer(tgt, memory, tgt_mask=causal, memory_key_padding_mask=memory_padding)
    u = torch.randn(out.shape)
    (out * u).sum().backward()
    data.update({key + ".x": tgt.detach().numpy(), key + ".memory": memory.detach().numpy(),
                 key + ".out": out.detach().numpy(), key + ".u": u.numpy(),
                 key + ".grad_x": tgt.grad.numpy(), key + ".grad_memory": memory.grad.numpy()})
    for name, p in layer.named_parameters():
        data[key + "." + name] = p.detach().numpy()
        data[key + ".grad." + name] = p.grad.numpy()
np.savez(os.path.join(here, "decoder.npz"), **data)
