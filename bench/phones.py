"""Phone recognition on held-out speakers, word matching, and open-vocabulary spotting.

Trains a phone model (``kws phones train``'s recipe, through :func:`kws.train.fit`) on the
shared development data only (``../shared/data``): ``tts_commands``, ``sc_v1_sample``,
``fsdd_commands`` and the speakers of ``sc_v2_test_half`` that a salted speaker hash puts
in its training and validation halves. The other half of ``sc_v2_test_half``'s speakers
(real people, ``testing``) is never seen; :func:`kws.dataset.combine` keeps any speaker
found in several folders in the most held-out split. The ``--holdout`` words are left out
of training entirely (every clip of them, in every folder).

Reported, on the held-out speakers of ``sc_v2_test_half``:

* PER (substitutions, deletions, insertions) of the trained words, greedy decoding;
* word accuracy when the decoded phones are matched to the closest lexicon entry (all
  lexicon words are candidates), and, on the same clips, the accuracy of a classifier
  (``--classifier``, default ``models/default``) next to the phone model's in the
  classifier's own labels (its words, ``_unknown_`` for other words, ``_silence_``);
* for each held-out word: detection rate with ``kws phones spot``'s search on every clip
  of it (all folders: the model never heard the word), and false alarms on held-out
  speakers' clips of other words (share of clips with a detection), at a few thresholds;
* the same search for the ten trained keywords on the held-out speakers, for comparison;
* spotting in one long recording made of held-out clips (sliding windows), with times.

Usage::

    nice -n 15 .venv/bin/python bench/phones.py [--epochs 30] [--out models/bench-phones]
        [--holdout happy,marvin,sheila] [--classifier models/default] [--reuse]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
FOLDERS = ("tts_commands", "sc_v1_sample", "fsdd_commands")
V2 = "sc_v2_test_half"
THRESHOLDS = (0.1, 0.3, 0.5)
#: Trained words also hidden in the long recording, for comparison with the held-out ones.
LONG_TRAINED = ("yes", "stop")


def datasets(shared: Path):
    """The combined dataset: three folders as they are, sc_v2_test_half split by speaker."""
    from kws.dataset import combine, resplit_by_speaker, scan

    parts = [scan(shared / name) for name in FOLDERS]
    parts.append(resplit_by_speaker(scan(shared / V2), 10, 50, salt="kws-v2-holdout"))
    return combine(parts)


def balanced(dataset, shared: Path, v2_repeat: int, fsdd_share: int):
    """The training split rebalanced towards real, varied speakers.

    ``fsdd_commands`` has 1,500 training clips from three speakers and ``sc_v2_test_half``
    about 900 from many real ones: every ``fsdd_share``-th clip of the former is kept and
    the latter's clips are repeated ``v2_repeat`` times. Validation and testing clips are
    left as they are.
    """
    import dataclasses

    from kws.dataset import TRAINING

    clips, fsdd_seen = [], 0
    for clip in dataset.clips:
        if clip.split != TRAINING:
            clips.append(clip)
        elif shared / "fsdd_commands" in clip.path.parents:
            fsdd_seen += 1
            if fsdd_seen % fsdd_share == 0:
                clips.append(clip)
        elif shared / V2 in clip.path.parents:
            clips += [clip] * v2_repeat
        else:
            clips.append(clip)
    return dataclasses.replace(dataset, clips=clips)


def train(args, dataset):
    """Train (or reuse) the benchmark's phone model; returns its folder and training time."""
    from kws.cli import _console
    from kws.cli._training import RichEvents
    from kws.phones.config import PhoneTrainConfig
    from kws.phones.train import PhonesTask
    from kws.train import fit

    out = Path(args.out)
    if args.reuse and (out / "card.json").is_file():
        return out, None
    config = PhoneTrainConfig(
        data=tuple(str(args.shared / name) for name in (*FOLDERS, V2)),
        exclude=tuple(args.holdout), epochs=args.epochs, out=str(out), seed=args.seed,
        learning_rate=args.learning_rate,
    )
    started = time.perf_counter()
    task = PhonesTask(dataset=balanced(dataset, args.shared, args.v2_repeat, args.fsdd_share))
    fit(task, config, overwrite=True, events=RichEvents(_console.stderr()),
        command="bench/phones.py " + " ".join(sys.argv[1:]))
    return out, time.perf_counter() - started


