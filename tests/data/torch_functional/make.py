#!/usr/bin/env python3
"""Writes the test data of tests/autograd/test_functional.cpp, by hand, with PyTorch 1.13
(python3-torch) and its torch.autograd.functional:

  /usr/bin/python3 tests/data/torch_functional/make.py

Float64, seeded. Three functions whose constants are saved with the results:
- vector(x) = tanh(W x + b) * sigmoid(C x) + 0.5 (C x)^2, x (5), W and C (3, 5), b (3):
  its Jacobian J (3, 5);
- scalar(X) = -sum(log_softmax(tanh(X A), dim=1)[:, 1]) + 0.1 sum(X^4), X (2, 3), A (3, 4):
  its value and gradient, its Hessian H (2, 3, 2, 3), and hvp with v (2, 3);
- pair(a, B) = sum(tanh(B a)^2) + sum(a^3), a (3), B (4, 3): its Hessian's four blocks.

The file is committed; the test never runs Python.
"""
import os

import numpy as np
import torch
from torch.autograd.functional import hessian, hvp, jacobian

here = os.path.dirname(os.path.abspath(__file__))
torch.set_default_dtype(torch.float64)
torch.manual_seed(7)

W, C, b, x = torch.randn(3, 5), torch.randn(3, 5), torch.randn(3), torch.randn(5)
A, X, v = torch.randn(3, 4), torch.randn(2, 3), torch.randn(2, 3)
a, B = torch.randn(3), torch.randn(4, 3)


def vector(t):
    return torch.tanh(W @ t + b) * torch.sigmoid(C @ t) + 0.5 * (C @ t) ** 2


def scalar(T):
    return -torch.log_softmax(torch.tanh(T @ A), dim=1)[:, 1].sum() + 0.1 * (T ** 4).sum()


def pair(p, Q):
    return (torch.tanh(Q @ p) ** 2).sum() + (p ** 3).sum()


value, hv = hvp(scalar, X, v)
leaf = X.clone().requires_grad_(True)
grad, = torch.autograd.grad(scalar(leaf), leaf)

(Haa, HaB), (HBa, HBB) = hessian(pair, (a, B))
out = dict(W=W, C=C, b=b, x=x, J=jacobian(vector, x), A=A, X=X, v=v, value=value, grad=grad,
           H=hessian(scalar, X), hvp=hv, a=a, B=B, H_aa=Haa, H_aB=HaB, H_Ba=HBa, H_BB=HBB)
np.savez(os.path.join(here, "functional.npz"), **{k: t.detach().numpy() for k, t in out.items()})
