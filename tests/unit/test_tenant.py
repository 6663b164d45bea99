"""Tenant discovery, column bridging and statements (pure): given a catalog, this order, these
refusals, this SQL."""

from __future__ import annotations

import pytest

from pgops.tenant import statements
from pgops.tenant.catalog import Column, ForeignKey, Table, parse
from pgops.tenant.model import TenantError, client_id, columns_at, discover

U = "uuid"


def table(tname, cols, pk=("id",), fks=(), indexed=None, append_only=False, **types):
    columns = tuple(Column(c, types.get(c, U), not_null=True) for c in cols)
    first = {"id", "client_id"} if indexed is None else set(indexed)
    return Table(f"public.{tname}", columns, tuple(pk), tuple(fks), frozenset(first), append_only)


def fk(to, *cols, ref=("id",), on_delete="c"):
    return ForeignKey(f"public.{to}", tuple(cols), tuple(ref), on_delete)


def schema(**extra):
    tabs = [
        table("clients", ["id", "name"], name="text"),
        table("users", ["id", "client_id", "email"], fks=[fk("clients", "client_id")], email="text"),
        table("conversations", ["id", "client_id"], fks=[fk("clients", "client_id")]),
        table("messages", ["id", "client_id", "conversation_id"],
              fks=[fk("clients", "client_id"),
                   fk("conversations", "conversation_id", "client_id", ref=("id", "client_id"))]),
        table("audit_events", ["id", "client_id"], fks=[fk("clients", "client_id")],
              append_only=True, id="bigint"),
    ]
    out = {t.name: t for t in tabs}
    out.update(extra)
    return out


def test_the_tenancy_is_found_from_the_foreign_keys_parents_first():
    ten = discover(schema())
    assert ten.root == "public.clients" and ten.root_key == "id"
    assert ten.order[0] == "public.clients"
    assert ten.order.index("public.conversations") < ten.order.index("public.messages")
    assert set(ten.order) == set(schema())
    assert ten.key("public.clients") == "id" and ten.key("public.users") == "client_id"
    assert "public.audit_events" in ten.kept and "public.audit_events" not in ten.replaced
    assert "public.clients" not in ten.replaced


def test_a_schema_that_cannot_be_restored_per_tenant_is_refused_naming_each_table():
    orphan = Table("public.notes", (Column("id", U), Column("conversation_id", U)), ("id",),
                   (fk("conversations", "conversation_id"),), frozenset({"id"}))
    tabs = schema(**{"public.notes": orphan})
    tabs["public.users"] = table("users", ["id", "client_id"], fks=[fk("clients", "client_id")],
                                 indexed=["id"])
    tabs["public.conversations"] = table("conversations", ["id", "client_id"], pk=(),
                                         fks=[fk("clients", "client_id")])
    with pytest.raises(TenantError) as e:
        discover(tabs)
    said = str(e.value)
    assert "public.notes references public.conversations but has no client_id" in said
    assert "public.users: client_id leads no index" in said
    assert "public.conversations has no primary key" in said


def test_no_tenants_table_and_a_cycle_are_refused():
    with pytest.raises(TenantError, match="no single tenants table"):
        discover({"public.x": table("x", ["id"])})
    a = table("a", ["id", "client_id", "b_id"], fks=[
        fk("clients", "client_id"), fk("b", "b_id", "client_id", ref=("id", "client_id"))])
    b = table("b", ["id", "client_id", "a_id"], fks=[
        fk("clients", "client_id"), fk("a", "a_id", "client_id", ref=("id", "client_id"))])
    with pytest.raises(TenantError, match="cycle"):
        discover({**schema(), a.name: a, b.name: b})


def test_a_foreign_key_between_tenant_tables_without_client_id_is_refused():
    # conversation_tags(tag_id) -> tags(id) alone (migration 0005's state) could link tenants.
    tags = table("tags", ["id", "client_id"], fks=[fk("clients", "client_id")])
    links = table("conversation_tags", ["id", "client_id", "tag_id"],
                  fks=[fk("clients", "client_id"), fk("tags", "tag_id")])
    with pytest.raises(TenantError, match=r"public.conversation_tags: its foreign key \(tag_id\) to "
                                          r"public.tags leaves out client_id"):
        discover(schema(**{tags.name: tags, links.name: links}))


