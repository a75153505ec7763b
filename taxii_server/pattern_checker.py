"""A fast check of STIX 2.1 patterns: proves a pattern valid, or says it cannot.

stix2 validates every indicator's pattern with stix2-patterns, whose ANTLR
parser costs about half a millisecond per pattern. This module reads the same
grammar (stix2patterns/v21, STIXPattern.g4) with a hand-written tokenizer and
a recursive-descent parser, then applies the two checks stix2-patterns makes
after parsing: hash values under `hashes` (its object_validator, whose
regular expressions are reused here) and no qualifier type twice on one
observation (its ValidationListener).

It answers only "valid" (True) or "not proven" (False). False is not a
verdict: the caller then runs stix2-patterns itself, which rejects the pattern
with its own message or, for the rare valid shapes this module does not read
(comments, unusual whitespace), accepts it. So this module may be stricter
than the grammar, never more lenient. It must produce exactly the tokens the
ANTLR lexer produces, or give up.
"""

from __future__ import annotations

import re

from stix2patterns.helpers import brackets_check
from stix2patterns.v21.object_validator import HASHES_REGEX

# Keywords are case-sensitive in the 2.1 grammar; `true`/`false` are BoolLiterals.
_KEYWORDS = frozenset({
    "AND", "OR", "NOT", "FOLLOWEDBY", "LIKE", "MATCHES", "ISSUPERSET", "ISSUBSET", "EXISTS", "LAST", "IN",
    "START", "STOP", "SECONDS", "WITHIN", "REPEATS", "TIMES",
})
_B64 = "[A-Za-z0-9+/]"
# The WS rule of the grammar (skipped between tokens).
_WHITESPACE = " \t\r\n\x0b\x0c\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
              "\u2028\u2029\u202f\u205f\u3000"
