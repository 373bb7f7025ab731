"""Caption tokenization as the COCO caption evaluation (pycocoevalcap) does it, in Python.

pycocoevalcap's ``PTBTokenizer`` replaces newlines in each caption by spaces, runs Stanford
CoreNLP's Java ``PTBTokenizer -preserveLines -lowerCase`` and drops the tokens in its
punctuation list; its BLEU and CIDEr scorers then split on whitespace. :func:`coco_tokenize`
gives the same tokens without Java, following the Penn Treebank conventions that tokenizer
applies to captions:

- clitics split off: ``dog's`` -> ``dog 's``; ``don't`` -> ``do n't``; ``can't`` -> ``ca n't``;
  ``won't`` -> ``wo n't``; ``'re 've 'll 'd 'm`` likewise; ``cannot`` -> ``can not``, and the
  assimilations ``gonna gotta wanna lemme gimme`` -> ``gon na``, ...; a possessive quote after
  ``s`` (``dogs'``) is a quote token, dropped; ``o'clock``, ``ma'am``, ``'90s``, ``'n'`` stay;
- words joined by hyphens, periods or slashes stay whole (``well-known``, ``12-year-old``,
  ``dog.the``, ``and/or``, ``1/2/2015``), as do numbers with ``.``, ``,`` or ``:`` between
  digits (``3:45``, ``1,000``, ``2.5``);
- a final period is split off and dropped, except after an abbreviation or title
  (``mr. st. dr. etc. vs. no. fig.``, months, ...), an acronym (``u.s.``, ``t.v.``, ``a.m.``)
  or a single letter (``letter b.``), which keep it;
- punctuation becomes its own token and is dropped: ``. , ; : ? ! - --`` (one to four hyphens),
  ellipses (``...``, ``…``) and quotes of every kind; a run of ``?``/``!`` (``?!``, ``!!``)
  and five or more hyphens are kept, as pycocoevalcap's list does not name them;
- brackets become ``-lrb- -rrb- -lsb- -rsb- -lcb- -rcb-`` and are **kept**: the toolkit's list
  names them in upper case (``-LRB-``) but compares the lower-cased tokens;
- ``$ % & # @ * + = ^ ~ |`` and other symbols are tokens of their own; ``¢`` -> ``cents``,
  ``£`` -> ``#``, ``€`` -> ``$``, ``½`` -> ``1/2`` (and the other vulgar fractions);
- every token is lower-cased.

Not covered (they do not occur in caption data sets, and the Java lexer has many special rules
for them): URLs, e-mail addresses, SGML tags, smileys, abbreviations beyond the common list, and
rules that look at the *next* caption (the Java tokenizer reads all captions as one file).
``tests/generation/test_coco_tokenizer.py`` compares this function with the Java tokenizer
wherever Java is installed.
"""

from __future__ import annotations

import functools
import re
import unicodedata

COCO_PUNCTUATIONS = frozenset(
    {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-"}
    | {"--", "...", ";"}
)
"""pycocoevalcap's ``PUNCTUATIONS``, compared with the lower-cased tokens (so the bracket
names never match)."""

_ALNUM = r"[^\W_]"
_NUMBER = r"\d+(?:[.,:]\d+)+"
_JOINED = rf"{_ALNUM}+(?:[-./]{_ALNUM}+)*"
_WORD = rf"(?:{_NUMBER}(?:[-./]{_ALNUM}+)*|{_JOINED})"
_APOSTROPHE = "['\u2019]"
_WHOLE_APOSTROPHE_WORDS = r"o'clock|ma'am|'n'|'tis|'twas|'\d0s"
_TOKEN = re.compile(
    rf"""
    (?P<whole>(?:{_WHOLE_APOSTROPHE_WORDS})(?!{_ALNUM}))
    | (?P<negated>{_ALNUM}+?) (?P<negation>n{_APOSTROPHE}t)(?!{_ALNUM})
    | (?P<tag>[#@][^\W\d_]{_ALNUM}*)
    | (?P<word>{_WORD}) (?P<period>\.(?!{_ALNUM}))?
    | (?P<clitic>{_APOSTROPHE}(?:s|re|ve|ll|d|m)(?!{_ALNUM}))
    | (?P<ellipsis>\.\.\.+|\u2026|(?:\.[ ]){{2}}\.)
    | (?P<hyphens>-+)
    | (?P<marks>[?!]+)
    | (?P<other>\S)
    """,
    re.VERBOSE | re.IGNORECASE,
)
_SPLIT_WORDS = {  # the Treebank's assimilations, split where its lexer splits them
    "cannot": 3, "gonna": 3, "gotta": 3, "wanna": 3, "lemme": 3, "gimme": 3,
}  # fmt: skip
_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "gen", "sen", "rep", "gov", "lt", "col",
    "capt", "sgt", "rev", "hon", "mt", "ft", "ave", "blvd", "rd", "etc", "vs", "al", "inc",
    "ltd", "co", "corp", "bros", "no", "fig", "e.g", "i.e", "jan", "feb", "mar", "apr", "jun",
    "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mon", "tue", "tues", "wed", "thu",
    "thurs", "fri",
})  # fmt: skip
_ACRONYM = re.compile(r"[a-z](?:\.[a-z])+", re.IGNORECASE)
_SYMBOLS = {"\u00a2": "cents", "\u00a3": "#", "\u20ac": "$"}
_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}
_QUOTES = frozenset("\"'`\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f")


