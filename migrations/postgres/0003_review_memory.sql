-- Review memory (src/memory). PostgreSQL dialect; sqlite/0003_review_memory.sql is the
-- same schema (see it for the column comments).

ALTER TABLE decisions ADD COLUMN pdq_hash TEXT;
ALTER TABLE decisions ADD COLUMN pdq_quality INTEGER;
ALTER TABLE decisions ADD COLUMN text_norm_sha256 TEXT;
ALTER TABLE decisions ADD COLUMN image_embedding BYTEA;
ALTER TABLE decisions ADD COLUMN text_embedding BYTEA;
ALTER TABLE decisions ADD COLUMN model_score DOUBLE PRECISION;
ALTER TABLE decisions ADD COLUMN match_decision_id BIGINT REFERENCES decisions (id);
ALTER TABLE decisions ADD COLUMN match_kind TEXT CHECK (match_kind IN ('exact', 'pdq', 'embedding'));
ALTER TABLE decisions ADD COLUMN match_value DOUBLE PRECISION;
ALTER TABLE decisions ADD COLUMN match_label TEXT CHECK (match_label IN ('hateful', 'not_hateful'));

CREATE TABLE review_retractions (
    id           BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    review_id    BIGINT      NOT NULL UNIQUE REFERENCES reviews (id),
    retracted_by TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
