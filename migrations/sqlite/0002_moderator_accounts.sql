-- Moderators' accounts and browser sessions (the web pages; API keys stay in api_keys).
-- SQLite dialect; postgres/0002_moderator_accounts.sql is the same schema.

-- People who sign in to the moderators' pages. Created by `memeguard users create`.
CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL UNIQUE,
    -- Same roles as API keys; a browser account is never a bare scorer.
    role          TEXT NOT NULL CHECK (role IN ('moderator', 'admin')),
    -- Argon2id in PHC string form ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    -- Set when the account is disabled: its sessions stop working, sign-in is refused.
    disabled_at   TEXT
);

-- Signed-in browser sessions. The cookie holds a random token; only its sha256 is stored,
-- so a leaked database holds no usable session.
CREATE TABLE web_sessions (
    token_hash  TEXT PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    -- The CSRF token every form of this session must send back.
    csrf_token  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX web_sessions_expires_at ON web_sessions (expires_at);
