"""Entity scores split by what the model knows of the entity's words.

A window model tags well the names it has trained on and worse the ones it
has not.  This module puts each entity, gold or predicted, into one of three
groups by its words' lookups in the word table (:mod:`cs224n_nn.ner.network`,
``WordEmbedding``):

* ``training``: every word is a training word (a trained row);
* ``pretrained``: some word is known only from the pretrained vectors
  (``data.pretrained_vocab``: a frozen row that no training window holds);
* ``unknown``: some word is ``<unk>`` (neither the training data nor the
  pretrained vectors know it).

An entity goes to the last group any of its words falls into.  Within a
group the figures are conlleval's (:mod:`cs224n_nn.ner.metrics`): a
predicted entity is correct when a gold one has its span and type;
precision counts the predicted entities of the group, recall the gold ones,
each predicted entity grouped by its own words.
``cs224n-nn evaluate --by-word-kind`` prints the table.
"""

from __future__ import annotations

from collections.abc import Sequence

from cs224n_nn.errors import ConfigError
from cs224n_nn.ner.conll import spans
from cs224n_nn.ner.metrics import precision_recall_f1

__all__ = ["WORD_KINDS", "WordKindScores"]

WORD_KINDS = {
    "training": "training words only",
    "pretrained": "a word only the pretrained vectors know",
    "unknown": "an unknown word",
}


class WordKindScores:
    """Counts per word kind (module docstring), updated sentence by sentence.

    Args:
        encoder: the model's :class:`~cs224n_nn.ner.features.WindowEncoder`
            (it must have the ``word`` feature).
        scheme: the tag scheme of the tags given to :meth:`update`.
    """

    def __init__(self, encoder, scheme: str):
        if "word" not in encoder.features:
            raise ConfigError("--by-word-kind needs a model with the word feature")
        self.vocab, self.trained_words, self.scheme = encoder.vocabs["word"], encoder.trained_words, scheme
        self.counts = {kind: {"tp": 0, "found": 0, "gold": 0} for kind in WORD_KINDS}

    def _kinds(self, tokens: Sequence[str]) -> list[int]:
        ids = self.vocab.encode(tokens)
        return [2 if i == self.vocab.unk_id else 1 if i >= self.trained_words else 0 for i in ids]

    def update(self, tokens: Sequence[str], gold: Sequence[str], predicted: Sequence[str]) -> None:
        kinds = self._kinds(tokens)
        names = list(WORD_KINDS)
        gold_spans, found_spans = set(spans(gold, self.scheme)), set(spans(predicted, self.scheme))
        for entities, key in ((gold_spans, "gold"), (found_spans, "found")):
            for _, start, end in entities:
                self.counts[names[max(kinds[start:end])]][key] += 1
        for _, start, end in gold_spans & found_spans:
            self.counts[names[max(kinds[start:end])]]["tp"] += 1

    def rows(self) -> list[tuple[str, int, float, float, float]]:
        """``(label, gold entities, precision, recall, f1)`` per kind (:func:`~cs224n_nn.ner.metrics.precision_recall_f1`)."""
        out = []
        for kind, label in WORD_KINDS.items():
            c = self.counts[kind]
            scores = precision_recall_f1(c["tp"], c["found"], c["gold"])
            out.append((label, c["gold"], *(float(scores[m]) for m in ("precision", "recall", "f1"))))
        return out

    def table(self) -> str:
        lines = [f"{'entities with':<42}{'gold':>6}{'precision':>10}{'recall':>10}{'f1':>10}"]
        lines += [f"{label:<42}{n:>6}{p:>10.4f}{r:>10.4f}{f:>10.4f}" for label, n, p, r, f in self.rows()]
        return "\n".join(lines)
