// Against a real gateway started by `tests/integration/ts_client.rs`, which passes its admin URL, the
// service token and two staged ids of user alice in the environment.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { AttachmentGateway, GatewayError } from '../dist/src/index.js'

const env = (name) => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set (run through tests/integration/ts_client.rs)`)
  return value
}
const gateway = new AttachmentGateway({
  baseUrl: env('GATEWAY_ADMIN'),
  serviceToken: env('GATEWAY_SERVICE_TOKEN'),
})
// The third is the dual-write example's (test/dual-write.test.mjs); the fourth is delete's.
const [first, second, , fourth] = env('GATEWAY_STAGED_IDS').split(',')

test('commit links the uploads, and committing again answers the same rows', async () => {
  const request = { userId: 'alice', dialogId: 'd1', messageId: 'm1', attachmentIds: [first] }
  const linked = await gateway.commit(request)
  assert.equal(linked.length, 1)
  assert.equal(linked[0].id, first)
  assert.equal(linked[0].status, 'LINKED')
  assert.equal(linked[0].messageId, 'm1')
  assert.equal(linked[0].url, `/api/support-chat/attachments/d1/${first}`)
  assert.deepEqual(await gateway.commit(request), linked)
})

test('a refusal is a GatewayError naming the ids', async () => {
  await assert.rejects(
    gateway.commit({ userId: 'bob', dialogId: 'd1', messageId: 'm2', attachmentIds: [second] }),
    (e) => e instanceof GatewayError && e.status === 404 && e.ids.includes(second),
  )
})

test('a wrong service token is a 401', async () => {
  const stranger = new AttachmentGateway({ baseUrl: env('GATEWAY_ADMIN'), serviceToken: 'nope' })
  await assert.rejects(
    stranger.commit({ userId: 'alice', dialogId: 'd1', messageId: 'm3', attachmentIds: [second] }),
    (e) => e instanceof GatewayError && e.status === 401 && e.code === 'unauthorized',
  )
})

test('delete erases a sent attachment, and deleting again finds it missing', async () => {
  await gateway.commit({ userId: 'alice', dialogId: 'd1', messageId: 'm4', attachmentIds: [fourth] })
  assert.deepEqual(await gateway.delete([fourth]), { deleted: [fourth], missing: [] })
  assert.deepEqual(await gateway.delete([fourth]), { deleted: [], missing: [fourth] })
})
