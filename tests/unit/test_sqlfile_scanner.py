"""The statement splitter's token scanners: each returns the index just past the token
starting at i (comment, quoted string or identifier, dollar-quoted body), or the end of the
text when the token is unterminated."""

from __future__ import annotations

import pytest

from pgops.schema.sqlfile import (
    _block_comment_end,
    _dollar_quoted_end,
    _line_comment_end,
    _quoted_end,
    _token_end,
    split_statements,
)


def end_of(scan, text: str, i: int = 0) -> str:
    """The token `scan` finds at i, as text."""
    return text[i:scan(text, i)]


def test_line_comment_takes_its_newline():
    assert end_of(_line_comment_end, "x -- a; b\ny", 2) == "-- a; b\n"


def test_line_comment_at_end_of_text():
    assert end_of(_line_comment_end, "-- last; line") == "-- last; line"


def test_block_comment_nests():
    text = "/* a /* b; */ c; */ tail"
    assert end_of(_block_comment_end, text) == "/* a /* b; */ c; */"


def test_block_comment_unterminated_runs_to_the_end():
    assert _block_comment_end("x /* a /* b */ c", 2) == len("x /* a /* b */ c")


@pytest.mark.parametrize(
    "text, token",
    [
        ("'a;b' rest", "'a;b'"),
        ("'it''s' rest", "'it''s'"),
        ("'a''' rest", "'a'''"),
        ("'C:\\' rest", "'C:\\'"),  # standard string: a backslash is a character
        ('"we;ird" rest', '"we;ird"'),
        ('"a"";b" rest', '"a"";b"'),
        ('"it\'s" rest', '"it\'s"'),
        ("'never closed; x", "'never closed; x"),
    ],
)
def test_quoted(text, token):
    assert end_of(_quoted_end, text) == token


@pytest.mark.parametrize(
    "text, i, token",
    [
        ("E'it\\'s' rest", 1, "'it\\'s'"),
        ("select e'a\\'b' rest", 8, "'a\\'b'"),
        ("(E'\\\\') rest", 2, "'\\\\'"),
        # an E that ends a longer word does not make an escape string
        ("codE'a\\' rest", 4, "'a\\'"),
    ],
)
def test_escape_strings(text, i, token):
    assert end_of(_quoted_end, text, i) == token


@pytest.mark.parametrize(
    "text, token",
    [
        ("$$a; b$$ rest", "$$a; b$$"),
        ("$fn$ a $$ b; $fn$ rest", "$fn$ a $$ b; $fn$"),
        ("$_x1$ ; $_x1$;", "$_x1$ ; $_x1$"),
        ("$$ never closed;", "$$ never closed;"),
        ("$1, $2;", "$"),  # a parameter, not a tag: one character
        ("$ x;", "$"),
    ],
)
def test_dollar_quoted(text, token):
    assert end_of(_dollar_quoted_end, text) == token


@pytest.mark.parametrize(
    "text, i, end",
    [("a;b", 0, 1), ("--c\nx", 0, 4), ("/*c*/x", 0, 5), ("'a'x", 0, 3), ("$$a$$x", 0, 5),
     ("$1", 0, 1), ("-x", 0, 1), ("/x", 0, 1)],
)
def test_token_end_dispatches_by_first_characters(text, i, end):
    assert _token_end(text, i) == end


def test_semicolons_inside_every_token_kind_do_not_split():
    sql = (
        "select 'a;b', \"c;d\", E'e\\';f', $$g;h$$, $t$i;$$;j$t$ -- k;l\n"
        "/* m; /* n; */ o; */ from t;\n"
        "select 2"
    )
    stmts = split_statements(sql)
    assert [s.line for s in stmts] == [1, 3]
    assert stmts[1].sql == "select 2"
    assert stmts[0].sql.endswith("from t")


def test_unterminated_tokens_swallow_the_rest():
    assert [s.sql for s in split_statements("select 1; select 'x; select 2")] == [
        "select 1", "select 'x; select 2"]
    assert [s.sql for s in split_statements("select 1; do $$ x; y")] == [
        "select 1", "do $$ x; y"]
    assert [s.sql for s in split_statements("select 1; /* x; y")] == ["select 1"]
