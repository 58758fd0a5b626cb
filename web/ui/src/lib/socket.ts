// The socket.io connection (docs/protocol.md): acks unwrapped into values or SocketError.
import { io, type Socket } from 'socket.io-client'
import { reactive } from 'vue'
import { session } from './api'

export class SocketError extends Error {
  constructor(
    public code: string,
    message: string,
    public details: unknown = null,
  ) {
    super(message)
  }
}

type Ack = { ok: true; data: unknown } | { ok: false; error: { code: string; message: string; message_en?: string; details?: unknown } }

export const link = reactive({ connected: false, everConnected: false, error: '', online: navigator.onLine })
// The browser knows at once when the network goes (Wi-Fi lost); the socket only notices at its
// next ping, so "reconnecting" shows from this signal too.
window.addEventListener('offline', () => (link.online = false))
window.addEventListener('online', () => (link.online = true))

let socket: Socket | null = null
const reconnectHandlers = new Set<(first: boolean) => void>()

/** The shared socket; created on first use (after login: it carries the session cookie). */
export function getSocket(): Socket {
  if (socket) return socket
  // websocket only: the scale-out profile has no sticky sessions (docs/protocol.md).
  socket = io({ path: '/socket.io/', transports: ['websocket'], reconnectionDelayMax: 4000 })
  socket.on('connect', () => {
    const first = !link.everConnected
    link.connected = true
    link.everConnected = true
    link.error = ''
    for (const h of reconnectHandlers) h(first)
  })
  socket.on('disconnect', () => {
    link.connected = false
  })
  socket.on('connect_error', (err: Error & { data?: { code?: string; message?: string } }) => {
    link.connected = false
    link.error = err.data?.code ?? 'network'
    if (err.data?.code === 'unauthenticated' || err.data?.code === 'session_expired') {
      window.location.assign(location.pathname.startsWith('/resident') ? '/resident/login' : '/login')
    }
  })
  return socket
}

/** Run `fn` on every (re)connection; `first` is true for the very first one. */
export function onConnect(fn: (first: boolean) => void): () => void {
  reconnectHandlers.add(fn)
  if (socket?.connected) fn(false)
  return () => reconnectHandlers.delete(fn)
}

export function closeSocket(): void {
  socket?.disconnect()
  socket = null
  link.connected = false
  link.everConnected = false
}

/** Send an event and wait for its ack; resolves with `data`, rejects with SocketError. */
export async function call<T = unknown>(event: string, payload: unknown = {}, timeoutMs = 15000): Promise<T> {
  const s = getSocket()
  let ack: Ack
  try {
    ack = (await s.timeout(timeoutMs).emitWithAck(event, payload)) as Ack
  } catch {
    throw new SocketError('timeout', '')
  }
  if (ack.ok) return ack.data as T
  const en = session.lang.startsWith('en')
  throw new SocketError(ack.error.code, (en && ack.error.message_en) || ack.error.message, ack.error.details)
}

/** Fire-and-forget for reports (call:state, call:stats) whose ack we do not need. */
export function send(event: string, payload: unknown): void {
  getSocket().emit(event, payload, () => undefined)
}

// ---- shapes (docs/protocol.md, Reference)

export interface Ticket {
  id: number
  number: string
  line_id: number
  line_name: string
  status: 'waiting' | 'called' | 'serving' | 'done' | 'cancelled' | 'no_show'
  priority: number
  priority_reason: string
  channel: string
  item_code: string
  item_name: string
  case_id: number
  case_number: string
  resident_name: string | null
  resident_id_masked: string | null
  point_site_id: number
  waiting_since: string
  called_at: string | null
  called_by: number | null
  recalls: number
  outcome: string
  call_id: number | null
  position?: number | null
  eta_seconds?: number | null
}

export interface Participant {
  id: number
  staff_id: number | null
  resident_id?: number | null
  role: string
  display_name: string
  connected: boolean
}

export interface CallJoin {
  call_id: number
  participant_id: number
  resume_token: string
  generation?: number
  participants: Participant[]
  ice_servers: RTCIceServer[]
  ticket_id: number | null
  case_id: number | null
  /** Recording policy of the call (docs/recording.md); absent on nodes without a recorder. */
  recording?: RecordingPolicy | null
}

export interface RecordingPolicy {
  enabled: boolean
  required: boolean
  /** A clerk stopped recording this call; it stays stopped. */
  stopped?: boolean
}

/** `recording:state`: one participant's recording started or stopped (with why). */
export interface RecordingState {
  call_id: number
  participant_id: number
  active: boolean
  reason?: string
}

export interface LineStatus {
  line_id: number
  line_name: string
  waiting: number
  clerks_online: number
  clerks_available: number
  avg_handling_seconds: number
  longest_wait_seconds: number
}

export interface SyncState {
  tickets: Ticket[]
  calls: { call_id: number; participant_id: number }[]
  lines: LineStatus[]
  ice_servers: RTCIceServer[]
}
