// Rollout step 1 (dual-write) in a Prisma app: the message keeps its legacy attachment JSON
// and the gateway links the staged uploads, so the `ChatAttachment` rows exist from now on.
// Type-checked with the client (`npm run build`); `prisma` is whatever `new PrismaClient()`
// gives the app, described here by the little this example uses.
import { AttachmentGateway, GatewayError, type LinkedAttachment } from '../src/index.js'

interface PrismaLike {
  supportMessage: {
    create(args: { data: Record<string, unknown> }): Promise<{ id: string }>
    update(args: { where: { id: string }; data: Record<string, unknown> }): Promise<unknown>
    delete(args: { where: { id: string } }): Promise<unknown>
  }
}

// Made once at start, e.g.
//   new AttachmentGateway({ baseUrl: 'http://10.0.0.5:9090', serviceToken: <from a secret> })
export async function sendMessage(
  prisma: PrismaLike,
  gateway: AttachmentGateway,
  user: { id: string },
  dialogId: string,
  text: string,
  stagedIds: string[],
): Promise<{ id: string; attachments: LinkedAttachment[] }> {
  // 1. The message first, with an id the commit can name. The legacy JSON is written
  //    later from the commit's answer, so it never names an upload the gateway refused.
  const message = await prisma.supportMessage.create({
    data: { dialogId, userId: user.id, text, attachments: [] },
  })
  let linked: LinkedAttachment[] = []
  try {
    // 2. The gateway moves each object under the dialog and makes its row LINKED.
    linked = await gateway.commit({
      userId: user.id,
      dialogId,
      messageId: message.id,
      attachmentIds: stagedIds,
    })
  } catch (e) {
    // Nothing was linked: undo the message so the user can send again.
    await prisma.supportMessage.delete({ where: { id: message.id } })
    if (e instanceof GatewayError && e.code === 'not_found') {
      throw new Error(`uploads expired or not yours: ${e.ids.join(', ')}`)
    }
    throw e
  }
  // 3. Dual-write: the legacy JSON, in the shape `backfill` reads, until step 6 drops it.
  const legacy = linked.map((a) => ({
    id: a.id,
    storagePath: `support-chat/dialogs/${dialogId}/${a.id}`,
    originalName: a.originalName,
    mimeType: a.mimeType,
    sizeBytes: a.sizeBytes,
  }))
  await prisma.supportMessage.update({ where: { id: message.id }, data: { attachments: legacy } })
  return { id: message.id, attachments: linked }
}
