"""Caption and transcription metrics: BLEU, CIDEr-D, WER, and scene-graph attribute accuracy.

Every text metric tokenizes with :func:`tokenize_caption`, so captions are compared as
lowercase alphanumeric words regardless of punctuation. BLEU and CIDEr-D follow the published
definitions (no smoothing, no stemming); :func:`caption_attribute_accuracy` parses captions of
the embedded world back into objects and relations and checks them against the scene graph.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trimodal.world.scene import COLORS, SHAPES, SIZES

NGram = tuple[str, ...]

_WORD = re.compile(r"[^\W_]+")


def tokenize_caption(text: str) -> list[str]:
    """Lowercase ``text`` and split it on every non-alphanumeric character.

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


def bleu(candidates: Sequence[str], references: Sequence[Sequence[str]], n: int = 4) -> float:
    """Corpus-level BLEU-``n`` (Papineni et al. 2002) with uniform weights and no smoothing.

    For each order ``1..n`` the candidate n-gram counts, clipped by their largest count in any
    one reference, are summed over the corpus and divided by the corpus's total candidate
    n-grams. The score is the geometric mean of the ``n`` precisions times the brevity penalty
    ``exp(min(0, 1 - r / c))``, where ``c`` is the total candidate length and ``r`` sums, per
    candidate, the reference length closest to the candidate's (ties: the shorter).

    Without smoothing, the score is 0 whenever any order has no match. Unlike NLTK's
    ``corpus_bleu``, which counts at least one n-gram per sentence in each denominator, a
    candidate shorter than ``n`` words adds nothing to the higher orders' denominators; the two
    agree whenever every candidate has at least ``n`` words.

    Args:
        candidates: one generated caption per image.
        references: the reference captions of each image.
        n: highest n-gram order.

    Returns:
        BLEU in ``[0, 1]``.
    """
    _check_corpus(candidates, references)
    matched, total = [0] * n, [0] * n
    candidate_length = reference_length = 0
    for candidate, refs in zip(candidates, references, strict=True):
        tokens = tokenize_caption(candidate)
        ref_tokens = [tokenize_caption(ref) for ref in refs]
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
) -> float:
    """Corpus CIDEr-D (Vedantam et al. 2015) as computed by the coco-caption toolkit.

    Each sentence becomes one TF-IDF vector per order ``1..n``: term frequency times
    ``log(images) - log(max(1, df))``, where ``df`` counts the images whose references contain
    the n-gram, so document frequencies come from the references of the corpus being evaluated.
    Per reference, the cosine of each order uses candidate weights clipped by the reference's
    weights and is multiplied by ``exp(-(len_c - len_r)^2 / (2 sigma^2))``; an image's score is
    10 times the mean over orders and references, and the corpus score is the mean over images.

    Lengths are word counts (coco-caption counts bigrams, which differs only for empty text).
    The IDF needs a corpus: with a single image every weight is 0 and so is the score. A
    candidate identical to all of its image's references scores 10, the maximum.

    Args:
        candidates: one generated caption per image.
        references: the reference captions of each image.
        n: highest n-gram order.
        sigma: width, in words, of the length penalty.

    Returns:
        CIDEr-D in ``[0, 10]``.
    """
    _check_corpus(candidates, references)
    ref_tokens = [[tokenize_caption(ref) for ref in refs] for refs in references]
    df: Counter[NGram] = Counter()
    for refs in ref_tokens:
        df.update({g for ref in refs for order in range(1, n + 1) for g in _ngrams(ref, order)})
    log_images = math.log(len(references))
    scores = []
    for candidate, refs in zip(candidates, ref_tokens, strict=True):
        cand_vector = _tfidf(tokenize_caption(candidate), n, df, log_images)
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


@dataclass(frozen=True)
class ParsedObject:
    """One object mention; an attribute the caption did not state is None."""

    size: str | None
    color: str | None
    shape: str | None


@dataclass(frozen=True)
class ParsedRelation:
    """``objects[subject] <relation> objects[object]``, relation named as in the scene graph."""

    subject: int
    relation: str
    object: int


@dataclass(frozen=True)
class ParsedCaption:
    """Objects in the order the caption mentions them, and the relations it states."""

    objects: tuple[ParsedObject, ...]
    relations: tuple[ParsedRelation, ...]


_RELATION_PHRASES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("to", "the", "left", "of"), "left of"),
    (("to", "the", "right", "of"), "right of"),
    (("left", "of"), "left of"),
    (("right", "of"), "right of"),
    (("above",), "above"),
    (("below",), "below"),
)
_SLOTS = ("size", "color", "shape")


