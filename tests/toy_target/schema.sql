-- The toy target's schema: deliberately unlike the reference pipeline's (no update_id, no
-- natural key, so a redelivered webhook is stored twice).
CREATE TABLE IF NOT EXISTS chat_messages (
    pk bigserial PRIMARY KEY,
    chat_id bigint NOT NULL,
    tg_message_id bigint NOT NULL,
    body text NOT NULL,
    status text NOT NULL DEFAULT 'new',  -- new -> rated -> done, or error
    rating integer,                      -- round(score * 100)
    error text,
    created_at timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS facts (
    chat_message_pk bigint NOT NULL REFERENCES chat_messages (pk),
    fact text NOT NULL
);
