"""Few-shot identification of unseen subjects, and what z_s knows about personality.

DEPER's question (SPEC 10): from S of a person's samples, can we tell them apart from
the other people we have never trained on? The protocol, shared by DEPER, its
baselines and the handcrafted features so that all are scored on the same draws:

- the candidates are the split's test users (unseen in training) with more than S
  samples, so that each has at least one query;
- a draw picks S support samples per candidate at random; a candidate's centroid is
  the mean of its support embeddings after L2 normalisation; every other sample of
  a candidate is a query, identified by cosine similarity to the centroids;
- top-k: the query's own subject is among the k most similar centroids (ties broken
  against it: a constant embedding scores chance or below, never above);
- a draw's support sets depend only on (seed, split, S), never on the method;
- with ``centre: image`` (the default, :func:`centre_on_images`) every method's
  embeddings are first L2-normalised and centred on their image: each sample minus
  the mean over every annotation of the same image (all users, seen or not).

Why the centring: a subject annotates the images of their own crowd task, shared
with two other annotators only, so a subject's support and query samples show the
same images. An encoder that sees the image can then "identify" a person by
recognising their image set, not their behaviour: on the null set (every user
behaves alike) a trained DEPER encoder reached top-1 .35-.52 at S = 5 against a
chance of .062 without centring, and .08-.10 with it. Centring asks the question the
protocol means: how does this person's sample differ from other people's samples
of the same image? It uses no label, only which samples share an image.

Intervals: draws within a split share its users, so they are not independent; the
interval is Student's t over the per-split means (draws averaged within a split).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from crossmod.evaluation.intervals import t_interval  # noqa: F401 (re-exported)

log = logging.getLogger("crossmod.evaluation.fewshot")


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def centre_on_images(z: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Rows L2-normalised, then each minus the mean of its image's rows.

    ``images`` (N,) labels the image of each row of ``z`` (N, D); the mean is taken
    over every row of the same image, the row itself included. An image with a single
    annotation centres to zero (nothing to compare it with), which the nearest-centroid
    rule scores as a tie with every subject, i.e. against the method.
    """
    unit = normalise(z)
    if len(images) != len(unit):
        raise ValueError(f"{len(images)} image labels for {len(unit)} embeddings")
    codes, index = np.unique(np.asarray(images), return_inverse=True)
    sums = np.zeros((len(codes), unit.shape[1]))
    np.add.at(sums, index, unit)
    counts = np.bincount(index, minlength=len(codes))[:, None]
    return unit - (sums / counts)[index]


def protocol_embeddings(z: np.ndarray, images: np.ndarray, centre: str) -> np.ndarray:
    """The embeddings the few-shot protocol compares: ``centre`` is "image" or "none"."""
    if centre == "image":
        return centre_on_images(z, images)
    if centre == "none":
        return np.asarray(z, dtype=np.float64)
    raise ValueError(f"centre must be 'image' or 'none', got {centre!r}")


