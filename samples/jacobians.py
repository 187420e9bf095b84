"""Jacobians and gradients (the JVP, jacfwd, jacrev and grad sections of the reference
text 000, "Advanced automatic differentiation")."""

import numpy as np

import s2sad as ad


def sigmoid(x):
    return 0.5 * (np.tanh(x / 2) + 1)


def predict(W, b, inputs):
    """Outputs probability of a label being true."""
    return sigmoid(np.dot(inputs, W) + b)


inputs = np.array([[0.52, 1.12, 0.77],
                   [0.88, -1.08, 0.15],
                   [0.52, 0.06, -1.30],
                   [0.74, -2.49, 1.39]])
# The reference text draws W and b from jax.random with key 0; these are those values.
W = np.array([-2.4424558, -2.0356805, 0.20554423])
b = 1.2956359


def predict_dict(params, inputs):
    return predict(params['W'], params['b'], inputs)


def loss(W, b):
    """Negative log-likelihood of the training labels."""
    targets = np.array([True, True, False, True])
    preds = predict(W, b, inputs)
    label_probs = preds * targets + (1 - preds) * (1 - targets)
    return -np.sum(np.log(label_probs))


if __name__ == "__main__":
    f = lambda W: predict(W, b, inputs)
    y, u = ad.jvp(f, (W,), (np.ones(3),))
    print("jvp along ones:", u)
    J = ad.jacfwd(f)(W)
    print("jacfwd result, with shape", J.shape)
    print(J)
    J_dict = ad.jacfwd(predict_dict)({'W': W, 'b': b}, inputs)
    for k, v in J_dict.items():
        print("Jacobian from {} to logits is".format(k))
        print(v)
    print("jacrev result, with shape", ad.jacrev(f)(W).shape)
    print("grad of the loss w.r.t. W:", ad.grad(loss)(W, b))
    print("hessian of the loss w.r.t. W:")
    print(ad.hessian(loss)(W, b))
    print()
    print(ad.source(ad.grad(loss), W, b))
