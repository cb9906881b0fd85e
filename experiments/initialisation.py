"""Per-layer activation and back-propagated gradient variance in deep tanh and sigmoid networks under several initialisations.

Notes section "Parameter Initialization", after Glorot and Bengio (2010):
Xavier's ``U[-sqrt(6/(fan_in+fan_out)), +sqrt(...)]`` "attempts to maintain
activation variances as well as backpropagated gradient variances across
layers"; without it "the gradient variances generally decrease with
backpropagation across layers". A stack of equal-width layers built from our
``nn.Linear`` and ``nn.Tanh``/``nn.Sigmoid`` gets one batch of Gaussian inputs
and a softmax cross-entropy loss against random labels; we record
``Var(a^(l))`` on the way up and ``Var(dJ/da^(l))`` on the way down for:

- Xavier uniform (:func:`cs224n_nn.init.xavier_uniform_`);
- the notes' snippet ``randn(fan_in, fan_out) / sqrt(fan_in)``
  (:func:`cs224n_nn.init.lecun_normal_`);
- the notes' "small random numbers", ``N(0, 0.01^2)``;
- Glorot and Bengio's "standard" ``U[-1/sqrt(fan_in), 1/sqrt(fan_in)]``, the
  scheme their paper shows losing gradient variance layer by layer.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from cs224n_nn import init, nn
from experiments._common import Progress, cli, pyplot, save_figure, seed_all, write_table

NAME = "initialisation"


def _small_random(weight: torch.Tensor) -> None:
    with torch.no_grad():
        weight.normal_(0.0, 0.01)


def _glorot_standard(weight: torch.Tensor) -> None:
    bound = 1.0 / math.sqrt(weight.size(1))
    with torch.no_grad():
        weight.uniform_(-bound, bound)


INITS = {
    "Xavier uniform": init.xavier_uniform_,
    "notes' randn/sqrt(fan_in)": init.lecun_normal_,
    "small random N(0, 0.01^2)": _small_random,
    "standard U[-1/sqrt(n), 1/sqrt(n)]": _glorot_standard,
}
ACTIVATIONS = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def layer_variances(activation: type, init_fn, depth: int, width: int, batch: int, n_classes: int,
                    generator: torch.Generator) -> tuple[list[float], list[float]]:
    """``(Var a^(l), Var dJ/da^(l))`` for the hidden layers ``l = 1..depth``."""
    layers = [nn.Linear(width, width) for _ in range(depth)]
    head = nn.Linear(width, n_classes)
    for layer in [*layers, head]:
        init_fn(layer.weight)
        with torch.no_grad():
            layer.bias.zero_()  # the notes: "bias units are initialized to 0"
    nonlinearity = activation()
    x = torch.randn(batch, width, generator=generator)
    labels = torch.randint(n_classes, (batch,), generator=generator)
    hidden = []
    a = x
    for layer in layers:
        a = nonlinearity(layer(a))
        a.retain_grad()
        hidden.append(a)
    loss = nn.CrossEntropyLoss()(head(a), labels)
    loss.backward()
    return [h.detach().var().item() for h in hidden], [h.grad.var().item() for h in hidden]


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    seed_all(seed)
    plt = pyplot()
    depth, width, batch = (3, 16, 32) if quick else (10, 256, 1000)
    results = {}
    progress = Progress(NAME, len(ACTIVATIONS) * len(INITS))
    for act_name, activation in ACTIVATIONS.items():
        for init_name, init_fn in INITS.items():
            torch.manual_seed(seed)  # every scheme draws its weights from the same stream...
            results[act_name, init_name] = layer_variances(  # ...and sees the same inputs and labels
                activation, init_fn, depth, width, batch, 10, generator=torch.Generator().manual_seed(seed))
            progress.update(f"{act_name}, {init_name}")

    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    layers = range(1, depth + 1)
    rows = []
    for col, act_name in enumerate(ACTIVATIONS):
        for init_name in INITS:
            act_var, grad_var = results[act_name, init_name]
            axes[0, col].semilogy(layers, act_var, "o-", ms=3, label=init_name)
            axes[1, col].semilogy(layers, grad_var, "o-", ms=3, label=init_name)
            rows.append([act_name, init_name, act_var[0], act_var[-1], grad_var[0], grad_var[-1],
                         grad_var[0] / grad_var[-1]])
        axes[0, col].set_title(f"{act_name}: activation variance Var(a^(l))")
        axes[1, col].set_title(f"{act_name}: back-propagated gradient variance Var(dJ/da^(l))")
        axes[1, col].set_xlabel("hidden layer l (1 = nearest the input)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{depth} layers of width {width}, biases 0, batch of {batch} N(0, 1) inputs, "
                 "softmax cross-entropy on random labels", fontsize=9)
    written = [save_figure(fig, out, f"{NAME}.png")]
    written.append(write_table(
        out, f"{NAME}.md", "Initialisation: variance per layer",
        ["activation", "initialisation", "Var a^(1)", f"Var a^({depth})", "Var dJ/da^(1)", f"Var dJ/da^({depth})",
         f"gradient variance ratio layer 1 / layer {depth}"],
        rows,
        notes=[f"{depth} hidden layers of width {width} built from cs224n_nn.nn.Linear and the activation, biases 0, "
               f"one batch of {batch} standard normal inputs, 10-way softmax cross-entropy on random labels. "
               "A ratio near 1 means the gradient reaches the first layer with the variance it had at the top."],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
