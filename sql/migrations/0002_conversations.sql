-- Conversations and their messages. A message's (conversation_id, client_id) must match its
-- conversation's, so a row can never link one tenant's message to another's conversation.

create table conversations (
    id         uuid primary key default gen_random_uuid(),
    client_id  uuid not null references clients (id) on delete cascade,
    visitor_id text not null,
    status     text not null default 'open' check (status in ('open', 'closed', 'archived')),
    metadata   jsonb not null default '{}'::jsonb,
    started_at timestamptz not null default now(),
    ended_at   timestamptz,
    constraint conversations_id_client_id_key unique (id, client_id)
);
create index conversations_client_id_started_at_idx on conversations (client_id, started_at desc);

create table messages (
    id              uuid primary key default gen_random_uuid(),
    client_id       uuid not null references clients (id) on delete cascade,
    conversation_id uuid not null,
    role            text not null check (role in ('visitor', 'assistant', 'agent', 'system')),
    content         text not null,
    created_at      timestamptz not null default now(),
    constraint messages_conversation_fkey foreign key (conversation_id, client_id)
        references conversations (id, client_id) on delete cascade
);
create index messages_conversation_id_created_at_idx on messages (conversation_id, created_at);
create index messages_client_id_idx on messages (client_id);

create table conversation_tags (
    conversation_id uuid not null,
    tag_id          uuid not null references tags (id) on delete cascade,
    client_id       uuid not null references clients (id) on delete cascade,
    primary key (conversation_id, tag_id),
    constraint conversation_tags_conversation_fkey foreign key (conversation_id, client_id)
        references conversations (id, client_id) on delete cascade
);
create index conversation_tags_client_id_idx on conversation_tags (client_id);
create index conversation_tags_tag_id_idx on conversation_tags (tag_id);

alter table conversations enable row level security;
create policy tenant_isolation on conversations
    using (client_id = current_client_id()) with check (client_id = current_client_id());
alter table messages enable row level security;
create policy tenant_isolation on messages
    using (client_id = current_client_id()) with check (client_id = current_client_id());
alter table conversation_tags enable row level security;
create policy tenant_isolation on conversation_tags
    using (client_id = current_client_id()) with check (client_id = current_client_id());

grant select, insert, update, delete on conversations, messages, conversation_tags to app_rw;

-- pgops:down
drop table conversation_tags, messages, conversations;
