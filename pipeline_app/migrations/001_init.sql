-- Raw Telegram updates as accepted by the webhook (the inbox). update_id is Telegram's
-- deduplication key: a redelivered update must not create a second row.
CREATE TABLE telegram_updates (
    update_id   bigint PRIMARY KEY,
    chat_id     bigint NOT NULL,
    payload     jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE messages (
    id             bigserial PRIMARY KEY,
    update_id      bigint NOT NULL,
    chat_id        bigint NOT NULL,
    tg_message_id  bigint NOT NULL,
    text           text NOT NULL,
    stage          text NOT NULL DEFAULT 'received'
                   CHECK (stage IN ('received', 'scored', 'extracted', 'failed')),
    score          double precision,
    failure_reason text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_update_id_key UNIQUE (update_id)
);

CREATE TABLE knowledge (
    id         bigserial PRIMARY KEY,
    message_id bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    item_no    integer NOT NULL,
    content    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT knowledge_message_item_key UNIQUE (message_id, item_no)
);

-- Idempotent consumers: a stage's effect and its marker commit in one transaction, so a
-- redelivered task finds the marker and does nothing.
CREATE TABLE processed (
    stage        text NOT NULL,
    key          bigint NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stage, key)
);

-- Executions per stage and key, committed before the work starts so that crashes count too.
CREATE TABLE attempts (
    stage      text NOT NULL,
    key        bigint NOT NULL,
    count      integer NOT NULL DEFAULT 0,
    last_error text,
    PRIMARY KEY (stage, key)
);

-- Transactional outbox: tasks to publish, committed together with the state that needs them.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    task_name    text NOT NULL,
    args         jsonb NOT NULL,
    available_at timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_unsent ON outbox (available_at) WHERE sent_at IS NULL;

-- Stage events for the dashboard feed. Writers take an advisory lock before inserting so that
-- event ids become visible in id order and a reader can resume from "the last id I saw".
CREATE TABLE events (
    event_id   bigserial PRIMARY KEY,
    message_id bigint NOT NULL,
    stage      text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