def test_an_append_only_table_referencing_a_replaced_one_is_refused():
    log = table("conversation_log", ["id", "client_id", "conversation_id"], append_only=True,
                fks=[fk("clients", "client_id"), fk("conversations", "conversation_id", "client_id",
                                                    ref=("id", "client_id"), on_delete="n")])
    with pytest.raises(TenantError, match="append-only but references public.conversations"):
        discover(schema(**{log.name: log}))


def test_columns_added_since_the_target_are_bridged_or_refused():
    now = Table("public.t", (Column("id", U, True), Column("a", "text"), Column("b", "text", True, True),
                             Column("g", "text", generated=True)), ("id",))
    then = Table("public.t", (Column("id", U, True), Column("old", "text")), ("id",))
    c = columns_at("public.t", then, now, "T")
    assert c.shared == ("id",)
    assert any("public.t.a was added after T" in n for n in c.notes)
    assert any("old dropped after T" in n for n in c.notes)
    strict = Table("public.t", (Column("id", U, True), Column("n", "int", not_null=True)), ("id",))
    with pytest.raises(TenantError, match="public.t.n was added after T, is NOT NULL and has no default"):
        columns_at("public.t", then, strict, "T")
    retyped = Table("public.t", (Column("id", "bigint", True),), ("id",))
    with pytest.raises(TenantError, match="public.t.id was uuid at T and is bigint now"):
        columns_at("public.t", then, retyped, "T")
    gone = columns_at("public.t", None, now, "T")  # staged empty with today's columns
    assert gone.at_target is False and gone.shared == ("id", "a", "b")


def test_client_is_an_id_or_an_api_key():
    assert client_id("0B5D7A1E-6C3F-4B7E-9A51-5E3D2F1C0A99") == "0b5d7a1e-6c3f-4b7e-9a51-5e3d2f1c0a99"
    assert client_id("pk_live_x'; drop table clients") is None


def test_statements_quote_columns_override_identities_and_scope_by_client():
    t = Table("public.audit_events", (Column("id", "bigint", True, True, "a", sequence="public.s"),
                                      Column("client_id", U), Column('we"ird', "text")), ("id",))
    cols = ("id", "client_id", 'we"ird')
    assert statements.copy_out("public.audit_events", "client_id", cols, "abc") == (
        'copy (select "id", "client_id", "we""ird" from public.audit_events where "client_id" = '
        "'abc') to stdout")
    ins = statements.insert(3, t, cols, missing_only=True)
    assert "overriding system value" in ins and "pg_temp.pgops_tenant_3 s where not exists" in ins
    assert statements.delete("public.users", "client_id") == (
        'delete from public.users where "client_id" = %(client)s')
    [seq] = statements.advance_sequences(t, cols)
    assert "setval('public.s'::regclass, m)" in seq and "m > (select last_value from public.s)" in seq
    d = statements.diff(0, t, "client_id", cols)
    assert d.count("%(client)s") == 2 and "is distinct from" in d
    root = Table("public.clients", (Column("id", U),), ("id",))
    assert statements.update_root(root, "id", ("id",)) is None


def test_the_catalog_json_parses():
    tabs = parse('[{"name": "public.t", "columns": [{"name": "id", "type": "uuid", "not_null": true, '
                 '"has_default": true, "identity": "", "generated": false, "sequence": null}], '
                 '"primary_key": ["id"], "foreign_keys": null, "indexed_first": ["id"], '
                 '"append_only": false, "triggers": null}]')
    assert tabs["public.t"].primary_key == ("id",) and tabs["public.t"].has("id")


