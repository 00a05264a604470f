-- Campaign changes made by another process (the `herald purge` and `herald replay` commands)
-- on an embedded database. PostgreSQL tells other processes with `pg_notify`; SQLite has no
-- notifications, so such a command moves this counter and a running server that sees it move
-- empties its campaign cache (src/cache.rs).
create table cache_epoch (
  id integer primary key check (id = 1),
  epoch bigint not null
);
insert into cache_epoch (id, epoch) values (1, 0);
