"""Scoring DEPER's personalised captions (SPEC 10): caption metrics, CLS, paired bootstrap.

- :func:`caption_metrics`: per-item BLEU-1..4, ROUGE-L, CIDEr (and METEOR where Java
  runs) of each generated caption against its subject's own reference caption;
- :func:`cls_scores`: CLS per metric and their mean (does a reference pick out the
  caption generated for its own author? :func:`crossmod.methods.deper.cls_metric`);
- :func:`paired_bootstrap`: is one model's per-item score better than another's?

The scorers are pycocoevalcap's, called directly on captions that this module tokenises
itself: pycocoevalcap's PTBTokenizer shells out to Java (Stanford CoreNLP) and our
captions are already lower-case words, so a regex over ``[a-z0-9']+`` gives the same
tokens without a JVM. Only METEOR needs Java (its scorer is a Java program); it is
computed only when asked for and :func:`java_available`.

No torch here: the scoring runs in Snakemake jobs that need none.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from functools import cache

import numpy as np
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from crossmod.methods.deper import cls_chance, cls_over_images

BLEU = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4")
METRICS = (*BLEU, "ROUGE-L", "CIDEr")
"""The metrics :func:`caption_metrics` always returns ("METEOR" is added on request)."""
CLS_METRICS = ("BLEU-4", "ROUGE-L", "CIDEr")
"""SPEC 10's CLS metrics without METEOR, which needs Java."""
_TOKEN = re.compile(r"[a-z0-9']+")


def tokenise(caption: str) -> str:
    """Lower-case words ``[a-z0-9']+`` joined by single spaces (pycocoevalcap's input).

    Rouge splits on single spaces, so the join must not leave empty tokens.
    """
    return " ".join(_TOKEN.findall(caption.lower()))


