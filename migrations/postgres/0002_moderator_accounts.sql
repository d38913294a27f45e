-- Moderators' accounts and browser sessions (the web pages; API keys stay in api_keys).
-- PostgreSQL dialect; sqlite/0002_moderator_accounts.sql is the same schema (see it for
-- the column comments).

CREATE TABLE accounts (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT        NOT NULL UNIQUE,
    role          TEXT        NOT NULL CHECK (role IN ('moderator', 'admin')),
    password_hash TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    disabled_at   TIMESTAMPTZ
);

CREATE TABLE web_sessions (
    token_hash  TEXT        PRIMARY KEY,
    account_id  BIGINT      NOT NULL REFERENCES accounts (id),
    csrf_token  TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX web_sessions_expires_at ON web_sessions (expires_at);
