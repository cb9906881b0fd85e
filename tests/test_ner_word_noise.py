"""The word noise of training: model.pretrained_swap (a word with a pretrained vector is looked up, with
the given probability, in that vector as it was before training, as words outside the training data are at
prediction) and model.word_dropout (a word is looked up as <unk>, as a word nobody knows is)."""

from __future__ import annotations

import pytest
import torch

from cs224n_nn.errors import ConfigError
from cs224n_nn.ner.features import WindowEncoder
from cs224n_nn.ner.model import WindowNERModule
from cs224n_nn.ner.network import WindowNERNetwork
from test_ner_network import TRAIN, batch_of

ARGS = {"hidden_dims": [6], "dropout": 0.0}
WITH_VECTORS = ("museums", "paris", "john", "york")  # lower-cased, as the vocabulary holds them


@pytest.fixture(scope="module")
def encoder():
    return WindowEncoder.build(TRAIN, features=("word", "casing"), half_width=1)


@pytest.fixture
def vectors(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("".join(f"{w} " + " ".join(f"{0.1 * (i + 1) + 0.01 * j:.2f}" for j in range(4)) + "\n"
                            for i, w in enumerate(WITH_VECTORS + ("unseen",))))
    return str(path)


def net(encoder, vectors, p, seed=0):
    torch.manual_seed(seed)
    return WindowNERNetwork(encoder.state_dict(), word_vectors=vectors, pretrained_swap=p, **ARGS)


def word_ids(encoder, words):
    return [encoder.vocabs["word"].stoi[w] for w in words]


def test_only_words_with_a_pretrained_vector_can_be_swapped(encoder, vectors):
    network = net(encoder, vectors, 0.5)
    swappable = {i for i in range(encoder.trained_words) if network.swappable[i]}
    assert swappable == set(word_ids(encoder, WITH_VECTORS))
    # the word table ends with an untuned copy of every trained row
    table = network.embeddings[0]
    outside = len(encoder.vocabs["word"]) - encoder.trained_words
    assert table.frozen.num_embeddings == outside + encoder.trained_words
    torch.testing.assert_close(table.frozen.weight[outside:], table.trained.weight, rtol=0, atol=0)
    assert table.weight.shape[0] == len(encoder.vocabs["word"])


def test_in_training_a_swapped_word_reads_its_untuned_vector(encoder, vectors):
    network = net(encoder, vectors, 0.999999)  # every word with a vector, in effect
    table = network.embeddings[0]
    start = table.trained.weight.detach().clone()
    with torch.no_grad():  # training has moved every trained row
        table.trained.weight.add_(1.0)
    batch = batch_of(encoder, TRAIN)
    d = table.embedding_dim
    network.train()
    x = network.window_vectors(batch["windows"])
    network.eval()
    tuned = network.window_vectors(batch["windows"])
    centre = encoder.half_width
    ids = batch["windows"][:, encoder.channels[0].start, centre]
    width = sum(e.embedding_dim for e in network.embeddings)
    word_part = slice(centre * width, centre * width + d)
    for row, i in enumerate(ids.tolist()):
        if i < encoder.trained_words and network.swappable[i]:
            torch.testing.assert_close(x[row, word_part], start[i], rtol=0, atol=0)   # untuned, swapped in
        else:
            torch.testing.assert_close(x[row, word_part], tuned[row, word_part], rtol=0, atol=0)
        torch.testing.assert_close(tuned[row, word_part], table.trained.weight[i].detach(), rtol=0, atol=0)


def test_the_swap_rate_is_the_probability(encoder, vectors):
    network = net(encoder, vectors, 0.3).train()
    windows = batch_of(encoder, TRAIN * 200)["windows"]
    channel = encoder.channels[0].start
    ids = windows[:, channel]
    candidates = (ids < encoder.trained_words) & network.swappable[ids.clamp(max=encoder.trained_words - 1)]
    swapped = network._noisy_word_ids(windows)[:, channel] != ids
    assert not bool((swapped & ~candidates).any())
    assert float(swapped.sum() / candidates.sum()) == pytest.approx(0.3, abs=0.03)
    other = [c for c in range(windows.shape[1]) if c != channel]
    assert torch.equal(network._noisy_word_ids(windows)[:, other], windows[:, other])


def test_off_by_default_and_bit_for_bit_the_network_without_it(encoder, vectors):
    batch = batch_of(encoder, TRAIN)
    plain, off = net(encoder, vectors, 0.0).train(), net(encoder, "none", 0.0).train()
    assert plain.embeddings[0].frozen is None
    torch.manual_seed(5)
    a = plain.training_loss(batch)
    torch.manual_seed(5)
    b = net(encoder, vectors, 0.0).train().training_loss(batch)
    assert torch.equal(a, b) and off.pretrained_swap == 0.0


def test_bad_values_and_no_vectors_are_named(encoder, vectors):
    for p in (-0.1, 1.0):
        with pytest.raises(ConfigError, match=r"model\.pretrained_swap must be in \[0, 1\)"):
            net(encoder, vectors, p)
    module = WindowNERModule(encoder=encoder.state_dict(), word_vectors="none", pretrained_swap=0.2, **ARGS)
    with pytest.raises(ConfigError, match=r"model\.pretrained_swap .* none has one"):
        module.on_fit_start()


def test_checkpoint_of_a_swap_run_rebuilds(encoder, vectors, tmp_path):
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    from cs224n_nn.ner.checkpoint_format import load_window_network
    from cs224n_nn.ner.features import collate_sentences, encode_sentence

    torch.manual_seed(0)
    module = WindowNERModule(encoder=encoder.state_dict(), word_vectors=vectors, pretrained_swap=0.5, **ARGS)
    loader = DataLoader([encode_sentence(encoder, s) for s in TRAIN], batch_size=2, collate_fn=collate_sentences)
    trainer = pl.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(module, loader)
    path = tmp_path / "swap.ckpt"
    trainer.save_checkpoint(path)
    loaded = load_window_network(path)
    batch = batch_of(encoder, TRAIN)
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch["windows"]), module(batch["windows"]), rtol=0, atol=0)


