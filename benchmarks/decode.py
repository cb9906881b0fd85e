"""Prediction throughput: how fast ``cs224n-nn predict`` tags a 100,000-token text on one core.

    python -m benchmarks.decode                       # untrained CoNLL-sized model, both decoders
    python -m benchmarks.decode --ckpt BEST.ckpt      # a trained checkpoint
    python -m benchmarks.decode --tokens 20000 --repeats 1
    python -m benchmarks.run --only decode            # the rows of BENCHMARKS.md (rows() below)

The text is the sentences of a CoNLL file (``eng.testa`` when the data is
there, else the packaged sample dev file) repeated until it holds
``--tokens`` tokens, tagged as ``predict`` tags stdin lines: batches of
``--batch-size`` sentences through :func:`cs224n_nn.ner.commands.tag_sentences`
(window encoding of the whole batch, one network call, one Viterbi over
the batch, one conversion back to the file's scheme). Also timed on its own: the Viterbi decoding of those sentences
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
of this process (what one core does when the machine is not shared).
Target (issue 14): at least 20,000 tokens/s for the whole ``predict`` path.

:func:`rows` gives the same measurement as rows of BENCHMARKS.md (group
``decode``; no native twin, so the figure is set against the target itself):
``tiny`` 2,000 tokens of the packaged sample, ``quick`` 20,000 and ``full``
100,000 tokens of eng.testa (the vocabularies from eng.train) when the data
is there.
"""

from __future__ import annotations

import argparse
import time
from itertools import cycle
from pathlib import Path

import torch

from benchmarks._timing import Context, Row, Target

ROOT = Path(__file__).resolve().parents[1]
TARGET = Target(">=", 20_000, unit="tokens/s")
BATCH_SIZE = 512  # cs224n-nn predict's --batch-size default
# mode: (tokens of text, runs of each figure (the best is kept), use CoNLL-2003 when present)
PRESETS = {"tiny": (2_000, 1, False), "quick": (20_000, 2, True), "full": (100_000, 3, True)}
LOSSES = ("cross_entropy", "sentence_ll")


def corpus(conll_dir: str | Path | None, use_conll: bool = True) -> tuple[Path, Path, str]:
    """``(train, text, notice)``: eng.train and eng.testa when asked for and present, else the packaged sample."""
    from cs224n_nn.ner.datamodule import SAMPLE_FILES

    folder = Path(conll_dir or ".")
    if use_conll and (folder / "eng.train").is_file() and (folder / "eng.testa").is_file():
        return folder / "eng.train", folder / "eng.testa", ""
    why = "tiny preset" if not use_conll else f"CoNLL-2003 not found at {folder}"
    return SAMPLE_FILES["train"], SAMPLE_FILES["val"], f"{why}: the packaged sample corpus"


def text(path: Path, n_tokens: int):
    """The non-empty sentences of a CoNLL file, cycled, as unlabeled sentences holding ``n_tokens`` tokens."""
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


def untrained_models(train: Path, losses=LOSSES) -> dict:
    """Eval-mode models of the shipped CoNLL config (its features, window and sizes), vocabularies from ``train``,
    one per loss."""
    import yaml

    from cs224n_nn.configs import CONFIGS
    from cs224n_nn.ner.conll import read_conll
    from cs224n_nn.ner.features import WindowEncoder
    from cs224n_nn.ner.model import WindowNERModule

    shipped = yaml.safe_load(CONFIGS["conll2003"].read_text(encoding="utf-8"))
    data, model = shipped["data"], shipped["model"]
    encoder = WindowEncoder.build(read_conll(train), features=data["features"], half_width=data["half_width"],
                                  scheme=data["tag_scheme"])
    return {
        loss: WindowNERModule(encoder=encoder.state_dict(), word_vectors="none", hidden_dims=model["hidden_dims"],
                              loss=loss, feature_dims=model["feature_dims"]).eval()
        for loss in losses
    }


def predict_runner(model, sentences, batch_size: int = BATCH_SIZE):
    """One call tags ``sentences`` as ``predict`` does, in batches, from a fresh process's state."""
    from cs224n_nn.ner.commands import _batches, tag_sentences

    def run():
        model.encoder.clear_memo()  # a fresh process: no token's ids remembered, no conversion table yet
        for chunk in _batches(sentences, batch_size):
            tag_sentences(model, chunk)

    return run


