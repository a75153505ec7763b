"""Properties of the parsers that untrusted text reaches first (hypothesis).

Filters (`taxii_server.query.parse_filters`), RFC 3339 timestamps
(`taxii_server.timestamps`) and paging cursors (`query.CursorSigner`) turn
query strings into storage queries. Whatever the text, each either gives a
well-formed result or refuses with its own error (a TAXII 400, a
TimestampError): never another exception, which the server would answer with
a 500 (architecture rule 5, "never a 500 for bad input").
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from taxii_server.errors import TaxiiError
from taxii_server.query import (ENDPOINT_FILTERS, KNOWN_FILTERS, MATCHING_FILTERS, CursorSigner, PageRequest,
                                parse_filters)
from taxii_server.timestamps import TimestampError, format_timestamp, parse_added_after, parse_timestamp

# Derandomized so CI checks the same examples every run; bounded so the file runs in seconds.
PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None)

SECRET = b"s" * 32
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
STIX_ID = re.compile(r"[a-z0-9][a-z0-9-]*--[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
STIX_TYPE = re.compile(r"[a-z0-9][a-z0-9-]{1,248}[a-z0-9]")
SPEC_VERSION = re.compile(r"[0-9]+\.[0-9]+")
EMITTED = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
FIRST_MICROS = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z
LAST_MICROS = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z


def micros_of(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def canonical(moment: datetime) -> str:
    """How the server writes a moment: UTC, four-digit year, six fractional digits, Z."""
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}.{moment.microsecond:06d}Z"


# --- strategies -------------------------------------------------------------------------------------------------

utc_datetimes = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999),
                             timezones=st.just(timezone.utc))
in_range_micros = st.integers(min_value=FIRST_MICROS, max_value=LAST_MICROS)


@st.composite
def rfc3339_texts(draw) -> tuple[str, datetime]:
    """Any RFC 3339 spelling of a moment: fraction of 0-9 digits, Z/z/offset, T/t; and the moment."""
    moment = draw(utc_datetimes)
    digits = draw(st.integers(min_value=0, max_value=9))
    extra = draw(st.text(alphabet="0123456789", min_size=max(0, digits - 6), max_size=max(0, digits - 6)))
    fraction = ("." + (f"{moment.microsecond:06d}" + extra)[:digits]) if digits else ""
    offset_minutes = draw(st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59))
    try:
        local = moment + timedelta(minutes=offset_minutes)  # the wall-clock time that the offset names
    except OverflowError:  # past year 9999 or before year 1: the moment has no such spelling
        offset_minutes, local = 0, moment
    if offset_minutes == 0 and draw(st.booleans()):
        zone = draw(st.sampled_from("Zz"))
    else:
        sign = "-" if offset_minutes < 0 else "+"
        zone = f"{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"
    separator = draw(st.sampled_from("Tt"))
    text = f"{local.year:04d}-{local:%m-%d}{separator}{local:%H:%M:%S}{fraction}{zone}"
    # Digits past the sixth are truncated: the moment is what the first six say.
    kept = int((fraction[1:] + "000000")[:6]) if digits else 0
    return text, moment.replace(microsecond=kept)


timestamp_like = st.one_of(
    rfc3339_texts().map(lambda pair: pair[0]),
    st.from_regex(r"\A[0-9]{1,5}-[0-9]{1,3}-[0-9]{1,3}[Tt ][0-9]{1,3}:[0-9]{1,3}:[0-9]{1,3}(\.[0-9]*)?"
                  r"([Zz]|[+-][0-9]{1,3}:[0-9]{1,3})?\n?\Z"),
    st.text(),
)
LOWER_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
stix_types = st.builds(lambda first, middle, last: first + middle + last, st.sampled_from(LOWER_ALNUM),
                       st.text(alphabet=LOWER_ALNUM + "-", min_size=1, max_size=20), st.sampled_from(LOWER_ALNUM))
stix_ids = st.builds(lambda kind, uuid_: f"{kind}--{uuid_}", stix_types, st.uuids())
fingerprints = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)

# Shaped like a next token: payload "." mac.
token_shaped = st.builds(lambda payload, mac: f"{payload}.{mac}", st.text(max_size=12), st.text(min_size=1, max_size=12))
# Values for a filter: well-formed items, lists of them, near misses, and any text at all.
well_formed_items = st.one_of(stix_ids, stix_types, timestamp_like,
                              st.sampled_from(["first", "last", "all", "2.1", "0", "1", "50", "201", "-1", "1.5"]))
filter_items = st.one_of(
    well_formed_items,
    st.builds(lambda item, suffix: item + suffix, well_formed_items, st.sampled_from(["\n", " ", "\x00", "\u00e9"])),
    st.text(max_size=20),
    # Numbers too long for int() (over 4300 digits), and leading zeros.
    st.integers(min_value=4000, max_value=6000).map(lambda n: "9" * n), st.integers(0, 5).map(lambda n: "0" * n + "7"),
    token_shaped,
)
filter_values = st.one_of(filter_items, st.lists(filter_items, min_size=1, max_size=4).map(",".join))


def comma_lists(items):
    return st.lists(items, min_size=1, max_size=4).map(",".join)


# What each filter takes when well formed (§3.4.1).
WELL_FORMED = {
    "added_after": rfc3339_texts().map(lambda pair: pair[0]),
    "limit": st.integers(min_value=1, max_value=10**6).map(str),
    "next": token_shaped,
    "match[id]": comma_lists(stix_ids),
    "match[type]": comma_lists(stix_types),
    "match[version]": st.one_of(st.just("all"), comma_lists(st.one_of(st.sampled_from(["first", "last"]),
                                                                     rfc3339_texts().map(lambda pair: pair[0])))),
    "match[spec_version]": comma_lists(st.from_regex(r"\A[0-9]{1,3}\.[0-9]{1,3}\Z")),
}


def values_for(name: str):
    """A value for the filter `name`: well formed, well formed but for one character, or anything."""
    well_formed = WELL_FORMED[name]
    return st.one_of(well_formed,
                     st.builds(lambda value, suffix: value + suffix, well_formed,
                               st.sampled_from(["\n", " ", ",", "\x00", "\u00e9", "Z"])),
                     filter_values)


named_filter_values = st.sampled_from(sorted(KNOWN_FILTERS)).flatmap(lambda name: st.tuples(st.just(name),
                                                                                             values_for(name)))
filter_names = st.one_of(st.sampled_from(sorted(KNOWN_FILTERS)), st.sampled_from(["match[foo]", "match[]", "x"]),
                         st.text(max_size=12))
# Several parameters: well-formed filters, others, and names that are no filter at all.
query_args = st.lists(st.one_of(named_filter_values, st.tuples(filter_names, filter_values)), max_size=6).map(MultiDict)


def parse(endpoint: str, args: MultiDict, *, caller: str = "northtel", signer: CursorSigner | None = None):
    return parse_filters(endpoint, args, collection_id="886accab-6aad-41e0-b0f9-98a3056fa25d",
                         object_id=None if endpoint in ("objects", "manifest") else "indicator--x",
                         caller=caller, default_limit=DEFAULT_LIMIT, max_limit=MAX_LIMIT,
                         signer=signer or CursorSigner(SECRET))


def assert_well_formed(request: PageRequest, args: MultiDict) -> None:
    query = request.query
    assert 1 <= query.limit <= MAX_LIMIT
    assert all(STIX_ID.fullmatch(item) for item in query.ids)
    assert all(STIX_TYPE.fullmatch(item) for item in query.types)
    assert all(SPEC_VERSION.fullmatch(item) for item in query.spec_versions)
    versions = query.versions
    assert not (versions.all and (versions.first or versions.last or versions.exact))
    assert all(FIRST_MICROS <= stamp <= LAST_MICROS for stamp in versions.exact)
    assert query.added_after is None or FIRST_MICROS <= query.added_after <= LAST_MICROS
    assert (query.after_position is not None) == ("next" in args)
    assert re.fullmatch(r"[0-9a-f]{32}", request.fingerprint)


# --- filter parsing ---------------------------------------------------------------------------------------------


endpoints = st.sampled_from(sorted(ENDPOINT_FILTERS))


@settings(PROPERTY, max_examples=100)  # each example is several parameters
@given(endpoint=endpoints, args=query_args)
def test_any_query_string_gives_a_well_formed_query_or_a_400(endpoint, args):
    assert_well_formed_or_refused_with_400(endpoint, args)


@PROPERTY
@given(endpoint=endpoints, filter_=named_filter_values)
def test_any_value_of_any_filter_gives_a_well_formed_query_or_a_400(endpoint, filter_):
    assert_well_formed_or_refused_with_400(endpoint, MultiDict([filter_]))


def assert_well_formed_or_refused_with_400(endpoint, args):
    try:
        request = parse(endpoint, args)
    except TaxiiError as refused:
        assert refused.status == 400
    else:
        assert_well_formed(request, args)


@PROPERTY
@given(limit=st.integers(min_value=1, max_value=10**6), types=st.lists(stix_types, min_size=1, max_size=5),
       ids=st.lists(stix_ids, min_size=1, max_size=5), added_after=rfc3339_texts())
def test_well_formed_filters_are_accepted_and_kept(limit, types, ids, added_after):
    text, moment = added_after
    args = MultiDict({"limit": str(limit), "match[type]": ",".join(types), "match[id]": ",".join(ids),
                      "added_after": text})
    query = parse("objects", args).query
    assert query.limit == min(limit, MAX_LIMIT)
    assert query.types == tuple(dict.fromkeys(types))
    assert query.ids == tuple(dict.fromkeys(ids))
    assert query.added_after == last_microsecond_named(text, moment)


def last_microsecond_named(text: str, moment: datetime) -> int:
    """What `added_after` means: after the moment given to the microsecond, or after the
    end of the millisecond when given with at most three fractional digits."""
    fraction = re.search(r"[0-9]{2}:[0-9]{2}(?:\.([0-9]+))?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$", text).group(1) or ""
    micros = micros_of(moment)
    return micros if len(fraction) > 3 else micros - micros % 1000 + 999


@PROPERTY
@given(endpoint=endpoints, data=st.data())
def test_a_filter_given_twice_is_refused_with_400(endpoint, data):
    name = data.draw(st.sampled_from(ENDPOINT_FILTERS[endpoint]))
    values = data.draw(st.lists(filter_values, min_size=2, max_size=3))
    with pytest.raises(TaxiiError) as refused:
        parse(endpoint, MultiDict([(name, value) for value in values]))
    assert refused.value.status == 400


@PROPERTY
@given(position=in_range_micros, other_caller=st.sampled_from(["regulator", "southwave"]))
def test_a_next_token_continues_only_the_query_and_caller_it_was_made_for(position, other_caller):
    signer = CursorSigner(SECRET)
    args = MultiDict({"match[type]": "indicator", "limit": "10"})
    first = parse("objects", args, signer=signer)
    token = signer.make(position, first.fingerprint, first.carried)

    continued = parse("objects", MultiDict({**args, "next": token}), signer=signer)
    assert continued.query.after_position == position
    # `next` alone continues the query it was made for.
    alone = parse("objects", MultiDict({"next": token}), signer=signer).query
    assert (alone.after_position, alone.types) == (position, ("indicator",))
    # The page size may change between pages; the filters and the caller may not.
    assert parse("objects", MultiDict({"match[type]": "indicator", "limit": "99", "next": token}),
                 signer=signer).query.after_position == position
    for other_args, caller in ((MultiDict({"match[type]": "malware", "next": token}), "northtel"),
                               (MultiDict({**args, "next": token}), other_caller)):
        with pytest.raises(TaxiiError) as refused:
            parse("objects", other_args, caller=caller, signer=signer)
        assert refused.value.status == 400


# --- timestamps -------------------------------------------------------------------------------------------------


@PROPERTY
@given(moment=utc_datetimes)
def test_a_formatted_timestamp_parses_back_to_the_same_moment(moment):
    micros = micros_of(moment)
    text = format_timestamp(micros)
    assert EMITTED.fullmatch(text), text
    assert text == canonical(moment)
    assert parse_timestamp(text) == micros


@PROPERTY
@given(spelled=rfc3339_texts())
def test_every_rfc3339_spelling_parses_to_its_moment_and_formats_canonically(spelled):
    text, moment = spelled
    micros = parse_timestamp(text)
    assert micros == micros_of(moment)
    assert format_timestamp(micros) == canonical(moment)


@PROPERTY
@given(text=timestamp_like)
def test_parsing_any_text_gives_a_moment_in_range_or_a_timestamp_error(text):
    try:
        micros = parse_timestamp(text)
    except TimestampError:
        return
    assert FIRST_MICROS <= micros <= LAST_MICROS
    assert EMITTED.fullmatch(format_timestamp(micros))


@PROPERTY
@given(first=in_range_micros, second=in_range_micros)
def test_formatting_preserves_order_as_text(first, second):
    """X-TAXII-Date-Added-* and date_added are compared as text by clients: order must survive."""
    a, b = format_timestamp(first), format_timestamp(second)
    assert (first < second) == (a < b)
    assert (first == second) == (a == b)
    assert (parse_timestamp(a) < parse_timestamp(b)) == (first < second)


# --- paging cursors ---------------------------------------------------------------------------------------------


@PROPERTY
@given(position=st.integers(min_value=-(2**63), max_value=2**63 - 1), fingerprint=fingerprints)
def test_a_cursor_opens_to_the_position_it_was_made_with(position, fingerprint):
    signer = CursorSigner(SECRET)
    assert signer.open(signer.make(position, fingerprint), fingerprint).position == position
    assert CursorSigner(SECRET).open(signer.make(position, fingerprint), fingerprint).position == position  # any process


tamperings = st.one_of(
    st.tuples(st.just("replace"), st.integers(min_value=0), st.characters()),
    st.tuples(st.just("insert"), st.integers(min_value=0), st.characters()),
    st.tuples(st.just("delete"), st.integers(min_value=0), st.just("")),
    st.tuples(st.just("append"), st.just(0), st.text(min_size=1)),
)


def tamper(token: str, how: tuple) -> str:
    kind, index, text = how
    index %= len(token)
    if kind == "replace":
        return token[:index] + text + token[index + 1:]
    if kind == "insert":
        return token[:index] + text + token[index:]
    if kind == "delete":
        return token[:index] + token[index + 1:]
    return token + text


@PROPERTY
@given(position=in_range_micros, fingerprint=fingerprints, how=tamperings)
def test_a_tampered_cursor_is_refused_with_400(position, fingerprint, how):
    signer = CursorSigner(SECRET)
    token = signer.make(position, fingerprint)
    altered = tamper(token, how)
    if altered == token:
        return  # replacing a character by itself alters nothing
    with pytest.raises(TaxiiError) as refused:
        signer.open(altered, fingerprint)
    assert refused.value.status == 400


@PROPERTY
@given(token=st.one_of(st.text(), st.from_regex(r"\A[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\Z")), fingerprint=fingerprints)
def test_a_random_cursor_is_refused_with_400(token, fingerprint):
    with pytest.raises(TaxiiError) as refused:
        CursorSigner(SECRET).open(token, fingerprint)
    assert refused.value.status == 400


@PROPERTY
@given(position=in_range_micros, fingerprints_=st.lists(fingerprints, min_size=2, max_size=2, unique=True))
def test_a_cursor_made_for_one_query_never_opens_for_another(position, fingerprints_):
    mine, other = fingerprints_
    signer = CursorSigner(SECRET)
    with pytest.raises(TaxiiError) as refused:
        signer.open(signer.make(position, mine), other)
    assert refused.value.status == 400


@PROPERTY
@given(position=in_range_micros, fingerprint=fingerprints)
def test_a_cursor_signed_under_another_server_secret_is_refused_with_400(position, fingerprint):
    token = CursorSigner(b"another secret of 32 characters!").make(position, fingerprint)
    with pytest.raises(TaxiiError) as refused:
        CursorSigner(SECRET).open(token, fingerprint)
    assert refused.value.status == 400



# --- `next` alone continues its query (architecture rule 2) -----------------------------------------------------

WELL_FORMED_SELECTING = {
    "added_after": rfc3339_texts().map(lambda pair: pair[0]),
    "match[id]": comma_lists(stix_ids),
    "match[type]": comma_lists(stix_types),
    "match[version]": st.one_of(st.just("all"), st.lists(st.sampled_from(["first", "last"]), min_size=1, max_size=2,
                                                         unique=True).map(",".join)),
    "match[spec_version]": comma_lists(st.from_regex(r"\A[0-9]{1,3}\.[0-9]{1,3}\Z")),
}
listing_filters = st.fixed_dictionaries({}, optional=WELL_FORMED_SELECTING)
# Where each filter's value sits in `selection`.
SELECTION_INDEX = {"match[id]": 0, "match[type]": 1, "match[version]": 2, "match[spec_version]": 3, "added_after": 4}


def selection(query) -> tuple:
    """What a query selects, apart from page size and position; item order does not matter."""
    versions = query.versions
    return (frozenset(query.ids), frozenset(query.types),
            (versions.all, versions.first, versions.last, frozenset(versions.exact)),
            frozenset(query.spec_versions), query.added_after)


@PROPERTY
@given(filters=listing_filters, position=in_range_micros, limit=st.integers(min_value=1, max_value=10**4))
def test_a_next_token_alone_restores_the_query_it_was_made_for(filters, position, limit):
    signer = CursorSigner(SECRET)
    first = parse("objects", MultiDict(filters), signer=signer)
    token = signer.make(position, first.fingerprint, first.carried)
    alone = parse("objects", MultiDict({"next": token, "limit": str(limit)}), signer=signer)
    assert selection(alone.query) == selection(first.query)
    assert alone.query.after_position == position and alone.query.limit == min(limit, MAX_LIMIT)
    assert alone.carried == first.carried  # so the following page's token carries the same query
    repeated = parse("objects", MultiDict({**filters, "next": token}), signer=signer)
    assert selection(repeated.query) == selection(first.query)


@PROPERTY
@given(filters=listing_filters, data=st.data())
def test_a_match_filter_repeated_with_another_value_is_refused_with_400_naming_it(filters, data):
    signer = CursorSigner(SECRET)
    first = parse("objects", MultiDict(filters), signer=signer)
    name = data.draw(st.sampled_from(sorted(MATCHING_FILTERS)))
    other = data.draw(WELL_FORMED_SELECTING[name])
    index = SELECTION_INDEX[name]
    same = selection(parse("objects", MultiDict({name: other})).query)[index] == selection(first.query)[index]
    token = signer.make(position=1, fingerprint=first.fingerprint, carried=first.carried)
    try:
        continued = parse("objects", MultiDict({"next": token, name: other}), signer=signer)
    except TaxiiError as refused:
        assert refused.status == 400 and name in refused.description and not same
    else:
        assert same and selection(continued.query) == selection(first.query)


@PROPERTY
@given(filters=listing_filters, added_after=rfc3339_texts(), position=in_range_micros)
def test_an_added_after_sent_with_next_is_one_more_lower_bound(filters, added_after, position):
    """OpenCTI's connector sends the last `next` of its previous run with its new added_after:
    the page starts after both, and the match filters stay the token's."""
    signer = CursorSigner(SECRET)
    first = parse("objects", MultiDict(filters), signer=signer)
    token = signer.make(position, first.fingerprint, first.carried)
    continued = parse("objects", MultiDict({"next": token, "added_after": added_after[0]}), signer=signer).query
    given = parse("objects", MultiDict({"added_after": added_after[0]})).query.added_after
    assert continued.added_after == max(b for b in (first.query.added_after, given) if b is not None)
    assert selection(continued)[:4] == selection(first.query)[:4] and continued.after_position == position


