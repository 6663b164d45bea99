-- Existing links checked against the tenant-scoped key of 0005, then the reference by tag
-- id alone dropped. A cross-tenant link fails this migration at VALIDATE, naming the
-- constraint: such rows are for a person to look at, not for a migration to delete.

alter table conversation_tags validate constraint conversation_tags_tag_fkey;
-- (the tenant-scoped reference replaces it)
-- squawk-ignore ban-drop-constraint
alter table conversation_tags drop constraint conversation_tags_tag_id_fkey;

-- pgops:down
alter table conversation_tags add constraint conversation_tags_tag_id_fkey foreign key (tag_id)
    references tags (id) on delete cascade not valid;
