// The app's client for attachment-gateway's internal API (SPEC §4), on the admin listener:
// `commit` links staged uploads to a message. It runs on the app's server, never in a
// browser: it carries the service token (`internal.service_token`).
//
// `delete` (`POST /internal/attachments/delete`) is not here yet: the gateway does not serve
// that endpoint yet, and a client for an endpoint that answers 404 would only hide that.

/** An attachment as the gateway answers it (`ChatAttachment`, camelCase as in Prisma). */
export interface Attachment {
  id: string
  status: 'UPLOADED' | 'LINKED'
  mimeType: string
  sizeBytes: number
  originalName: string
  /** RFC 3339, UTC, milliseconds. */
  createdAt: string
  /** The public read path, relative to the gateway's origin. */
  url: string
  width?: number
  height?: number
  /** ThumbHash, base64. */
  placeholder?: string
}

export interface LinkedAttachment extends Attachment {
  status: 'LINKED'
  dialogId: string
  messageId: string
  linkedAt: string
}

export interface CommitRequest {
  /** Who uploaded them: each id must be that user's staged upload. */
  userId: string
  dialogId: string
  messageId: string
  attachmentIds: string[]
}

/** The answer of `delete`: which ids were erased now, and which were already gone. */
export interface DeleteResult {
  deleted: string[]
  missing: string[]
}

export interface ClientOptions {
  /** The admin listener, e.g. `http://10.0.0.5:9090` (`server.admin_listen`). */
  baseUrl: string
  /** `internal.service_token`. */
  serviceToken: string
  /** Per attempt; default 5000 ms. */
  timeoutMs?: number
  /** Attempts for faults that a retry can cure (network, 5xx, 429); default 3. */
  attempts?: number
  /** Defaults to the global `fetch` (Node 18+). */
  fetch?: typeof fetch
}

/** An answer the gateway refused, with its JSON error code (`not_found`, `conflict`, ...). */
export class GatewayError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    /** The ids the refusal is about (a commit names the ones it could not link). */
    readonly ids: string[] = [],
    message?: string,
  ) {
    super(message ?? `attachment-gateway answered ${status} ${code}`)
    this.name = 'GatewayError'
  }
}

export class AttachmentGateway {
  private readonly options: Required<Omit<ClientOptions, 'fetch'>> & { fetch: typeof fetch }

  constructor(options: ClientOptions) {
    this.options = {
      timeoutMs: 5000,
      attempts: 3,
      fetch: globalThis.fetch,
      ...options,
      baseUrl: options.baseUrl.replace(/\/+$/, ''),
    }
  }

  /**
   * Link `attachmentIds` to the message. Idempotent: committing ids already linked to the
   * same message answers the same rows again, which is why failures a retry can cure are
   * retried. All or nothing: on any refusal no id is linked.
   */
  async commit(request: CommitRequest): Promise<LinkedAttachment[]> {
    const body = await this.post('/internal/attachments/commit', request)
    return (body as { attachments: LinkedAttachment[] }).attachments
  }

  /**
   * Erase attachments (a message deleted, a user's erasure request): rows, objects and
   * previews go, and every gateway instance stops serving them within a second. Idempotent,
   * hence retried like `commit`: ids already gone come back in `missing`.
   */
  async delete(attachmentIds: string[]): Promise<DeleteResult> {
    return (await this.post('/internal/attachments/delete', { attachmentIds })) as DeleteResult
  }

  private async post(path: string, payload: unknown): Promise<unknown> {
    const { baseUrl, serviceToken, timeoutMs, attempts, fetch } = this.options
    let last: unknown
    for (let attempt = 1; attempt <= attempts; attempt++) {
      let response: Response
      try {
        response = await fetch(`${baseUrl}${path}`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${serviceToken}`,
            'content-type': 'application/json',
          },
          body: JSON.stringify(payload),
          signal: AbortSignal.timeout(timeoutMs),
        })
      } catch (e) {
        last = e
        await backoff(attempt)
        continue
      }
      const text = await response.text()
      const json = text ? (JSON.parse(text) as Record<string, unknown>) : {}
      if (response.ok) return json
      const error = new GatewayError(
        response.status,
        typeof json.error === 'string' ? json.error : 'unknown',
        Array.isArray(json.ids) ? (json.ids as string[]) : [],
        typeof json.message === 'string' ? json.message : undefined,
      )
      if (response.status < 500 && response.status !== 429) throw error
      last = error
      await backoff(attempt)
    }
    throw last
  }
}

function backoff(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 100 * 2 ** (attempt - 1)))
}
