#!/usr/bin/env python3
"""Writes the test data of tests/nn/test_npz.cpp, by hand, with PyTorch (python3-torch) and NumPy:

  python3 tests/data/torch_npz/make.py

- weights.npz / weights_compressed.npz: a PyTorch model's state_dict, np.savez (stored) and
  np.savez_compressed (deflated): Sequential(Linear(5, 8), ReLU, LayerNorm(8), Linear(8, 3)),
  seeded, so that the same model built in xgrad loads them by the same names;
- io.npz: fixed inputs x (4, 5) and the model's outputs y (4, 3), float32;
- dtypes.npz: one small array of each dtype xgrad reads, one of them in Fortran order.

The files are committed; the test never runs Python.
"""
import os

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.LayerNorm(8),
                            torch.nn.Linear(8, 3))
with torch.no_grad():  # LayerNorm's affine parameters away from their initial 1 and 0
    model[2].weight.uniform_(0.5, 1.5)
    model[2].bias.uniform_(-0.5, 0.5)
state = {name: t.detach().numpy() for name, t in model.state_dict().items()}
np.savez(os.path.join(here, "weights.npz"), **state)
np.savez_compressed(os.path.join(here, "weights_compressed.npz"), **state)

x = torch.linspace(-2, 2, 20).reshape(4, 5)
with torch.no_grad():
    y = model(x)
np.savez(os.path.join(here, "io.npz"), x=x.numpy(), y=y.numpy())

np.savez(os.path.join(here, "dtypes.npz"),
         f32=np.array([1.5, -2.0], dtype=np.float32),
         f64=np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
         i64=np.array([-(2**40), 7], dtype=np.int64),
         i32=np.array([3, -4], dtype=np.int32),
         u8=np.array([0, 255], dtype=np.uint8),
         b=np.array([True, False, True]))