def load(clips, recognizer):
    """Waveforms of clips at the model's rate and length (through the shared cache)."""
    from kws.cli import _console
    from kws.cli._training import RichEvents
    from kws.train.data import decode_clips

    x, kept, _ = decode_clips(clips, recognizer.sample_rate, recognizer.input_length,
                              RichEvents(_console.stderr()))
    return x, kept


def classifier_predictions(folder: Path, clips):
    """A classifier's labels for clips, or None when there is no classifier."""
    from kws.cli import _console
    from kws.cli._training import RichEvents
    from kws.evaluate import predict_probabilities
    from kws.modelfolder import read_card
    from kws.train.data import decode_clips

    if not (folder / "card.json").is_file():
        return None, None
    card = read_card(folder)
    x, kept, _ = decode_clips(clips, card.sample_rate, card.input_length,
                              RichEvents(_console.stderr()))
    probabilities = predict_probabilities(folder, x)
    labels = [card.labels[i] for i in probabilities.argmax(axis=1)]
    return dict(zip([c.path for c in kept], labels, strict=True)), card.labels


def in_labels(word: str, labels) -> str:
    """A word in a classifier's label space: itself, ``_silence_`` or ``_unknown_``."""
    from kws.dataset import UNKNOWN

    return word if word in labels else UNKNOWN


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "models" / "bench-phones"))
    parser.add_argument("--holdout", default="happy,marvin,sheila",
                        help="Comma-separated words left out of training.")
    parser.add_argument("--classifier", default=str(ROOT / "models" / "default"))
    parser.add_argument("--v2-repeat", type=int, default=2,
                        help="Times each sc_v2_test_half training clip is seen per epoch.")
    parser.add_argument("--fsdd-share", type=int, default=3,
                        help="Keep every N-th fsdd_commands training clip.")
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--reuse", action="store_true",
                        help="Reuse the model in --out if it is there.")
    args = parser.parse_args()
    args.holdout = [w.strip() for w in args.holdout.split(",") if w.strip()]

    from kws.dataset import SILENCE, TESTING
    from kws.phones import ctc
    from kws.phones.data import phone_ids, read_examples
    from kws.phones.decoding import predict_posteriors, score_examples
    from kws.phones.recognizer import PhoneRecognizer, spot_in

    dataset = datasets(args.shared)
    out, train_seconds = train(args, dataset)
    recognizer = PhoneRecognizer(out)
    lexicon = recognizer.lexicon
    examples, _, _ = read_examples([], lexicon, dataset=dataset, silence_percent=0.0)
    v2_root = args.shared / V2
    held = [e for e in examples if e.clip.split == TESTING and v2_root in e.clip.path.parents]
    x, kept = load([e.clip for e in held], recognizer)
    held = [e for e in held if e.clip in set(kept)]
    posteriors = predict_posteriors(recognizer.model, x)
    trained = [i for i, e in enumerate(held) if e.word not in args.holdout]
    scored = score_examples(posteriors[trained], [held[i] for i in trained], lexicon,
                            "greedy", recognizer.frame_seconds)
    errors = scored.errors
    card = recognizer.card

    print(f"\nphone model {out}: {card.parameters} parameters, "
          f"{card.metrics.get('epochs')} epochs"
          + (f", trained in {train_seconds / 60:.1f} min" if train_seconds else "")
          + f"; held out: {len({e.clip.speaker for e in held})} speakers of {V2}, "
          f"{len(held)} clips")
    print("\n| measure (held-out speakers, trained words) | value |")
    print("| --- | --- |")
    print(f"| clips | {len(trained)} (of which silence: "
          f"{sum(1 for i in trained if held[i].word == SILENCE)}) |")
    print(f"| reference phones | {errors.reference_length} |")
    print(f"| PER | {100 * errors.per:.2f} % |")
    n = max(1, errors.reference_length)
    print(f"| substitutions / deletions / insertions | {100 * errors.substitutions / n:.1f} % / "
          f"{100 * errors.deletions / n:.1f} % / {100 * errors.insertions / n:.1f} % |")
    print(f"| word accuracy, closest of {len(lexicon)} lexicon words | "
          f"{100 * scored.word_accuracy:.2f} % |")
    worst = errors.top_confusions(5)
    print("| most frequent errors | "
          + ", ".join(f"{r}→{h} ({c})" for r, h, c in worst) + " |")

    predictions, labels = classifier_predictions(Path(args.classifier),
                                                 [held[i].clip for i in trained])
    if predictions is None:
        print(f"\nno classifier at {args.classifier}: classifier comparison skipped")
    else:
        truth, by_phones, by_classifier = [], [], []
        for i, (_, word, _, matched) in zip(trained, scored.rows, strict=True):
            if held[i].clip.path not in predictions:
                continue
            truth.append(in_labels(word, labels))
            by_phones.append(in_labels(matched, labels))
            by_classifier.append(predictions[held[i].clip.path])
        truth = np.asarray(truth)
        print(f"\n| same {len(truth)} clips, in the classifier's {len(labels)} labels | "
              "accuracy |")
        print("| --- | --- |")
        print(f"| classifier {args.classifier} | "
              f"{100 * np.mean(truth == np.asarray(by_classifier)):.2f} % |")
        print(f"| phone model, decoded phones → closest lexicon word | "
              f"{100 * np.mean(truth == np.asarray(by_phones)):.2f} % |")

    # Open-vocabulary spotting of the held-out words.
    others = [i for i, e in enumerate(held) if e.word not in args.holdout]
    other_logs = [ctc.log_posteriors(posteriors[i]) for i in others]
    print("\n| held-out word | threshold | detected | false alarms on other held-out clips |")
    print("| --- | --- | --- | --- |")
    for word in args.holdout:
        if word not in lexicon:
            continue
        positives = [e for e in examples if e.word == word]
        if not positives:
            continue
        px, pkept = load([e.clip for e in positives], recognizer)
        plogs = [ctc.log_posteriors(p) for p in predict_posteriors(recognizer.model, px)]
        prons = lexicon.pronunciations(word)
        ids = [phone_ids(p) for p in prons]
        for threshold in THRESHOLDS:
            hits = sum(bool(spot_in(lp, "", word, prons, ids, threshold,
                                    recognizer.frame_seconds, 1.0)) for lp in plogs)
            alarms = sum(bool(spot_in(lp, "", word, prons, ids, threshold,
                                      recognizer.frame_seconds, 1.0)) for lp in other_logs)
            print(f"| {word} ({' '.join(prons[0])}) | {threshold} | {hits}/{len(plogs)} "
                  f"({100 * hits / len(plogs):.1f} %) | {alarms}/{len(other_logs)} "
                  f"({100 * alarms / len(other_logs):.2f} %) |")
        decoded = Counter(" ".join(recognizer_decode(lp, recognizer)) for lp in plogs)
        print(f"|   {word}: most frequent decodings | | "
              + "; ".join(f"{d or '(none)'} ×{c}" for d, c in decoded.most_common(3)) + " | |")

    trained_word_spotting(args, held, posteriors, lexicon, recognizer)
    long_recording(args, held, recognizer)


