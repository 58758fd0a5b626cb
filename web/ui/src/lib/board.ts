// The live board (docs/supervision.md, "Board"): its shapes, its calls, and the one way a page
// keeps it live. A page fetches the snapshot, follows its lines over the socket, patches what a
// line:status says at once, and fetches the snapshot again soon after (for the figures only the
// server can count), on alerts, every half minute, and after every reconnect: a client that
// reconnects fetches state again rather than trusting what it missed.
import { onBeforeUnmount, onMounted, ref, type Ref } from 'vue'
import { get } from './api'
import { errorText } from './errors'
import { call, getSocket, onConnect, type LineStatus } from './socket'

export interface BoardFigures {
  waiting: number
  longest_wait_seconds: number
  oldest_waiting_since: string | null
  clerks_serving: number
  clerks_free: number
  clerks_online: number
  arrivals_last_hour: number
  served_last_hour: number
  sl_within: number
  sl_counted: number
  service_level: number | null
  handling_seconds: number | null
  handled_today: number
  alerts_red: number
  alerts_yellow: number
  alerts_wait: number
}

export interface BoardLine extends BoardFigures {
  line_id: number
  line_name: string
  department: string
  site_id: number
  target_seconds: number
}

export interface BoardHall extends BoardFigures {
  site_id: number
  site_name: string
  site_kind: string
  lines: BoardLine[]
}

export interface Board {
  at: string
  total: BoardFigures
  halls: BoardHall[]
}

export interface WaitingTicket {
  ticket_id: number
  number: string
  item_code: string
  item_name: string
  priority: number
  priority_reason: string
  waiting_since: string
  wait_seconds: number
  over_target: boolean
  alerted: boolean
}

export interface LineQueue {
  line_id: number
  line_name: string
  target_seconds: number
  total: number
  limit: number
  offset: number
  tickets: WaitingTicket[]
}

export interface WallLine extends BoardLine {
  serving: string[]
  next: { number: string; item_name: string }[]
}

export interface Wall {
  at: string
  hall: BoardFigures
  site_id: number
  site_name: string
  lines: WallLine[]
}

export const getBoard = (hallId?: number) => get<Board>('/board', { hall_id: hallId })
export const getWall = (hallId?: number) => get<Wall>('/board/wall', { hall_id: hallId })
export const getLineQueue = (lineId: number, offset: number, limit: number) =>
  get<LineQueue>(`/board/lines/${lineId}/waiting`, { offset, limit })

/** Red or yellow from the line alerts (their colours), else none. */
export function alertLevel(f: BoardFigures): 'red' | 'yellow' | '' {
  if (f.alerts_red > 0) return 'red'
  if (f.alerts_yellow > 0) return 'yellow'
  return ''
}

/** The longest wait now: from the oldest number still waiting, so it keeps ticking. */
export function longestNow(f: BoardFigures, now: number): number {
  if (!f.oldest_waiting_since) return 0
  return Math.max(0, Math.floor((now - Date.parse(f.oldest_waiting_since)) / 1000))
}

/** What a line:status says, put on the line at once (the snapshot that follows re-counts). */
export function patchLine(line: BoardFigures, s: LineStatus, now: number): number {
  const delta = s.waiting - line.waiting
  line.waiting = s.waiting
  line.clerks_online = s.clerks_online
  line.clerks_free = s.clerks_available
  line.oldest_waiting_since = s.waiting ? new Date(now - s.longest_wait_seconds * 1000).toISOString() : null
  line.longest_wait_seconds = s.longest_wait_seconds
  return delta
}

// After a line:status the snapshot is fetched again this much later, once for a burst of events.
const REFRESH_AFTER_EVENT_MS = 2000
// Figures that change with time alone (the last hour, today's level, alerts raised by the sweep
// on other nodes) are fetched again this often.
const REFRESH_EVERY_MS = 30_000
// line:watch takes at most this many lines per call (signaling's payload limit).
const WATCH_CHUNK = 100
// Waits are shown in minutes: the clock they count from moves this often.
const TICK_MS = 5000
const ALERT_EVENTS = ['alert:raised', 'alert:changed', 'line_alert:raised', 'line_alert:changed']

export interface LiveBoard<T> {
  data: Ref<T | null>
  error: Ref<string>
  now: Ref<number>
  reload: () => Promise<void>
}

/**
 * Keep `fetch`'s result live: `lines(data)` are the lines to follow, `patch(data, status)` applies
 * a line:status to the data in place. The watch is made again on every (re)connection.
 */
export function useLiveBoard<T>(
  fetch: () => Promise<T>,
  lines: (data: T) => number[],
  patch: (data: T, s: LineStatus) => void,
): LiveBoard<T> {
  const data = ref<T | null>(null) as Ref<T | null>
  const error = ref('')
  const now = ref(Date.now())
  let watched = new Set<number>()
  let loading: Promise<void> | null = null
  let again = false
  let soon: ReturnType<typeof setTimeout> | null = null
  let every: ReturnType<typeof setInterval> | null = null
  let tick: ReturnType<typeof setInterval> | null = null
  let offConnect: (() => void) | null = null

  async function watch(ids: number[]) {
    const fresh = ids.filter((id) => !watched.has(id))
    for (let i = 0; i < fresh.length; i += WATCH_CHUNK) {
      const part = fresh.slice(i, i + WATCH_CHUNK)
      await call('line:watch', { line_ids: part })
      for (const id of part) watched.add(id)
    }
  }

  async function once() {
    try {
      const got = await fetch()
      data.value = got
      now.value = Date.now()
      error.value = ''
      if (getSocket().connected) await watch(lines(got))
    } catch (e) {
      error.value = errorText(e)
    }
  }

  async function reload(): Promise<void> {
    if (loading) {
      again = true
      return loading
    }
    loading = (async () => {
      do {
        again = false
        await once()
      } while (again)
    })()
    try {
      await loading
    } finally {
      loading = null
    }
  }

  function later() {
    if (soon) return
    soon = setTimeout(() => {
      soon = null
      void reload()
    }, REFRESH_AFTER_EVENT_MS)
  }

  function onStatus(s: LineStatus) {
    if (data.value && watched.has(s.line_id)) patch(data.value, s)
    later()
  }

  onMounted(() => {
    const s = getSocket()
    s.on('line:status', onStatus)
    for (const e of ALERT_EVENTS) s.on(e, later)
    // Every (re)connection: a new socket follows no line yet, and what was missed is fetched.
    offConnect = onConnect(() => {
      watched = new Set()
      void reload()
    })
    if (!s.connected) void reload()
    every = setInterval(() => void reload(), REFRESH_EVERY_MS)
    tick = setInterval(() => (now.value = Date.now()), TICK_MS)
  })
  onBeforeUnmount(() => {
    const s = getSocket()
    s.off('line:status', onStatus)
    for (const e of ALERT_EVENTS) s.off(e, later)
    offConnect?.()
    if (soon) clearTimeout(soon)
    if (every) clearInterval(every)
    if (tick) clearInterval(tick)
  })
  return { data, error, now, reload }
}
