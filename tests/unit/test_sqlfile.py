"""Migration files: the statement splitter, error positions, parse() and load_dir()."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pgops.schema.migrate import MIGRATIONS_DIR
from pgops.schema.sqlfile import MigrationFileError, Statement, line_of, load_dir, parse, split_statements


def sqls(text: str) -> list[str]:
    return [s.sql for s in split_statements(text)]


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


# --- split_statements ---------------------------------------------------------------------


def test_split_simple_statements_and_lines():
    stmts = split_statements("select 1;\nselect 2;\n\n  select 3;\n")
    assert stmts == [Statement("select 1", 1), Statement("select 2", 2), Statement("select 3", 4)]


def test_split_last_statement_without_semicolon():
    assert sqls("select 1;\nselect 2") == ["select 1", "select 2"]


def test_split_first_line_offset():
    stmts = split_statements("select 1;\nselect 2;", first_line=10)
    assert [s.line for s in stmts] == [10, 11]


def test_split_semicolon_in_single_quotes():
    assert sqls("insert into t values ('a;b');\nselect 2;") == [
        "insert into t values ('a;b')",
        "select 2",
    ]


def test_split_doubled_single_quote():
    # 'it''s; fine' is one literal: the '' must not end it.
    assert sqls("select 'it''s; fine';\nselect 'x';") == ["select 'it''s; fine'", "select 'x'"]


def test_split_literal_ending_in_doubled_quote():
    assert sqls("select 'a''';select 2;") == ["select 'a'''", "select 2"]


def test_split_backslash_is_not_an_escape_in_standard_strings():
    # standard_conforming_strings: 'C:\' is a complete literal, the ; after it ends the statement.
    assert sqls("select 'C:\\';\nselect 2;") == ["select 'C:\\'", "select 2"]


def test_split_escape_string_with_backslash_quote():
    assert sqls("select E'it\\'s; x';\nselect 2;") == ["select E'it\\'s; x'", "select 2"]


def test_split_semicolon_in_double_quoted_identifier():
    assert sqls('create table "we;ird" (id int);\nselect 1;') == [
        'create table "we;ird" (id int)',
        "select 1",
    ]


def test_split_doubled_double_quote_in_identifier():
    assert sqls('select 1 as "a"";b";select 2;') == ['select 1 as "a"";b"', "select 2"]


def test_split_single_quote_inside_double_quotes():
    assert sqls('select 1 as "it\'s;";select 2;') == ['select 1 as "it\'s;"', "select 2"]


def test_split_dollar_quote():
    body = "create function f() returns int language sql as $$ select 1; select 2 $$"
    assert sqls(body + ";\nselect 3;") == [body, "select 3"]


def test_split_tagged_dollar_quote_containing_plain_dollar_quote():
    body = (
        "do $body$\nbegin\n  execute $$ select ';' $$;\n  perform 1;\nend\n$body$"
    )
    stmts = split_statements(body + ";\nselect 3;")
    assert [s.sql for s in stmts] == [body, "select 3"]
    assert [s.line for s in stmts] == [1, 7]


def test_split_positional_parameter_is_not_a_dollar_quote():
    assert sqls("prepare p as select $1;\nselect 2;") == ["prepare p as select $1", "select 2"]


def test_split_semicolon_in_line_comment():
    assert sqls("select 1; -- not; a statement\nselect 2;") == ["select 1", "select 2"]


def test_split_quote_in_line_comment_does_not_open_a_literal():
    assert sqls("-- don't\nselect 1;\nselect 2;") == ["select 1", "select 2"]


def test_split_nested_block_comment():
    text = "select 1 /* outer /* inner; */ still; comment */ + 1;\nselect 2;"
    assert sqls(text) == ["select 1 /* outer /* inner; */ still; comment */ + 1", "select 2"]


def test_split_line_points_past_leading_line_comments():
    text = "-- header\n-- more\n\nselect 1;\n  -- about two\n  select\n    2;\n"
    stmts = split_statements(text)
    assert stmts == [Statement("select 1", 4), Statement("select\n    2", 6)]


def test_split_line_points_past_leading_block_comment():
    stmts = split_statements("select 1;\n/* about\n   two */\nselect 2;")
    assert [s.line for s in stmts] == [1, 4]


def test_split_drops_line_comment_only_chunks():
    text = "-- only a comment;\n;\nselect 1;\n-- trailing comment\n"
    assert split_statements(text) == [Statement("select 1", 3)]


def test_split_empty_and_whitespace():
    assert split_statements("") == []
    assert split_statements(" \n;\n ; ") == []


def test_split_drops_block_comment_only_chunks():
    assert sqls("select 1;\n/* trailing; comment */\n") == ["select 1"]


# --- line_of ------------------------------------------------------------------------------


def test_line_of_maps_position_to_file_line():
    text = "select 1;\n\n-- comment\nselect a,\n       b,\n       nope\nfrom t;\n"
    stmt = split_statements(text)[1]
    assert stmt.line == 4
    pos = stmt.sql.index("nope") + 1  # Postgres positions are 1-based
    assert line_of(stmt, pos) == 6
    assert line_of(stmt, 1) == 4
    assert line_of(stmt, stmt.sql.index("b,") + 1) == 5
    assert line_of(stmt, len(stmt.sql)) == 7


def test_line_of_position_on_newline_char_stays_on_that_line():
    stmt = Statement("select\nx", 10)
    assert line_of(stmt, 7) == 10  # the "\n" itself ends line 10
    assert line_of(stmt, 8) == 11


def test_line_of_without_position():
    stmt = Statement("select\n1", 5)
    assert line_of(stmt, None) == 5
    assert line_of(stmt, 0) == 5


# --- parse --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "001_short.sql", "0001-dash.sql", "0001_Upper.sql", "0001_.sql", "abcd_x.sql",
    "0001_x.SQL", "0001_x.sql.bak", "0001_with space.sql",
])
def test_parse_refuses_bad_names(tmp_path, name):
    path = write(tmp_path, name, "select 1;\n")
    with pytest.raises(MigrationFileError) as exc:
        parse(path)
    assert name in str(exc.value)
    assert "NNNN_name.sql" in str(exc.value)


def test_parse_good_name(tmp_path):
    m = parse(write(tmp_path, "00042_add_index_2.sql", "select 1;\n"))
    assert (m.version, m.name, m.filename) == (42, "add_index_2", "00042_add_index_2.sql")


def test_parse_without_down(tmp_path):
    m = parse(write(tmp_path, "0001_x.sql", "create table t (id int);\n"))
    assert m.down is None
    assert m.down_line == 0
    assert m.down_statements() == []
    assert m.transactional


def test_parse_down_split(tmp_path):
    text = (
        "-- the up part\n"            # 1
        "create table a (id int);\n"  # 2
        "create table b (id int);\n"  # 3
        "\n"                          # 4
        "-- pgops:down\n"             # 5
        "\n"                          # 6
        "drop table b;\n"             # 7
        "-- then\n"                   # 8
        "drop table a;\n"             # 9
    )
    m = parse(write(tmp_path, "0007_ab.sql", text))
    assert m.down_line == 5  # `down` text begins on the marker's line (its newline)
    assert [s.sql for s in m.up_statements()] == ["create table a (id int)", "create table b (id int)"]
    assert [s.line for s in m.up_statements()] == [2, 3]
    assert "pgops:down" not in m.up and "drop table" not in m.up
    assert "drop table b" in m.down and "create table" not in m.down
    assert m.down_statements() == [Statement("drop table b", 7), Statement("drop table a", 9)]


def test_parse_down_statement_right_after_marker(tmp_path):
    text = "select 1;\n-- pgops:down\ndrop table x;\n"
    m = parse(write(tmp_path, "0001_x.sql", text))
    assert m.down_line == 2  # the marker line; `down` starts with its newline
    assert [s.line for s in m.down_statements()] == [3]


def test_parse_marker_must_be_its_own_line(tmp_path):
    # Mentioning the marker mid-line is not a split.
    text = "select 1; -- pgops:down\nselect 2;\n"
    m = parse(write(tmp_path, "0001_x.sql", text))
    assert m.down is None
    assert len(m.up_statements()) == 2


def test_parse_comment_only_down_is_none(tmp_path):
    m = parse(write(tmp_path, "0001_x.sql", "select 1;\n-- pgops:down\n-- irreversible\n"))
    assert m.down is None


def test_parse_no_transaction_single_statement(tmp_path):
    text = "-- pgops:no-transaction\ncreate index concurrently i on t (c);\n-- pgops:down\ndrop index i;\n"
    m = parse(write(tmp_path, "0004_idx.sql", text))
    assert not m.transactional
    assert [s.sql for s in m.up_statements()] == ["create index concurrently i on t (c)"]


def test_parse_no_transaction_refuses_two_statements(tmp_path):
    text = "-- pgops:no-transaction\ncreate index concurrently i on t (c);\nselect 1;\n"
    path = write(tmp_path, "0004_idx.sql", text)
    with pytest.raises(MigrationFileError) as exc:
        parse(path)
    assert "0004_idx.sql" in str(exc.value)
    assert "exactly one statement" in str(exc.value)


def test_parse_no_transaction_in_down_part_does_not_count(tmp_path):
    text = "select 1;\nselect 2;\n-- pgops:down\n-- pgops:no-transaction\nselect 3;\n"
    assert parse(write(tmp_path, "0001_x.sql", text)).transactional


@pytest.mark.parametrize("text", [
    "",
    "-- only comments\n\n",
    "-- pgops:down\ndrop table t;\n",
    "-- nothing up here\n;\n-- pgops:down\ndrop table t;\n",
])
def test_parse_refuses_empty_up(tmp_path, text):
    path = write(tmp_path, "0001_x.sql", text)
    with pytest.raises(MigrationFileError) as exc:
        parse(path)
    assert "0001_x.sql" in str(exc.value)


def test_parse_sha256_is_of_whole_file(tmp_path):
    text = "create table t (id int);\n-- pgops:down\ndrop table t;\n"
    path = write(tmp_path, "0001_x.sql", text)
    m = parse(path)
    assert m.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # The down part is part of the checksum.
    path.write_text(text.replace("drop table t", "drop table if exists t"))
    assert parse(path).sha256 != m.sha256


# --- load_dir -----------------------------------------------------------------------------


def test_load_dir_sorted_by_numeric_version(tmp_path):
    write(tmp_path, "10000_later.sql", "select 3;\n")
    write(tmp_path, "9999_earlier.sql", "select 2;\n")
    write(tmp_path, "0002_first.sql", "select 1;\n")
    write(tmp_path, "notes.txt", "not a migration")
    migs = load_dir(tmp_path)
    assert [m.version for m in migs] == [2, 9999, 10000]
    assert [m.name for m in migs] == ["first", "earlier", "later"]


def test_load_dir_refuses_duplicate_versions(tmp_path):
    write(tmp_path, "0003_one.sql", "select 1;\n")
    write(tmp_path, "00003_two.sql", "select 2;\n")
    with pytest.raises(MigrationFileError) as exc:
        load_dir(tmp_path)
    msg = str(exc.value)
    assert "0003_one.sql" in msg and "00003_two.sql" in msg


def test_load_dir_refuses_bad_name_inside(tmp_path):
    write(tmp_path, "0001_ok.sql", "select 1;\n")
    write(tmp_path, "2_bad.sql", "select 2;\n")
    with pytest.raises(MigrationFileError, match="2_bad.sql"):
        load_dir(tmp_path)


def test_load_dir_missing_directory(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(MigrationFileError, match="no migrations directory"):
        load_dir(missing)
    f = write(tmp_path, "0001_x.sql", "select 1;\n")
    with pytest.raises(MigrationFileError):
        load_dir(f)


def test_load_dir_empty(tmp_path):
    assert load_dir(tmp_path) == []


# --- the project's own migrations -----------------------------------------------------------


def test_real_migrations_load():
    migs = {m.version: m for m in load_dir(MIGRATIONS_DIR)}
    assert {1, 2, 3} <= set(migs)
    for v in (1, 2, 3):
        m = migs[v]
        assert m.transactional, m.filename
        assert m.down is not None, m.filename
        assert m.down_statements(), m.filename
        assert m.up_statements(), m.filename
        for s in m.up_statements() + m.down_statements():
            assert s.sql.strip() and not s.sql.startswith("--"), (m.filename, s)
        lines = m.path.read_text().splitlines()
        # Every up statement starts on the line it reports.
        for s in m.up_statements():
            assert lines[s.line - 1].strip().startswith(s.sql.splitlines()[0].strip()), (m.filename, s)


def test_a_no_transaction_down_part_holds_at_most_one_statement(tmp_path):
    p = tmp_path / "0001_idx.sql"
    p.write_text("-- pgops:no-transaction\ncreate index concurrently i on t (c);\n"
                 "-- pgops:down\ndrop index concurrently i;\nselect 1;\n")
    with pytest.raises(MigrationFileError, match="and its down part at most one"):
        parse(p)