def trained_word_spotting(args, held, posteriors, lexicon, recognizer) -> None:
    """The same search for words the model was trained on, on the held-out speakers."""
    from kws.dataset import KEYWORDS_12
    from kws.phones import ctc
    from kws.phones.data import phone_ids
    from kws.phones.recognizer import spot_in

    logs = [ctc.log_posteriors(p) for p in posteriors]
    words = [w for w in KEYWORDS_12 if any(e.word == w for e in held)]
    found = {t: [0, 0, 0, 0] for t in THRESHOLDS}  # hits, positives, alarms, negatives
    for word in words:
        prons = lexicon.pronunciations(word)
        ids = [phone_ids(p) for p in prons]
        for example, lp in zip(held, logs, strict=True):
            if example.word in args.holdout:
                continue
            best = max((d.probability for d in spot_in(lp, "", word, prons, ids, min(THRESHOLDS),
                                                      recognizer.frame_seconds, 1.0)),
                       default=0.0)
            for threshold, counts in found.items():
                if example.word == word:
                    counts[0] += best >= threshold
                    counts[1] += 1
                else:
                    counts[2] += best >= threshold
                    counts[3] += 1
    print(f"\nthe same search for the {len(words)} trained keywords "
          f"({', '.join(words)}), held-out speakers, summed over the words")
    print("| threshold | detected | false alarms on clips of other words |")
    print("| --- | --- | --- |")
    for threshold, (hits, positives, alarms, negatives) in found.items():
        print(f"| {threshold} | {hits}/{positives} ({100 * hits / positives:.1f} %) | "
              f"{alarms}/{negatives} ({100 * alarms / negatives:.2f} %) |")


