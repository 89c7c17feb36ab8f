-- Image previews (SPEC §12), with the same quoted names as the PostgreSQL schema.
ALTER TABLE "ChatAttachment" ADD COLUMN "width" INTEGER;
ALTER TABLE "ChatAttachment" ADD COLUMN "height" INTEGER;
ALTER TABLE "ChatAttachment" ADD COLUMN "placeholder" TEXT;

CREATE TABLE IF NOT EXISTS "ChatAttachmentPreview" (
    "attachmentId" TEXT NOT NULL REFERENCES "ChatAttachment" ("id")
        ON DELETE CASCADE ON UPDATE CASCADE,
    "variant" TEXT NOT NULL,
    "format" TEXT NOT NULL,
    "storagePath" TEXT NOT NULL,
    "sizeBytes" INTEGER NOT NULL,
    "width" INTEGER NOT NULL,
    "height" INTEGER NOT NULL,
    "createdAt" INTEGER NOT NULL
        DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    PRIMARY KEY ("attachmentId", "variant", "format")
);
