// The licence register and its expiry reminders: the shapes and the API calls of the staff's
// licences page (outreach/licence_views.py) and of the resident's reminders page.
import { ApiError, get, session } from './api'

export type LicenceStatus = 'active' | 'renewed' | 'revoked'
export type ReminderStatus = 'scheduled' | 'queued' | 'cancelled'

export interface LicenceType {
  id: number
  code: string
  name: string
  name_en: string
  validity_months: number
  active: boolean
  offsets: number[]
  items: string[]
}

export interface Reminder {
  id: number
  offset_days: number
  channel: string
  due_on: string
  send_after: string
  status: ReminderStatus
  reason: string
  queued_at: string | null
  sms_status: string | null // the SMS outbox: pending, sending, sent, failed, expired
  delivery: string | null // the carrier's report: delivered, undelivered
  delivered_at: string | null
}

export interface Licence {
  id: number
  type_id: number
  type_code: string
  type_name: string
  type_name_en: string
  number: string
  resident_id: number
  holder_name: string
  holder_id_masked: string
  holder_phone_masked: string
  site_id: number
  site_name: string
  issued_on: string
  expires_on: string
  status: LicenceStatus
  source: 'case' | 'import'
  case_id: number | null
  renewed_by: number | null
  reminders: Reminder[]
}

export interface LicencePage {
  items: Licence[]
  total: number
}

export interface LicenceImport {
  id: number
  filename: string
  rows: number
  residents_created: number
  renewed: number
  site_id: number
  site_name: string
  at: string
}

export interface ImportProblem {
  row: number
  column: string
  code: string
  message: string
}

export interface ReminderCounts {
  start: string
  end: string
  planned: number
  queued: number
  sent: number
  delivered: number
  failed: number
  cancelled_renewed: number
  cancelled_opted_out: number
  cancelled_no_phone: number
  opt_outs: number
  by_type: { type_id: number; type_code: string; type_name: string; planned: number; queued: number; delivered: number }[]
}

export interface LicenceQuery {
  type_id?: number
  status?: LicenceStatus
  expiring_days?: number
  expired?: boolean
  q?: string
  limit?: number
  offset?: number
}

export const listTypes = () => get<LicenceType[]>('/licence-types')
export const listLicences = (q: LicenceQuery) => get<LicencePage>('/licences', q as Record<string, string | number | boolean | undefined>)
export const getLicence = (id: number) => get<Licence>(`/licences/${id}`)
export const listImports = () => get<LicenceImport[]>('/licence-imports')
export const reminderCounts = (start: string, end: string) => get<ReminderCounts>('/reminders/counts', { start, end })

async function send<T>(method: string, path: string, body: BodyInit, contentType: string, query = ''): Promise<T> {
  const headers: Record<string, string> = { 'Accept-Language': session.lang, Accept: 'application/json', 'Content-Type': contentType }
  if (session.me) headers['X-CSRF-Token'] = session.me.csrf_token
  let resp: Response
  try {
    resp = await fetch(`/api/v1${path}${query}`, { method, headers, body, credentials: 'same-origin' })
  } catch {
    throw new ApiError(0, 'network', '')
  }
  const text = await resp.text()
  let data: unknown = null
  try {
    data = text ? JSON.parse(text) : null
  } catch {
    data = null
  }
  if (!resp.ok) {
    const err = (data as { error?: { code?: string; message?: string; details?: unknown } })?.error
    throw new ApiError(resp.status, err?.code ?? `http.${resp.status}`, err?.message ?? '', err?.details)
  }
  return data as T
}

export const setPolicy = (typeId: number, offsets: number[]) =>
  send<LicenceType>('PUT', `/licence-types/${typeId}/policy`, JSON.stringify({ offsets }), 'application/json')

const XLSX = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'

/** Send a CSV or XLSX file as it is; the server reads it whole or refuses it whole. */
export function importFile(file: File, siteId: number): Promise<LicenceImport> {
  const type = /\.xlsx$/i.test(file.name) ? XLSX : 'text/csv'
  const query = `?${new URLSearchParams({ site_id: String(siteId), filename: file.name.slice(0, 200) })}`
  return send<LicenceImport>('POST', '/licences/import', file, type, query)
}

/** The row-by-row problems of a refused import (empty for any other error). */
export function importProblems(e: unknown): ImportProblem[] {
  if (!(e instanceof ApiError) || e.code !== 'licence_import.rows' || !Array.isArray(e.details)) return []
  return e.details as ImportProblem[]
}

// ---- the resident's own reminders

export interface RenewWays {
  item_code: string
  item_name: string
  item_name_en: string
  remote: boolean
  home_visit: boolean
}

export interface MyLicence {
  id: number
  type_id: number
  type_name: string
  type_name_en: string
  number_masked: string
  expires_on: string
  status: LicenceStatus
  days_left: number
  stopped: boolean
  next_reminder: string | null
  reminders: Reminder[]
  renew: RenewWays | null
}

export interface MyReminders {
  licences: MyLicence[]
  all_stopped: boolean
  stopped_types: number[]
}

export const myReminders = () => get<MyReminders>('/resident/reminders')
export const stopReminders = (typeId: number | null, stop: boolean) =>
  send<MyReminders>('POST', '/resident/reminders/stop', JSON.stringify({ type_id: typeId, stop }), 'application/json')

/** T−90, T−30, T+1 as people write it. */
export function offsetLabel(days: number): string {
  if (days === 0) return 'T'
  return days < 0 ? `T−${-days}` : `T+${days}`
}
