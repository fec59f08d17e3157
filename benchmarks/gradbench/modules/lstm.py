"""GradBench ``lstm``: ADBench's LSTM with diagonal weights, its loss over a
character sequence and the gradient by reverse mode.

Layer i at time t needs layer i-1 at time t and itself at time t-1, so all
layers on an anti-diagonal s = t + i are independent: the loop runs over
wavefronts and updates the active layers' rows of the state together, in
place (c + l - 2 Python iterations instead of (c - 1) * l).  Each operation
costs shadowad a record, so the loop body keeps their number low: the state,
the gates and the outputs live in buffers written with ``out=`` and in-place
operators, through views taken once.
"""
import numpy as np

import shadowad as sad
import timed


def loss(main, extra, state, sequence):
    """The LSTM loss (state is not modified).

    main (2l, 4b): per layer a row of weights and a row of biases, each
    [forget, ingate, outgate, change]; extra (3, b): input weight, output
    weight, output bias; state (2l, b): per layer hidden and cell rows;
    sequence (c, b)."""
    l, b = state.shape[0] // 2, state.shape[1]
    c = sequence.shape[0]
    # sigmoid(z) = (1 + tanh(z / 2)) / 2: halving the weights of the three
    # sigmoid gates once lets one tanh per step cover all four gates
    half = np.repeat([0.5, 0.5, 0.5, 1.0], b)
    weight, bias = main[0::2] * half, main[1::2] * half
    inputs = sequence[:-1] * extra[0]                      # layer 0's input at every time
    # rows[0] is the input of layer 0, rows[i + 1] the hidden state of layer i:
    # layer i reads rows[i] as its input and rows[i + 1] as its state
    rows = np.concatenate([inputs[:1], state[0::2]])
    cell = np.copy(state[1::2])
    gates = np.zeros_like(weight)
    out = np.zeros_like(inputs)

    def views(lo, hi):
        g = gates[lo:hi]
        return (rows[lo:hi], rows[lo + 1:hi + 1], cell[lo:hi], weight[lo:hi], bias[lo:hi],
                g, g[:, :3 * b], g[:, :b], g[:, b:2 * b], g[:, 2 * b:3 * b], g[:, 3 * b:])

    steady = views(0, l)
    for s in range(c - 1 + l - 1):
        lo, hi = max(0, s - (c - 2)), min(l - 1, s) + 1   # the layers active now
        x, h, cl, w, bs, g, sig, forget, ingate, outgate, change = (
            steady if (lo, hi) == (0, l) else views(lo, hi))
        if s < c - 1:
            rows[0] = inputs[s]
        np.tanh(np.concatenate([x, h, x, h], axis=1) * w + bs, out=g)
        sig *= 0.5
        sig += 0.5
        cl *= forget
        cl += ingate * change
        np.multiply(outgate, np.tanh(cl), out=h)
        if hi == l:
            out[s - (l - 1)] = rows[l]
    ypred = out * extra[1] + extra[2]                       # (c - 1, b)
    # ADBench's log-sum-exp adds 2 to the sum
    lse = np.log(np.sum(np.exp(ypred), axis=1, keepdims=True) + 2)
    return -np.sum(sequence[1:] * (ypred - lse)) / ((c - 1) * b)


def _matrix(input, name):
    try:
        a = np.array(timed.field(input, name), dtype=np.float64)
    except (TypeError, ValueError):
        raise timed.InputError(f"input field {name!r} must be a list of lists of "
                               "numbers") from None
    if a.ndim != 2:
        raise timed.InputError(f"input field {name!r} must be a matrix, got shape {a.shape}")
    return a


def prepare(input):
    """JSON -> (main, extra, state, sequence) as float arrays."""
    main, extra, state, sequence = (_matrix(input, name) for name in
                                    ("main_params", "extra_params", "state", "sequence"))
    if main.shape[0] % 2 or main.shape[1] % 4 or main.size == 0:
        raise timed.InputError(f"main_params must be (2l, 4b), got {main.shape}")
    l, b = main.shape[0] // 2, main.shape[1] // 4
    for name, a, shape in (("extra_params", extra, (3, b)), ("state", state, (2 * l, b))):
        if a.shape != shape:
            raise timed.InputError(f"{name} has shape {a.shape}, expected {shape}")
    if sequence.shape[1] != b or sequence.shape[0] < 2:
        raise timed.InputError(f"sequence must be (c >= 2, {b}), got {sequence.shape}")
    return main, extra, state, sequence


@timed.function(prepare=prepare, finish=float)
def objective(args):
    return loss(*args)


@timed.function(prepare=prepare, finish=timed.to_list)
def jacobian(args):
    main, extra, state, sequence = args
    dmain, dextra = sad.autodiff(loss, sad.Active(main), sad.Active(extra), sad.Const(state),
                                 sad.Const(sequence))[:2]
    return np.concatenate([dmain.ravel(), dextra.ravel()])