@PROPERTY
@given(filters=listing_filters, position=in_range_micros)
def test_a_next_token_stays_short_enough_for_a_url(filters, position):
    signer = CursorSigner(SECRET)
    first = parse("objects", MultiDict(filters), signer=signer)
    assert len(signer.make(position, first.fingerprint, first.carried)) <= 750
    if not filters:
        assert len(signer.make(position, first.fingerprint, first.carried)) <= 60


@PROPERTY
@given(ids=st.lists(stix_ids, min_size=40, max_size=60, unique=True), position=in_range_micros)
def test_filters_too_long_for_a_token_must_be_sent_again_unchanged(ids, position):
    signer = CursorSigner(SECRET)
    args = MultiDict({"match[id]": ",".join(ids)})
    first = parse("objects", args, signer=signer)
    token = signer.make(position, first.fingerprint, first.carried)
    assert len(token) <= 750
    again = parse("objects", MultiDict({"match[id]": ",".join(reversed(ids)), "next": token}), signer=signer)
    assert set(again.query.ids) == set(ids) and again.query.after_position == position
    for partial in (MultiDict({"next": token}), MultiDict({"match[id]": ",".join(ids[1:]), "next": token})):
        with pytest.raises(TaxiiError) as refused:
            parse("objects", partial, signer=signer)
        assert refused.value.status == 400


# --- bookmarks cut to the millisecond ---------------------------------------------------------------------------

@PROPERTY
@given(micros=in_range_micros)
def test_a_bookmark_cut_to_the_millisecond_means_after_the_end_of_that_millisecond(micros):
    """What OpenCTI's platform sends back: X-TAXII-Date-Added-Last through a millisecond clock."""
    text = format_timestamp(micros)
    assert parse_added_after(text) == micros  # six digits: exactly after that moment
    cut = text[:23] + "Z"
    assert parse_added_after(cut) == micros - micros % 1000 + 999 >= micros
    assert parse_added_after(text[:19] + "Z") == micros - micros % 1_000_000 + 999
