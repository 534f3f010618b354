"""droplab.nn models for the doctor's tests."""

import numpy as np

from droplab import nn


def mlp_ok():
    return nn.Sequential(nn.Dense(8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Dense(16, 3), seed=0)


def dropout_before_bn():
    return nn.Sequential(nn.Dense(8, 16), nn.Dropout(0.3), nn.BatchNorm1d(16), nn.ReLU(), nn.Dense(16, 3), seed=0)


def dropout_on_logits():
    return nn.Sequential(nn.Dense(8, 16), nn.ReLU(), nn.Dense(16, 3), nn.Dropout(0.2), seed=0)


class SkipDropout(nn.Module):
    """Bug: computes dropout and then uses the activation before it."""

    def __init__(self):
        super().__init__()
        self.fc1, self.drop, self.fc2 = nn.Dense(8, 16, seed=0), nn.Dropout(0.5, seed=1), nn.Dense(16, 3, seed=2)
        self.relu = nn.ReLU()

    def children(self):
        return [self.fc1, self.relu, self.drop, self.fc2]

    def forward(self, x):
        h = self.relu.forward(self.fc1.forward(x))
        self.drop.forward(h)
        return self.fc2.forward(h)

    def backward(self, dy):  # pragma: no cover - not needed by the doctor
        raise NotImplementedError


def unused_dropout():
    return SkipDropout()


class EvalNoise(nn.Module):
    """Bug: adds noise whatever the mode."""

    def forward(self, x):
        return x * (np.random.random(x.shape) >= 0.5) * 2

    def backward(self, dy):  # pragma: no cover
        raise NotImplementedError


def eval_random():
    return nn.Sequential(nn.Dense(8, 16), nn.ReLU(), EvalNoise(), nn.Dense(16, 3), seed=0)


def dropout2d_on_3d():
    return nn.Sequential(nn.Conv1d(3, 4, 3, padding=1), nn.Dropout2d(0.3), seed=0), \
        np.random.default_rng(0).normal(size=(4, 3, 10)).astype(np.float32)


def bn_model():
    return nn.Sequential(nn.Dense(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Dense(16, 3), seed=0)


def mc_with_train(model, x, samples=5):
    model.train()
    return np.stack([model.forward(x) for _ in range(samples)])


def mc_right(model, x, samples=5):
    return nn.mc_predict(model, x, samples=samples, seed=0)