def test_word_dropout_makes_words_unk_at_its_rate_and_nothing_else(encoder):
    torch.manual_seed(0)
    network = WindowNERNetwork(encoder.state_dict(), word_vectors="none", word_dropout=0.2, **ARGS).train()
    windows = batch_of(encoder, TRAIN * 200)["windows"]
    channel = encoder.channels[0].start
    vocab = encoder.vocabs["word"]
    ids = windows[:, channel]
    noisy = network._noisy_word_ids(windows)
    changed = noisy[:, channel] != ids
    assert bool((noisy[:, channel][changed] == vocab.unk_id).all())
    words = ids >= len(vocab.specials)  # <s>, </s> and padding stay what they are
    assert not bool((changed & ~words).any())
    assert float(changed.sum() / (words & (ids != vocab.unk_id)).sum()) == pytest.approx(0.2, abs=0.03)
    other = [c for c in range(windows.shape[1]) if c != channel]
    assert torch.equal(noisy[:, other], windows[:, other])
    # evaluation sees the words as they are: the same vectors as a network without the option
    torch.manual_seed(0)
    plain = WindowNERNetwork(encoder.state_dict(), word_vectors="none", **ARGS).eval()
    network.eval()
    torch.testing.assert_close(network(windows), plain(windows), rtol=0, atol=0)


def test_word_noise_needs_the_word_feature():
    casing_only = WindowEncoder.build(TRAIN, features=("casing",), half_width=1)
    for option in ("pretrained_swap", "word_dropout"):
        with pytest.raises(ConfigError, match=rf"model\.{option} needs the word feature"):
            WindowNERNetwork(casing_only.state_dict(), word_vectors="none", **{option: 0.1}, **ARGS)
    with pytest.raises(ConfigError, match=r"model\.word_dropout must be in \[0, 1\)"):
        WindowNERNetwork(casing_only.state_dict(), word_vectors="none", word_dropout=1.5, **ARGS)
