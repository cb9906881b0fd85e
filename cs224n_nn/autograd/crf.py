r"""Linear-chain CRF: the sentence-level log-likelihood of Collobert et al. (2011), with a hand-written backward.

The window network scores every tag of every token, ``e[t, k]`` (the
emissions); a linear-chain CRF adds a learned score ``A[i, j]`` for moving
from tag ``i`` to tag ``j``, and ``a0[k]`` / ``aE[k]`` for starting and
ending a sentence with ``k`` (Collobert et al., "Natural Language Processing
(Almost) from Scratch", JMLR 2011, section 3.3.2, "sentence-level
log-likelihood"; Lafferty et al. 2001).  A tag path ``y`` of a sentence of
``L`` tokens scores

    s(y) = a0[y_1] + sum_{t=1..L} e[t, y_t] + sum_{t=2..L} A[y_{t-1}, y_t] + aE[y_L]

and the objective is its negative log-likelihood, ``NLL = log Z - s(y)``,
``log Z = logsumexp over every path of s``.  ``log Z`` comes from the
*forward algorithm* in log space (every step a ``logsumexp``, so scores of
hundreds over hundreds of tokens stay finite):

    alpha_1 = a0 + e_1,   alpha_t[j] = logsumexp_i(alpha_{t-1}[i] + A[i, j]) + e_t[j],
    log Z = logsumexp_k(alpha_L[k] + aE[k])

and the *backward algorithm* gives ``beta_L = aE``,
``beta_t[i] = logsumexp_j(A[i, j] + e_{t+1}[j] + beta_{t+1}[j])`` (both
normalised at every step, see :func:`log_partition`).  The
derivatives are marginals minus gold counts (the gradient of a log-partition
is an expectation):

    dNLL/de[t, k]  = P(y_t = k) - [y_t = k],             P(y_t = k) = exp(alpha_t[k] + beta_t[k] - log Z)
    dNLL/dA[i, j]  = sum_{t>=2} P(y_{t-1} = i, y_t = j) - #gold moves i -> j,
                     P(y_{t-1} = i, y_t = j) = exp(alpha_{t-1}[i] + A[i, j] + e_t[j] + beta_t[j] - log Z)
    dNLL/da0[k]    = P(y_1 = k) - [y_1 = k],   dNLL/daE[k] = P(y_L = k) - [y_L = k]

Those per-sentence gradients are computed once (:func:`sequence_gradients`)
and used twice: ``backward`` scales them by the upstream gradient (and the
reduction), ``jvp`` contracts them with the tangents (the directional
derivative of a scalar is its gradient dotted with the direction).  Every
operation is out of place, so with ``create_graph=True`` autograd
differentiates the backward itself (double backward), and ``torch.func``
transforms batch it (``generate_vmap_rule``).

Shapes (batch first): emissions ``(B, T, K)``, tags ``(B, T)`` int64,
transitions ``(K, K)`` (row = from, column = to), start and end ``(K,)``,
mask ``(B, T)`` bool, each row ``True`` for its sentence's tokens and then
``False`` (left-aligned; the first column all ``True``).  Tags under a
``False`` mask are ignored (any value, e.g. ``-100``).  The value equals
``-torchcrf.CRF(K, batch_first=True)(emissions, tags, mask, reduction)``
with the same three parameters.

:func:`viterbi_decode` is the max-product twin of the forward algorithm
(``max`` for ``logsumexp`` plus back-pointers), vectorised over sentences
and tags like the rest: the only Python loop is over time steps.
"""

from __future__ import annotations

import torch

from ._amp import LOW_PRECISION, autocast_inputs
from ._function import HandWrittenFunction
from . import _validate
from .losses import _per_example, _reduce

__all__ = ["CRFNegLogLikelihood", "check_crf_inputs", "log_partition", "sequence_gradients", "viterbi_decode"]


# ---------------------------------------------------------------- input checks


