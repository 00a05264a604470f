-- The counter an embedded (SQLite) database uses to tell a running server that another process
-- changed campaigns (src/cache.rs). PostgreSQL tells other processes with `pg_notify` instead;
-- the table is here so that both databases have the same tables.
create table cache_epoch (
  id integer primary key check (id = 1),
  epoch bigint not null
);
insert into cache_epoch (id, epoch) values (1, 0);
