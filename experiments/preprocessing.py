"""Covariance images before and after mean subtraction, normalisation and PCA/ZCA whitening.

Notes section "Data Preprocessing": subtract the training mean; divide each
feature by its training standard deviation so that features "measured in
different units" count alike; whiten so that "features become uncorrelated
and have a variance of 1". Generated data with correlated features of very
different scales and offsets is passed through our fitted transforms
(:mod:`cs224n_nn.preprocess`), each fitted on the training split only and
applied to a held-out split, which is what the figure and table show: a
scatter of two correlated features and the covariance matrix after each stage.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cs224n_nn import preprocess
from experiments._common import Progress, cli, pyplot, save_figure, seed_all, write_table

NAME = "preprocessing"
SCALES = torch.tensor([1.0, 10.0, 100.0, 0.1, 5.0, 50.0], dtype=torch.float64)  # "different units"
OFFSETS = torch.tensor([50.0, -20.0, 300.0, 5.0, 0.0, 100.0], dtype=torch.float64)


def make_data(n: int, mixing: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Correlated Gaussian features: ``(z A) * scales + offsets``, ``z ~ N(0, I)``."""
    z = torch.randn(n, mixing.size(0), generator=generator, dtype=torch.float64)
    return (z @ mixing) * SCALES + OFFSETS


def stages() -> dict[str, torch.nn.Module | None]:
    return {
        "raw": None,
        "mean subtracted": preprocess.MeanSubtraction(),
        "normalised": preprocess.Normalization(),
        "PCA whitened": preprocess.PCAWhitening(),
        "ZCA whitened": preprocess.ZCAWhitening(),
    }


def _listing(values: torch.Tensor) -> str:
    return ", ".join(f"{v:g}" for v in values.tolist())


def covariance(x: torch.Tensor) -> torch.Tensor:
    centred = x - x.mean(0)
    return centred.T @ centred / x.size(0)


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    gen = seed_all(seed)
    plt = pyplot()
    n = 200 if quick else 20000
    d = SCALES.numel()
    # A = S Q (Q a random rotation, S from 0.5 to 2): latent covariance A^T A = Q^T S^2 Q has correlated
    # features but a condition number of only 16, so every direction is there to be whitened
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    mixing = torch.diag(torch.linspace(0.5, 2.0, d, dtype=torch.float64)) @ rotation
    train, test = make_data(n, mixing, gen), make_data(n, mixing, gen)
    # the two features with the largest correlation, for the scatter plots
    corr = torch.corrcoef(train.T).abs().fill_diagonal_(0)
    i, j = divmod(int(corr.argmax()), d)

    plan = stages()
    fig, axes = plt.subplots(2, len(plan), figsize=(15, 6.2))
    rows = []
    progress = Progress(NAME, len(plan))
    for col, (name, transform) in enumerate(plan.items()):
        held_out = test if transform is None else transform.fit(train)(test)
        cov = covariance(held_out)
        ax = axes[0, col]
        ax.scatter(held_out[:400, i].numpy(), held_out[:400, j].numpy(), s=2)
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
        ax.set_title(f"{name}\nfeature {i} vs feature {j}", fontsize=9)
        ax = axes[1, col]
        vmax = cov.abs().max().item()
        image = ax.imshow(cov.numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.grid(False)
        ax.set_title(f"covariance (held-out), max |C| = {vmax:.3g}", fontsize=9)
        ax.set_xticks(range(d))
        ax.set_yticks(range(d))
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        std = cov.diagonal().sqrt()
        correlation = cov / torch.outer(std, std)
        off_diagonal = correlation - torch.diag(correlation.diagonal())
        rows.append([name, held_out.mean(0).norm().item(), cov.diagonal().min().item(), cov.diagonal().max().item(),
                     off_diagonal.abs().max().item(), (cov - torch.eye(d)).norm().item(),
                     torch.linalg.cond(cov).item()])
        progress.update(name)
    fig.suptitle("Preprocessing fitted on the training split, shown on a held-out split")
    written = [save_figure(fig, out, f"{NAME}.png")]
    written.append(write_table(
        out, f"{NAME}.md", "Preprocessing: statistics of the held-out split after each fitted transform",
        ["stage", "||mean||", "smallest variance", "largest variance", "largest |correlation| off the diagonal",
         "||C - I||_F", "condition number of C"],
        rows,
        notes=[f"{d} features, {n} training and {n} held-out points; features are mixtures of Gaussian latents scaled "
               f"by ({_listing(SCALES)}) and offset by ({_listing(OFFSETS)}), float64. Every transform is fitted on the training split "
               "and applied to the held-out one (as the notes insist), so the whitened covariance is the identity only "
               "up to sampling error. Whitening uses the default eps = 1e-5 of cs224n_nn.preprocess."],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