def test_an_export_file_round_trips_and_a_cut_or_edited_one_is_named(tmp_path):
    from pgops.tenant.erase import remaining_in_backups
    from pgops.tenant.portable import Block, parse_file, render, write

    parts = [Block("public.clients", ("id", "name"), b"c1\tAcme\n"),
             Block("public.knowledge_base", ("id", 'we"ird'), b"k1\t[0.1,-2e-05]\nk2\t\\\\.\n")]
    header = {"client_id": "c1", "rows": {"public.clients": 1, "public.knowledge_base": 2}}
    data = render(header, parts)
    assert parse_file(data, "f") == (header, parts)
    assert render(header, parts, ["select 1"]).endswith(b"\\.\nselect 1;\ncommit;\n")
    f = tmp_path / "t.sql"
    write(f, data)
    assert f.stat().st_mode & 0o777 == 0o600 and f.read_bytes() == data
    with pytest.raises(TenantError, match=r"f:\d+: the rows of public.knowledge_base never end"):
        parse_file(data[: data.index(b"k2")], "f")
    with pytest.raises(TenantError, match="differ from its header"):
        parse_file(data.replace(b"k2\t\\\\.\n", b""), "f")
    with pytest.raises(TenantError, match="not a pgops tenant export"):
        parse_file(b"select 1;\n", "f")
    said = remaining_in_backups([{"label": "F1", "type": "full"}, {"label": "I1", "type": "incr"}], 2)
    assert "2 backup(s) (1 full, the oldest from F1)" in said and "after 2 more full" in said
    two = [{"label": "F1", "type": "full"}, {"label": "F2", "type": "full"}]
    assert "after 2 more full backup(s) (repo1-retention-full = 2)" in remaining_in_backups(two, 2)


def test_only_a_sequence_key_nothing_references_is_renumbered_on_load():
    audit = Table("public.audit_events", (Column("id", "bigint", not_null=True, sequence="audit_seq",
                                                 identity="a"), Column("client_id", U, not_null=True)),
                  ("id",), (fk("clients", "client_id"),), frozenset({"id", "client_id"}), True)
    ten = discover(schema(**{"public.audit_events": audit}))
    assert ten.renumberable("public.audit_events")
    assert not ten.renumberable("public.users")  # a uuid key, no sequence
    # a sequence key another table references keeps its keys (the references would break)
    seq_conv = Table("public.conversations", (Column("id", "bigint", not_null=True, sequence="c_seq"),
                                              Column("client_id", U, not_null=True)),
                     ("id",), (fk("clients", "client_id"),), frozenset({"id", "client_id"}))
    assert not discover(schema(**{"public.conversations": seq_conv})).renumberable("public.conversations")
    sql = statements.insert_renumbered(4, audit, ("id", "client_id"))
    assert sql == ('insert into public.audit_events ("client_id") select "client_id" '
                   "from pg_temp.pgops_tenant_4")
    assert statements.taken_keys(4, audit) == (
        'select count(*), min(to_json(s."id")::text) from pg_temp.pgops_tenant_4 s '
        'where exists (select from public.audit_events l where (l."id") = (s."id"))')


def test_triggers_on_tenant_tables_are_named_and_refuse_an_exact_apply():
    assert discover(schema()).trigger_refusal() is None
    users = table("users", ["id", "client_id", "email"], fks=[fk("clients", "client_id")], email="text")
    with_trigger = Table(users.name, users.columns, users.primary_key, users.foreign_keys,
                         users.indexed_first, triggers=("set_updated_at", "z_audit"))
    ten = discover(schema(**{"public.users": with_trigger}))
    assert ten.triggers == {"public.users": ("set_updated_at", "z_audit")}
    why = ten.trigger_refusal()
    assert why and "public.users (set_updated_at, z_audit)" in why and "--with-triggers" in why
    assert "re-inserted rows" in why and "--with-triggers to apply anyway" in why
    load = ten.trigger_refusal("loaded", "load")  # a load into a database with triggers
    assert load and "fire on the loaded rows" in load and "--with-triggers to load anyway" in load
