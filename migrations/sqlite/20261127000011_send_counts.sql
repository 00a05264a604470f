-- Counters behind `herald_sends_total`: sends by channel and state, moved in the transaction
-- that writes the ledger rows (src/sender.rs). `/metrics` used to count the whole ledger on
-- every scrape, which grew with history and fell when a purge deleted rows. Each counter is
-- spread over a few `shard` rows so concurrent senders rarely wait on one; readers sum them.
create table send_counts (
    channel text not null,
    state text not null,
    shard bigint not null,
    n bigint not null,
    primary key (channel, state, shard)
);
insert into send_counts (channel, state, shard, n)
    select channel, state, 0, count(*) from send_ledger group by channel, state;
