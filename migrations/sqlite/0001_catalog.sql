-- The attachment catalog for the embedded SQLite default, with the same quoted names as the
-- PostgreSQL schema.
--
-- Timestamps ("createdAt", "linkedAt") are INTEGER milliseconds since the Unix epoch, UTC:
-- they sort and compare as numbers, and round-trip the millisecond precision of PostgreSQL's
-- TIMESTAMP(3) exactly.
CREATE TABLE IF NOT EXISTS "ChatAttachment" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "dialogId" TEXT,
    "messageId" TEXT,
    "storagePath" TEXT NOT NULL,
    "mimeType" TEXT NOT NULL,
    "sizeBytes" INTEGER NOT NULL CHECK ("sizeBytes" >= 0),
    "originalName" TEXT NOT NULL,
    "createdByUserId" TEXT NOT NULL,
    "status" TEXT NOT NULL CHECK ("status" IN ('UPLOADED', 'LINKED')),
    "createdAt" INTEGER NOT NULL
        DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    "linkedAt" INTEGER
);

CREATE INDEX IF NOT EXISTS "ChatAttachment_dialogId_id_idx" ON "ChatAttachment" ("dialogId", "id");
CREATE INDEX IF NOT EXISTS "ChatAttachment_messageId_idx" ON "ChatAttachment" ("messageId");
CREATE INDEX IF NOT EXISTS "ChatAttachment_status_createdAt_idx" ON "ChatAttachment" ("status", "createdAt");

-- The default dialog table; a configured `catalog.dialog_table` must already exist.
CREATE TABLE IF NOT EXISTS "SupportDialog" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "userId" TEXT NOT NULL,
    "createdAt" INTEGER NOT NULL
        DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
);
