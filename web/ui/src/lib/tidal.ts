// Tidal windows (docs/supervision.md, "Tidal windows"): the shapes and calls of the tidal tab
// and of the clerk's console. A page fetches the overview again on `tidal:changed`, after
// each reconnect and every half minute (arrivals move with the clock).
import { get, post } from './api'

export type TidalFit = 'department' | 'skill' | 'qualification'

export interface TidalLine {
  line_id: number
  line_name: string
  department: string
  department_name: string
  current_per_hour: number
  history_per_hour: number | null
  history_weeks: number
  arrivals_per_hour: number
  handling_seconds: number
  handling_measured: boolean
  waiting: number
  clerks: number
  needed: number
  service_level: number
  target_seconds: number
  target_level: number
  short_now: boolean
  short_before: boolean
  rough: boolean
}

export interface TidalSuggestion {
  staff_id: number
  staff_name: string
  from_line_id: number
  from_line_name: string
  to_line_id: number
  to_line_name: string
  fit: TidalFit
  until: string
  target_sl_before: number
  target_sl_after: number
  donor_sl_before: number
  donor_sl_after: number
  target_level: number
}

export interface TidalMove {
  id: number
  staff_id: number
  staff_name: string
  from_line_id: number
  from_line_name: string
  to_line_id: number
  to_line_name: string
  fit: TidalFit
  status: 'active' | 'ended'
  started_at: string
  until: string
  applied_by: number | null
  target_sl_before: number
  target_sl_after: number
  donor_sl_before: number
  donor_sl_after: number
  note: string
  ended_at: string | null
  ended_by: number | null
  end_reason: '' | 'expired' | 'closed'
}

export interface TidalOverview {
  now: string
  window_start: string
  window_minutes: number
  min_stay_minutes: number
  max_stay_minutes: number
  default_until: string
  lines: TidalLine[]
  suggestions: TidalSuggestion[]
  moves: TidalMove[]
}

/** `tidal:changed`: a move was applied, closed, or ended at its time. */
export interface TidalChanged {
  move: TidalMove
}

export const TIDAL_EVENT = 'tidal:changed'

export const loadOverview = () => get<TidalOverview>('/tidal')
export const myMoves = () => get<TidalMove[]>('/tidal/mine')

export function applyMove(s: TidalSuggestion, until: Date, note = ''): Promise<TidalMove> {
  return post<TidalMove>('/tidal/moves', {
    staff_id: s.staff_id,
    from_line_id: s.from_line_id,
    to_line_id: s.to_line_id,
    until: until.toISOString(),
    note,
  })
}

export const closeMove = (id: number, note = '') => post<TidalMove>(`/tidal/moves/${id}/close`, { note })

/** A share as a whole percentage: 0.6234 -> "62%". */
export const pct = (x: number) => `${Math.round(x * 100)}%`

/** HH:MM in the browser's time zone, for a time input and for the text. */
export function hm(iso: string): string {
  const d = new Date(iso)
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`
}

/** Today's (or, if already past, tomorrow's) date at HH:MM, in the browser's time zone. */
export function atClock(value: string, now = new Date()): Date | null {
  const m = /^(\d{2}):(\d{2})$/.exec(value)
  if (!m) return null
  const d = new Date(now)
  d.setHours(Number(m[1]), Number(m[2]), 0, 0)
  if (d.getTime() <= now.getTime()) d.setDate(d.getDate() + 1)
  return d
}
