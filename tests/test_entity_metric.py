"""EntityF1 against an independent conlleval-style chunk counter."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cs224n_nn.ner.metrics import EntityF1

# ---------------------------------------------------------------------------
# A reference written from conlleval's description and NOT using
# cs224n_nn.ner.conll: conlleval scans tokens once, keeps "last tag/type"
# for gold and guess, and counts a correct chunk when both start together
# with the same type and both end together.  Sentence breaks act as "O".


def _split(tag):
    return ("O", "") if tag == "O" else (tag[0], tag[2:])


def _ends(prev, tag, prev_type, type_):
    return (
        (prev in "BI" and tag in "BO")
        or (prev == "E" and tag in "EIO")
        or (prev != "O" and prev_type != type_)
    )


def _starts(prev, tag, prev_type, type_):
    return (
        (prev in "BIO" and tag == "B")
        or (prev in "OE" and tag in "IE")
        or (tag != "O" and prev_type != type_)
    )


def conlleval_counts(gold_sentences, pred_sentences):
    """(correct, found_guessed, found_gold) Counters per type, conlleval's way."""
    correct, guessed, gold = Counter(), Counter(), Counter()
    rows = []
    for g, p in zip(gold_sentences, pred_sentences):
        rows += list(zip(g, p)) + [("O", "O")]
    in_correct = False
    last_g, last_gt, last_p, last_pt = "O", "", "O", ""
    for g_tag, p_tag in rows:
        g, gt = _split(g_tag)
        p, pt = _split(p_tag)
        if in_correct:
            g_end, p_end = _ends(last_g, g, last_gt, gt), _ends(last_p, p, last_pt, pt)
            if g_end and p_end and last_gt == last_pt:
                in_correct = False
                correct[last_gt] += 1
            elif g_end != p_end or gt != pt:
                in_correct = False
        g_start, p_start = _starts(last_g, g, last_gt, gt), _starts(last_p, p, last_pt, pt)
        if g_start and p_start and gt == pt:
            in_correct = True
        if g_start:
            gold[gt] += 1
        if p_start:
            guessed[pt] += 1
        last_g, last_gt, last_p, last_pt = g, gt, p, pt
    return correct, guessed, gold


def reference_scores(gold_sentences, pred_sentences, types):
    correct, guessed, gold = conlleval_counts(gold_sentences, pred_sentences)

    def prf(c, f, g):
        p = c / f if f else 0.0
        r = c / g if g else 0.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)

    overall = prf(sum(correct.values()), sum(guessed.values()), sum(gold.values()))
    out = dict(zip(("precision", "recall", "f1"), overall))
    for t in types:
        out.update(zip((f"precision_{t}", f"recall_{t}", f"f1_{t}"), prf(correct[t], guessed[t], gold[t])))
    return out


# ---------------------------------------------------------------------------

TAGS = ["O", "I-PER", "I-LOC", "I-ORG", "I-MISC", "B-PER", "B-LOC", "B-ORG", "B-MISC"]
TYPES = ["LOC", "MISC", "ORG", "PER"]


def encode(sentences):
    ids = [TAGS.index(t) for s in sentences for t in s]
    return torch.tensor(ids, dtype=torch.long), torch.tensor([len(s) for s in sentences], dtype=torch.long)


def score(gold, pred, tags=TAGS, scheme="auto"):
    metric = EntityF1(tags, scheme=scheme)
    target, lengths = encode(gold)
    preds, _ = encode(pred)
    metric.update(preds, target, lengths)
    return {k: v.item() for k, v in metric.compute().items()}


def assert_scores_equal(got, expected):
    assert set(got) == set(expected)
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key


def test_hand_worked_example():
    gold = [["I-PER", "I-PER", "O", "I-LOC"], ["I-ORG", "O"]]
    pred = [["I-PER", "O", "O", "I-LOC"], ["I-ORG", "I-ORG"]]
    # gold: PER[0,2) LOC[3,4) ORG[0,1); pred: PER[0,1) LOC[3,4) ORG[0,2): one match (LOC).
    got = score(gold, pred)
    assert got["precision"] == pytest.approx(1 / 3)
    assert got["recall"] == pytest.approx(1 / 3)
    assert got["f1"] == pytest.approx(1 / 3)
    assert got["f1_LOC"] == 1.0
    assert got["f1_PER"] == 0.0 and got["precision_ORG"] == 0.0
    # MISC occurs nowhere: 0, as conlleval prints 0.00.
    assert got["precision_MISC"] == got["recall_MISC"] == got["f1_MISC"] == 0.0


def test_iob1_and_iob2_spellings_score_the_same():
    gold_iob1 = [["I-PER", "I-PER", "B-PER", "O", "I-LOC"]]
    gold_iob2 = [["B-PER", "I-PER", "B-PER", "O", "B-LOC"]]
    pred_iob2 = [["B-PER", "I-PER", "B-PER", "O", "B-ORG"]]
    a = score(gold_iob1, pred_iob2)
    assert a == score(gold_iob2, pred_iob2)
    assert a["precision"] == pytest.approx(2 / 3) and a["recall"] == pytest.approx(2 / 3)


def test_a_chunk_split_by_a_sentence_break_is_two_chunks():
    # The same ids laid out as one sentence or two give different chunks.
    one = EntityF1(TAGS)
    two = EntityF1(TAGS)
    ids = torch.tensor([1, 1])
    one.update(ids, torch.tensor([1, 0]), torch.tensor([2]))
    two.update(ids, torch.tensor([1, 0]), torch.tensor([1, 1]))
    assert one.compute()["precision"] == 0.0
    assert two.compute()["precision"] == 0.5


