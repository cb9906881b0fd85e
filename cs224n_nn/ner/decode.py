"""Decoding a sentence's tags from per-token scores.

The window classifier scores every token on its own, so its per-token argmax
can produce tag sequences no scheme allows (``O I-PER`` in IOB2, ``B-LOC O``
in IOBES), and each such slip costs an entity.  Viterbi decoding picks the
best sequence among the *valid* ones:

    y* = argmax_y  sum_t e_t(y_t)   subject to  allowed(y_{t-1} -> y_t),
                                                 y_1 a valid start, y_L a valid end

with emissions ``e_t = log softmax(s_t)`` (so the sum is the log-probability
of the sequence under the independent per-token model) or the raw scores for
a max-margin model.  The constraints are hard (``-inf`` transitions); no
transition weights are learnt, so this adds no parameter and the model stays
the notes' window network.  A model trained with ``loss: sentence_ll`` (a
CRF, :mod:`cs224n_nn.autograd.crf`) decodes with the same code and its
learned transition scores instead of 0 / ``-inf``.  Cost: ``O(L K^2)`` per sentence, vectorised over
the sentences of a batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cs224n_nn.autograd.crf import viterbi_decode
from cs224n_nn.ner.conll import parse_tag

__all__ = ["allowed_transitions", "decode_path_scores", "pad_sentences", "transition_scores", "viterbi", "viterbi_flat"]


def allowed_transitions(tags: Sequence[str], scheme: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which tags may start, follow one another, and end a sentence.

    Returns bool tensors ``start [K]``, ``trans [K, K]`` (``trans[i, j]``: tag
    ``j`` may follow tag ``i``) and ``end [K]``.

    * IOB2: ``I-X`` only after ``B-X`` or ``I-X``; it cannot start.
    * IOB1: ``B-X`` only right after an ``X`` tag (CoNLL-2003's convention).
    * IOBES: ``I-X``/``E-X`` only after ``B-X``/``I-X``; after ``B-X``/``I-X``
      only ``I-X``/``E-X``; a sentence starts with ``O``/``B``/``S`` and ends
      with ``O``/``E``/``S``.
    """
    parsed = [parse_tag(t) for t in tags]
    k = len(tags)
    start = torch.ones(k, dtype=torch.bool)
    end = torch.ones(k, dtype=torch.bool)
    trans = torch.ones(k, k, dtype=torch.bool)
    for j, (pj, tj) in enumerate(parsed):
        if scheme in ("IOB2", "IOBES") and pj in ("I", "E"):
            start[j] = False
        if scheme == "IOB1" and pj == "B":
            start[j] = False
        if scheme == "IOBES" and pj in ("B", "I"):
            end[j] = False
        for i, (pi, ti) in enumerate(parsed):
            same = ti == tj and pi != "O"
            if scheme == "IOB2":
                ok = pj != "I" or (pi in ("B", "I") and same)
            elif scheme == "IOB1":
                ok = pj != "B" or same
            else:  # IOBES
                inside = pi in ("B", "I")  # an entity is open and must continue
                ok = (pj in ("I", "E") and same) if inside else pj in ("O", "B", "S")
            trans[i, j] = ok
    return start, trans, end


def pad_sentences(flat: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sentences laid end to end, ``[N, ...]``, as a padded batch ``[S, T, ...]`` (zeros) and its mask ``[S, T]``."""
    lengths = lengths.to(flat.device)
    padded = torch.nn.utils.rnn.pad_sequence(torch.split(flat, lengths.tolist()), batch_first=True)
    mask = torch.arange(padded.shape[1], device=flat.device).unsqueeze(0) < lengths.unsqueeze(1)
    return padded, mask


def transition_scores(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A bool "allowed" mask as scores (0 allowed, a huge finite negative forbidden); scores as they are.

    In the dtype and on the device of ``like``.  The forbidden score is a
    quarter of the dtype's lowest value, so that a few of them add up to a
    finite number and never to ``nan``.
    """
    if x.dtype != torch.bool:
        return x.to(device=like.device, dtype=like.dtype)
    neg_inf = torch.finfo(like.dtype).min / 4  # finite, so sums never become nan
    return torch.where(x.to(like.device), like.new_zeros(()), neg_inf)


def viterbi(
    emissions: torch.Tensor,
    lengths: torch.Tensor,
    start: torch.Tensor,
    trans: torch.Tensor,
    end: torch.Tensor,
) -> torch.Tensor:
    """Best tag path of each sentence.

    Args:
        emissions: ``[S, T, K]`` scores (padded past each sentence's length).
        lengths: ``[S]`` sentence lengths (``>= 1``).
        start, trans, end: bool masks from :func:`allowed_transitions` (hard
            constraints), or float scores (a CRF's learned transitions).

    Returns:
        ``LongTensor[S, T]``; entries past a sentence's length are 0.
        The dynamic programme is :func:`cs224n_nn.autograd.crf.viterbi_decode`
        (vectorised over sentences and tags, a loop over time steps only).
    """
    t_max = emissions.shape[1]
    mask = torch.arange(t_max, device=emissions.device).unsqueeze(0) < lengths.to(emissions.device).unsqueeze(1)
    start, trans, end = (transition_scores(x, emissions) for x in (start, trans, end))
    return viterbi_decode(emissions, trans, start, end, mask)


def viterbi_flat(
    emissions: torch.Tensor,
    lengths: torch.Tensor,
    start: torch.Tensor,
    trans: torch.Tensor,
    end: torch.Tensor,
) -> torch.Tensor:
    """:func:`viterbi` for sentences laid end to end: ``[N, K]`` scores -> ``[N]`` ids."""
    if emissions.shape[0] == 0:
        return emissions.new_zeros(0, dtype=torch.long)
    padded, mask = pad_sentences(emissions, lengths)
    return viterbi(padded, lengths, start, trans, end)[mask]


def decode_path_scores(
    terms: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    lengths: torch.Tensor,
    decoder: str = "viterbi",
) -> torch.Tensor:
    """Tag ids ``[N]`` from the terms ``(emissions [N, K], start, trans, end)`` of a path's score.

    ``viterbi``: each sentence's best path under all four terms
    (:func:`viterbi_flat`); ``argmax``: each token's best emission alone
    (the transition terms are not used).
    """
    emissions, start, trans, end = terms
    if decoder == "argmax":
        return emissions.argmax(dim=-1)
    return viterbi_flat(emissions, lengths, start, trans, end)