def _lex(tokens: list[str], vocabulary: dict[str, str]) -> list[tuple[str, Any]]:
    """Items ``("mention", {slot: word})``, ``("relation", name)`` and ``("it", None)``.

    Runs of attribute words form one mention; a repeated slot or any other word ends it.
    """
    items: list[tuple[str, Any]] = []
    mention: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        slot = vocabulary.get(tokens[i])
        if slot is not None and slot not in mention:
            mention[slot] = tokens[i]
            i += 1
            continue
        if mention:
            items.append(("mention", mention))
            mention = {}
            if slot is not None:
                continue  # a repeated slot starts the next mention
        phrase = next(
            (p for p in _RELATION_PHRASES if tuple(tokens[i : i + len(p[0])]) == p[0]), None
        )
        if phrase is not None:
            items.append(("relation", phrase[1]))
            i += len(phrase[0])
            continue
        if tokens[i] == "it":
            items.append(("it", None))
        i += 1
    if mention:
        items.append(("mention", mention))
    return items


def parse_caption(
    text: str,
    colors: Iterable[str] = tuple(COLORS),
    shapes: Iterable[str] = SHAPES,
    sizes: Iterable[str] = tuple(SIZES),
) -> ParsedCaption:
    """Invert the caption templates of :mod:`trimodal.world.language`.

    Every run of attribute words (``"large red circle"``) is a new object. A relation phrase
    (``"to the left of"``, ``"left of"``, ``"above"``, ``"below"``) between a mention and a
    following mention or ``"it"`` states ``subject relation object``; a relation without such
    neighbours is ignored. ``"it"`` is the anchor: the most recent mention that is not the
    subject of any relation stated so far, so ``"a A left of a B, and a C above it"`` and
    ``"a B with a A left of it and a C above it"`` both put C above B. Other words are ignored.

    Args:
        text: a caption.
        colors / shapes / sizes: the attribute vocabularies (default: the embedded world's).
    """
    vocabulary = {
        word: slot
        for slot, words in zip(_SLOTS, (sizes, colors, shapes), strict=True)
        for word in words
    }
    items = _lex(tokenize_caption(text), vocabulary)
    objects: list[ParsedObject] = []
    relations: list[ParsedRelation] = []
    subjects: set[int] = set()
    for position, (kind, value) in enumerate(items):
        if kind == "mention":
            objects.append(ParsedObject(value.get("size"), value.get("color"), value.get("shape")))
            continue
        if kind != "relation" or position == 0 or position + 1 == len(items):
            continue
        before, after = items[position - 1][0], items[position + 1][0]
        if before != "mention" or after not in ("mention", "it"):
            continue
        subject = len(objects) - 1
        subjects.add(subject)
        if after == "mention":
            target: int | None = subject + 1  # appended on the next iteration
        else:
            target = next((i for i in reversed(range(subject)) if i not in subjects), None)
        if target is not None:
            relations.append(ParsedRelation(subject, value, target))
    return ParsedCaption(tuple(objects), tuple(relations))


@dataclass(frozen=True)
class _Counts:
    """Numerators and denominators behind :func:`attribute_accuracy` for one caption."""

    scene_objects: int
    objects: int
    colors: int
    shapes: int
    sizes: int
    count: bool
    relations: int
    judged_relations: int

    @property
    def exact(self) -> bool:
        """Every object, the object count and every judged relation right."""
        all_objects = self.objects == self.scene_objects
        return all_objects and self.count and self.relations == self.judged_relations


def _shared(mention: ParsedObject, scene_object: Mapping[str, Any]) -> int:
    return sum(getattr(mention, slot) == scene_object[slot] for slot in _SLOTS)


def _match(parsed: ParsedCaption, scene_objects: Sequence[Mapping[str, Any]]) -> dict[int, int]:
    """One-to-one mention -> scene object matching maximizing shared attributes (exact DP).

    Pairs sharing no attribute are never matched. The DP runs over mentions with the set of
    used scene objects as state, so it is linear in the number of mentions.
    """
    best: dict[int, tuple[int, tuple[tuple[int, int], ...]]] = {0: (0, ())}
    for mention_index, mention in enumerate(parsed.objects):
        updated = dict(best)  # this mention left unmatched
        for used, (score, pairs) in best.items():
            for scene_index, scene_object in enumerate(scene_objects):
                shared = _shared(mention, scene_object)
                key = used | 1 << scene_index
                if shared == 0 or key == used:
                    continue
                if key not in updated or score + shared > updated[key][0]:
                    updated[key] = (score + shared, (*pairs, (mention_index, scene_index)))
        best = updated
    return dict(max(best.values(), key=lambda entry: entry[0])[1])


