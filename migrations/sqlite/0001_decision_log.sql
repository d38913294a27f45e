-- The decision log: every scored image+text pair, moderators' reviews of them, and API keys.
-- SQLite dialect; postgres/0001_decision_log.sql is the same schema. Times are UTC text in
-- one fixed-width format (2025-01-31T12:00:00.123Z), written by the server, so they sort
-- and compare correctly as text.

-- One row per scored pair. The server answers a request only after its rows are committed.
CREATE TABLE decisions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at    TEXT    NOT NULL,
    -- The moderation response's `id` ("modr-..."): groups the results of one request.
    request_id    TEXT    NOT NULL,
    -- The model package that scored it, "name@version".
    model         TEXT    NOT NULL,
    -- Probability of "hateful" (0..1) and the package's decision threshold.
    score         REAL    NOT NULL,
    threshold     REAL    NOT NULL,
    -- The model's verdict: score >= threshold. A review can override it (see reviews).
    flagged       BOOLEAN NOT NULL,
    -- The text that was scored; NULL when the caller sent "store": false.
    text          TEXT,
    text_sha256   TEXT    NOT NULL,
    -- Where the text came from: given by the caller, read by OCR, or none (image only).
    text_source   TEXT    NOT NULL CHECK (text_source IN ('given', 'ocr', 'none')),
    -- The image as received. All NULL for text-only input (scored with a blank grey image);
    -- `image` alone is NULL when the caller sent "store": false.
    image_sha256  TEXT,
    image_mime    TEXT,
    width         INTEGER,
    height        INTEGER,
    image         BLOB,
    -- False when the caller asked not to keep content: only hashes and scores are stored.
    stored        BOOLEAN NOT NULL,
    -- Milliseconds from the request's arrival to its score.
    latency_ms    REAL    NOT NULL,
    -- Who asked: "key:<api key id>" or "web:<account>".
    caller        TEXT    NOT NULL
);
CREATE INDEX decisions_created_at ON decisions (created_at);
CREATE INDEX decisions_model ON decisions (model);

-- Moderators' verdicts. Append-only history: a decision's current label is its latest
-- review (highest id); earlier ones stay for the record.
CREATE TABLE reviews (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    decision_id INTEGER NOT NULL REFERENCES decisions (id),
    label       TEXT    NOT NULL CHECK (label IN ('hateful', 'not_hateful')),
    reviewer    TEXT    NOT NULL,
    note        TEXT    NOT NULL DEFAULT '',
    created_at  TEXT    NOT NULL
);
CREATE INDEX reviews_by_decision ON reviews (decision_id, id);
CREATE TRIGGER reviews_no_update BEFORE UPDATE ON reviews
BEGIN SELECT RAISE(ABORT, 'reviews are append-only'); END;
CREATE TRIGGER reviews_no_delete BEFORE DELETE ON reviews
BEGIN SELECT RAISE(ABORT, 'reviews are append-only'); END;

-- Each reviewed decision with its current (latest) review: what `memeguard-train refresh`
-- trains on and what the review pages show. `label` is 'hateful' or 'not_hateful'.
CREATE VIEW reviewed_decisions AS
SELECT d.id AS decision_id, d.created_at, d.model, d.score, d.threshold, d.flagged,
       d.text, d.text_source, d.image_sha256, d.image_mime, d.width, d.height, d.image, d.stored,
       r.id AS review_id, r.label, r.reviewer, r.note, r.created_at AS reviewed_at
FROM decisions d
JOIN reviews r ON r.decision_id = d.id
WHERE r.id = (SELECT MAX(r2.id) FROM reviews r2 WHERE r2.decision_id = d.id);

-- API keys: only the sha256 of the secret is stored; the secret is shown once at creation.
CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('scorer', 'moderator', 'admin')),
    key_hash   TEXT NOT NULL UNIQUE,
    -- The secret's first characters ("mg_ab12cd"), to recognise a key in listings.
    prefix     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
