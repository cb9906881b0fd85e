"""Several trained window networks tagging as one (issue 14, "averaging the scores of several seeds"):
Viterbi over the mean of their path scores, checked against every path, and its commands."""

from __future__ import annotations

import itertools

import pytest
import torch

from cs224n_nn.errors import ConfigError
from cs224n_nn.ner.conll import Sentence
from cs224n_nn.ner.decode import transition_scores
from cs224n_nn.ner.ensemble import WindowNEREnsemble, load_window_ensemble
from cs224n_nn.ner.features import WindowEncoder, collate_sentences, encode_sentence
from cs224n_nn.ner.network import WindowNERNetwork
from cs224n_nn.ner.tagger import EnsembleModule
from run_helpers import one_line, run, tiny_checkpoint
from test_ner_network import ARGS, TRAIN, batch_of



@pytest.fixture(scope="module")
def encoder():
    return WindowEncoder.build(TRAIN, features=("word", "casing"), half_width=1)


def network(encoder, seed, **kwargs):
    torch.manual_seed(seed)
    net = WindowNERNetwork(encoder.state_dict(), **{**ARGS, **kwargs}).eval()
    if net.loss_name == "sentence_ll":  # learned-looking transitions, not the zeros a new CRF starts from
        with torch.no_grad():
            for p in net.crf.parameters():
                p.normal_()
    return net


def brute_force_best_paths(networks, batch):
    """Each sentence's tag path with the best mean score over the networks, by enumerating every path."""
    best, offset = [], 0
    with torch.no_grad():
        terms = [n.path_scores(n(batch["windows"])) for n in networks]
    for length in batch["lengths"].tolist():
        k = terms[0][0].shape[1]

        def score(path):
            total = 0.0
            for emissions, start, trans, end in terms:
                e = emissions[offset:offset + length]
                s = start[path[0]] + end[path[-1]] + sum(e[t, y] for t, y in enumerate(path))
                total += float(s + sum(trans[a, b] for a, b in zip(path, path[1:])))
            return total / len(terms)

        best += max(itertools.product(range(k), repeat=length), key=score)
        offset += length
    return best


SHORT = [Sentence.unlabeled(["Paris"]), Sentence.unlabeled(["John", "Smith"]), Sentence.unlabeled(["in", "New", "York"])]


@pytest.mark.parametrize("losses", [("cross_entropy", "cross_entropy"), ("cross_entropy", "sentence_ll"),
                                    ("sentence_ll", "max_margin", "cross_entropy")])
def test_ensemble_decodes_the_path_with_the_best_mean_score(encoder, losses):
    networks = [network(encoder, seed, loss=loss) for seed, loss in enumerate(losses)]
    batch = batch_of(encoder, SHORT)
    with torch.no_grad():
        ids = WindowNEREnsemble(networks).decode_ids(batch["windows"], batch["lengths"])
    assert ids.tolist() == brute_force_best_paths(networks, batch)


@pytest.mark.parametrize("loss", ["cross_entropy", "max_margin", "sentence_ll"])
@pytest.mark.parametrize("decode", ["viterbi", "argmax"])
def test_an_ensemble_of_one_network_or_of_copies_tags_as_the_network(encoder, loss, decode):
    net = network(encoder, 0, loss=loss, decode=decode)
    batch = batch_of(encoder, TRAIN + SHORT)
    with torch.no_grad():
        expected = net.decode_ids(net(batch["windows"]), batch["lengths"])
        for ensemble in (WindowNEREnsemble([net]), WindowNEREnsemble([net, net, net])):
            assert torch.equal(ensemble.decode_ids(batch["windows"], batch["lengths"]), expected)
            assert ensemble.tag(batch) == net.tag(batch)


def test_path_scores_are_what_decoding_maximises(encoder):
    """The network's decoding is its path_scores' best path: log-softmax and 0 / forbidden for cross-entropy."""
    net = network(encoder, 1)
    batch = batch_of(encoder, SHORT)
    with torch.no_grad():
        scores = net(batch["windows"])
        emissions, start, trans, end = net.path_scores(scores)
        torch.testing.assert_close(emissions, scores.log_softmax(-1), rtol=0, atol=0)
        torch.testing.assert_close(trans, transition_scores(net.allowed_trans, scores), rtol=0, atol=0)
        assert bool((trans[~net.allowed_trans] < -1e30).all()) and bool((trans[net.allowed_trans] == 0).all())
        assert net.decode_ids(scores, batch["lengths"]).tolist() == brute_force_best_paths([net], batch)


