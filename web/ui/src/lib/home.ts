// Home service (上门服务): the shapes and the API calls of the operator's intake, the
// coordinator's queue, the tablet's request and the resident's pages (outreach/home_views.py).
import { get, post, type EligibilityProblem, type ResidentFound } from './api'

export type HomeBasis = 'elderly' | 'disabled' | 'pregnant'
export type HomeStatus = 'requested' | 'needs_info' | 'accepted' | 'scheduled' | 'visited' | 'handled' | 'delivered' | 'declined' | 'cancelled'
export type HomeChannel = 'hotline' | 'resident' | 'point'
export type DayPart = 'am' | 'pm'

export const OPEN: HomeStatus[] = ['requested', 'needs_info', 'accepted', 'scheduled', 'visited', 'handled']
/** The road a request travels, in order (declined and cancelled leave it). */
export const ROAD: HomeStatus[] = ['requested', 'accepted', 'scheduled', 'visited', 'handled', 'delivered']

export interface HomeItem {
  code: string
  name: string
  name_en: string
  department_name: string
  remote_capable: boolean
  home_for: HomeBasis[]
}

export interface HomeAlternative {
  kind: 'hall' | 'remote_assist' | 'appointment'
  site_id: number
  site_name: string
  site_name_en: string
  address: string
  distance_km: number | null
  line_id: number | null
  line_name: string | null
}

export interface HomeCheck {
  item_code: string
  resident_id: number
  eligible: boolean
  basis: HomeBasis | null
  problems: EligibilityProblem[]
  item_problems: EligibilityProblem[]
  alternatives: HomeAlternative[]
  address_on_file: boolean
  address_masked: string
  community_id: number | null
  community_name: string | null
  open_request_id: number | null
}

export interface PreferredTime {
  date: string // YYYY-MM-DD
  part: DayPart
}

export interface HomeVisit {
  id: number
  staff_id: number
  staff_name: string
  starts_at: string
  ends_at: string
  status: 'scheduled' | 'done' | 'cancelled'
  planned_by: string
  done_at: string | null
}

/** The sensitive part: the resident's own, and the coordinator's and field staff's. */
export interface HomePrivate {
  basis: HomeBasis
  pregnant_due: string | null
  address: string
  notes: string
}

export interface HomeRequest {
  id: number
  case_id: number
  case_number: string
  resident_id: number
  resident_name: string
  resident_id_masked: string
  resident_age: number
  resident_phone_masked: string
  item_code: string
  item_name: string
  item_name_en: string
  site_id: number
  site_name: string
  channel: HomeChannel
  status: HomeStatus
  created_at: string
  updated_at: string
  created_by_name: string | null
  preferred: PreferredTime[]
  address_masked: string
  info_question: string
  decline_reason: string
  visit: HomeVisit | null
  private: HomePrivate | null
}

export interface HomeRequestIn {
  resident_id?: number
  item_code: string
  pregnant_due?: string | null
  preferred: PreferredTime[]
  address: string
  notes: string
  community_id?: number | null
}

export interface FieldStaff {
  id: number
  display_name: string
  site_names: string[]
  visits_today: number
}

export interface HomeCounts {
  site_id: number
  site_name: string
  requested: number
  accepted: number
  declined: number
  visited: number
  delivered: number
}

/** The detail of a 422 home.not_eligible: the reasons and the alternatives. */
export interface IneligibleDetail {
  type: 'problem' | 'alternative'
  [k: string]: unknown
}

export const homeItems = () => get<HomeItem[]>('/home/items')
export const findResident = (q: { id_number?: string; phone?: string }) => post<ResidentFound[]>('/home/find', q)
export const checkHome = (body: { resident_id?: number; item_code: string; pregnant_due?: string | null }) =>
  post<HomeCheck>('/home/check', body)
export const createRequest = (body: HomeRequestIn) => post<HomeRequest>('/home/requests', body)
export const listRequests = (q: { status?: HomeStatus; open?: boolean; mine?: boolean; limit?: number } = {}) =>
  get<HomeRequest[]>('/home/requests', { limit: 100, ...q })
export const getRequest = (id: number) => get<HomeRequest>(`/home/requests/${id}`)
export const fieldStaff = (id: number) => get<FieldStaff[]>(`/home/requests/${id}/field-staff`)
export const homeCounts = (start: string, end: string) => get<HomeCounts[]>('/home/counts', { start, end })

export const accept = (id: number, note = '') => post<HomeRequest>(`/home/requests/${id}/accept`, { note })
export const ask = (id: number, text: string) => post<HomeRequest>(`/home/requests/${id}/ask`, { text })
export const answer = (id: number, body: { text: string; address?: string; preferred?: PreferredTime[] | null }) =>
  post<HomeRequest>(`/home/requests/${id}/answer`, body)
export const decline = (id: number, text: string) => post<HomeRequest>(`/home/requests/${id}/decline`, { text })
export const cancel = (id: number, text: string) => post<HomeRequest>(`/home/requests/${id}/cancel`, { text })
export const schedule = (id: number, body: { starts_at: string; minutes: number; staff_id: number }) =>
  post<HomeRequest>(`/home/requests/${id}/schedule`, body)
export const visited = (id: number, basisConfirmed: boolean) =>
  post<HomeRequest>(`/home/requests/${id}/visit`, { basis_confirmed: basisConfirmed })
export const handled = (id: number, note = '') => post<HomeRequest>(`/home/requests/${id}/handled`, { note })
export const delivered = (id: number, note = '') => post<HomeRequest>(`/home/requests/${id}/delivered`, { note })

/** A date as YYYY-MM-DD in this device's zone (the deployment's, for the staff using it). */
export function isoDay(d: Date): string {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`
}

/** The next `n` days from today, for choosing preferred half days. */
export function nextDays(n: number, from = new Date()): string[] {
  return Array.from({ length: n }, (_, i) => isoDay(new Date(from.getFullYear(), from.getMonth(), from.getDate() + i + 1)))
}

export const itemLabel = (x: { name: string; name_en: string }, lang: string) => (lang === 'en' && x.name_en ? x.name_en : x.name)

/** A visit's time as people say it: "12月2日 周三 09:30" / "Wed 2 Dec, 09:30". */
export function visitTime(iso: string, lang: string): string {
  return new Date(iso).toLocaleString(lang === 'en' ? 'en-GB' : 'zh-CN', {
    weekday: 'short',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
  })
}