def test_iobes():
    tags = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "S-LOC"]
    metric = EntityF1(tags)  # auto -> IOBES
    assert metric.scheme == "IOBES"
    gold = torch.tensor([4, 4, 1, 3, 5])  # S-PER S-PER B-PER E-PER S-LOC: 4 entities
    pred = torch.tensor([1, 3, 1, 3, 5])  # B-PER E-PER B-PER E-PER S-LOC: 3, two right
    metric.update(pred, gold, torch.tensor([5]))
    out = metric.compute()
    assert out["precision"] == pytest.approx(2 / 3) and out["recall"] == pytest.approx(2 / 4)


lists_of_sentences = st.lists(
    st.integers(0, 12).flatmap(
        lambda n: st.tuples(
            st.lists(st.sampled_from(TAGS), min_size=n, max_size=n),
            st.lists(st.sampled_from(TAGS), min_size=n, max_size=n),
        )
    ),
    max_size=8,
)


@settings(max_examples=250, deadline=None)
@given(lists_of_sentences)
def test_matches_reference_on_random_iob_tags(pairs):
    gold = [g for g, _ in pairs]
    pred = [p for _, p in pairs]
    assert_scores_equal(score(gold, pred), reference_scores(gold, pred, TYPES))


@settings(max_examples=100, deadline=None)
@given(lists_of_sentences, st.integers(0, 8))
def test_halves_merged_equal_the_whole(pairs, cut):
    gold = [g for g, _ in pairs]
    pred = [p for _, p in pairs]
    cut = min(cut, len(pairs))
    whole = EntityF1(TAGS)
    first, second, summed = EntityF1(TAGS), EntityF1(TAGS), EntityF1(TAGS)
    parts = ((whole, gold, pred), (first, gold[:cut], pred[:cut]), (second, gold[cut:], pred[cut:]))
    for metric, g, p in parts:
        target, lengths = encode(g)
        metric.update(encode(p)[0], target, lengths)
    summed.update(*(torch.zeros(0, dtype=torch.long),) * 3)  # an empty batch changes nothing
    for name in ("tp", "found", "gold"):
        setattr(summed, name, getattr(first, name) + getattr(second, name))
    first.merge_state(second)
    expected = whole.compute()
    for metric in (first, summed):
        got = metric.compute()
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_perfect_and_empty():
    assert_scores_equal(score([["I-PER", "O"]], [["I-PER", "O"]]), {
        "precision": 1.0, "recall": 1.0, "f1": 1.0,
        **{f"{m}_{t}": (1.0 if t == "PER" else 0.0) for m in ("precision", "recall", "f1") for t in TYPES},
    })
    with pytest.warns(UserWarning, match="before the ``update``"):
        empty = EntityF1(TAGS).compute()
    assert all(v.item() == 0.0 for v in empty.values())


def test_states_accumulate_and_reset():
    metric = EntityF1(TAGS)
    target, lengths = encode([["I-PER", "O", "I-LOC"]])
    metric.update(target, target, lengths)
    metric.update(target, target, lengths)
    assert metric.gold.tolist() == [2, 0, 0, 2]  # LOC MISC ORG PER
    assert metric.tp.tolist() == metric.found.tolist() == metric.gold.tolist()
    metric.reset()
    assert metric.gold.sum() == 0


def test_real_file_against_reference(conll_dir):
    from cs224n_nn.ner.conll import read_conll

    sentences = read_conll(conll_dir / "eng.testa")[:800]
    gold = [list(s.tags) for s in sentences]
    # Predictions: gold with every 7th token's tag replaced, a deterministic corruption.
    pred = []
    k = 0
    for s in gold:
        row = []
        for t in s:
            row.append(TAGS[(TAGS.index(t) + 3) % len(TAGS)] if k % 7 == 0 else t)
            k += 1
        pred.append(row)
    got = score(gold, pred)
    assert_scores_equal(got, reference_scores(gold, pred, TYPES))
    assert 0.3 < got["f1"] < 0.95


@pytest.mark.parametrize(
    "preds, target, lengths, fragment",
    [
        (torch.tensor([0, 1]), torch.tensor([0]), torch.tensor([1]), "preds has 2 tokens but target has 1"),
        (torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([3]), "sum to the 2 tokens"),
        (torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([3, -1]), ">= 0"),
        (torch.tensor([0, 9]), torch.tensor([0, 1]), torch.tensor([2]), "class id 9"),
        (torch.tensor([0, -1]), torch.tensor([0, 1]), torch.tensor([2]), "class id -1"),
        (torch.tensor([[0, 1]]), torch.tensor([[0, 1]]), torch.tensor([2]), "must be 1-D"),
        (torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), torch.tensor([2]), "integer ids"),
    ],
)
def test_update_validates(preds, target, lengths, fragment):
    with pytest.raises(ValueError, match=fragment):
        EntityF1(TAGS).update(preds, target, lengths)


def test_constructor_validates():
    with pytest.raises(ValueError, match="unknown tag scheme 'BIO'"):
        EntityF1(TAGS, scheme="BIO")
    with pytest.raises(ValueError, match="'PER'"):
        EntityF1(["O", "PER"])
    with pytest.raises(ValueError, match="empty"):
        EntityF1([])
    with pytest.raises(ValueError, match="no E-/S- tags"):
        EntityF1(["O", "S-PER"], scheme="IOB2")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda():
    metric = EntityF1(TAGS).to("cuda")
    target, lengths = encode([["I-PER", "O"]])
    metric.update(target.cuda(), target.cuda(), lengths.cuda())
    assert metric.compute()["f1"].item() == 1.0