def recognizer_decode(log_probs, recognizer):
    from kws.phones.decoding import decode

    return decode(log_probs, recognizer.frame_seconds).sequence


def long_recording(args, held, recognizer) -> None:
    """Spot the held-out words in one recording of held-out clips with pauses between."""
    from kws import audio
    from kws.infer import DEFAULT_SPOT_THRESHOLD
    from kws.modelfolder import Task
    from kws.phones import ctc
    from kws.phones.data import phone_ids
    from kws.phones.recognizer import spot_in

    threshold = DEFAULT_SPOT_THRESHOLD[Task.PHONES]
    rng = np.random.default_rng(1)
    spotted = [*args.holdout, *LONG_TRAINED]
    targets = [e for e in held if e.word in args.holdout]
    targets += [e for w in LONG_TRAINED for e in [e for e in held if e.word == w][:4]]
    fillers = [e for e in held if e.word not in spotted and e.word != "_silence_"]
    chosen = targets + list(rng.choice(np.array(fillers, dtype=object),
                                       size=min(len(fillers), 3 * len(targets) or 10),
                                       replace=False))
    rng.shuffle(chosen)
    rate = recognizer.sample_rate
    pieces, truth, position = [], [], 0.0
    for example in chosen:
        wave = audio.load(example.clip.path, rate)
        gap = np.zeros(int(rate * rng.uniform(0.2, 0.8)), dtype=np.float32)
        pieces += [gap, wave]
        position += len(gap) / rate
        truth.append((example.word, position, position + len(wave) / rate))
        position += len(wave) / rate
    recording = np.concatenate(pieces)
    log_probs = ctc.log_posteriors(recognizer.posteriors([recording])[0])
    print(f"\nlong recording: {len(chosen)} held-out clips, {len(recording) / rate:.1f} s, "
          f"threshold {threshold}")
    print("| word | said | detected (inside the clip) | false alarms |")
    print("| --- | --- | --- | --- |")
    for word in spotted:
        if word not in recognizer.lexicon:
            continue
        prons = recognizer.lexicon.pronunciations(word)
        found = spot_in(log_probs, "long", word, prons, [phone_ids(p) for p in prons],
                        threshold, recognizer.frame_seconds, len(recording) / rate)
        said = [(s, e) for w, s, e in truth if w == word]
        hit = sum(any(s - 0.1 <= d.start and d.end <= e + 0.1 for d in found) for s, e in said)
        false = sum(not any(s - 0.1 <= d.start and d.end <= e + 0.1 for s, e in said)
                    for d in found)
        kind = "held out" if word in args.holdout else "trained"
        print(f"| {word} ({kind}) | {len(said)} | {hit} | {false} |")


if __name__ == "__main__":
    main()
