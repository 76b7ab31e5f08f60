"""LFW View 2 verification metrics, shared by benchmarks/lfw.py and training/calibrate_thresholds.py.

Protocol: 10 folds of 300 matched + 300 mismatched pairs; a threshold is chosen on 9 folds and scored on
the 10th. A pair whose subject MTCNN could not find counts as a "different" prediction (similarity -1):
an honest failure, not a skipped pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared_data import lfw_pairs
from training.embedding_cache import LfwEmbeddings, cache_key

TARGET_FAR = 1e-3


@dataclass
class PairScores:
    similarity: np.ndarray  # (6000,) cosine similarity, -1 where a face is missing
    same: np.ndarray  # (6000,) bool
    fold: np.ndarray  # (6000,) int 0..9
    missing: int  # pairs with a picture where no face was found


def pair_scores(cache: LfwEmbeddings, alignment: str) -> PairScores:
    """Similarity of every View 2 pair (of the pairs whose pictures the cache holds, if it is partial)."""
    rows = cache.index()
    pairs = [p for p in lfw_pairs() if cache_key(p.first) in rows and cache_key(p.second) in rows]
    first, found_first = cache.lookup([p.first for p in pairs], alignment)
    second, found_second = cache.lookup([p.second for p in pairs], alignment)
    found = found_first & found_second
    similarity = np.where(found, np.einsum("ij,ij->i", first, second), -1.0)
    return PairScores(
        similarity=similarity,
        same=np.array([p.same for p in pairs]),
        fold=np.array([p.fold for p in pairs]),
        missing=int((~found).sum()),
    )


def best_accuracy_threshold(similarity: np.ndarray, same: np.ndarray) -> float:
    """The threshold (similarity >= t means same) with the highest accuracy; midpoints between scores."""
    order = np.argsort(similarity)
    values, labels = similarity[order], same[order]
    # Threshold just above values[i]: pairs 0..i say "different", the rest "same".
    correct_if_cut_after = np.cumsum(~labels) + (labels.sum() - np.cumsum(labels))
    cut = int(np.argmax(correct_if_cut_after))
    all_same = labels.sum()  # cut before everything
    if all_same >= correct_if_cut_after[cut]:
        return float(values[0] - 1e-6)
    upper = values[cut + 1] if cut + 1 < len(values) else values[cut] + 1e-6
    return float((values[cut] + upper) / 2)


def far_threshold(similarity: np.ndarray, same: np.ndarray, far: float = TARGET_FAR) -> float:
    """The lowest threshold whose false accept rate on these pairs is at most `far`."""
    negatives = np.sort(similarity[~same])[::-1]
    allowed = int(np.floor(far * len(negatives)))  # false accepts we may keep
    # Just above the (allowed+1)-th highest negative: exactly `allowed` negatives are accepted.
    return float(np.nextafter(negatives[allowed], np.inf)) if allowed < len(negatives) else float(negatives[-1])


def rates(similarity: np.ndarray, same: np.ndarray, threshold: float) -> dict[str, float]:
    accepted = similarity >= threshold
    return {
        "accuracy": float((accepted == same).mean()),
        "tar": float(accepted[same].mean()),
        "far": float(accepted[~same].mean()),
    }


def roc_auc(similarity: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve: the chance a matched pair scores above a mismatched one (ties half)."""
    positives, negatives = similarity[same], similarity[~same]
    ranks = _average_ranks(np.concatenate([positives, negatives]))
    return float((ranks[: len(positives)].sum() - len(positives) * (len(positives) + 1) / 2)
                 / (len(positives) * len(negatives)))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2  # 1-based average rank of the tie group
    return ranks


def roc_curve(similarity: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FAR, TAR) for every threshold, from accepting nothing to accepting everything."""
    order = np.argsort(-similarity, kind="mergesort")
    labels = same[order]
    tar = np.r_[0, np.cumsum(labels)] / labels.sum()
    far = np.r_[0, np.cumsum(~labels)] / (~labels).sum()
    return far, tar


def ten_fold(scores: PairScores) -> dict:
    """10-fold accuracy (threshold of best accuracy on 9 folds) and TAR at FAR 1e-3 (threshold from 9 folds)."""
    accuracies, tars, fars, thresholds = [], [], [], []
    for fold in range(10):
        train, test = scores.fold != fold, scores.fold == fold
        threshold = best_accuracy_threshold(scores.similarity[train], scores.same[train])
        accuracies.append(rates(scores.similarity[test], scores.same[test], threshold)["accuracy"])
        thresholds.append(threshold)
        strict = far_threshold(scores.similarity[train], scores.same[train])
        fold_rates = rates(scores.similarity[test], scores.same[test], strict)
        tars.append(fold_rates["tar"])
        fars.append(fold_rates["far"])
    return {
        "accuracy_mean": float(np.mean(accuracies)),
        "accuracy_std": float(np.std(accuracies)),
        "fold_accuracies": [round(a, 4) for a in accuracies],
        "fold_thresholds": [round(t, 4) for t in thresholds],
        "tar_at_far_1e-3": float(np.mean(tars)),
        "far_measured_at_that_threshold": float(np.mean(fars)),
        "roc_auc": roc_auc(scores.similarity, scores.same),
        "pairs": int(len(scores.same)),
        "pairs_with_a_face_missing": scores.missing,
    }
