"""Several trained window networks tagging as one: Viterbi over their mean path score.

A network scores a tag path ``y`` of a sentence as
(:meth:`~cs224n_nn.ner.network.WindowNERNetwork.path_scores`,
:mod:`cs224n_nn.ner.decode`)

    score_m(y) = start_m[y_1] + sum_t e_m[t, y_t] + sum_t A_m[y_{t-1}, y_t] + end_m[y_L]

and the ensemble of ``M`` networks tags the path with the best mean score,

    y* = argmax_y  1/M sum_m score_m(y),

which is Viterbi over the mean of each term, since every term is linear in
the path.  For networks trained with cross-entropy ``e_m = log softmax(s_m)``
and the mean is the log of the geometric mean of their per-token
probabilities (a product of experts); networks trained with ``sentence_ll``
bring their learned transition scores, and the two kinds can be mixed.
Networks trained from different seeds make different errors, so their mean
errs less (docs/ner.md, "Several seeds as one tagger").  They must share
the feature encoder (vocabularies, tags, window, schemes), which they do
when trained on the same data with the same ``data.*`` settings.

Nothing here imports Lightning: :class:`~cs224n_nn.ner.tagger.EnsembleModule`
evaluates an ensemble under a Trainer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch

from cs224n_nn.errors import ConfigError
from cs224n_nn.ner.decode import decode_path_scores
from cs224n_nn.ner.features import WindowEncoder
from cs224n_nn.ner.network import WindowNERNetwork

__all__ = ["WindowNEREnsemble", "load_window_ensemble"]


class WindowNEREnsemble(torch.nn.Module):
    """Window networks that tag as one (module docstring: the maths); a plain torch module.

    Args:
        networks: at least one :class:`~cs224n_nn.ner.network.WindowNERNetwork`,
            all with the same feature encoder and the same ``decode`` setting.
        names: what to call each network in an error (default ``network 0``, ...).

    Raises:
        ConfigError: no network, or a network whose encoder or decoder differs
            from the first's (named).
    """

    def __init__(self, networks: Sequence[WindowNERNetwork], names: Sequence[str] | None = None):
        super().__init__()
        networks = list(networks)
        if not networks:
            raise ConfigError("an ensemble needs at least one network")
        names = list(names) if names is not None else [f"network {i}" for i in range(len(networks))]
        first, expected = networks[0], networks[0].encoder.state_dict()
        for name, network in zip(names[1:], networks[1:]):
            if network.encoder.state_dict() != expected:
                raise ConfigError(
                    f"{name}: its vocabularies, tags or window differ from those of {names[0]}; an ensemble needs "
                    "networks trained on the same data with the same data.* settings"
                )
            if network.decoder != first.decoder:
                raise ConfigError(f"{name}: decodes by {network.decoder}, but {names[0]} by {first.decoder}")
        self.networks = torch.nn.ModuleList(networks)

    @property
    def encoder(self) -> WindowEncoder:
        """The feature encoder the networks share."""
        return self.networks[0].encoder

    @property
    def decoder(self) -> str:
        return self.networks[0].decoder

    def path_scores(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The mean over the networks of each term of :meth:`WindowNERNetwork.path_scores` for ``windows``."""
        m = len(self.networks)
        total = None
        for network in self.networks:
            # Each term divided before adding: the scheme's forbidden scores are
            # huge, and a sum of several would overflow to -inf first.
            terms = [t / m for t in network.path_scores(network(windows))]
            total = terms if total is None else [a + b for a, b in zip(total, terms)]
        return tuple(total)

    def decode_ids(self, windows: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Tag ids ``[N]`` of the sentences (laid end to end, ``lengths [S]``) whose windows are given."""
        return decode_path_scores(self.path_scores(windows), lengths, self.decoder)

    def tag(self, batch: Mapping[str, torch.Tensor]) -> list[list[str]]:
        """Tags (in the data's own scheme) for each sentence of a batch of windows and lengths."""
        return self.encoder.decode_batch(self.decode_ids(batch["windows"], batch["lengths"]), batch["lengths"])


def load_window_ensemble(paths: Sequence[str | os.PathLike],
                         map_location: str | torch.device = "cpu") -> WindowNEREnsemble:
    """The networks of several checkpoint files as one :class:`WindowNEREnsemble` (eval mode).

    Each file is read by :func:`~cs224n_nn.ner.checkpoint_format.load_window_network`
    (safe loading, one-line errors naming the file); a file whose encoder
    differs from the first file's is named in the error.
    """
    from cs224n_nn.ner.checkpoint_format import load_window_network

    names = [os.fspath(p) for p in paths]
    ensemble = WindowNEREnsemble([load_window_network(p, map_location) for p in names], names)
    return ensemble.eval()