def check_crf_inputs(emissions, tags, transitions, start_transitions, end_transitions, mask) -> None:
    """One-line errors naming the argument: wrong type, dtype, shape, mask layout or tag range."""
    _validate.floating(emissions, "emissions")
    if emissions.dim() != 3:
        raise ValueError(f"emissions must be 3-D (batch, time, num_tags), got shape {tuple(emissions.shape)}")
    b, t, k = emissions.shape
    if t == 0 or k == 0:
        raise ValueError(f"emissions must have at least one time step and one tag, got shape {tuple(emissions.shape)}")
    for x, name, shape in ((transitions, "transitions", (k, k)), (start_transitions, "start_transitions", (k,)),
                           (end_transitions, "end_transitions", (k,))):
        _validate.floating(x, name)
        if tuple(x.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} for {k} tags (emissions {tuple(emissions.shape)}), "
                             f"got {tuple(x.shape)}")
        _validate.same_dtype(x, name, emissions, "emissions")
    for x, name, dtype, kind in ((tags, "tags", torch.int64, "an int64 (torch.long) tensor of tag ids"),
                                 (mask, "mask", torch.bool, "a bool tensor")):
        if x is None:
            continue
        _validate.tensor(x, name)
        if x.dtype != dtype:
            raise TypeError(f"{name} must be {kind}, got {x.dtype}")
        if tuple(x.shape) != (b, t):
            raise ValueError(f"{name} must have shape (batch, time) = {(b, t)}, got {tuple(x.shape)}")
    checkable = [x for x in (tags, mask) if x is not None]
    if not b or not checkable or not _validate.values_checkable(*checkable):
        return
    if mask is not None:
        if not bool(mask[:, 0].all()):
            bad = int((~mask[:, 0]).nonzero()[0, 0])
            raise ValueError(f"mask's first column must be all True (every sentence has a first token); "
                             f"row {bad} is False")
        if t > 1 and bool((mask[:, 1:] & ~mask[:, :-1]).any()):
            bad = int((mask[:, 1:] & ~mask[:, :-1]).any(1).nonzero()[0, 0])
            raise ValueError(f"mask must be left-aligned (True for a sentence's tokens, then False); row {bad} "
                             "has a True after a False")
    if tags is not None:
        counted = tags if mask is None else tags[mask]
        if counted.numel():
            low, high = (int(v) for v in torch.aminmax(counted))
            if low < 0 or high >= k:
                raise IndexError(f"tags must lie in [0, {k}) (num_tags={k}) where mask is True; "
                                 f"found {low if low < 0 else high}")


