"""The textbook baseline: the NNFS-style float64 NumPy network, kept as it is written there.

This is what ``droplab bench`` compares against, so it is deliberately NOT optimised: the
classes follow "Neural Networks from Scratch" (Kinsley and Kukiela, 2020), chapters 9-15:
``Layer_Dense`` with ``0.01 * randn`` weights, ``Activation_ReLU``, ``Layer_Dropout`` with
``np.random.binomial(1, keep, shape) / keep`` (a float64 mask stored for backward),
softmax with categorical cross-entropy fused for backward, and Adam. Everything is float64,
as there. The book's ``Layer_Dropout(rate)`` takes the DROP probability and stores
``1 - rate``; here ``p`` is that drop probability.

Two small additions, used by tests and never in the timed path: ``Layer_Dropout`` accepts a
``mask_source`` (a function ``shape -> keep mask``) so a test can feed it droplab's mask, and
``SpiralNetwork.from_weights`` starts from given weights.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "Layer_Dense", "Activation_ReLU", "Layer_Dropout", "Activation_Softmax_Loss_CategoricalCrossentropy",
    "Optimizer_Adam", "SpiralNetwork",
]


class Layer_Dense:
    def __init__(self, n_inputs, n_neurons):
        self.weights = 0.01 * np.random.randn(n_inputs, n_neurons)
        self.biases = np.zeros((1, n_neurons))

    def forward(self, inputs, training):
        self.inputs = inputs
        self.output = np.dot(inputs, self.weights) + self.biases

    def backward(self, dvalues):
        self.dweights = np.dot(self.inputs.T, dvalues)
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = np.dot(dvalues, self.weights.T)


class Activation_ReLU:
    def forward(self, inputs, training):
        self.inputs = inputs
        self.output = np.maximum(0, inputs)

    def backward(self, dvalues):
        self.dinputs = dvalues.copy()
        self.dinputs[self.inputs <= 0] = 0


class Layer_Dropout:
    """``p``: probability that a unit is zeroed (the book's ``rate``); ``1 - p`` is kept."""

    def __init__(self, p, mask_source=None):
        self.rate = 1 - p
        self.mask_source = mask_source

    def forward(self, inputs, training):
        self.inputs = inputs
        if not training:
            self.output = inputs.copy()
            return
        if self.mask_source is None:
            self.binary_mask = np.random.binomial(1, self.rate, size=inputs.shape) / self.rate
        else:
            self.binary_mask = self.mask_source(inputs.shape) / self.rate
        self.output = inputs * self.binary_mask

    def backward(self, dvalues):
        self.dinputs = dvalues * self.binary_mask


class Activation_Softmax_Loss_CategoricalCrossentropy:
    def forward(self, inputs, y_true):
        exp_values = np.exp(inputs - np.max(inputs, axis=1, keepdims=True))
        self.output = exp_values / np.sum(exp_values, axis=1, keepdims=True)
        y_pred_clipped = np.clip(self.output, 1e-7, 1 - 1e-7)
        correct_confidences = y_pred_clipped[range(len(y_pred_clipped)), y_true]
        return np.mean(-np.log(correct_confidences))

    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        self.dinputs = dvalues.copy()
        self.dinputs[range(samples), y_true] -= 1
        self.dinputs = self.dinputs / samples


class Optimizer_Adam:
    def __init__(self, learning_rate=0.001, decay=0.0, epsilon=1e-7, beta_1=0.9, beta_2=0.999):
        self.learning_rate = learning_rate
        self.current_learning_rate = learning_rate
        self.decay = decay
        self.iterations = 0
        self.epsilon = epsilon
        self.beta_1 = beta_1
        self.beta_2 = beta_2

    def pre_update_params(self):
        if self.decay:
            self.current_learning_rate = self.learning_rate * (1.0 / (1.0 + self.decay * self.iterations))

    def update_params(self, layer):
        if not hasattr(layer, "weight_cache"):
            layer.weight_momentums = np.zeros_like(layer.weights)
            layer.weight_cache = np.zeros_like(layer.weights)
            layer.bias_momentums = np.zeros_like(layer.biases)
            layer.bias_cache = np.zeros_like(layer.biases)
        layer.weight_momentums = self.beta_1 * layer.weight_momentums + (1 - self.beta_1) * layer.dweights
        layer.bias_momentums = self.beta_1 * layer.bias_momentums + (1 - self.beta_1) * layer.dbiases
        weight_momentums_corrected = layer.weight_momentums / (1 - self.beta_1 ** (self.iterations + 1))
        bias_momentums_corrected = layer.bias_momentums / (1 - self.beta_1 ** (self.iterations + 1))
        layer.weight_cache = self.beta_2 * layer.weight_cache + (1 - self.beta_2) * layer.dweights ** 2
        layer.bias_cache = self.beta_2 * layer.bias_cache + (1 - self.beta_2) * layer.dbiases ** 2
        weight_cache_corrected = layer.weight_cache / (1 - self.beta_2 ** (self.iterations + 1))
        bias_cache_corrected = layer.bias_cache / (1 - self.beta_2 ** (self.iterations + 1))
        layer.weights += -self.current_learning_rate * weight_momentums_corrected / (
            np.sqrt(weight_cache_corrected) + self.epsilon)
        layer.biases += -self.current_learning_rate * bias_momentums_corrected / (
            np.sqrt(bias_cache_corrected) + self.epsilon)

    def post_update_params(self):
        self.iterations += 1


class SpiralNetwork:
    """The book's chapter-15 network: Dense(2, hidden) -> ReLU -> Dropout(p) -> Dense(hidden, 3).

    ``epoch(X, y)`` is one full-batch training step as the book's loop writes it (forward,
    loss, accuracy, backward, Adam); it returns ``(loss, accuracy)``.
    """

    def __init__(self, inputs=2, hidden=512, classes=3, p=0.1, lr=0.05, decay=5e-5, mask_source=None):
        self.dense1 = Layer_Dense(inputs, hidden)
        self.activation1 = Activation_ReLU()
        self.dropout1 = Layer_Dropout(p, mask_source)
        self.dense2 = Layer_Dense(hidden, classes)
        self.loss_activation = Activation_Softmax_Loss_CategoricalCrossentropy()
        self.optimizer = Optimizer_Adam(learning_rate=lr, decay=decay)

    @classmethod
    def from_weights(cls, w1, b1, w2, b2, **kw):
        net = cls(w1.shape[0], w1.shape[1], w2.shape[1], **kw)
        net.dense1.weights, net.dense1.biases = np.array(w1, np.float64), np.array(b1, np.float64).reshape(1, -1)
        net.dense2.weights, net.dense2.biases = np.array(w2, np.float64), np.array(b2, np.float64).reshape(1, -1)
        return net

    def epoch(self, X, y):
        self.dense1.forward(X, training=True)
        self.activation1.forward(self.dense1.output, training=True)
        self.dropout1.forward(self.activation1.output, training=True)
        self.dense2.forward(self.dropout1.output, training=True)
        loss = self.loss_activation.forward(self.dense2.output, y)
        predictions = np.argmax(self.loss_activation.output, axis=1)
        accuracy = np.mean(predictions == y)
        self.loss_activation.backward(self.loss_activation.output, y)
        self.dense2.backward(self.loss_activation.dinputs)
        self.dropout1.backward(self.dense2.dinputs)
        self.activation1.backward(self.dropout1.dinputs)
        self.dense1.backward(self.activation1.dinputs)
        self.optimizer.pre_update_params()
        self.optimizer.update_params(self.dense1)
        self.optimizer.update_params(self.dense2)
        self.optimizer.post_update_params()
        return loss, accuracy
