-- Applied on every start; each statement must be safe to run again.
create table if not exists items (
    id         bigint generated always as identity primary key,
    name       text not null check (name <> ''),
    quantity   integer not null default 0 check (quantity >= 0),
    updated_at timestamptz not null default now()
);

create table if not exists item_moves (
    id         bigint generated always as identity primary key,
    from_id    bigint not null references items (id),
    to_id      bigint not null references items (id),
    quantity   integer not null check (quantity > 0),
    created_at timestamptz not null default now()
);