# Whitespace, then one token, or else one character no token starts with.
# Python tries the alternatives in order where ANTLR takes the longest match;
# this order gives the same token wherever it matters (t'…' before an
# identifier, a float before an int, <= before <).
_TOKEN = re.compile(f"[{_WHITESPACE}]*(" + "|".join([
    (r"t'[0-9]{4}-(?:0[1-9]|1[012])-(?:0[1-9]|[12][0-9]|3[01])"
     r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?Z'"),  # TimestampLiteral
    r"h'(?:[A-Fa-f0-9]{2})*'",  # HexLiteral
    rf"b'(?:{_B64}{{4}})*(?:{_B64}{{4}}|{_B64}{{3}}=|{_B64}{{2}}==)'",  # BinaryLiteral
    r"'[^'\\]*(?:\\['\\][^'\\]*)*'",  # StringLiteral: ' and \ escaped with \, nothing else
    r"[+-]?[0-9]*\.[0-9]+",  # Float
    r"[+-]?(?:0|[1-9][0-9]*)",  # Int
    r"[a-zA-Z_][a-zA-Z0-9_-]*",  # keywords, BoolLiteral, identifiers
    r"==|!=|<>|<=|>=|[=<>:.,()\[\]*]",
    r".",  # anything else: no token
]) + ")", re.DOTALL)
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NUMBER_STARTS = frozenset("0123456789+-.")
_WORDS = {keyword: keyword for keyword in _KEYWORDS} | {"true": "Bool", "false": "Bool"}
_SYMBOLS = {"==": "EQUALITY", "=": "EQUALITY", "!=": "EQUALITY", "<>": "EQUALITY",
            "<=": "ORDER", ">=": "ORDER", "<": "ORDER", ">": "ORDER"} | {symbol: symbol for symbol in ":.,()[]*"}
_QUOTED = {"'": "String", "t": "Timestamp", "h": "Hex", "b": "Binary"}
_ORDERABLE = frozenset({"IntPos", "IntNeg", "FloatPos", "FloatNeg", "String", "Binary", "Hex", "Timestamp"})
_PRIMITIVE = _ORDERABLE | {"Bool"}
_STRING_OPERATORS = frozenset({"LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"})
_QUALIFIER_TYPES = {"START": "STARTSTOP", "WITHIN": "WITHIN", "REPEATS": "REPEATS"}
_STAR = object()  # an `[*]` step in an object path
# stix2-patterns walks its parse tree recursively, so a very long or deeply
# nested pattern can exhaust Python's stack there; beyond these sizes the
# pattern is left to stix2-patterns, whatever happens to it.
_MAX_TOKENS = 1000
_MAX_NESTING = 20


class _NotProven(Exception):
    """The pattern is invalid, or valid in a way this module does not read."""


def proves_valid(pattern: str) -> bool:
    """True if stix2-patterns would accept `pattern` as a STIX 2.1 pattern.

    False means "not proven": ask stix2-patterns."""
    try:
        tokens = _tokens(pattern)
        parser = _Parser(tokens)
        parser.pattern()
    except _NotProven:
        return False
    return brackets_check(pattern) and all(_hash_ok(path, text) for path, text in parser.comparisons)


def _tokens(pattern: str) -> tuple[list[str], list[str]]:
    """The ANTLR lexer's token stream: the kind of each token and its text,
    ending with EOF."""
    texts = _TOKEN.findall(pattern, 0, len(pattern.rstrip(_WHITESPACE)))
    if len(texts) > _MAX_TOKENS:
        raise _NotProven
    kinds = [_kind(text) for text in texts]
    kinds.append("EOF")
    texts.append("")
    return kinds, texts


def _kind(text: str) -> str:
    first = text[0]
    if (first == "'" and len(text) > 1) or (first in "thb" and text[1:2] == "'"):
        return _QUOTED[first]  # a literal: the expression matched all of it
    if first in _LETTERS:
        if "-" in text:
            return "IdentifierWithHyphen"
        return _WORDS.get(text, "Identifier")
    if first in _NUMBER_STARTS and text != "." and len(text) > (first in "+-"):
        return ("Float" if "." in text else "Int") + ("Neg" if first == "-" else "Pos")
    kind = _SYMBOLS.get(text)
    if kind is None:
        raise _NotProven  # a comment, a lone + or -, /, ^, or a character no token starts with
    return kind


class _Parser:
    """Recursive descent over the STIX 2.1 pattern grammar.

    The left-recursive rules of STIXPattern.g4 become loops; precedence is
    FOLLOWEDBY < OR < AND between observations and OR < AND inside them."""

    def __init__(self, tokens: tuple[list[str], list[str]]):
        self.kinds, self.texts = tokens
        self.index = 0
        self.nesting = 0
        # (object path, literal text) of each comparison, for the hash check.
        self.comparisons: list[tuple[list, str]] = []

    # -- helpers ------------------------------------------------------------
    def peek(self) -> str:
        return self.kinds[self.index]

    def take(self, *kinds: str) -> str:
        if self.kinds[self.index] not in kinds:
            raise _NotProven
        self.index += 1
        return self.texts[self.index - 1]

    def open_parenthesis(self) -> bool:
        if not self.accept("("):
            return False
        self.nesting += 1
        if self.nesting > _MAX_NESTING:
            raise _NotProven
        return True

    def close_parenthesis(self) -> None:
        self.take(")")
        self.nesting -= 1

    def accept(self, kind: str) -> bool:
        if self.kinds[self.index] == kind:
            self.index += 1
            return True
        return False

    # -- observation expressions ------------------------------------------
    def pattern(self) -> None:
        self.observation_expressions()
        self.take("EOF")

    def observation_expressions(self) -> None:
        self.observation_or()
        while self.accept("FOLLOWEDBY"):
            self.observation_or()

    def observation_or(self) -> None:
        self.observation_and()
        while self.accept("OR"):
            self.observation_and()

    def observation_and(self) -> None:
        self.observation()
        while self.accept("AND"):
            self.observation()

    def observation(self) -> None:
        if self.accept("["):
            self.comparison_expression()
            self.take("]")
            simple = True
        elif self.open_parenthesis():
            self.observation_expressions()
            self.close_parenthesis()
            simple = False
        else:
            raise _NotProven
        seen = set()
        while self.peek() in _QUALIFIER_TYPES:
            qualifier = _QUALIFIER_TYPES[self.peek()]
            self.qualifier()
            # stix2-patterns refuses a qualifier type repeated on a [...] observation,
            # and does not look at qualifiers of a parenthesised group.
            if simple and qualifier in seen:
                raise _NotProven
            seen.add(qualifier)

    def qualifier(self) -> None:
        keyword = self.take("START", "WITHIN", "REPEATS")
        if keyword == "START":
            self.take("Timestamp")
            self.take("STOP")
            self.take("Timestamp")
        elif keyword == "WITHIN":
            self.take("IntPos", "FloatPos")
            self.take("SECONDS")
        else:
            self.take("IntPos")
            self.take("TIMES")

    # -- comparison expressions -------------------------------------------
    def comparison_expression(self) -> None:
        self.comparison_and()
        while self.accept("OR"):
            self.comparison_and()

    def comparison_and(self) -> None:
        self.property_test()
        while self.accept("AND"):
            self.property_test()

    def property_test(self) -> None:
        if self.open_parenthesis():
            self.comparison_expression()
            self.close_parenthesis()
            return
        negated = self.accept("NOT")
        if self.accept("EXISTS"):
            self.object_path()
            return
        if negated:
            raise _NotProven  # NOT comes after the object path, except before EXISTS
        path = self.object_path()
        self.accept("NOT")
        operator = self.peek()
        self.index += 1
        if operator == "EQUALITY":
            text = self.take(*_PRIMITIVE)
        elif operator == "ORDER":
            text = self.take(*_ORDERABLE)
        elif operator == "IN":
            text = self.set_literal()
        elif operator in _STRING_OPERATORS:
            text = self.take("String")
        else:
            raise _NotProven
        self.comparisons.append((path, text))

    def set_literal(self) -> str:
        """The set, as ANTLR's getText() spells it: tokens joined without spaces."""
        parts = [self.take("(")]
        if self.peek() != ")":
            parts.append(self.take(*_PRIMITIVE))
            while self.accept(","):
                parts.append(",")
                parts.append(self.take(*_PRIMITIVE))
        parts.append(self.take(")"))
        return "".join(parts)

    def object_path(self) -> list:
        """The path as stix2-patterns' inspector lists it (the object type left out)."""
        self.take("Identifier", "IdentifierWithHyphen")
        self.take(":")
        path = [self.path_key()]
        while True:
            if self.accept("."):
                path.append(self.path_key())
            elif self.accept("["):
                # A negative index is in the grammar, but stix2-patterns' inspector
                # fails on it: only positive indexes and * are proven here.
                index = self.take("IntPos", "*")
                try:
                    path.append(_STAR if index == "*" else int(index))
                except ValueError:  # more digits than int() reads; the inspector fails on it too
                    raise _NotProven from None
                self.take("]")
            else:
                return path

    def path_key(self) -> str:
        kind, text = self.kinds[self.index], self.texts[self.index]
        if kind == "Identifier":
            self.index += 1
            return text
        if kind == "String":
            self.index += 1
            return text[1:-1].replace("\\'", "'").replace("\\\\", "\\")
        raise _NotProven


def _hash_ok(path: list, literal_text: str) -> bool:
    """stix2-patterns' object_validator: a value compared with a hash of a known
    algorithm must look like one (its own expressions, applied its own way)."""
    if "hashes" not in path or path[-1] is _STAR:
        return True
    selector = path[-1]
    if not isinstance(selector, str):
        return False  # stix2-patterns fails on an index as hash name
    algorithm = selector.upper().replace("-", "").replace("'", "")
    if algorithm not in HASHES_REGEX:
        return True
    return re.match(HASHES_REGEX[algorithm][0], literal_text.replace("'", "")) is not None