@cache
def java_available() -> bool:
    """Whether a Java runtime runs here (``java -version`` succeeds): METEOR needs one."""
    java = shutil.which("java")
    if java is None:
        return False
    try:
        result = subprocess.run([java, "-version"], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def _pairwise(
    references: Sequence[str], candidates: Sequence[str], meteor: bool
) -> dict[str, np.ndarray]:
    """BLEU-1..4, ROUGE-L (and METEOR) of each candidate against its reference.

    These metrics depend on the pair alone (BLEU's brevity penalty uses the item's own
    reference length), so any list of pairs can be scored in one call. An empty
    candidate scores 0 on every metric (pycocoevalcap's Rouge would otherwise compare an
    empty "token" and could give 1 against an empty reference).
    """
    refs = [tokenise(r) for r in references]
    cands = [tokenise(c) for c in candidates]
    empty = np.array([not c for c in cands])
    gts = {i: [r] for i, r in enumerate(refs)}
    res = {i: [c] for i, c in enumerate(cands)}
    out: dict[str, np.ndarray] = {}
    if not refs:
        names = list(BLEU) + ["ROUGE-L"] + (["METEOR"] if meteor else [])
        return {name: np.zeros(0) for name in names}
    _, per_n = Bleu(4).compute_score(gts, res, verbose=0)
    for name, scores in zip(BLEU, per_n, strict=True):
        out[name] = np.where(empty, 0.0, np.asarray(scores, dtype=np.float64))
    _, rouge = Rouge().compute_score(gts, res)
    out["ROUGE-L"] = np.where(empty, 0.0, np.asarray(rouge, dtype=np.float64))
    if meteor:
        out["METEOR"] = _meteor(refs, cands, empty)
    return out


def _meteor(refs: list[str], cands: list[str], empty: np.ndarray) -> np.ndarray:
    """METEOR 1.5 per pair, via pycocoevalcap's wrapper of the Java scorer."""
    if not java_available():
        raise RuntimeError("METEOR needs a Java runtime (`java -version` failed)")
    from pycocoevalcap.meteor.meteor import Meteor

    keep = [i for i in range(len(refs)) if not empty[i]]
    scores = np.zeros(len(refs))
    if keep:
        scorer = Meteor()  # starts a JVM; dropping the last reference stops it
        try:
            _, values = scorer.compute_score(
                {k: [refs[i]] for k, i in enumerate(keep)},
                {k: [cands[i]] for k, i in enumerate(keep)},
            )
        finally:
            del scorer
        scores[keep] = np.asarray(values, dtype=np.float64)
    return scores


def _cider(references: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
    """CIDEr of candidate m against reference m, document frequencies from ``references``.

    pycocoevalcap's CIDEr (n = 1..4, sigma = 6, clipped, x 10) treats each item's
    references as one document; here every item has one reference, so the idf of an
    n-gram is ``log(M / number of references holding it)`` over these M references.
    An empty candidate scores 0.
    """
    gts = {i: [tokenise(r)] for i, r in enumerate(references)}
    if not any(r for (r,) in gts.values()):
        return np.zeros(len(references))  # no n-gram at all (pycocoevalcap would fail)
    res = {i: [tokenise(c)] for i, c in enumerate(candidates)}
    _, scores = Cider().compute_score(gts, res)
    return np.asarray(scores, dtype=np.float64)


def caption_metrics(
    references: list[str], candidates: list[str], meteor: bool = False
) -> dict[str, np.ndarray]:
    """Per-item scores of each candidate against its one reference (its subject's caption).

    Returns arrays of length len(references) for "BLEU-1".."BLEU-4", "ROUGE-L", "CIDEr",
    and "METEOR" when ``meteor`` (which needs :func:`java_available`). BLEU-n is
    pycocoevalcap's per-item score: the geometric mean of clipped 1..n-gram precisions
    times the brevity penalty, with its tiny-count smoothing (so a candidate shorter than
    n words gets a small non-zero BLEU-n, not 0). ROUGE-L is the LCS F-measure with
    beta = 1.2. CIDEr's document frequencies come from the references of this call (as
    pycocoevalcap's does for a test set), so CIDEr values are comparable within a call
    only, and a call with a single item always gives CIDEr 0 (every n-gram has idf 0).
    Empty candidates score 0.
    """
    if len(references) != len(candidates):
        raise ValueError(f"{len(references)} references but {len(candidates)} candidates")
    out = _pairwise(references, candidates, meteor)
    out["CIDEr"] = _cider(references, candidates)
    return {name: out[name] for name in (*METRICS, *(["METEOR"] if meteor else []))}


def _cider_matrices(groups: Sequence[tuple[list[str], list[str]]]) -> list[np.ndarray]:
    """CIDEr(r_i, c_j) for every image, with one idf from all references of ``groups``.

    Every reference is one document. pycocoevalcap computes the idf from the items of a
    call, so each call pairs all M references with one candidate each: call k pairs
    reference i of an N-annotator image with candidate (i + k) mod N. The N_max calls
    (N_max = the largest N) fill every matrix and share one idf.
    """
    references = [r for refs, _ in groups for r in refs]
    n_max = max((len(refs) for refs, _ in groups), default=0)
    matrices = [np.zeros((len(refs), len(refs))) for refs, _ in groups]
    for shift in range(n_max):
        candidates, cells = [], []
        for g, (refs, cands) in enumerate(groups):
            for i in range(len(refs)):
                j = (i + shift) % len(refs)
                candidates.append(cands[j])
                cells.append((g, i, j))
        for (g, i, j), value in zip(cells, _cider(references, candidates), strict=True):
            matrices[g][i, j] = value
    return matrices


def cls_scores(
    groups: list[tuple[list[str], list[str]]],
    metrics: Sequence[str] = CLS_METRICS,
) -> dict[str, float]:
    """CLS per metric, their "mean", and "chance", over images' (references, generated).

    Each group is one image: references r_1..r_N and the captions c_1..c_N generated for
    the same annotators in the same order. For each metric the N x N matrix
    score(r_i, c_j) goes to :func:`crossmod.methods.deper.cls_over_images` (success when
    c_i scores highest, 1/k when it is one of k tied at the top; images with N < 2
    skipped). CIDEr uses one idf from all references of ``groups`` (each reference a
    document), so the scores within and across matrices are on one scale. "METEOR" may
    be among ``metrics`` when Java runs. "chance" is :func:`crossmod.methods.deper.cls_chance`.
    """
    unknown = set(metrics) - {*METRICS, "METEOR"}
    if unknown or not metrics:
        raise ValueError(f"unknown or no CLS metrics: {sorted(unknown) or metrics}")
    for refs, cands in groups:
        if len(refs) != len(cands):
            raise ValueError(f"{len(refs)} references but {len(cands)} generated captions")
    pairs = [(g, i, j) for g, (refs, _) in enumerate(groups) for i in range(len(refs))
             for j in range(len(refs))]  # fmt: skip
    refs_flat = [groups[g][0][i] for g, i, _ in pairs]
    cands_flat = [groups[g][1][j] for g, _, j in pairs]
    pairwise = _pairwise(refs_flat, cands_flat, meteor="METEOR" in metrics)
    matrices: dict[str, list[np.ndarray]] = {}
    for name in metrics:
        if name == "CIDEr":
            matrices[name] = _cider_matrices(groups)
            continue
        cells = [np.zeros((len(refs), len(refs))) for refs, _ in groups]
        for (g, i, j), value in zip(pairs, pairwise[name], strict=True):
            cells[g][i, j] = value
        matrices[name] = cells
    out = {name: cls_over_images(matrices[name]) for name in metrics}
    out["mean"] = float(np.mean([out[name] for name in metrics]))
    out["chance"] = cls_chance(matrices[metrics[0]])
    return out


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    blocks: np.ndarray,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Paired bootstrap of mean(a - b) over items, resampled within blocks.

    ``a`` and ``b`` are two systems' scores on the same items; ``blocks`` labels each
    item's stratum (e.g. its split or test subject). Each resample draws, within every
    block, as many items as the block holds, with replacement, and keeps the pairs
    together; the statistic is the mean difference over all drawn items, so every
    block keeps its weight. Returns the observed means ("mean_a", "mean_b", "diff"),
    the 95% percentile interval of the resampled differences ("ci_low", "ci_high") and
    a two-sided p: ``2 * min(P(diff* <= 0), P(diff* >= 0))`` clipped to 1, i.e. twice
    the share of resamples on the far side of 0. It is the percentile interval's own
    test (p < 0.05 about when the interval excludes 0), needs no null model, and gives
    p = 1 when a == b (every diff* is 0); its resolution is 1 / resamples, so p = 0
    reads "below 1 / resamples".
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    blocks = np.asarray(blocks)
    if a.ndim != 1 or a.shape != b.shape or blocks.shape != a.shape:
        raise ValueError(f"need 1-D a, b, blocks of one length: {a.shape} {b.shape} {blocks.shape}")
    if len(a) == 0:
        raise ValueError("no items to bootstrap")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("scores contain non-finite values")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    rng = np.random.default_rng(seed)
    diff = a - b
    _, block_ids = np.unique(blocks, return_inverse=True)
    totals = np.zeros(resamples)
    for block in range(block_ids.max() + 1):
        members = diff[block_ids == block]
        draws = rng.integers(0, len(members), size=(resamples, len(members)))
        totals += members[draws].sum(axis=1)
    boot = totals / len(diff)
    p = 2.0 * min(float(np.mean(boot <= 0.0)), float(np.mean(boot >= 0.0)))
    low, high = np.percentile(boot, [2.5, 97.5])
    return {
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
        "diff": float(diff.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "p": min(1.0, p),
    }
