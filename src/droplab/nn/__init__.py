"""The NumPy engine: modules, layers, the dropout family, losses, optimizers, training.

Every layer is a :class:`Module` with ``forward(x)`` / ``backward(dy)``, ``train()`` /
``eval()`` and ``.training``. ``p`` is always the probability of DROPPING a unit.
"""

from droplab.nn.activations import SELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from droplab.nn.conv import AvgPool1d, AvgPool2d, Conv1d, Conv2d, GlobalAvgPool1d, MaxPool1d, MaxPool2d
from droplab.nn.dropout import Dropout
from droplab.nn.family import (AlphaDropout, ConcreteDropout, DropBlock2d, DropConnect, DropPath, Dropout1d,
                               Dropout2d, Dropout3d, GaussianDropout, LockedDropout)
from droplab.nn.io import load, load_optimizer
from droplab.nn.layers import Dense, Flatten
from droplab.nn.losses import BinaryCrossEntropy, Loss, MSELoss, SoftmaxCrossEntropy
from droplab.nn.mc import MCResult, mc_predict
from droplab.nn.module import Module, Parameter, Sequential
from droplab.nn.schedules import ConstantRate, EarlyDropout, LinearRamp, MaxNorm, RateSchedule
from droplab.nn.norm import BatchNorm1d, BatchNorm2d
from droplab.nn.optim import SGD, Adam, AdamW, Optimizer
from droplab.nn.recurrent import GRU, RNN
from droplab.nn.residual import Residual
from droplab.nn.train import DivergenceError, evaluate, fit, predict
from droplab.nn import gradcheck  # noqa: E402  (nn.gradcheck.check_gradients, as the README writes it)

__all__ = [
    "Module", "Parameter", "Sequential",
    "Dense", "Flatten",
    "Conv1d", "Conv2d", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "GlobalAvgPool1d",
    "BatchNorm1d", "BatchNorm2d", "Residual", "RNN", "GRU",
    "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "SELU", "Softmax",
    "Dropout",
    "Dropout1d", "Dropout2d", "Dropout3d", "GaussianDropout", "AlphaDropout", "DropConnect", "DropBlock2d",
    "DropPath", "LockedDropout", "ConcreteDropout",
    "RateSchedule", "ConstantRate", "LinearRamp", "EarlyDropout", "MaxNorm",
    "Loss", "SoftmaxCrossEntropy", "BinaryCrossEntropy", "MSELoss",
    "Optimizer", "SGD", "Adam", "AdamW",
    "fit", "predict", "evaluate", "DivergenceError",
    "mc_predict", "MCResult",
    "load", "load_optimizer",
    "gradcheck",
]
