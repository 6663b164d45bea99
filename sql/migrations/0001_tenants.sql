-- Tenants and their configuration. Every tenant table carries client_id and is guarded by
-- row-level security keyed on the session setting app.client_id (see current_client_id()).
-- Objects are owned by the migration role; the application connects as a member of app_rw,
-- which owns nothing and gets only DML.

create function current_client_id() returns uuid
    language sql stable
    as $$ select nullif(current_setting('app.client_id', true), '')::uuid $$;

create table clients (
    id              uuid primary key default gen_random_uuid(),
    name            text not null,
    public_api_key  text not null,
    allowed_domains jsonb not null default '[]'::jsonb,
    status          text not null default 'active' check (status in ('active', 'suspended', 'deleted')),
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    constraint clients_public_api_key_key unique (public_api_key),
    constraint clients_allowed_domains_is_array check (jsonb_typeof(allowed_domains) = 'array')
);

-- The widget knows only its public API key: this resolves it to a tenant without letting
-- the application read other tenants' rows (it runs as the owner, for exactly this lookup).
create function client_id_for_api_key(api_key text) returns uuid
    language sql stable security definer set search_path = public, pg_temp
    as $$ select id from clients where public_api_key = api_key and status = 'active' $$;

create table users (
    id            uuid primary key default gen_random_uuid(),
    client_id     uuid not null references clients (id) on delete cascade,
    email         text not null,
    password_hash text not null,
    role          text not null default 'member' check (role in ('owner', 'admin', 'member')),
    created_at    timestamptz not null default now(),
    constraint users_client_id_email_key unique (client_id, email)
);

create table widget_config (
    id              uuid primary key default gen_random_uuid(),
    client_id       uuid not null references clients (id) on delete cascade,
    widget_name     text not null default 'Support',
    welcome_message text not null default 'Hi! How can I help?',
    position        text not null default 'bottom-right'
                    check (position in ('bottom-right', 'bottom-left', 'top-right', 'top-left')),
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    constraint widget_config_client_id_key unique (client_id)
);

create table widget_styles (
    id            uuid primary key default gen_random_uuid(),
    client_id     uuid not null references clients (id) on delete cascade,
    primary_color text not null default '#3b82f6' check (primary_color ~ '^#[0-9a-fA-F]{6}$'),
    font_family   text not null default 'system-ui',
    border_radius integer not null default 12 check (border_radius between 0 and 64),
    custom_css    text,
    updated_at    timestamptz not null default now(),
    constraint widget_styles_client_id_key unique (client_id)
);

create table tags (
    id         uuid primary key default gen_random_uuid(),
    client_id  uuid not null references clients (id) on delete cascade,
    name       text not null,
    color      text not null default '#6b7280',
    created_at timestamptz not null default now(),
    constraint tags_client_id_name_key unique (client_id, name)
);

create table audit_events (
    id         bigint generated always as identity primary key,
    client_id  uuid not null references clients (id) on delete cascade,
    actor      text not null,
    action     text not null,
    entity     text not null,
    entity_id  text,
    details    jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now()
);
create index audit_events_client_id_created_at_idx on audit_events (client_id, created_at desc);

alter table clients enable row level security;
create policy tenant_isolation on clients
    using (id = current_client_id()) with check (id = current_client_id());

alter table users enable row level security;
create policy tenant_isolation on users
    using (client_id = current_client_id()) with check (client_id = current_client_id());
alter table widget_config enable row level security;
create policy tenant_isolation on widget_config
    using (client_id = current_client_id()) with check (client_id = current_client_id());
alter table widget_styles enable row level security;
create policy tenant_isolation on widget_styles
    using (client_id = current_client_id()) with check (client_id = current_client_id());
alter table tags enable row level security;
create policy tenant_isolation on tags
    using (client_id = current_client_id()) with check (client_id = current_client_id());
alter table audit_events enable row level security;
create policy tenant_isolation on audit_events
    using (client_id = current_client_id()) with check (client_id = current_client_id());

grant usage on schema public to app_rw;
grant select, insert, update, delete on clients, users, widget_config, widget_styles, tags to app_rw;
grant select, insert on audit_events to app_rw;  -- the audit trail is append-only
grant execute on function current_client_id(), client_id_for_api_key(text) to app_rw;
revoke execute on function client_id_for_api_key(text) from public;

-- pgops:down
drop table audit_events, tags, widget_styles, widget_config, users, clients;
drop function client_id_for_api_key(text);
drop function current_client_id();
