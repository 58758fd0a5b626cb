// Alerts of the three kinds (one lifecycle), thresholds and bad-rating follow-ups: the shapes
// the supervision API answers with and the calls the alert components make.
import { api, get, post, type AlertCounts, type LineAlert } from './api'

export type AlertStatus = 'raised' | 'acknowledged' | 'resolved'

interface Lifecycle {
  id: number
  status: AlertStatus
  raised_at: string
  acknowledged_at: string | null
  acknowledged_by: number | null
  note: string
  resolved_at: string | null
  resolution: string
}

export interface WaitAlert extends Lifecycle {
  ticket_id: number
  ticket_number: string
  item_name: string
  line_id: number
  line_name: string
  threshold_seconds: number
  waited_seconds: number
}

export interface FollowupAlert extends Lifecycle {
  followup_id: number
  case_id: number
  case_number: string
  item_name: string
  line_id: number | null
  line_name: string
  due_date: string | null
  due_at: string
}

export type AlertKind = 'line' | 'wait' | 'followup'

// One row of the unified list: the kind, and the alert as that kind's endpoint reads it.
export type AnyAlert =
  | { kind: 'line'; alert: LineAlert }
  | { kind: 'wait'; alert: WaitAlert }
  | { kind: 'followup'; alert: FollowupAlert }

// Where each kind lives and how it is announced; the order is the list's order (red first).
export const ALERT_KINDS: { kind: AlertKind; path: string; events: [string, string] }[] = [
  { kind: 'line', path: '/line-alerts', events: ['line_alert:raised', 'line_alert:changed'] },
  { kind: 'wait', path: '/alerts', events: ['alert:raised', 'alert:changed'] },
  { kind: 'followup', path: '/followup-alerts', events: ['followup_alert:raised', 'followup_alert:changed'] },
]

export const pathOf = (kind: AlertKind) => ALERT_KINDS.find((k) => k.kind === kind)!.path

export async function loadAlerts(): Promise<AnyAlert[]> {
  const lists = await Promise.all(ALERT_KINDS.map((k) => get<Lifecycle[]>(k.path)))
  return lists.flatMap((rows, i) => rows.map((a) => ({ kind: ALERT_KINDS[i].kind, alert: a }) as AnyAlert))
}

export function actOn(kind: AlertKind, id: number, step: 'acknowledge' | 'resolve', note: string) {
  return post<AnyAlert['alert']>(`${pathOf(kind)}/${id}/${step}`, { note })
}

// ---- thresholds

export interface ThresholdValues {
  wait_alert_seconds: number | null
  waiting_yellow: number | null
  waiting_red: number | null
  taken_yellow: number | null
  taken_red: number | null
}

export type ThresholdField = keyof ThresholdValues
export const THRESHOLD_FIELDS: ThresholdField[] = [
  'wait_alert_seconds',
  'waiting_yellow',
  'waiting_red',
  'taken_yellow',
  'taken_red',
]

export interface LineThreshold {
  line_id: number
  line_name: string
  site_id: number
  department: string
  own: ThresholdValues
  inherited: ThresholdValues
  effective: ThresholdValues
  source: Record<ThresholdField, string>
}

export interface DepartmentThreshold {
  site_id: number
  site_name: string
  department: string
  department_name: string
  own: ThresholdValues
  inherited: ThresholdValues
}

export interface NamedRef {
  id: string
  name: string
}

export interface ThresholdsView {
  defaults: ThresholdValues
  window_minutes: number
  lines: LineThreshold[]
  departments: DepartmentThreshold[]
  sites: NamedRef[]
  department_names: NamedRef[]
}

// What the threshold dialog edits: a line's own values, or a department's at a site.
export interface ThresholdTarget {
  kind: 'line' | 'department'
  lineId?: number
  title: string
  siteId?: number // a department row; empty: choose the site and department here
  department?: string
  own: ThresholdValues
  inherited: ThresholdValues
}

export const loadThresholds = () => get<ThresholdsView>('/thresholds')
export const saveLineThresholds = (lineId: number, values: Partial<ThresholdValues>) =>
  api<LineThreshold>('PUT', `/thresholds/lines/${lineId}`, values)
export const saveDepartmentThresholds = (siteId: number, dept: string, values: Partial<ThresholdValues>) =>
  api<DepartmentThreshold>('PUT', `/thresholds/departments/${siteId}/${dept}`, values)

// ---- follow-ups

export type CallbackOutcome = 'reached' | 'not_reached'

export interface Followup {
  id: number
  case_id: number
  case_number: string
  item_name: string
  line_id: number | null
  line_name: string
  site_id: number
  score: number
  complaint: boolean
  comment: string
  resident_name: string
  resident_phone_masked: string
  rated_at: string
  opened_at: string
  due_date: string
  due_at: string
  calendar: 'holidays' | 'weekdays'
  status: 'open' | 'closed'
  overdue: boolean
  callback_outcome: CallbackOutcome | ''
  callback_note: string
  called_back_at: string | null
  called_back_by: number | null
  rectification: string
  rectified_at: string | null
  rectified_by: number | null
  closed_at: string | null
  closed_by: number | null
}

export interface FollowupRecord {
  callback_outcome?: CallbackOutcome
  callback_note?: string
  rectification?: string
  close?: boolean
}

export const FOLLOWUP_EVENTS = ['followup:opened', 'followup:changed']

export const loadFollowups = (open: boolean) => get<Followup[]>('/followups', { open })
export const recordFollowup = (id: number, body: FollowupRecord) =>
  post<Followup>(`/followups/${id}/record`, body)
export const followupContact = (id: number) =>
  post<{ resident_name: string; phone: string }>(`/followups/${id}/contact`)

/** Where a follow-up stands, as one key of alerts2.state_*. */
export function followupState(f: Followup): string {
  if (f.status === 'closed') return f.overdue ? 'closed_late' : 'closed'
  if (f.callback_outcome && f.rectification) return 'ready'
  if (f.callback_outcome) return 'called'
  if (f.rectification) return 'rectified'
  return 'open'
}

// ---- counts per period (the alert counts and the follow-ups')

export interface PeriodCounts extends AlertCounts {
  followups_opened: number
  followups_closed_on_time: number
  followups_overdue: number
}
