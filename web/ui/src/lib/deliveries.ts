// Courier deliveries of licences (证照速递): the courier's day, setting out, proof at the door
// (queued on the phone while offline), failed attempts, and what supervisors and residents see.
// Shapes follow scheduler/models.py; docs/delivery.md describes the flow.
import { ApiError, get, post } from './api'

export type DeliveryStatus = 'pending' | 'dispatched' | 'delivered' | 'locked'
export type FailReason = 'not_home' | 'refused' | 'wrong_address'
export type Recipient = 'resident' | 'proxy'

export interface DeliveryAttempt {
  attempt: number
  reason: FailReason
  note: string
  at: string
  next_day: string
}

export interface Delivery {
  id: number
  case_id: number
  case_number: string
  item_name: string
  item_name_en: string
  resident_name: string
  address_masked: string
  from_site: string
  courier_name: string
  day: string
  status: DeliveryStatus
  attempt: number
  attempts: DeliveryAttempt[]
  locked_at: string | null
  delivered_at: string | null
  has_proof: boolean
}

export interface CourierStop {
  order: number
  delivery: Delivery
  address: string
  phone: string
  lat: number
  lng: number
  nav_url: string
}

export interface CourierDay {
  day: string
  courier_name: string
  start: string
  stops: CourierStop[]
}

export interface ProofIn {
  key: string
  recipient: Recipient
  last4: string
  code: string
  proxy_name: string
  proxy_relation: string
  photo: string
  signature: string
  lat: number
  lng: number
  accuracy_m: number | null
  captured_at: string
}

export interface ProofResult {
  delivery_id: number
  status: DeliveryStatus
  delivered_at: string | null
  recipient: Recipient
  key: string
}

export interface Proof {
  delivery_id: number
  case_id: number
  recipient: Recipient
  proxy_name: string
  proxy_id_last4: string
  proxy_relation: string
  courier_name: string
  lat: number
  lng: number
  accuracy_m: number | null
  captured_at: string
  received_at: string
  photo_url: string
  signature_url: string
}

export interface ResidentDelivery {
  id: number
  case_id: number
  item_name: string
  item_name_en: string
  status: DeliveryStatus
  day: string
  courier_name: string
  address_masked: string
  attempts: DeliveryAttempt[]
  delivered_at: string | null
  recipient: Recipient | null
}

export const deliveryApi = {
  day: () => get<CourierDay>('/courier/day'),
  dispatch: (id: number) => post<Delivery>(`/deliveries/${id}/dispatch`),
  fail: (id: number, body: { reason: FailReason; note: string; lat: number | null; lng: number | null }) =>
    post<Delivery>(`/deliveries/${id}/fail`, body),
  proof: (id: number, body: ProofIn) => post<ProofResult>(`/deliveries/${id}/proof`, body),
  list: (status?: DeliveryStatus) => get<Delivery[]>('/deliveries', { status }),
  viewProof: (id: number) => get<Proof>(`/deliveries/${id}/proof`),
  release: (id: number) => post<Delivery>(`/deliveries/${id}/release`),
  mine: () => get<ResidentDelivery[]>('/resident/deliveries'),
  mineOne: (id: number) => get<ResidentDelivery>(`/resident/deliveries/${id}`),
}

// ---- the phone's outbox of proofs: a proof survives minutes without network

const STORE = 'cw.delivery.proofs'

export interface Queued {
  deliveryId: number
  proof: ProofIn
  queuedAt: string
}

function read(): Queued[] {
  try {
    const raw = localStorage.getItem(STORE)
    return raw ? (JSON.parse(raw) as Queued[]) : []
  } catch {
    return []
  }
}

function write(items: Queued[]): void {
  localStorage.setItem(STORE, JSON.stringify(items))
}

/** Proofs waiting for the network, oldest first. */
export const queued = (): Queued[] => read()

/** A new idempotency key: the server keeps one proof per key (a unique constraint). */
export function proofKey(): string {
  const bytes = new Uint8Array(18)
  crypto.getRandomValues(bytes)
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

/** Keep the proof on the phone first, so a closed tab or a lost network loses nothing. */
export function enqueue(deliveryId: number, proof: ProofIn): void {
  const items = read().filter((q) => q.proof.key !== proof.key)
  items.push({ deliveryId, proof, queuedAt: new Date().toISOString() })
  write(items)
}

function drop(key: string): void {
  write(read().filter((q) => q.proof.key !== key))
}

export interface FlushOutcome {
  sent: ProofResult[]
  refused: { deliveryId: number; error: ApiError }[]
  waiting: number
}

let flushing: Promise<FlushOutcome> | null = null
// Answers that refuse the proof itself (not ours, wrong entry, locked, bad photo): the courier
// redoes it. Anything else (no network, a body cut in transit, a lapsed session, a busy
// server) keeps it queued: sent again under the same key it can only be taken once.
const REFUSED = new Set([403, 404, 409, 413, 422])

/** Send what is queued, one at a time; a proof leaves the queue once the server took it or
 * refused it (see REFUSED). Without network, or after a damaged request, it stays. */
export function flush(): Promise<FlushOutcome> {
  if (flushing) return flushing
  flushing = (async () => {
    const out: FlushOutcome = { sent: [], refused: [], waiting: 0 }
    for (const q of read()) {
      try {
        out.sent.push(await deliveryApi.proof(q.deliveryId, q.proof))
        drop(q.proof.key)
      } catch (e) {
        const err = e instanceof ApiError ? e : new ApiError(0, 'network', '')
        if (REFUSED.has(err.status)) {
          drop(q.proof.key)
          out.refused.push({ deliveryId: q.deliveryId, error: err })
        } else {
          out.waiting += 1
        }
      }
    }
    return out
  })().finally(() => {
    flushing = null
  })
  return flushing
}

/** A photo brought down to `maxSide` px as JPEG, base64 without the data: prefix. */
export async function photoBase64(file: Blob, maxSide = 1280, quality = 0.75): Promise<string> {
  const bmp = await createImageBitmap(file)
  const scale = Math.min(1, maxSide / Math.max(bmp.width, bmp.height))
  const canvas = document.createElement('canvas')
  canvas.width = Math.max(1, Math.round(bmp.width * scale))
  canvas.height = Math.max(1, Math.round(bmp.height * scale))
  canvas.getContext('2d')?.drawImage(bmp, 0, 0, canvas.width, canvas.height)
  bmp.close()
  return canvas.toDataURL('image/jpeg', quality).split(',', 2)[1]
}

/** The tel: link that calls a number. */
export const telLink = (phone: string) => `tel:${phone.replace(/[^0-9+]/g, '')}`
