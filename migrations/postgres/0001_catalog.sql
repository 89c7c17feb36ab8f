-- The attachment catalog, in the shape Prisma gives these models: quoted camelCase names,
-- TIMESTAMP(3) without time zone holding UTC, and Prisma's constraint and index names, so that
-- every `IF NOT EXISTS` below is a no-op when the app's own migrations created the objects
-- first.
--
-- "status" is TEXT with a CHECK rather than a PostgreSQL enum type: the gateway reads it as
-- `CAST("status" AS TEXT)` and writes it as an untyped literal, so a Prisma enum column created
-- by the app works unchanged, and this table needs no type of its own.
CREATE TABLE IF NOT EXISTS "ChatAttachment" (
    "id" TEXT NOT NULL,
    "dialogId" TEXT,
    "messageId" TEXT,
    "storagePath" TEXT NOT NULL,
    "mimeType" TEXT NOT NULL,
    "sizeBytes" BIGINT NOT NULL,
    "originalName" TEXT NOT NULL,
    "createdByUserId" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    -- `now()` is timestamptz; convert explicitly so the default is UTC whatever the session
    -- time zone is.
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    "linkedAt" TIMESTAMP(3),
    CONSTRAINT "ChatAttachment_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "ChatAttachment_status_check" CHECK ("status" IN ('UPLOADED', 'LINKED')),
    CONSTRAINT "ChatAttachment_sizeBytes_check" CHECK ("sizeBytes" >= 0)
);

-- Linked reads: WHERE "id" = $1 AND "dialogId" = $2 (the PK answers it; this one serves the
-- app's per-dialog listings).
CREATE INDEX IF NOT EXISTS "ChatAttachment_dialogId_id_idx" ON "ChatAttachment" ("dialogId", "id");
-- Commit and the app's per-message listings.
CREATE INDEX IF NOT EXISTS "ChatAttachment_messageId_idx" ON "ChatAttachment" ("messageId");
-- Cleanup: old UPLOADED rows.
CREATE INDEX IF NOT EXISTS "ChatAttachment_status_createdAt_idx" ON "ChatAttachment" ("status", "createdAt");

-- The default dialog table ("SupportDialog") is not made here: `migrate` creates it only while
-- `catalog.dialog_table` keeps its default (`catalog::sql`), so that an app with its own dialog
-- table gets no table beside it that its Prisma schema does not know.
