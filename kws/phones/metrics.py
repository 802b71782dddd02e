"""Scoring phone sequences: edit distance, phone error rate and confusions.

The phone error rate (PER) is the edit distance between the recognised and the reference
phones (substitutions + deletions + insertions) over the number of reference phones,
summed over utterances. When a word has several pronunciations the hypothesis is scored
against the closest one (:func:`closest_reference`), so a speaker is not penalised for
saying ``tree`` as ``ch r iy``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: Placeholder of a missing phone in an alignment (a deletion's hypothesis, an
#: insertion's reference).
GAP = "-"


@dataclass(frozen=True)
class EditCounts:
    """The edit operations turning a reference into a hypothesis."""

    substitutions: int
    deletions: int
    insertions: int
    reference_length: int
    #: ``(reference phone or GAP, hypothesis phone or GAP)`` per aligned position.
    alignment: tuple[tuple[str, str], ...] = ()

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> EditCounts:
    """Levenshtein alignment with unit costs; counts of each kind of edit.

    Among alignments of minimal cost, the backtrace prefers a match or substitution, then
    a deletion, then an insertion, so the counts are deterministic.
    """
    n, m = len(reference), len(hypothesis)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0] = i
    for j in range(1, m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            diagonal = cost[i - 1][j - 1] + (reference[i - 1] != hypothesis[j - 1])
            cost[i][j] = min(diagonal, cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    i, j = n, m
    subs = dels = ins = 0
    pairs: list[tuple[str, str]] = []
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (
            reference[i - 1] != hypothesis[j - 1]
        ):
            subs += reference[i - 1] != hypothesis[j - 1]
            pairs.append((reference[i - 1], hypothesis[j - 1]))
            i, j = i - 1, j - 1
        elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
            dels += 1
            pairs.append((reference[i - 1], GAP))
            i -= 1
        else:
            ins += 1
            pairs.append((GAP, hypothesis[j - 1]))
            j -= 1
    return EditCounts(subs, dels, ins, n, tuple(reversed(pairs)))


def closest_reference(
    references: Sequence[Sequence[str]], hypothesis: Sequence[str]
) -> tuple[int, EditCounts]:
    """The reference (of several pronunciations) nearest the hypothesis, and its counts.

    Ties go to the reference with fewer errors relative to its length, then the first.
    """
    if not references:
        raise ValueError("no reference to score against")
    scored = [(edit_distance(ref, hypothesis), index) for index, ref in enumerate(references)]
    counts, index = min(
        scored,
        key=lambda item: (item[0].errors, item[0].errors / max(1, item[0].reference_length),
                          item[1]),
    )
    return index, counts


@dataclass
class PhoneErrors:
    """Edit counts accumulated over utterances, with per-phone confusions."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_length: int = 0
    utterances: int = 0
    #: ``(reference, hypothesis)`` pair counts over all alignments (GAP for missing).
    pairs: Counter = field(default_factory=Counter)

    def add(self, counts: EditCounts) -> None:
        """Add one utterance's counts."""
        self.substitutions += counts.substitutions
        self.deletions += counts.deletions
        self.insertions += counts.insertions
        self.reference_length += counts.reference_length
        self.utterances += 1
        self.pairs.update(counts.alignment)

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def per(self) -> float:
        """Phone error rate: edits over reference phones (0 when there are none)."""
        return self.errors / self.reference_length if self.reference_length else 0.0

    def per_phone(self) -> dict[str, dict[str, Any]]:
        """For each reference phone: count, correct, substituted, deleted, error rate and
        the phones it was most often recognised as; plus insertions of each phone."""
        stats: dict[str, dict[str, Any]] = {}

        def entry(phone: str) -> dict[str, Any]:
            return stats.setdefault(phone, {
                "count": 0, "correct": 0, "substituted": 0, "deleted": 0, "inserted": 0,
                "confused_with": Counter(),
            })

        for (ref, hyp), n in self.pairs.items():
            if ref == GAP:
                entry(hyp)["inserted"] += n
                continue
            item = entry(ref)
            item["count"] += n
            if hyp == ref:
                item["correct"] += n
            elif hyp == GAP:
                item["deleted"] += n
            else:
                item["substituted"] += n
                item["confused_with"][hyp] += n
        for item in stats.values():
            wrong = item["substituted"] + item["deleted"]
            item["error_rate"] = round(wrong / item["count"], 6) if item["count"] else None
            item["confused_with"] = dict(item["confused_with"].most_common(3))
        return dict(sorted(stats.items()))

    def top_confusions(self, limit: int = 10) -> list[tuple[str, str, int]]:
        """The most frequent ``(reference, hypothesis, count)`` errors (gaps included)."""
        errors = [(ref, hyp, n) for (ref, hyp), n in self.pairs.items() if ref != hyp]
        return sorted(errors, key=lambda item: (-item[2], item[0], item[1]))[:limit]

    def to_json(self) -> dict[str, Any]:
        """Counts, PER, per-phone statistics and top confusions as JSON-ready data."""
        return {
            "per": round(self.per, 6),
            "utterances": self.utterances,
            "reference_phones": self.reference_length,
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "per_phone": self.per_phone(),
            "top_confusions": [
                {"reference": ref, "hypothesis": hyp, "count": n}
                for ref, hyp, n in self.top_confusions()
            ],
        }
