"""The programs of ../shared/seeds/000_05b138253ade469f.txt, written with NumPy.

The text draws W and b with jax.random (key 0); these are the float32 values it used.
"""

import numpy as np

W = np.array([-2.4424558, -2.0356805, 0.20554423])
b = 1.2956359
inputs = np.array([[0.52, 1.12, 0.77],
                   [0.88, -1.08, 0.15],
                   [0.52, 0.06, -1.30],
                   [0.74, -2.49, 1.39]])


def sigmoid(x):
    return 0.5 * (np.tanh(x / 2) + 1)


def predict(W, b, inputs):
    return sigmoid(np.dot(inputs, W) + b)


def predict_dict(params, inputs):
    return predict(params['W'], params['b'], inputs)


f = lambda W: predict(W, b, inputs)


def dot_self(x):
    return np.dot(x, x)


# printed in the text (float32)
JACOBIAN = np.array([[0.05069415, 0.1091874, 0.07506633],
                     [0.14170025, -0.17390487, 0.02415345],
                     [0.12579198, 0.01451446, -0.31447992],
                     [0.00574409, -0.0193281, 0.01078958]])
JACOBIAN_B = np.array([0.09748876, 0.16102302, 0.24190766, 0.00776229])
HESSIAN = np.array([[[0.02058932, 0.04434624, 0.03048803],
                     [0.04434623, 0.09551499, 0.06566654],
                     [0.03048803, 0.06566655, 0.04514575]],
                    [[-0.0743913, 0.09129842, -0.01268033],
                     [0.09129842, -0.11204806, 0.01556223],
                     [-0.01268034, 0.01556223, -0.00216142]],
                    [[0.01176856, 0.00135791, -0.02942139],
                     [0.00135791, 0.00015668, -0.00339478],
                     [-0.0294214, -0.00339478, 0.07355348]],
                    [[-0.00418412, 0.014079, -0.00785936],
                     [0.014079, -0.04737393, 0.02644569],
                     [-0.00785936, 0.02644569, -0.01476286]]])
