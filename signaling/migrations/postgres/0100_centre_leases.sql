-- Which relay node decides for a centre (PostgreSQL only: the embedded SQLite store serves
-- one node). The owner holds a lease until lease_until, renewed with the database's clock
-- (now()), never a node's. epoch is the fencing token: it grows on every grant to a node that
-- did not hold a live lease, and every queue write checks it in its own transaction, so a
-- node that lost the centre (paused, partitioned) cannot write any more.
CREATE TABLE centre_leases (
    centre_id     TEXT PRIMARY KEY,
    node_id       TEXT NOT NULL,
    epoch         BIGINT NOT NULL CHECK (epoch > 0),
    lease_until   TIMESTAMPTZ NOT NULL,
    granted_at    TIMESTAMPTZ NOT NULL,
    renewed_at    TIMESTAMPTZ NOT NULL
);
