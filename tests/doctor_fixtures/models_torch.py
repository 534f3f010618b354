"""PyTorch models for the doctor's tests (factories: each returns a model, or (model, example_input))."""

import math

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    def __init__(self, d, heads, p, leak_eval=False):
        super().__init__()
        self.qkv, self.proj, self.heads, self.p, self.leak_eval = nn.Linear(d, 3 * d), nn.Linear(d, d), heads, p, \
            leak_eval

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        att = att.softmax(-1)
        # the bug: F.dropout's training defaults to True, so this stays on after model.eval()
        att = F.dropout(att, self.p) if self.leak_eval else F.dropout(att, self.p, self.training)
        return self.proj((att @ v).transpose(1, 2).reshape(n, t, d))


class FeedForward(nn.Module):
    def __init__(self, d, p, unused=False):
        super().__init__()
        self.fc1, self.fc2, self.drop, self.unused = nn.Linear(d, 4 * d), nn.Linear(4 * d, d), nn.Dropout(p), unused

    def forward(self, x):
        h = F.gelu(self.fc1(x))
        dropped = self.drop(h)
        # the bug: the next layer reads the activation before dropout
        return self.fc2(h if self.unused else dropped)


class Block(nn.Module):
    def __init__(self, d, heads, p, leak_eval=False, unused=False):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, heads, p, leak_eval)
        self.ff = FeedForward(d, p, unused)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.ff(self.ln2(x))


class TinyTransformer(nn.Module):
    def __init__(self, vocab=50, d=32, heads=4, layers=2, classes=5, p=0.1, buggy=False):
        super().__init__()
        self.embed, self.pos = nn.Embedding(vocab, d), nn.Parameter(torch.zeros(1, 16, d))
        self.drop = nn.Dropout(p)
        self.blocks = nn.ModuleList(Block(d, heads, p, leak_eval=buggy and i == 0, unused=buggy and i == 1)
                                    for i in range(layers))
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, classes)

    def forward(self, tokens):
        x = self.drop(self.embed(tokens) + self.pos[:, :tokens.shape[1]])
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x).mean(1))


def transformer_buggy():
    torch.manual_seed(0)
    return TinyTransformer(buggy=True), torch.randint(0, 50, (4, 16))


def transformer_ok():
    torch.manual_seed(0)
    return TinyTransformer(buggy=False), torch.randint(0, 50, (4, 16))


def mlp_ok():
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))


def dropout_before_bn():
    return nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.3), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def dropout_on_logits():
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3), nn.Dropout(0.2))


class Conv1dNet(nn.Module):
    """Bug: Dropout2d on the (N, C, L) output of a Conv1d."""

    def __init__(self):
        super().__init__()
        self.conv, self.drop, self.head = nn.Conv1d(3, 8, 3, padding=1), nn.Dropout2d(0.3), nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.drop(F.relu(self.conv(x))).mean(-1))


def dropout2d_on_3d():
    return Conv1dNet(), torch.randn(4, 3, 10)


def cnn_bn():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                         nn.Dropout(0.5), nn.Linear(8 * 36, 3)), torch.randn(4, 3, 6, 6)


def mc_with_train(model, x, samples=5):
    """Bug: MC dropout done with model.train(), which also flips BatchNorm."""
    model.train()
    with torch.no_grad():
        return torch.stack([model(x) for _ in range(samples)])


def mc_right(model, x, samples=5):
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.train()
    with torch.no_grad():
        return torch.stack([model(x) for _ in range(samples)])


def mc_never_on(model, x, samples=5):
    """Bug: samples in eval mode: every sample is the same."""
    model.eval()
    with torch.no_grad():
        return torch.stack([model(x) for _ in range(samples)])


def broken():
    return nn.Sequential(nn.Linear(5, 3))  # the example input has 8 features: raises
