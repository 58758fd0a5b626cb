// Materials: checklist, presigned upload with progress, review, links (the materials API).
import { ApiError, get, post, session, type Checklist, type ChecklistItem, type Material } from './api'

interface UploadTicket {
  id: number
  method: 'PUT' | 'POST'
  url: string
  fields: Record<string, string>
  headers: Record<string, string>
  expires_at: string
  max_bytes: number
  multipart: boolean
}

export const checklist = (caseId: number) => get<Checklist>(`/cases/${caseId}/checklist`)

export function accepts(item: ChecklistItem, file: Blob): boolean {
  return !item.accepted_types.length || item.accepted_types.includes(file.type)
}

// After a drop (Wi-Fi lost, 4G gone for a moment) an upload tries again on its own: at once when
// the browser is back online, else after a growing pause; for up to RETRY_FOR_MS.
const RETRY_FOR_MS = 5 * 60 * 1000
const RETRY_PAUSES_MS = [1000, 2000, 4000, 8000, 15000]

const isDrop = (e: unknown) => e instanceof ApiError && (e.code === 'network' || e.status === 0 || e.status >= 502)

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      window.clearTimeout(timer)
      window.removeEventListener('online', done)
      resolve()
    }
    const timer = window.setTimeout(done, ms)
    window.addEventListener('online', done)
  })
}

async function retrying<T>(what: () => Promise<T>, onRetry?: (attempt: number) => void): Promise<T> {
  const until = Date.now() + RETRY_FOR_MS
  for (let attempt = 1; ; attempt++) {
    try {
      return await what()
    } catch (e) {
      if (!isDrop(e) || Date.now() > until) throw e
      onRetry?.(attempt)
      await pause(navigator.onLine ? RETRY_PAUSES_MS[Math.min(attempt - 1, RETRY_PAUSES_MS.length - 1)] : RETRY_FOR_MS)
    }
  }
}

/**
 * Ask for an upload slot, send the bytes with progress (0..1), confirm; returns the Material.
 * A dropped connection is retried (`onRetry` is told each time); a refusal is not.
 */
export async function upload(
  caseId: number,
  specId: number | null,
  file: Blob,
  filename: string,
  onProgress: (fraction: number) => void,
  onRetry?: (attempt: number) => void,
): Promise<Material> {
  const ask = () =>
    post<UploadTicket>(`/cases/${caseId}/uploads`, {
      spec_id: specId,
      filename,
      content_type: file.type || 'application/octet-stream',
      size: file.size,
      multipart: false,
    })
  let slot = await retrying(ask, onRetry)
  if (slot.max_bytes && file.size > slot.max_bytes) throw new ApiError(413, 'upload.too_large', '')
  await retrying(async () => {
    // A slot that expired while the network was down is replaced by a new one.
    if (Date.parse(slot.expires_at) < Date.now() + 5000) slot = await ask()
    await send(slot, file, onProgress)
  }, onRetry)
  onProgress(1)
  return await retrying(() => post<Material>(`/uploads/${slot.id}/confirm`), onRetry)
}

function send(slot: UploadTicket, file: Blob, onProgress: (f: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open(slot.method, slot.url)
    // Same-origin upload URLs (the local store) need the session; presigned S3 URLs ignore it.
    xhr.withCredentials = new URL(slot.url, location.href).origin === location.origin
    for (const [k, v] of Object.entries(slot.headers ?? {})) xhr.setRequestHeader(k, v)
    if (xhr.withCredentials && session.me) xhr.setRequestHeader('X-CSRF-Token', session.me.csrf_token)
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(Math.min(0.99, e.loaded / e.total))
    }
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve()
      else reject(new ApiError(xhr.status, 'upload.failed', xhr.statusText))
    }
    xhr.onerror = () => reject(new ApiError(0, 'network', ''))
    if (slot.method === 'PUT') {
      xhr.send(file)
    } else {
      const form = new FormData()
      for (const [k, v] of Object.entries(slot.fields ?? {})) form.append(k, v)
      form.append('file', file)
      xhr.send(form)
    }
  })
}

export const review = (materialId: number, decision: 'accept' | 'reject', reason = '') =>
  post<Material>(`/materials/${materialId}/review`, { decision, reason })

export const requestMaterial = (caseId: number, specId: number, note: string) =>
  post<ChecklistItem>(`/cases/${caseId}/checklist/${specId}/request`, { note })

const links = new Map<string, { url: string; until: number }>()

/** A short-lived link to a material (each view is audited server-side); cached until it expires. */
export async function materialUrl(id: number, variant: 'original' | 'thumbnail'): Promise<string> {
  const key = `${id}:${variant}`
  const hit = links.get(key)
  if (hit && hit.until > Date.now() + 5000) return hit.url
  const link = await get<{ url: string; expires_at: string }>(`/materials/${id}/link`, { variant })
  links.set(key, { url: link.url, until: Date.parse(link.expires_at) || Date.now() + 60000 })
  return link.url
}