def true_subject_rank(similarities: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """0-based rank of each query's own subject among the centroids (ties count against).

    ``similarities`` (Q, M), ``truth`` (Q,) column indices. The rank is the number of
    other centroids at least as similar as the true one.
    """
    own = similarities[np.arange(len(truth)), truth][:, None]
    return (similarities >= own).sum(axis=1) - 1


@dataclass(frozen=True)
class Draw:
    """One draw's support and query rows (indices into the embedding matrix)."""

    subjects: np.ndarray  # (M,) subject labels, the centroid order
    support: np.ndarray  # (M, S) rows
    queries: np.ndarray  # (Q,) rows
    query_subject: np.ndarray  # (Q,) column of the query's subject in ``subjects``


def draw_supports(
    labels: np.ndarray, candidates: np.ndarray, shots: int, rng: np.random.Generator
) -> Draw:
    """S support rows per candidate subject, the rest of its rows as queries."""
    eligible = [s for s in candidates if (labels == s).sum() > shots]
    if len(eligible) < 2:
        raise ValueError(
            f"few-shot identification needs two or more subjects with more than {shots} "
            f"samples; {len(eligible)} have"
        )
    support, queries, query_subject = [], [], []
    for column, subject in enumerate(eligible):
        rows = np.flatnonzero(labels == subject)
        picked = rng.permutation(len(rows))
        support.append(rows[picked[:shots]])
        rest = rows[np.sort(picked[shots:])]
        queries.append(rest)
        query_subject.append(np.full(len(rest), column))
    return Draw(
        np.array(eligible),
        np.stack(support),
        np.concatenate(queries),
        np.concatenate(query_subject),
    )


def identify(z: np.ndarray, draw: Draw) -> np.ndarray:
    """Ranks of the queries' own subjects under the nearest-centroid rule."""
    unit = normalise(z)
    centroids = normalise(unit[draw.support].mean(axis=1))
    return true_subject_rank(unit[draw.queries] @ centroids.T, draw.query_subject)


def draws_for(
    labels: np.ndarray, candidates: np.ndarray, shots: int, draws: int, seed: int, split: int
) -> list[Draw]:
    """The draws every method of a split is scored on (seeded by seed, split and S)."""
    rng = np.random.default_rng([seed, split, shots])
    return [draw_supports(labels, candidates, shots, rng) for _ in range(draws)]


def validation_draws(
    labels: np.ndarray, shots: int, draws: int, seed: int, split: int
) -> list[Draw]:
    """The draws on which validation subjects choose a snapshot; none where they cannot.

    A tiny split can have fewer than two validation subjects with more than S samples;
    then there is nothing to choose by, the training keeps its last step, and the log
    says so (never an error: the test subjects are still scored).
    """
    try:
        return draws_for(labels, np.unique(labels), shots, draws, seed, split)
    except ValueError as err:
        log.warning("validation users cannot choose a snapshot (%s); keeping the last step", err)
        return []


def identification(
    z: np.ndarray,
    labels: np.ndarray,
    candidates: np.ndarray,
    shots: tuple[int, ...],
    draws: int,
    seed: int,
    split: int,
) -> list[dict]:
    """Per S: top-1/top-5 averaged over the draws, their chance, the query count."""
    rows = []
    for s in shots:
        top1, top5 = [], []
        for draw in draws_for(labels, candidates, s, draws, seed, split):
            ranks = identify(z, draw)
            top1.append(float((ranks < 1).mean()))
            top5.append(float((ranks < 5).mean()))
        m = len(draw.subjects)
        rows.append(
            {
                "shots": s,
                "top1": float(np.mean(top1)),
                "top5": float(np.mean(top5)),
                "chance_top1": 1.0 / m,
                "chance_top5": min(5, m) / m,
                "n_subjects": m,
                "n_queries": len(draw.queries),
                "draws": draws,
            }
        )
    return rows


RIDGE_PENALTIES = np.logspace(-2, 4, 13)
"""The ridge probe's candidate penalties, 10^-2 .. 10^4."""


def ridge_probe(
    train_z: np.ndarray, train_traits: np.ndarray, test_z: np.ndarray, test_traits: np.ndarray
) -> np.ndarray:
    """R^2 per trait of a ridge map from a subject's mean z to its traits, on unseen subjects.

    Inputs are per subject (one row each). z is standardised with the training
    subjects' statistics; the ridge penalty is chosen among 10^-2 .. 10^4 by
    leave-one-out on the training subjects (there are fewer subjects than dimensions of
    z, so an unpenalised fit would interpolate). R^2 = 1 - SSE / SST with SST around
    the test subjects' own mean: 0 is what predicting their mean would score.

    The fit is :func:`ridge_fit`, scikit-learn's ``RidgeCV`` in closed form (a test
    holds the two together): importing scikit-learn cost each DEPER training job about
    a second of start-up for this one small solve.
    """
    mean, scale = train_z.mean(axis=0), train_z.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    predict = ridge_fit((train_z - mean) / scale, train_traits, RIDGE_PENALTIES)
    predicted = predict((test_z - mean) / scale)
    sse = ((test_traits - predicted) ** 2).sum(axis=0)
    sst = ((test_traits - test_traits.mean(axis=0)) ** 2).sum(axis=0)
    return 1.0 - sse / np.where(sst > 0, sst, np.nan)


def ridge_fit(x: np.ndarray, y: np.ndarray, penalties: np.ndarray):
    """Ridge regression of y (n, t) on x (n, d) with an unpenalised intercept; a predictor.

    The penalty is the one of ``penalties`` with the least leave-one-out squared error,
    averaged over samples and targets (the first on a tie), as ``RidgeCV`` chooses it.
    Leave-one-out comes in closed form: with x centred, the fitted values are
    ``H y`` for the hat matrix ``H = 1 1^T / n + U diag(l / (l + a)) U^T``
    (``x x^T = U diag(l) U^T``), and the residual of sample i left out is its residual
    over ``1 - H_ii``. Everything goes through the n x n Gram matrix, since the probe
    has fewer subjects than dimensions.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(x)
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - x_mean, y - y_mean
    eigenvalues, vectors = np.linalg.eigh(xc @ xc.T)
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    projected = vectors.T @ yc  # (n, t)
    best, best_error = None, np.inf
    for penalty in np.asarray(penalties, dtype=np.float64):
        shrink = eigenvalues / (eigenvalues + penalty)
        fitted = vectors @ (shrink[:, None] * projected)
        leverage = 1.0 / n + (vectors**2) @ shrink
        error = float(np.mean(((yc - fitted) / (1.0 - leverage)[:, None]) ** 2))
        if error < best_error:
            best, best_error = penalty, error
    coefficients = xc.T @ (vectors @ (projected / (eigenvalues + best)[:, None]))

    def predict(z: np.ndarray) -> np.ndarray:
        return (np.asarray(z, dtype=np.float64) - x_mean) @ coefficients + y_mean

    return predict
