// The dual-write example against the real gateway, with an in-memory stand-in for the app's
// Prisma client (what the example uses of it: create, update, delete of a message).
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { AttachmentGateway } from '../dist/src/index.js'
import { sendMessage } from '../dist/examples/dual-write.js'

const gateway = new AttachmentGateway({
  baseUrl: process.env.GATEWAY_ADMIN,
  serviceToken: process.env.GATEWAY_SERVICE_TOKEN,
})
const staged = (process.env.GATEWAY_STAGED_IDS ?? '').split(',')[2]

function memoryPrisma() {
  const messages = new Map()
  let next = 0
  return {
    messages,
    supportMessage: {
      async create({ data }) {
        const id = `dw${++next}`
        messages.set(id, { id, ...data })
        return { id }
      },
      async update({ where, data }) {
        Object.assign(messages.get(where.id), data)
      },
      async delete({ where }) {
        messages.delete(where.id)
      },
    },
  }
}

test('a message is written with its legacy JSON and its attachments linked', async () => {
  const prisma = memoryPrisma()
  const sent = await sendMessage(prisma, gateway, { id: 'alice' }, 'd1', 'hello', [staged])
  assert.equal(sent.attachments[0].id, staged)
  assert.equal(sent.attachments[0].messageId, sent.id)
  const legacy = prisma.messages.get(sent.id).attachments
  assert.deepEqual(legacy.map((a) => a.storagePath), [`support-chat/dialogs/d1/${staged}`])
  assert.equal(typeof legacy[0].sizeBytes, 'number')
})

test('a refused commit leaves no message behind', async () => {
  const prisma = memoryPrisma()
  await assert.rejects(sendMessage(prisma, gateway, { id: 'alice' }, 'd1', 'x', ['missing']))
  assert.equal(prisma.messages.size, 0)
})