def _keeps_period(word: str, last: bool) -> bool:
    """Whether ``word`` + ``.`` is one token: an abbreviation, an acronym or one letter (a
    letter ending the caption gives its period up, as the Java lexer does when the next
    caption starts with a capital)."""
    if len(word) == 1 and word.isalpha():
        return not last
    return word.lower() in _ABBREVIATIONS or bool(_ACRONYM.fullmatch(word))


def _word_tokens(word: str, period: str | None, last: bool) -> list[str]:
    """A word split at an assimilation, with its final period if it keeps it."""
    if period and _keeps_period(word, last):
        return [word + period]
    tail = [period] if period else []
    if word.lower() in _SPLIT_WORDS:
        cut = _SPLIT_WORDS[word.lower()]
        return [word[:cut], word[cut:], *tail]
    return [word, *tail]


def _other_token(char: str) -> str:
    if char in _QUOTES:
        return "'"  # every quote is dropped, whichever of `` '' ` ' the lexer makes of it
    if char in _BRACKETS:
        return _BRACKETS[char]
    if char in _SYMBOLS:
        return _SYMBOLS[char]
    return char


def _spell_fraction(match: re.Match[str]) -> str:
    """``½`` -> `` 1/2 ``: a vulgar fraction is a token of its own, written with a slash."""
    return " " + unicodedata.normalize("NFKC", match[0]).replace("\u2044", "/") + " "


_VULGAR_FRACTION = re.compile(
    "["
    + "".join(
        chr(c)
        for c in range(0x80, 0x2200)
        if unicodedata.decomposition(chr(c)).startswith("<fraction>")
    )
    + "]"
)


def _match_tokens(match: re.Match[str], last: bool) -> list[str]:
    """The tokens one match of :data:`_TOKEN` stands for (``last``: nothing follows it)."""
    kind, text = match.lastgroup, match[0]
    if match["word"] is not None:
        return _word_tokens(match["word"], match["period"], last)
    if match["negated"] is not None:
        return [match["negated"], "n't"]
    if kind == "clitic":
        return ["'" + text[1:]]  # a curly apostrophe is written straight
    if kind == "ellipsis":
        return ["..."]
    if kind == "hyphens":
        return [text if len(text) >= 5 else "-" if len(text) == 1 else "--"]
    if kind == "other":
        return [_other_token(text)]
    return [text]


def _ptb_tokens(text: str) -> list[str]:
    """Penn Treebank tokens of one caption, before lower-casing and the punctuation filter."""
    tokens: list[str] = []
    position = 0
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        match = _TOKEN.match(text, position)
        assert match is not None  # the last alternative takes any non-space character
        position = match.end()
        tokens += _match_tokens(match, last=not text[position:].strip())
    return tokens


@functools.lru_cache(maxsize=65536)
def _coco_tokens(text: str) -> tuple[str, ...]:
    text = _VULGAR_FRACTION.sub(_spell_fraction, text.replace("\n", " "))
    tokens = (token.lower() for token in _ptb_tokens(text))
    return tuple(token for token in tokens if token not in COCO_PUNCTUATIONS)


def coco_tokenize(text: str) -> list[str]:
    """The lower-cased tokens pycocoevalcap scores for one caption (see the module docstring).

    >>> coco_tokenize("A dog's well-known toy, at 3:45.")
    ['a', 'dog', "'s", 'well-known', 'toy', 'at', '3:45']
    """
    return list(_coco_tokens(text))
