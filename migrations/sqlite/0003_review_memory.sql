-- Review memory (src/memory): the signals each decision is matched on, which reviewed
-- decision (if any) decided it, and retractions of reviews. SQLite dialect;
-- postgres/0003_review_memory.sql is the same schema. Older rows keep NULLs: they have no
-- signals and are not remembered.

-- PDQ perceptual hash of the picture (64 hex digits) and its quality (0..100).
ALTER TABLE decisions ADD COLUMN pdq_hash TEXT;
ALTER TABLE decisions ADD COLUMN pdq_quality INTEGER;
-- sha256 of the normalised text (NFKC, lower case, punctuation dropped, spaces collapsed).
ALTER TABLE decisions ADD COLUMN text_norm_sha256 TEXT;
-- The package's image_embedding / text_embedding outputs, little-endian float32s; NULL
-- when the package has none.
ALTER TABLE decisions ADD COLUMN image_embedding BLOB;
ALTER TABLE decisions ADD COLUMN text_embedding BLOB;
-- The model's own score; `score` is the final one (after a review match).
ALTER TABLE decisions ADD COLUMN model_score REAL;
-- The reviewed decision that decided (or adjusted) this one: how it matched ('exact',
-- 'pdq', 'embedding'), the PDQ distance or cosine similarity, and its label then.
ALTER TABLE decisions ADD COLUMN match_decision_id INTEGER REFERENCES decisions (id);
ALTER TABLE decisions ADD COLUMN match_kind TEXT CHECK (match_kind IN ('exact', 'pdq', 'embedding'));
ALTER TABLE decisions ADD COLUMN match_value REAL;
ALTER TABLE decisions ADD COLUMN match_label TEXT CHECK (match_label IN ('hateful', 'not_hateful'));

-- A review taken back by an admin (POST /v1/reviews/{id}/retraction). The review itself
-- stays in the append-only history; the review memory forgets it, and the decision is
-- remembered by its latest review that was not retracted, if any.
CREATE TABLE review_retractions (
    -- In order of recording: replicas poll for new ones (src/memory/poll.rs).
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    review_id    INTEGER NOT NULL UNIQUE REFERENCES reviews (id),
    retracted_by TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
