-- The decision log: every scored image+text pair, moderators' reviews of them, and API keys.
-- PostgreSQL dialect; sqlite/0001_decision_log.sql is the same schema (see it for the
-- column comments).

CREATE TABLE decisions (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at    TIMESTAMPTZ      NOT NULL,
    request_id    TEXT             NOT NULL,
    model         TEXT             NOT NULL,
    score         DOUBLE PRECISION NOT NULL,
    threshold     DOUBLE PRECISION NOT NULL,
    flagged       BOOLEAN          NOT NULL,
    text          TEXT,
    text_sha256   TEXT             NOT NULL,
    text_source   TEXT             NOT NULL CHECK (text_source IN ('given', 'ocr', 'none')),
    image_sha256  TEXT,
    image_mime    TEXT,
    width         INTEGER,
    height        INTEGER,
    image         BYTEA,
    stored        BOOLEAN          NOT NULL,
    latency_ms    DOUBLE PRECISION NOT NULL,
    caller        TEXT             NOT NULL
);
CREATE INDEX decisions_created_at ON decisions (created_at);
CREATE INDEX decisions_model ON decisions (model);

-- Append-only history of moderators' verdicts; the latest (highest id) is current.
CREATE TABLE reviews (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id BIGINT      NOT NULL REFERENCES decisions (id),
    label       TEXT        NOT NULL CHECK (label IN ('hateful', 'not_hateful')),
    reviewer    TEXT        NOT NULL,
    note        TEXT        NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX reviews_by_decision ON reviews (decision_id, id);
CREATE FUNCTION reviews_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'reviews are append-only';
END;
$$;
CREATE TRIGGER reviews_no_update_or_delete BEFORE UPDATE OR DELETE ON reviews
FOR EACH ROW EXECUTE FUNCTION reviews_append_only();

-- Each reviewed decision with its current (latest) review (see the SQLite file).
CREATE VIEW reviewed_decisions AS
SELECT d.id AS decision_id, d.created_at, d.model, d.score, d.threshold, d.flagged,
       d.text, d.text_source, d.image_sha256, d.image_mime, d.width, d.height, d.image, d.stored,
       r.id AS review_id, r.label, r.reviewer, r.note, r.created_at AS reviewed_at
FROM decisions d
JOIN reviews r ON r.decision_id = d.id
WHERE r.id = (SELECT MAX(r2.id) FROM reviews r2 WHERE r2.decision_id = d.id);

CREATE TABLE api_keys (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT        NOT NULL,
    role       TEXT        NOT NULL CHECK (role IN ('scorer', 'moderator', 'admin')),
    key_hash   TEXT        NOT NULL UNIQUE,
    prefix     TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