def _full_mask(emissions: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return torch.ones(emissions.shape[:2], dtype=torch.bool, device=emissions.device)
    return mask


# ---------------------------------------------------------------- the recursions


def log_partition(emissions, transitions, start_transitions, end_transitions, mask):
    """Forward algorithm in log space: ``(alpha_hat (B, T, K), log Z (B,))``.

    Each step is normalised, ``alpha_hat_t = alpha_t - c_t`` with
    ``c_t = logsumexp_k(alpha_t[k])``, and ``log Z = sum_t c_t +
    logsumexp(alpha_hat_L + aE)``: the stored values stay of the size of one
    step's scores however long the sentence, so the marginals built from them
    (:func:`sequence_gradients`) keep their precision in float32 (unnormalised,
    ``alpha`` grows like ``T`` times the scores and its rounding error with it).
    Past a sentence's end ``alpha_hat`` is carried unchanged.
    """
    step = start_transitions + emissions[:, 0]
    norm = torch.logsumexp(step, dim=1)
    alpha, log_z = step - norm.unsqueeze(1), norm
    alphas = [alpha]
    for t in range(1, emissions.shape[1]):
        # [B, K_from, 1] + [K_from, K_to] -> logsumexp over "from"
        step = torch.logsumexp(alpha.unsqueeze(2) + transitions, dim=1) + emissions[:, t]
        norm = torch.logsumexp(step, dim=1)
        active = mask[:, t]
        alpha = torch.where(active.unsqueeze(1), step - norm.unsqueeze(1), alpha)
        log_z = torch.where(active, log_z + norm, log_z)
        alphas.append(alpha)
    return torch.stack(alphas, dim=1), log_z + torch.logsumexp(alpha + end_transitions, dim=1)


def _log_beta(emissions, transitions, end_transitions, mask):
    """Backward algorithm, normalised per step like ``alpha``: ``beta_hat_t`` up to a constant per step.

    ``beta_t[i]`` is the log-sum of the scores after position ``t`` given tag
    ``i`` there (``aE`` at a sentence's last token and past it).
    """
    t_max = emissions.shape[1]
    beta = end_transitions.expand(emissions.shape[0], -1)
    betas = [beta]
    for t in range(t_max - 2, -1, -1):
        step = torch.logsumexp(transitions + (emissions[:, t + 1] + beta).unsqueeze(1), dim=2)
        step = step - torch.logsumexp(step, dim=1, keepdim=True)
        # A sentence that has ended by t + 1 keeps beta = aE: t is then its last token (or past it).
        beta = torch.where(mask[:, t + 1].unsqueeze(1), step, end_transitions)
        betas.append(beta)
    return torch.stack(betas[::-1], dim=1)


def _gold(tags, mask, num_tags, dtype):
    """One-hot gold tags ``(B, T, K)`` (zero past the end) and the one-hot of the last real token ``(B, T)``."""
    maskf = mask.to(dtype)
    safe = torch.where(mask, tags, 0)
    onehot = torch.nn.functional.one_hot(safe, num_tags).to(dtype) * maskf.unsqueeze(2)
    after = torch.cat([maskf[:, 1:], maskf.new_zeros(maskf.shape[0], 1)], dim=1)
    return onehot, maskf - after  # is_last: True at t where mask[t] and not mask[t + 1]


def _gold_score(emissions, onehot, is_last, transitions, start_transitions, end_transitions):
    """``s(y)`` of each sentence's gold path ``(B,)``, from the one-hot gold tags."""
    emit = (emissions * onehot).sum((1, 2))
    moves = ((onehot[:, :-1] @ transitions) * onehot[:, 1:]).sum((1, 2))
    first = onehot[:, 0] @ start_transitions
    last = (onehot * is_last.unsqueeze(2)).sum(1) @ end_transitions
    return emit + moves + first + last


def _nll(emissions, tags, transitions, start_transitions, end_transitions, mask):
    onehot, is_last = _gold(tags, mask, emissions.shape[2], emissions.dtype)
    _, log_z = log_partition(emissions, transitions, start_transitions, end_transitions, mask)
    return log_z - _gold_score(emissions, onehot, is_last, transitions, start_transitions, end_transitions)


def sequence_gradients(emissions, tags, transitions, start_transitions, end_transitions, mask):
    """Per-sentence gradient of the NLL: marginals minus gold (module docstring).

    Returns ``d_emissions (B, T, K)``, ``d_transitions (B, K, K)``,
    ``d_start (B, K)``, ``d_end (B, K)``. Out-of-place torch operations only,
    so autograd can differentiate this function again.
    """
    # The constants dropped by the normalisation cancel inside each softmax:
    # P(y_t = k) = softmax_k(alpha_t + beta_t) and P(y_{t-1} = i, y_t = j) =
    # softmax_{ij}(alpha_{t-1}[i] + A[i, j] + e_t[j] + beta_t[j]), both summing to 1.
    log_alpha, _ = log_partition(emissions, transitions, start_transitions, end_transitions, mask)
    log_beta = _log_beta(emissions, transitions, end_transitions, mask)
    onehot, is_last = _gold(tags, mask, emissions.shape[2], emissions.dtype)
    maskf = mask.to(emissions.dtype)
    unary = torch.softmax(log_alpha + log_beta, dim=2) * maskf.unsqueeze(2)
    pair_log = log_alpha[:, :-1].unsqueeze(3) + transitions + (emissions[:, 1:] + log_beta[:, 1:]).unsqueeze(2)
    pairs = torch.softmax(pair_log.flatten(2), dim=2).view(pair_log.shape)  # [B, T-1, K_from, K_to]
    pairs = (pairs * maskf[:, 1:, None, None]).sum(1)
    gold_moves = onehot[:, :-1].transpose(1, 2) @ onehot[:, 1:]  # [B, K_from, K_to]
    last = is_last.unsqueeze(2)
    d_emissions = unary - onehot
    d_transitions = pairs - gold_moves
    d_start = unary[:, 0] - onehot[:, 0]
    d_end = (unary * last).sum(1) - (onehot * last).sum(1)
    return d_emissions, d_transitions, d_start, d_end


# ---------------------------------------------------------------- the Function


class CRFNegLogLikelihood(HandWrittenFunction):
    r"""Negative log-likelihood of the gold tag paths under a linear-chain CRF (module docstring).

    ``apply(emissions, tags, transitions, start_transitions, end_transitions, mask, reduction)``
    with ``mask`` a left-aligned bool ``(B, T)`` or ``None`` (every token
    counts) and ``reduction`` ``"none"`` (``(B,)``), ``"sum"`` or ``"mean"``
    (over the batch, as pytorch-crf). Backward:
    ``d/de = P(y_t) - onehot(y_t)``, ``d/dA = E[moves] - gold moves``,
    start and end alike, times the upstream gradient (``/ B`` for ``mean``).
    Saves only the inputs: the backward reruns the forward algorithm together
    with the backward algorithm, so the gradient is a differentiable function
    of the inputs (double backward works) and nothing of size ``B x T x K``
    outlives the forward.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(emissions, tags, transitions, start_transitions, end_transitions, mask=None, reduction="mean"):
        # As torch's autocast runs log_softmax and cross_entropy: in float32.
        emissions, transitions, start_transitions, end_transitions = autocast_inputs(
            "float32", emissions, transitions, start_transitions, end_transitions)
        check_crf_inputs(emissions, tags, transitions, start_transitions, end_transitions, mask)
        _validate.reduction(reduction)
        # ... and every op of the recursion stays in float32 (autocast would run its matmuls lower).
        with torch.autocast(emissions.device.type, enabled=False):
            nll = _nll(emissions, tags, transitions, start_transitions, end_transitions, _full_mask(emissions, mask))
            return _reduce(nll, reduction)

    @staticmethod
    def setup_context(ctx, inputs, output):
        emissions, tags, transitions, start, end, mask, reduction = inputs
        ctx.reduction = reduction
        ctx.save_for_backward(emissions, tags, transitions, start, end, mask)
        ctx.save_for_forward(emissions, tags, transitions, start, end, mask)

    @staticmethod
    def _gradients(ctx):
        emissions, tags, transitions, start, end, mask = ctx.saved_tensors
        mask = _full_mask(emissions, mask)
        scores = (emissions, transitions, start, end)
        # float16/bfloat16 inputs (autocast): the marginals in float32, each
        # gradient rounded once to its own input's dtype.
        wide = [t.float() if t.dtype in LOW_PRECISION else t for t in scores]
        grads = sequence_gradients(wide[0], tags, *wide[1:], mask)
        return emissions, tuple(g.to(t.dtype) for g, t in zip(grads, scores))

    @staticmethod
    def backward(ctx, grad):
        emissions, (d_em, d_trans, d_start, d_end) = CRFNegLogLikelihood._gradients(ctx)
        g = _per_example(grad, ctx.reduction, (emissions.shape[0],))  # dJ/dNLL_b, shape (B,)
        need = ctx.needs_input_grad
        return (
            d_em * g.view(-1, 1, 1) if need[0] else None,
            None,
            (g.view(-1, 1, 1) * d_trans).sum(0) if need[2] else None,
            g @ d_start if need[3] else None,
            g @ d_end if need[4] else None,
            None,
            None,
        )

    @staticmethod
    def jvp(ctx, t_em, t_tags, t_trans, t_start, t_end, t_mask, t_reduction):
        _, (d_em, d_trans, d_start, d_end) = CRFNegLogLikelihood._gradients(ctx)
        tangent = torch.zeros_like(d_start[:, 0])
        for d, t, dims in ((d_em, t_em, (1, 2)), (d_trans, t_trans, (1, 2)), (d_start, t_start, 1), (d_end, t_end, 1)):
            if t is not None:
                tangent = tangent + (d * t).sum(dims)
        return _reduce(tangent, ctx.reduction)


def viterbi_decode(emissions, transitions, start_transitions, end_transitions, mask=None) -> torch.Tensor:
    """Best path of each sentence: ``argmax_y s(y)`` by max-product dynamic programming.

    ``delta_1 = a0 + e_1``, ``delta_t[j] = max_i(delta_{t-1}[i] + A[i, j]) + e_t[j]``,
    then back-pointers from ``argmax_k(delta_L[k] + aE[k])``. Returns
    ``LongTensor (B, T)``, 0 past each sentence's end. No gradient.

    The sentences are sorted longest first, so step ``t`` works on the rows
    still running, ``delta[:n_t]`` (``n_t`` sentences longer than ``t``): a
    batch costs ``sum(lengths) K^2``, not ``B T_max K^2`` (a batch of news
    sentences is mostly padding), and no step needs a ``where``.  The rows of
    the sentences that have ended get the identity as back-pointers
    (``k -> k``), so the backtracking is one ``gather`` per step over the
    whole batch and keeps an ended sentence's last tag.
    """
    with torch.no_grad():
        b, t_max, k = emissions.shape
        lengths = torch.full((b,), t_max, device=emissions.device) if mask is None else mask.sum(1)
        lengths, order = torch.sort(lengths, descending=True, stable=True)
        emissions = emissions[order]
        # running[t] = number of sentences longer than t (the first rows, once sorted)
        running = torch.searchsorted(-lengths, -torch.arange(t_max, device=emissions.device)).tolist()
        identity = torch.arange(k, device=emissions.device).expand(b, k)
        steps = emissions.unbind(1)
        score = start_transitions + steps[0]
        pointers = []  # pointers[t - 1][s, j]: the best tag before tag j at step t, [B, K]
        for t in range(1, t_max):
            n = running[t]
            if n == b:  # every sentence still running (one long line: every step): no slicing
                best, arg = (score.unsqueeze(2) + transitions).max(dim=1)
                score = best + steps[t]
            else:
                best, arg = (score[:n].unsqueeze(2) + transitions).max(dim=1)
                score[:n] = best + steps[t][:n]
                arg = torch.cat([arg, identity[n:]])
            pointers.append(arg)
        last = (score + end_transitions).argmax(dim=1, keepdim=True)  # [B, 1]
        columns = [last]
        for arg in reversed(pointers):
            last = arg.gather(1, last)
            columns.append(last)
        path = torch.cat(columns[::-1], dim=1)
        # Past its end a sentence kept its last tag (identity pointers): blank it.
        path = path.masked_fill(torch.arange(t_max, device=path.device) >= lengths.unsqueeze(1), 0)
        return torch.empty_like(path).index_copy_(0, order, path)
