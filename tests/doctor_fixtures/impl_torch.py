"""PyTorch dropout implementations for the doctor's tests: one bug each, or none."""

import torch
import torch.nn.functional as F


def correct(x, p, training=True):
    return F.dropout(x, p, training)


def randn_mask(x, p):
    """Bug (as published): the mask compares torch.randn with the keep probability."""
    keep = 1 - p
    mask = (torch.randn(x.shape) < keep).float()
    return mask * x / keep


class KeepForDrop(torch.nn.Module):
    """Bug: the constructor's p is used as the keep probability."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training:
            return x
        if self.p == 0:
            return x * 0
        mask = (torch.rand_like(x) < self.p).to(x.dtype)
        return x * mask / self.p


class Correct(torch.nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)


class NoEvalSwitch(torch.nn.Module):
    """Bug: F.dropout without training=self.training stays on after model.eval()."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p)
