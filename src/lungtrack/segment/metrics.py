"""Segmentation accuracy against ground truth: object matching at an IoU threshold.

Examples
--------
>>> t = np.zeros((10, 10), int); t[1:5, 1:5] = 1; t[6:9, 6:9] = 2
>>> p = np.zeros((10, 10), int); p[1:5, 1:4] = 7
>>> m = match_objects(t, p)
>>> m["tp"], m["fp"], m["fn"], round(m["f1"], 3)
(1, 0, 1, 0.667)
"""
from __future__ import annotations

import numpy as np


def overlap_counts(labels_a, labels_b):
    """Voxel counts of every pair of overlapping objects of two label images.

    Returns
    -------
    ids_a, ids_b, overlap, size_a, size_b : ndarray of int64
        One entry per pair sharing at least one voxel, sorted by ``ids_a`` then
        ``ids_b``; ``size_a``/``size_b`` are the two objects' whole sizes in voxels.

    Examples
    --------
    >>> a = np.array([[1, 1, 0]]); b = np.array([[0, 2, 2]])
    >>> [x.tolist() for x in overlap_counts(a, b)]
    [[1], [2], [1], [2], [2]]
    """
    a = np.asarray(labels_a).ravel().astype(np.int64)
    b = np.asarray(labels_b).ravel().astype(np.int64)
    both = (a > 0) & (b > 0)
    pairs, inter = np.unique(np.stack([a[both], b[both]]), axis=1, return_counts=True)
    ids_a, ids_b = pairs.reshape(2, -1)
    return ids_a, ids_b, inter.astype(np.int64), np.bincount(a)[ids_a], np.bincount(b)[ids_b]


def iou_pairs(truth: np.ndarray, pred: np.ndarray):
    """(truth_ids, pred_ids, iou) for every pair of overlapping objects."""
    ti, pi, inter, t_size, p_size = overlap_counts(truth, pred)
    return ti, pi, inter / (t_size + p_size - inter)


def match_objects(truth: np.ndarray, pred: np.ndarray, iou: float = 0.5) -> dict:
    """Match predicted to true objects at IoU > ``iou`` (>= 0.5 makes matches one-to-one).

    Returns
    -------
    dict
        tp, fp, fn, precision, recall, f1, n_true, n_pred, mean_matched_iou.
    """
    if iou < 0.5:
        raise ValueError("iou must be >= 0.5 so that matches are unique")
    ti, pi, v = iou_pairs(truth, pred)
    hit = v > iou
    n_true = int(np.unique(truth[truth > 0]).size)
    n_pred = int(np.unique(pred[pred > 0]).size)
    tp = int(hit.sum())
    fp, fn = n_pred - tp, n_true - tp
    precision = tp / n_pred if n_pred else float(n_true == 0)
    recall = tp / n_true if n_true else float(n_pred == 0)
    f1 = 2 * tp / (n_true + n_pred) if (n_true + n_pred) else 1.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1,
            "n_true": n_true, "n_pred": n_pred, "mean_matched_iou": float(v[hit].mean()) if tp else float("nan")}
