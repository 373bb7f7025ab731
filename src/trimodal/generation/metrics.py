"""Caption and transcription metrics: BLEU-4, CIDEr-D and WER.

BLEU and CIDEr-D tokenize with :func:`~trimodal.generation.coco_tokenizer.coco_tokenize` by
default, the official COCO caption evaluation's tokenization in pure Python (pycocoevalcap's
``PTBTokenizer``: Penn Treebank tokens, lowercased, then its punctuation tokens dropped), so
their scores are comparable with published COCO numbers; both also take ``tokenize=tokenize_caption``, the
world's scorer (lowercase alphanumeric words, every other character a separator). On the
world's own captions (lowercase words, spaces and commas) the two give the same tokens. WER
keeps :func:`tokenize_caption`. BLEU and CIDEr-D follow coco-caption's definitions (no
smoothing, no stemming) and are tested against pycocoevalcap's scorers. Scene-graph attribute
accuracy of captions is in :mod:`trimodal.generation.caption_parser`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from trimodal.generation.coco_tokenizer import coco_tokenize

NGram = tuple[str, ...]

_WORD = re.compile(r"[^\W_]+")


def tokenize_caption(text: str) -> list[str]:
    """The world's scorer: lowercase ``text`` and split it on every non-alphanumeric character.

    :func:`word_error_rate` and the caption parser use it; pass ``tokenize=tokenize_caption`` to
    :func:`bleu` or :func:`cider_d` to score with it instead of :func:`coco_tokenize`.
    Punctuation and whitespace only separate words (``"it, and"`` -> ``["it", "and"]``);
    apostrophes split too (``"isn't"`` -> ``["isn", "t"]``). Letters and digits of any script
    count as alphanumeric.
    """
    return _WORD.findall(text.lower())


def _check_corpus(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(candidates) != len(references):
        raise ValueError(
            f"{len(candidates)} candidates but {len(references)} reference lists: "
            "pass one list of references per candidate"
        )
    if not candidates:
        raise ValueError("the corpus is empty: pass at least one candidate")
    for position, refs in enumerate(references):
        if not refs:
            raise ValueError(f"candidate {position} has no references: give it at least one")


def _ngrams(tokens: Sequence[str], order: int) -> Counter[NGram]:
    return Counter(tuple(tokens[i : i + order]) for i in range(len(tokens) - order + 1))


def _closest_length(length: int, references: Sequence[Sequence[str]]) -> int:
    """Reference length closest to ``length``; ties go to the shorter one (as NLTK does)."""
    return min((len(ref) for ref in references), key=lambda ref: (abs(ref - length), ref))


def bleu(
    candidates: Sequence[str],
    references: Sequence[Sequence[str]],
    n: int = 4,
    *,
    tokenize: Callable[[str], list[str]] = coco_tokenize,
) -> float:
    """Corpus-level BLEU-``n`` (Papineni et al. 2002) with uniform weights and no smoothing.

    For each order ``1..n`` the candidate n-gram counts, clipped by their largest count in any
    one reference, are summed over the corpus and divided by the corpus's total candidate
    n-grams. The score is the geometric mean of the ``n`` precisions times the brevity penalty
    ``exp(min(0, 1 - r / c))``, where ``c`` is the total candidate length and ``r`` sums, per
    candidate, the reference length closest to the candidate's (ties: the shorter).

    With the default tokenizer this is the BLEU-``n`` of the COCO caption evaluation
    (pycocoevalcap's ``Bleu(n)``, option "closest", after its ``PTBTokenizer``): tested equal to
    it within 1e-6 (its ``1e-9``/``1e-15`` guards against division by zero shift it by about
    1e-9 relative). One deliberate difference: without smoothing the score is 0 whenever some
    order has no match (or no n-gram at all), where pycocoevalcap reports a small positive
    number: such an order multiplies its product of precisions by ``1e-15 / (count + 1e-9)``
    before the ``n``-th root, which leaves at most ``(1e-15)^(1/n)`` (5.6e-4 for BLEU-4) when
    the order has n-grams, and up to ``(1e-6)^(1/n)`` (0.03) when no candidate has any. Unlike
    NLTK's ``corpus_bleu``, which counts at least one n-gram per sentence in each denominator, a
    candidate shorter than ``n`` words adds nothing to the higher orders' denominators, as in
    pycocoevalcap; the two agree whenever every candidate has at least ``n`` words.

    Args:
        candidates: one generated caption per image.
        references: the reference captions of each image.
        n: highest n-gram order.
        tokenize: text -> words; :func:`coco_tokenize` (COCO's PTB rules, comparable with
            published numbers) or :func:`tokenize_caption` (the world's scorer).

    Returns:
        BLEU in ``[0, 1]``.
    """
    _check_corpus(candidates, references)
    matched, total = [0] * n, [0] * n
    candidate_length = reference_length = 0
    for candidate, refs in zip(candidates, references, strict=True):
        tokens = tokenize(candidate)
        ref_tokens = [tokenize(ref) for ref in refs]
        for order in range(1, n + 1):
            counts = _ngrams(tokens, order)
            ceiling: Counter[NGram] = Counter()
            for ref in ref_tokens:
                ceiling |= _ngrams(ref, order)  # elementwise max over references
            matched[order - 1] += sum(min(count, ceiling[g]) for g, count in counts.items())
            total[order - 1] += sum(counts.values())
        candidate_length += len(tokens)
        reference_length += _closest_length(len(tokens), ref_tokens)
    if min(matched) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matched, total, strict=True)) / n
    return math.exp(min(0.0, 1.0 - reference_length / candidate_length) + log_precision)


@dataclass(frozen=True)
class _TfIdf:
    """A sentence's TF-IDF weights over all n-gram orders, per-order norms and word count."""

    weights: dict[NGram, float]
    norms: tuple[float, ...]
    length: int


def _tfidf(tokens: Sequence[str], n: int, df: Counter[NGram], log_images: float) -> _TfIdf:
    counts: Counter[NGram] = Counter()
    for order in range(1, n + 1):
        counts.update(_ngrams(tokens, order))
    # n-grams absent from every reference get document frequency 1, as in coco-caption
    weights = {g: c * (log_images - math.log(max(1, df[g]))) for g, c in counts.items()}
    squares = [0.0] * n
    for gram, weight in weights.items():
        squares[len(gram) - 1] += weight * weight
    return _TfIdf(weights, tuple(math.sqrt(s) for s in squares), len(tokens))


def _cider_similarity(candidate: _TfIdf, reference: _TfIdf, n: int, sigma: float) -> float:
    """Mean over orders of the clipped cosine, times the Gaussian length penalty."""
    overlap = [0.0] * n
    for gram, weight in candidate.weights.items():
        ref_weight = reference.weights.get(gram, 0.0)
        overlap[len(gram) - 1] += min(weight, ref_weight) * ref_weight  # clipping: the "D"
    cosines = [
        value / (cand_norm * ref_norm) if cand_norm > 0 and ref_norm > 0 else 0.0
        for value, cand_norm, ref_norm in zip(
            overlap, candidate.norms, reference.norms, strict=True
        )
    ]
    penalty = math.exp(-((candidate.length - reference.length) ** 2) / (2 * sigma**2))
    return penalty * sum(cosines) / n


def cider_d(
    candidates: Sequence[str],
    references: Sequence[Sequence[str]],
    n: int = 4,
    sigma: float = 6.0,
    *,
    tokenize: Callable[[str], list[str]] = coco_tokenize,
) -> float:
    """Corpus CIDEr-D (Vedantam et al. 2015) as computed by the coco-caption toolkit.

    Each sentence becomes one TF-IDF vector per order ``1..n``: term frequency times
    ``log(images) - log(max(1, df))``, where ``df`` counts the images whose references contain
    the n-gram, so document frequencies come from the references of the corpus being evaluated.
    Per reference, the cosine of each order uses candidate weights clipped by the reference's
    weights and is multiplied by ``exp(-(len_c - len_r)^2 / (2 sigma^2))``; an image's score is
    10 times the mean over orders and references, and the corpus score is the mean over images.

    With the default tokenizer and ``n >= 2`` this equals pycocoevalcap's ``Cider()`` after its
    ``PTBTokenizer`` (tested within 1e-6). Lengths here are word counts; pycocoevalcap counts a
    sentence's bigrams (``words - 1``, 0 for an empty one), which gives the same difference
    unless a sentence is empty, and then every cosine involving it is 0 anyway. With ``n = 1``
    pycocoevalcap counts no bigrams, so its length penalty is always 1; here it still applies.
    The IDF needs a corpus: with a single image every weight is 0 and so is the score. A
    candidate identical to all of its image's references scores 10, the maximum.

    Args:
        candidates: one generated caption per image.
        references: the reference captions of each image.
        n: highest n-gram order.
        sigma: width, in words, of the length penalty.
        tokenize: text -> words; :func:`coco_tokenize` (COCO's PTB rules, comparable with
            published numbers) or :func:`tokenize_caption` (the world's scorer).

    Returns:
        CIDEr-D in ``[0, 10]``.
    """
    _check_corpus(candidates, references)
    ref_tokens = [[tokenize(ref) for ref in refs] for refs in references]
    df: Counter[NGram] = Counter()
    for refs in ref_tokens:
        df.update({g for ref in refs for order in range(1, n + 1) for g in _ngrams(ref, order)})
    log_images = math.log(len(references))
    scores = []
    for candidate, refs in zip(candidates, ref_tokens, strict=True):
        cand_vector = _tfidf(tokenize(candidate), n, df, log_images)
        similarities = [
            _cider_similarity(cand_vector, _tfidf(ref, n, df, log_images), n, sigma) for ref in refs
        ]
        scores.append(10.0 * sum(similarities) / len(similarities))
    return sum(scores) / len(scores)


def _edit_distance(hypothesis: Sequence[str], reference: Sequence[str]) -> int:
    """Word-level Levenshtein distance (unit-cost substitution, insertion, deletion)."""
    previous = list(range(len(reference) + 1))
    for i, word in enumerate(hypothesis, start=1):
        current = [i]
        for j, target in enumerate(reference, start=1):
            substitution = previous[j - 1] + (word != target)
            current.append(min(previous[j] + 1, current[j - 1] + 1, substitution))
        previous = current
    return previous[-1]


def word_error_rate(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus WER: total word edits over all pairs divided by the total reference words.

    Words come from :func:`tokenize_caption`, so case and punctuation never count as errors.
    The result can exceed 1 when hypotheses insert many words.
    """
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} references: pass one each"
        )
    hyp_tokens = [tokenize_caption(text) for text in hypotheses]
    ref_tokens = [tokenize_caption(text) for text in references]
    words = sum(len(ref) for ref in ref_tokens)
    if words == 0:
        raise ValueError("the references contain no words: WER is undefined")
    return sum(_edit_distance(h, r) for h, r in zip(hyp_tokens, ref_tokens, strict=True)) / words
