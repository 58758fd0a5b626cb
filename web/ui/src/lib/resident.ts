// The resident's phone pages: who is signed in (their own cookie, cw_resident), the sign-in by
// SMS code or SMS link, and the API calls the pages make. Staff sign-in is lib/api.ts.
import { reactive } from 'vue'
import type { RouteLocationNormalized, RouteLocationRaw } from 'vue-router'
import { ApiError, get, loadMe, post, session, type Bundle, type Case, type Checklist, type Eligibility, type Item, type Line, type Rating, type Site } from './api'
import { closeSocket } from './socket'
import { prefs } from './prefs'

/** The signed-in resident (GET /resident-auth/me). */
export interface ResidentMe {
  resident_id: number
  name: string
  id_masked: string
  community_id: number | null
  csrf_token: string
  age: number
  elderly: boolean
  phone_masked: string
}

/** Where an SMS link leads and where its code goes (POST /resident-auth/link). */
export interface LinkInfo {
  path: string
  phone_masked: string
  expires_at: string
}

export const resident = reactive<{ me: ResidentMe | null; checked: boolean }>({ me: null, checked: false })

// Elder mode (large text) is the default for a resident of 60 or over; one who turns it off on
// this phone keeps it off (the choice is theirs, not the age's).
const ELDER_OFF = 'cw.rp.elder_off'
const stored = (k: string) => {
  try {
    return localStorage.getItem(k)
  } catch {
    return null
  }
}
export function setElder(on: boolean): void {
  prefs.large = on
  try {
    if (on) localStorage.removeItem(ELDER_OFF)
    else if (resident.me?.elderly) localStorage.setItem(ELDER_OFF, '1')
  } catch {
    /* private mode */
  }
}
function applyElderDefault(me: ResidentMe): void {
  if (me.elderly && stored(ELDER_OFF) !== '1') prefs.large = true
}

async function signedIn(me: ResidentMe): Promise<ResidentMe> {
  resident.me = me
  resident.checked = true
  applyElderDefault(me)
  // The shared client sends the CSRF token of session.me on writes (GET /auth/me answers for
  // a resident too), and the socket must reconnect with the new cookie.
  closeSocket()
  await loadMe()
  return me
}

export async function loadResident(): Promise<ResidentMe | null> {
  try {
    resident.me = await get<ResidentMe>('/resident-auth/me')
    applyElderDefault(resident.me)
  } catch {
    resident.me = null
  }
  resident.checked = true
  return resident.me
}

export const requestCode = (idNumber: string, phone: string) =>
  post<{ sent: boolean }>('/resident-auth/code', { id_number: idNumber, phone })

export async function signIn(idNumber: string, phone: string, code: string): Promise<ResidentMe> {
  return await signedIn(await post<ResidentMe>('/resident-auth/login', { id_number: idNumber, phone, code }))
}

export const checkLink = (token: string) => post<LinkInfo>('/resident-auth/link', { token })
export const linkCode = (token: string) => post<LinkInfo>('/resident-auth/link/code', { token })

export async function linkSignIn(token: string, code: string): Promise<string> {
  const me = await post<ResidentMe & { path: string }>('/resident-auth/link/login', { token, code })
  await signedIn(me)
  return safePath(me.path)
}

export async function signOut(): Promise<void> {
  try {
    await post('/resident-auth/logout')
  } catch {
    /* already signed out */
  }
  closeSocket()
  resident.me = null
  session.me = null
}

/** A page of the resident app only: never another site (the server checks it as well). */
export function safePath(p: unknown): string {
  return typeof p === 'string' && /^\/resident(\/[A-Za-z0-9._~-]*)*(\?[A-Za-z0-9._~=&%-]*)?$/.test(p) && !p.includes('..') ? p : '/resident'
}

/** The route guard of /resident/*: sign-in pages are open, every other needs the resident. */
export async function residentGuard(to: RouteLocationNormalized): Promise<true | RouteLocationRaw> {
  if (!resident.checked) await loadResident()
  if (to.meta.open) return true
  if (resident.me && session.me?.role === 'resident') return true
  return { path: '/resident/login', query: to.fullPath !== '/resident' ? { next: to.fullPath } : {} }
}

// ---- what the pages read and do

export const searchItems = (q: string) => get<Item[]>('/items', { q, limit: 20 })
export const itemByCode = (code: string) => get<Item>(`/items/${encodeURIComponent(code)}`)
export const listBundles = () => get<Bundle[]>('/bundles')
export const eligibility = (code: string, residentId: number) => get<Eligibility>(`/items/${code}/eligibility`, { resident_id: residentId })
export const myCases = () => get<Case[]>('/cases', { limit: 100 })
export const getCase = (id: number) => get<Case>(`/cases/${id}`)
export const caseChecklist = (id: number) => get<Checklist>(`/cases/${id}/checklist`)
export const rateCase = (id: number, score: number, comment: string) => post<Rating>(`/cases/${id}/rating`, { score, comment })

/** The lines a resident can queue on from their community: the town's, then the district's. */
export async function linesNear(communityId: number): Promise<{ point: Site; town: Line[]; district: Line[] }> {
  const point = await get<Site>(`/sites/${communityId}`)
  const town = point.parent_id ? await get<Site>(`/sites/${point.parent_id}`) : point
  const townLines = await get<Line[]>('/lines', { site_id: town.id })
  const districtLines = town.parent_id ? await get<Line[]>('/lines', { site_id: town.parent_id }) : []
  return { point, town: townLines, district: districtLines }
}

/** The line that handles an item for this resident: a town item at the town, else the district. */
export function lineFor(item: Item, town: Line[], district: Line[]): Line | null {
  const byDept = (ls: Line[]) => ls.find((l) => l.department === item.department && l.active) ?? null
  if (item.level === 'district') return byDept(district)
  return byDept(town) ?? byDept(district)
}

export const isNotFound = (e: unknown) => e instanceof ApiError && e.status === 404
