// The statistics API (supervision/stats_views.py): figures, charts and a breakdown of my area,
// the filters' choices, and the figures as files. Definitions: docs/statistics.md.
import { get } from './api'

export type StatsPeriod = 'day' | 'week' | 'month' | 'custom'
export type Breakdown = 'line' | 'hall' | 'department' | 'item' | 'clerk' | 'day'

export interface StatsFilter {
  period: StatsPeriod
  date?: string // a day inside the day, week or month (empty: today)
  start?: string // custom: first and last day, inclusive
  end?: string
  site_id?: number
  line_id?: number
  department?: string
  item_id?: number
  clerk_id?: number
  by: Breakdown
}

export interface WaitFigures {
  called: number
  mean_s: number | null
  p50_s: number | null
  p90_s: number | null
  max_s: number | null
}

export interface CallFigures {
  calls: number
  connected: number
  connected_rate: number | null
  setup_mean_s: number | null
  first_media_mean_s: number | null
  duration_mean_s: number | null
  reported: number
  rtt_mean_ms: number | null
  loss_mean_pct: number | null
  poor: number
  poor_rate: number | null
}

export interface RatingLevel {
  score: number
  label: string
  label_en: string
  count: number
  share: number | null
}

export interface RatingFigures {
  rated: number
  rated_rate: number | null
  mean_score: number | null
  satisfied_rate: number | null
  bad: number
  levels: RatingLevel[]
}

export interface Figures {
  taken: number
  served: number
  completed: number
  accepted: number
  returned: number
  no_shows: number
  cancelled: number
  abandoned_after_target: number
  transferred: number
  open: number
  wait: WaitFigures
  handled: number
  handling_mean_s: number | null
  service_level: number | null
  within_target: number
  calls: CallFigures
  ratings: RatingFigures
}

export interface DayFigures {
  day: string
  taken: number
  served: number
  no_shows: number
  cancelled: number
  wait_mean_s: number | null
  wait_p90_s: number | null
  service_level: number | null
  handling_mean_s: number | null
  rated: number
  satisfied_rate: number | null
}

/** The daily series as the API sends it: one list per figure. */
export type DailySeries = { [K in keyof DayFigures]: DayFigures[K][] }

/** The series as one object per day (what the charts and their tables walk). */
export function dailyRows(d: DailySeries): DayFigures[] {
  return d.day.map((day, i) => ({
    day,
    taken: d.taken[i],
    served: d.served[i],
    no_shows: d.no_shows[i],
    cancelled: d.cancelled[i],
    wait_mean_s: d.wait_mean_s[i],
    wait_p90_s: d.wait_p90_s[i],
    service_level: d.service_level[i],
    handling_mean_s: d.handling_mean_s[i],
    rated: d.rated[i],
    satisfied_rate: d.satisfied_rate[i],
  }))
}

/** A table row's figures: the same definitions as Figures, flat. */
export interface RowFigures {
  taken: number
  served: number
  no_shows: number
  cancelled: number
  transferred: number
  open: number
  wait_mean_s: number | null
  wait_p50_s: number | null
  wait_p90_s: number | null
  handling_mean_s: number | null
  service_level: number | null
  calls: number
  connected_rate: number | null
  poor_rate: number | null
  rated: number
  mean_score: number | null
  satisfied_rate: number | null
  bad: number
  levels: number[] // 5 非常满意 first
}

export interface BreakdownRow {
  key: string
  name: string
  name_en: string
  parent: string
  figures: RowFigures
}

export interface NotYet {
  available: false
  note: string
  note_en: string
}

export interface FollowupFigures {
  opened: number
  closed_on_time: number
  overdue: number
}

export interface DeliveryFigures {
  delivered: number
  failed_attempts: number
  open: number
}

export interface CommunityHomeFigures {
  site_id: number
  name: string
  name_en: string
  requests: number
  done: number
  scheduled: number
}

export interface ReminderFigures {
  planned: number
  queued: number
  delivered: number
  failed: number
  cancelled: number
  opt_outs: number
}

export interface HomeVisitFigures {
  done: number
  scheduled: number
  requests: number
  by_community: CommunityHomeFigures[]
}

export interface Stats {
  period: { first_day: string; last_day: string; start: string; end: string; days: number }
  as_of: string | null
  lines: number
  target_seconds: number
  totals: Figures
  daily: DailySeries
  heatmap: { counts: number[][]; days: number[]; peak: number }
  wait_bins: { upper_s: number | null; count: number }[]
  by: Breakdown
  breakdown: BreakdownRow[]
  total_row: RowFigures
  followups: FollowupFigures | NotYet
  home_visits: HomeVisitFigures | NotYet
  deliveries: DeliveryFigures | NotYet
  reminders: ReminderFigures | NotYet
}

export interface StatsOption {
  id: number | string
  name: string
  name_en: string
  parent: number | string | null
  department: string | null
}

export interface StatsOptions {
  sites: StatsOption[]
  departments: StatsOption[]
  lines: StatsOption[]
  items: StatsOption[]
  clerks: StatsOption[]
  today: string
  default_target_seconds: number
}

type Query = Record<string, string | number | undefined>

export function query(f: StatsFilter): Query {
  const q: Query = { period: f.period, by: f.by }
  if (f.period === 'custom') {
    q.start = f.start
    q.end = f.end
  } else if (f.date) q.date = f.date
  for (const k of ['site_id', 'line_id', 'department', 'item_id', 'clerk_id'] as const) {
    if (f[k] !== undefined && f[k] !== '') q[k] = f[k]
  }
  return q
}

export const loadStats = (f: StatsFilter) => get<Stats>('/statistics', query(f))
export const loadOptions = () => get<StatsOptions>('/statistics/options')

/** The download link of the figures table (the file's language is the page's). */
export function exportHref(f: StatsFilter, format: 'csv' | 'xlsx', lang: string): string {
  const qs = new URLSearchParams()
  for (const [k, v] of Object.entries({ ...query(f), format, lang: lang === 'en' ? 'en' : 'zh' })) {
    if (v !== undefined && v !== '') qs.set(k, String(v))
  }
  return `/api/v1/statistics/export?${qs.toString()}`
}

export function isNotYet(x: unknown): x is NotYet {
  return typeof x === 'object' && x !== null && (x as NotYet).available === false
}

/** A share as a whole percent, or null. */
export const pct = (x: number | null | undefined) => (x === null || x === undefined ? null : Math.round(x * 1000) / 10)
/** Seconds as minutes with one decimal, or null. */
export const mins = (s: number | null | undefined) => (s === null || s === undefined ? null : Math.round(s / 6) / 10)