def best(fn, repeats: int) -> tuple[float, float]:
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


def rate(n: int, seconds: tuple[float, float]) -> str:
    wall, cpu = seconds
    return f"{n / wall:,.0f} tokens/s ({wall:.2f} s wall; {n / cpu:,.0f} tokens per CPU second)"


def rows(ctx: Context) -> list[Row]:
    """BENCHMARKS.md's rows: ``predict`` throughput of each model, in sentences and as one line, one thread."""
    from cs224n_nn.ner.conll import Sentence

    n_tokens, repeats, use_conll = PRESETS[ctx.mode]
    train, path, notice = corpus(ctx.conll_dir, use_conll)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the target is per core
    try:
        torch.manual_seed(0)
        sentences = text(path, n_tokens)
        n = sum(len(s) for s in sentences)
        line = [Sentence.unlabeled([t for s in sentences for t in s.tokens])]
        out = []
        for loss, model in untrained_models(train).items():
            for piece, given, target in (("predict throughput", sentences, TARGET),
                                         ("predict, the text as one line", line, None)):
                wall, cpu = best(predict_runner(model, given), repeats)
                shape = f"{len(given):,} sentences" if len(given) > 1 else "one line"
                row = Row(
                    group="decode", piece=piece, native_name="(none)",
                    setting=f"{loss}, {n:,} tokens of {path.name} ({shape}), 1 thread",
                    ours=n / wall, native=None, ratio=None, unit="tokens/s", target=target, runs=repeats,
                    note=f"{loss}, {piece}: {n / cpu:,.0f} tokens per CPU second of the process; wall clock "
                         f"tokens/s best of {repeats} run(s), batches of {BATCH_SIZE} sentences; an untrained "
                         "model of experiments/conll2003.yaml's size" + (f"; {notice}" if notice else ""),
                )
                ctx.log(f"  decode      {loss:<14} {piece:<30} {rate(n, (wall, cpu))}")
                out.append(row)
        return out
    finally:
        torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.run import DEFAULT_CONLL_DIR
    from cs224n_nn.ner.commands import _batches
    from cs224n_nn.ner.conll import Sentence
    from cs224n_nn.ner.model import load_window_ner

    parser = argparse.ArgumentParser(prog="python -m benchmarks.decode", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", help="a checkpoint written by cs224n-nn train (default: untrained models)")
    parser.add_argument("--data", help="CoNLL file whose sentences make the text (default: eng.testa or sample)")
    parser.add_argument("--conll-dir", type=Path, default=DEFAULT_CONLL_DIR,
                        help="folder holding CoNLL-2003 eng.train and eng.testa (falls back to the shipped sample)")
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="sentences per batch (predict's default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-single-line", action="store_true", help="skip the one-sentence case")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    train, path, notice = corpus(args.conll_dir)
    if notice:
        print(f"note: {notice}")
    if args.data:
        path = Path(args.data)
    sentences = text(path, args.tokens)
    n = sum(len(s) for s in sentences)
    print(f"text: {n:,} tokens in {len(sentences):,} sentences from {path}; 1 thread; best of {args.repeats}")
    models = {Path(args.ckpt).name: load_window_ner(args.ckpt)} if args.ckpt else untrained_models(train)
    for name, model in models.items():
        # Decoding alone: the batches' scores computed once, outside the timing.
        with torch.inference_mode():
            scored = []
            for chunk in _batches(sentences, args.batch_size):
                windows = model.encoder.encode_batch([s.tokens for s in chunk])
                scored.append((model(windows), torch.tensor([len(s) for s in chunk])))

        def decode():
            with torch.inference_mode():
                for scores, lengths in scored:
                    model.decode_ids(scores, lengths)

        whole = best(predict_runner(model, sentences, args.batch_size), args.repeats)
        alone = best(decode, args.repeats)
        print(f"{name}: predict {rate(n, whole)}")
        print(f"{name}: Viterbi alone {rate(n, alone)}")
        if not args.no_single_line:
            line = [Sentence.unlabeled([t for s in sentences for t in s.tokens])]
            single = best(predict_runner(model, line), 1)
            print(f"{name}: the same tokens as one {n:,}-token line: {rate(n, single)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
