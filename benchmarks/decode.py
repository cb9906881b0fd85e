"""Prediction throughput: how fast ``cs224n-nn predict`` tags a 100,000-token text on one core.

    python -m benchmarks.decode                       # untrained CoNLL-sized model, both decoders
    python -m benchmarks.decode --ckpt BEST.ckpt      # a trained checkpoint
    python -m benchmarks.decode --tokens 20000 --repeats 1

The text is the sentences of a CoNLL file (``eng.testa`` when the data is
there, else the packaged sample dev file) repeated until it holds
``--tokens`` tokens, tagged as ``predict`` tags stdin lines: batches of
``--batch-size`` sentences through :func:`cs224n_nn.ner.commands.tag_sentences`
(window encoding, the network, Viterbi, conversion back to the file's
scheme). Also timed on its own: the Viterbi decoding of those sentences
from precomputed scores (:meth:`WindowNERModule.decode_ids`), and the same
tokens as *one* line (one sentence of ``--tokens`` tokens: the worst case
for a loop over time steps).

Without ``--ckpt`` the model is untrained (random word vectors: loading GloVe
changes no cost per token) with the network of ``experiments/conll2003.yaml``
(word, casing, shape, prefix3, suffix3; window 7; one tanh layer of 500),
once with ``loss: cross_entropy`` (Viterbi over fixed IOBES rules) and once
with ``loss: sentence_ll`` (Viterbi with the CRF's transition scores).
``torch.set_num_threads(1)``: the figure is for one core. Each figure is the
best of ``--repeats`` runs (the machine is shared; the best run is the one
least disturbed), given as wall-clock tokens/s and as tokens per CPU second
of this process (what one core does when the machine is not shared). Target: at least 20,000 tokens/s for the whole ``predict``
path.
"""

from __future__ import annotations

import argparse
import time
from itertools import cycle, islice
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CONLL = ROOT.parent / "shared" / "data" / "conll2003"


def _text(path: Path, n_tokens: int):
    from cs224n_nn.ner.conll import Sentence, read_conll

    sentences = [s for s in read_conll(path) if len(s)]
    out, total = [], 0
    for s in cycle(sentences):
        if total >= n_tokens:
            break
        tokens = s.tokens[: n_tokens - total]
        out.append(Sentence.unlabeled(list(tokens)))
        total += len(tokens)
    return out


def _models(args):
    from cs224n_nn.ner.conll import read_conll
    from cs224n_nn.ner.features import WindowEncoder
    from cs224n_nn.ner.model import WindowNERModule, load_window_ner

    if args.ckpt:
        return {Path(args.ckpt).name: load_window_ner(args.ckpt)}
    train = CONLL / "eng.train"
    if not train.is_file():
        from cs224n_nn.ner.datamodule import SAMPLE_FILES

        print(f"note: {train} not found; vocabularies from the packaged sample corpus")
        train = SAMPLE_FILES["train"]
    encoder = WindowEncoder.build(read_conll(train), features=["word", "casing", "shape", "prefix3", "suffix3"],
                                  half_width=3, scheme="IOBES")
    return {
        loss: WindowNERModule(encoder=encoder.state_dict(), word_vectors="none", hidden_dims=[500], loss=loss,
                              feature_dims={"word": 50, "casing": 8, "shape": 8, "prefix3": 16, "suffix3": 16}).eval()
        for loss in ("cross_entropy", "sentence_ll")
    }


def _best(fn, repeats: int) -> tuple[float, float]:
    """Best (wall seconds, CPU seconds of this process) over ``repeats`` runs.

    On a shared machine the wall time also counts the time other processes
    held the core; the CPU time is what the work itself took on one core.
    """
    runs = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(runs)


def _rate(n: int, seconds: tuple[float, float]) -> str:
    wall, cpu = seconds
    return f"{n / wall:,.0f} tokens/s ({wall:.2f} s wall; {n / cpu:,.0f} tokens per CPU second)"


def main(argv: list[str] | None = None) -> int:
    from cs224n_nn.ner.commands import _batches, tag_sentences
    from cs224n_nn.ner.conll import Sentence
    from cs224n_nn.ner.features import collate_sentences, encode_sentence

    parser = argparse.ArgumentParser(prog="python -m benchmarks.decode", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", help="a checkpoint written by cs224n-nn train (default: untrained models)")
    parser.add_argument("--data", help="CoNLL file whose sentences make the text (default: eng.testa or sample)")
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=512, help="sentences per batch (predict's default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-single-line", action="store_true", help="skip the one-sentence case")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.data:
        path = Path(args.data)
    elif (CONLL / "eng.testa").is_file():
        path = CONLL / "eng.testa"
    else:
        from cs224n_nn.ner.datamodule import SAMPLE_FILES

        path = SAMPLE_FILES["val"]
    sentences = _text(path, args.tokens)
    n = sum(len(s) for s in sentences)
    print(f"text: {n:,} tokens in {len(sentences):,} sentences from {path}; 1 thread; best of {args.repeats}")
    for name, model in _models(args).items():
        def predict():
            model.encoder._ids_of.clear()  # a fresh process: no token's ids remembered yet
            for chunk in _batches(sentences, args.batch_size):
                tag_sentences(model, chunk)

        # Decoding alone: the batches' scores computed once, outside the timing.
        with torch.inference_mode():
            scored = []
            for chunk in _batches(sentences, args.batch_size):
                batch = collate_sentences([encode_sentence(model.encoder, s, labeled=False) for s in chunk])
                scored.append((model(batch["windows"]), batch["lengths"]))

        def decode():
            with torch.inference_mode():
                for scores, lengths in scored:
                    model.decode_ids(scores, lengths)

        whole = _best(predict, args.repeats)
        alone = _best(decode, args.repeats)
        print(f"{name}: predict {_rate(n, whole)}")
        print(f"{name}: Viterbi alone {_rate(n, alone)}")
        if not args.no_single_line:
            line = [Sentence.unlabeled([t for s in sentences for t in s.tokens])]
            model.encoder._ids_of.clear()
            single = _best(lambda: tag_sentences(model, line), 1)
            print(f"{name}: the same tokens as one {n:,}-token line: {_rate(n, single)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