def test_forbidden_scores_of_many_networks_stay_finite(encoder):
    networks = [network(encoder, seed) for seed in range(8)]
    batch = batch_of(encoder, SHORT)
    with torch.no_grad():
        terms = WindowNEREnsemble(networks).path_scores(batch["windows"])
    assert all(bool(torch.isfinite(t).all()) for t in terms)


def test_networks_of_other_data_or_decoding_are_refused_by_name(encoder):
    other = WindowEncoder.build(TRAIN[:2], features=("word", "casing"), half_width=1)
    torch.manual_seed(0)
    foreign = WindowNERNetwork(other.state_dict(), **ARGS)
    with pytest.raises(ConfigError, match=r"^b\.ckpt: its vocabularies, tags or window differ from those of a\.ckpt"):
        WindowNEREnsemble([network(encoder, 0), foreign], names=["a.ckpt", "b.ckpt"])
    with pytest.raises(ConfigError, match=r"network 1: decodes by argmax, but network 0 by viterbi"):
        WindowNEREnsemble([network(encoder, 0), network(encoder, 1, decode="argmax")])
    with pytest.raises(ConfigError, match="at least one network"):
        WindowNEREnsemble([])


def test_the_lightning_module_scores_the_ensemble(encoder):
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    ensemble = WindowNEREnsemble([network(encoder, 0), network(encoder, 1, loss="sentence_ll")])
    module = EnsembleModule(ensemble)
    loader = DataLoader([encode_sentence(encoder, s) for s in TRAIN], batch_size=2, collate_fn=collate_sentences)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    (results,) = trainer.test(module, dataloaders=loader, verbose=False)
    # the F1 the metric computes from the ensemble's own tags
    gold = {(i, span) for i, s in enumerate(TRAIN) for span in _spans(s.tags)}
    found = {(i, span) for i, tags in enumerate(ensemble.tag(batch_of(encoder, TRAIN))) for span in _spans(tags)}
    tp = len(gold & found)
    f1 = 2 * tp / (len(gold) + len(found)) if gold or found else 0.0
    assert results["test/f1"] == pytest.approx(f1)
    assert "test/loss" not in results
    assert module.predict_step(batch_of(encoder, TRAIN), 0) == ensemble.tag(batch_of(encoder, TRAIN))


def _spans(tags):
    from cs224n_nn.ner.conll import spans
    return spans(tags, "IOB1")


# -- the commands ---------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two tiny checkpoints of the sample data (other seeds), and one of other features."""
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        paths.append(tiny_checkpoint(tmp_path_factory.mktemp(f"seed{seed}")))
    torch.manual_seed(3)
    other = tiny_checkpoint(tmp_path_factory.mktemp("other"), features=["word"])
    return [str(p) for p in paths], str(other)


def test_evaluate_and_predict_take_several_checkpoints(checkpoints, capsys):
    (a, b), _ = checkpoints
    code, out, err = run(capsys, "evaluate", "--ckpt", a, b, "--data", "sample")
    assert code == 0, err
    assert f"({a}, {b})" in out.splitlines()[0] and "overall" in out
    ensemble = EnsembleModule(load_window_ensemble([a, b]))
    text = "Museums in Paris are amazing"
    code, out, err = run(capsys, "predict", "--ckpt", a, b, "--text", text)
    assert code == 0, err
    batch = collate_sentences([encode_sentence(ensemble.encoder, Sentence.unlabeled(text.split()), labeled=False)])
    with torch.no_grad():
        expected = ensemble.predict_step(batch, 0)[0]
    assert [line.split()[-1] for line in out.splitlines()[:5]] == expected


def test_an_ensemble_of_a_checkpoint_with_itself_scores_as_the_checkpoint(checkpoints, capsys):
    (a, _), _ = checkpoints
    code, alone, err = run(capsys, "evaluate", "--ckpt", a, "--data", "sample")
    assert code == 0, err
    code, twice, err = run(capsys, "evaluate", "--ckpt", a, a, "--data", "sample")
    assert code == 0, err
    assert alone.splitlines()[1:] == twice.splitlines()[1:]


def test_a_checkpoint_of_other_features_is_named(checkpoints, capsys):
    (a, _), other = checkpoints
    for command, extra in (("evaluate", ["--data", "sample"]), ("predict", ["--text", "Paris"])):
        code, out, err = run(capsys, command, "--ckpt", a, other, *extra)
        assert code == 1
        one_line(err, command, other, "differ from those of", a)
