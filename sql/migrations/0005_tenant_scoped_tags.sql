-- A conversation's tags must be its tenant's: conversation_tags.tag_id referenced tags (id)
-- alone, so one tenant could tag its conversation with another tenant's tag (and lose the
-- link when that tenant deleted it). The reference now includes client_id, as messages' does:
-- enforced for new rows here, checked for existing ones by 0006 (in its own transaction, so
-- writes are not blocked while it scans).

alter table tags add constraint tags_id_client_id_key unique using index tags_id_client_id_key;
alter table conversation_tags add constraint conversation_tags_tag_fkey foreign key (tag_id, client_id)
    references tags (id, client_id) on delete cascade not valid;

-- pgops:down
-- squawk-ignore ban-drop-constraint
alter table conversation_tags drop constraint conversation_tags_tag_fkey;
-- squawk-ignore ban-drop-constraint
alter table tags drop constraint tags_id_client_id_key;