def _relation_counts(
    parsed: ParsedCaption, matching: dict[int, int], scene: Mapping[str, Any]
) -> tuple[int, int]:
    """(correct, judged) relation statements; see :func:`attribute_accuracy`."""
    truth = {(r["subject"], r["object"]): r["relation"] for r in scene["relations"]}
    verdicts: dict[tuple[int, int], bool] = {}
    ungrounded = 0
    for stated in parsed.relations:
        subject, target = matching.get(stated.subject), matching.get(stated.object)
        if subject is None or target is None:
            ungrounded += 1
            continue
        pair = (min(subject, target), max(subject, target))
        right = truth.get((subject, target)) == stated.relation
        verdicts[pair] = verdicts.get(pair, True) and right
    judged = max(len(verdicts) + ungrounded, len(scene["objects"]) - 1)
    return sum(verdicts.values()), judged


def _counts(parsed: ParsedCaption, scene: Mapping[str, Any]) -> _Counts:
    scene_objects = scene["objects"]
    matching = _match(parsed, scene_objects)
    pairs = [(parsed.objects[m], scene_objects[s]) for m, s in matching.items()]
    correct = {slot: sum(getattr(p, slot) == o[slot] for p, o in pairs) for slot in _SLOTS}
    relations, judged = _relation_counts(parsed, matching, scene)
    return _Counts(
        scene_objects=len(scene_objects),
        objects=sum(_shared(p, o) == len(_SLOTS) for p, o in pairs),
        colors=correct["color"],
        shapes=correct["shape"],
        sizes=correct["size"],
        count=len(parsed.objects) == len(scene_objects),
        relations=relations,
        judged_relations=judged,
    )


def _fraction(numerator: int, denominator: int) -> float:
    """``numerator / denominator``, and 1.0 when there is nothing to judge."""
    return numerator / denominator if denominator else 1.0


def _summary(counts: Sequence[_Counts]) -> dict[str, float]:
    objects = sum(c.scene_objects for c in counts)
    scores = {
        "colors": _fraction(sum(c.colors for c in counts), objects),
        "shapes": _fraction(sum(c.shapes for c in counts), objects),
        "sizes": _fraction(sum(c.sizes for c in counts), objects),
        "relations": _fraction(
            sum(c.relations for c in counts), sum(c.judged_relations for c in counts)
        ),
    }
    scores["overall"] = sum(scores.values()) / len(scores)
    scores["objects"] = _fraction(sum(c.objects for c in counts), objects)
    scores["count"] = sum(c.count for c in counts) / len(counts)
    scores["exact"] = sum(c.exact for c in counts) / len(counts)
    return scores


def attribute_accuracy(parsed: ParsedCaption, scene: Mapping[str, Any]) -> dict[str, float]:
    """How faithfully one parsed caption describes its scene graph (``Scene.to_dict()`` form).

    Mentions are matched one-to-one to scene objects maximizing shared attributes; a mention
    sharing none with an object is never matched to it. Object scores are recall over scene
    objects (extra mentions only cost ``count``):

    - ``colors`` / ``shapes`` / ``sizes``: fraction of scene objects whose matched mention
      states that attribute correctly; ``objects``: all three correct.
    - ``count``: 1.0 if the caption mentions exactly as many objects as the scene holds.
    - ``relations``: statements are grouped by the unordered pair of scene objects they link,
      so ``"A left of B"`` and its inverse ``"B right of A"`` are one equivalent statement; a
      pair is correct if all its statements agree with the scene graph, and a statement about
      an unmatched mention is wrong. The denominator is the larger of the statements made and
      the ``objects - 1`` relations a complete caption states (the generator links every
      object to one anchor), so missing, wrong and hallucinated relations all lower it. 1.0
      when there is nothing to judge (one object, no statement).
    - ``overall``: mean of colors, shapes, sizes and relations; ``exact``: 1.0 if everything
      above is right.
    """
    return _summary([_counts(parsed, scene)])


def caption_attribute_accuracy(
    captions: Sequence[str], scenes: Sequence[Mapping[str, Any]]
) -> dict[str, float]:
    """Corpus :func:`attribute_accuracy` of captions against scene graphs (world vocabulary).

    Object-level scores are pooled over all scene objects, ``relations`` over all judged
    statements (so one-object scenes do not count), ``count`` and ``exact`` are means over
    captions, and ``overall`` is the mean of colors, shapes, sizes and relations.
    """
    if len(captions) != len(scenes) or not captions:
        raise ValueError(
            f"got {len(captions)} captions and {len(scenes)} scenes: pass one caption per scene"
        )
    return _summary(
        [_counts(parse_caption(text), scene) for text, scene in zip(captions, scenes, strict=True)]
    )
