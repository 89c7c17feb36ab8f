-- Image previews (SPEC §12), in the shape Prisma gives these models: what the gateway learns
-- about an image when it makes its thumb, and one row per stored variant and format.
ALTER TABLE "ChatAttachment" ADD COLUMN IF NOT EXISTS "width" INTEGER;
ALTER TABLE "ChatAttachment" ADD COLUMN IF NOT EXISTS "height" INTEGER;
ALTER TABLE "ChatAttachment" ADD COLUMN IF NOT EXISTS "placeholder" TEXT;

-- A preview goes with its attachment: the foreign key cascades, as Prisma's
-- `onDelete: Cascade` spells it.
CREATE TABLE IF NOT EXISTS "ChatAttachmentPreview" (
    "attachmentId" TEXT NOT NULL,
    "variant" TEXT NOT NULL,
    "format" TEXT NOT NULL,
    "storagePath" TEXT NOT NULL,
    "sizeBytes" BIGINT NOT NULL,
    "width" INTEGER NOT NULL,
    "height" INTEGER NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    CONSTRAINT "ChatAttachmentPreview_pkey" PRIMARY KEY ("attachmentId", "variant", "format"),
    CONSTRAINT "ChatAttachmentPreview_attachmentId_fkey" FOREIGN KEY ("attachmentId")
        REFERENCES "ChatAttachment" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
