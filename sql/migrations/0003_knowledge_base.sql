-- The knowledge base: documents with pgvector embeddings (384 dimensions, cosine distance)
-- and an HNSW index for nearest-neighbour search within a tenant.

do $$
begin
    if not exists (select from pg_extension where extname = 'vector') then
        raise exception 'extension vector is missing in this database'
            using hint = 'run `pgops deploy` (or CREATE EXTENSION vector as a superuser)';
    end if;
end $$;

create table knowledge_base (
    id         uuid primary key default gen_random_uuid(),
    client_id  uuid not null references clients (id) on delete cascade,
    title      text not null,
    content    text not null,
    source_url text,
    embedding  vector(384) not null,
    metadata   jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index knowledge_base_client_id_idx on knowledge_base (client_id);
create index knowledge_base_embedding_hnsw_idx on knowledge_base
    using hnsw (embedding vector_cosine_ops) with (m = 16, ef_construction = 64);

alter table knowledge_base enable row level security;
create policy tenant_isolation on knowledge_base
    using (client_id = current_client_id()) with check (client_id = current_client_id());

grant select, insert, update, delete on knowledge_base to app_rw;

-- pgops:down
drop table knowledge_base;
