// Visit plans (the coordinator's plan page) and the visit day (the field worker's tablet):
// the shapes of scheduler/models.py and the calls of scheduler/plans_views.py.
import { get, post } from './api'

export interface Stop {
  visit: string
  window: number
  arrival: number // seconds after local midnight
  start: number
  end: number
}
export interface Route {
  staff: string
  shift: number
  depot: string
  start: number
  end: number
  distance: number
  duration: number
  stops: Stop[]
}
export interface Unserved {
  visit: string
  required: boolean
  reason: string
  detail: string
}
export interface Totals {
  distance: number
  duration: number
  served: number
  unserved: number
  served_priority: number
  required_unserved: number
}
export interface Plan {
  routes: Route[]
  unserved: Unserved[]
  totals: Totals
  feasible: boolean
  seconds: number
  solver: string
}
export interface PlanArea {
  id: number
  name: string
  name_en: string
  kind: string
}
export interface PlanStaff {
  key: string
  staff_id: number
  name: string
  skills: string[]
  depot: string
}
export interface PlanDepot {
  key: string
  name: string
  name_en: string
  lat: number
  lng: number
}
export interface PlanVisit {
  key: string
  request_id: number
  case_number: string
  status: string
  resident_name: string
  resident_age: number
  item_name: string
  item_name_en: string
  community: string
  lat: number | null
  lng: number | null
  duration: number
  windows: [number, number][]
  skills: string[]
  priority: number
  urgent: boolean
  locked: boolean
  required: boolean
  checked_in_at: string | null
}
export type PlanStatus = 'draft' | 'published' | 'superseded'
export interface PlanSummary {
  id: number
  site_id: number
  day: string
  version: number
  status: PlanStatus
  change: 'plan' | 'lock' | 'move' | 'replan'
  note: string
  created_at: string
  created_by_name: string
  published_at: string | null
  totals: Totals
}
export interface PlanRead extends PlanSummary {
  site_name: string
  plan: Plan
  skipped: { visit: string; reason: string; detail: string }[]
  locked: string[]
  urgent: number[]
  staff: PlanStaff[]
  depots: PlanDepot[]
  visits: PlanVisit[]
  latest: boolean
  tile_url: string
  tile_attribution: string
}
export interface Breach {
  code: string
  staff: string
  visit: string | null
  at: number | null
  limit: number | null
  message: string
  message_en: string
}
export interface MoveCheck {
  feasible: boolean
  breaches: Breach[]
  distance_delta: number
  duration_delta: number
  plan: Plan
}
export interface MoveIn {
  visit: string
  staff: string
  shift: number
  position: number
  start?: string
}

export const plansApi = {
  areas: () => get<PlanArea[]>('/plans/areas'),
  staff: (siteId: number) => get<PlanStaff[]>('/plans/staff', { site_id: siteId }),
  versions: (siteId: number, day: string) => get<PlanSummary[]>('/plans', { site_id: siteId, day }),
  get: (id: number) => get<PlanRead>(`/plans/${id}`),
  create: (body: { site_id: number; day: string; days?: number; staff_ids?: number[]; urgent?: number[] }) =>
    post<PlanRead[]>('/plans', body),
  lock: (id: number, visits: string[], locked: boolean) => post<PlanRead>(`/plans/${id}/locks`, { visits, locked }),
  checkMove: (id: number, move: MoveIn) => post<MoveCheck>(`/plans/${id}/move/check`, move),
  move: (id: number, move: MoveIn) => post<PlanRead>(`/plans/${id}/move`, move),
  replan: (id: number, urgent: number[]) => post<PlanRead>(`/plans/${id}/replan`, { urgent }),
  publish: (id: number) => post<PlanRead>(`/plans/${id}/publish`),
}

// ---- the visit day

export interface FieldStop {
  visit_id: number
  request_id: number
  case_id: number
  case_number: string
  order: number
  starts_at: string
  ends_at: string
  status: 'scheduled' | 'done' | 'cancelled'
  request_status: string
  resident_name: string
  resident_age: number
  phone_masked: string
  address: string
  notes: string
  item_code: string
  item_name: string
  item_name_en: string
  community: string
  lat: number
  lng: number
  nav_url: string
  checked_in_at: string | null
}
export interface FieldRoute {
  day: string
  staff_name: string
  depot: PlanDepot | null
  stops: FieldStop[]
  tile_url: string
  tile_attribution: string
}
export interface ServicePoint {
  visit_id: number
  case_id: number
  case_number: string
  item_code: string
  site_id: number
  line_id: number | null
  resident_id: number
  resident_name: string
  resident_id_masked: string
  resident_age: number
  checked_in: boolean
}

export const fieldApi = {
  route: (day?: string) => get<FieldRoute>('/field/route', day ? { day } : undefined),
  checkIn: (visitId: number, pos: { lat: number; lng: number; accuracy_m: number | null }) =>
    post<{ visit_id: number; at: string; accuracy_m: number | null }>(`/field/visits/${visitId}/check-in`, pos),
  service: (visitId: number) => get<ServicePoint>(`/field/visits/${visitId}/service`),
}

/** Seconds after midnight as HH:MM. */
export function hm(seconds: number): string {
  const h = Math.floor(seconds / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`
}

export const km = (metres: number) => (metres / 1000).toFixed(1)
export const mins = (seconds: number) => Math.round(seconds / 60)

/** A point on the map: where, its label, and which route it belongs to. */
export interface MapPoint {
  lat: number
  lng: number
  label: string
  title: string
  depot?: boolean
}
export interface MapPath {
  colour: string
  points: { lat: number; lng: number }[]
}

// Colours of the routes, distinct and dark enough on white for the lines and numbers.
export const ROUTE_COLOURS = ['#1d4ed8', '#b45309', '#047857', '#7e22ce', '#be123c', '#0e7490']
