-- The unique index 0005 makes the key that conversation_tags references with its tenant,
-- built without blocking writes to tags.
-- pgops:no-transaction
-- (squawk assumes a transaction; pgops runs a no-transaction file outside one)
-- squawk-ignore ban-concurrent-index-creation-in-transaction
create unique index concurrently if not exists tags_id_client_id_key on tags (id, client_id);

-- pgops:down
drop index concurrently if exists tags_id_client_id_key;
