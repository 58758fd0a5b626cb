import type { RouteRecordRaw } from 'vue-router'
import { residentRoutes } from './routes'

// The /resident route tree: the shell (big back button, language and large-text switches)
// around the sign-in pages, the home menu and every resident page. `meta.open`: no sign-in
// needed; `meta.back`: where the back button goes; `meta.title`: the page's name (a locale
// key) where a link or the menu names it; `meta.menu` / `meta.order`: on the home menu.
const own: RouteRecordRaw[] = [
  { path: '', component: () => import('./ResidentHome.vue'), meta: { title: 'rp.home.title' } },
  { path: 'login', component: () => import('./ResidentLogin.vue'), meta: { open: true, back: '/', title: 'rp.login.title' } },
  { path: 'l/:token', component: () => import('./ResidentLink.vue'), meta: { open: true, back: '/resident/login', title: 'rp.link.title' } },
  { path: 'take', component: () => import('./ResidentTake.vue'), meta: { back: '/resident', title: 'rp.take.title', menu: 'rp.menu.take', order: 10 } },
  { path: 'ticket/:id(\\d+)', component: () => import('./ResidentTicket.vue'), meta: { back: '/resident', title: 'rp.ticket.title' } },
  { path: 'cases', component: () => import('./ResidentCases.vue'), meta: { back: '/resident', title: 'rp.cases.title', menu: 'rp.menu.cases', order: 20 } },
  { path: 'cases/:id(\\d+)', component: () => import('./ResidentCase.vue'), meta: { back: '/resident/cases', title: 'rp.case.title' } },
]

export const residentTree: RouteRecordRaw = {
  path: '/resident',
  component: () => import('./ResidentShell.vue'),
  // public: the staff guard and the staff header stay out; resident: residentGuard decides.
  meta: { public: true, resident: true },
  children: [...own, ...residentRoutes, { path: ':rest(.*)*', redirect: '/resident' }],
}

/** The home menu: every page with `meta.menu`, in `meta.order`. */
export function menuRoutes(): { path: string; label: string; order: number }[] {
  return [...own, ...residentRoutes]
    .filter((r) => typeof r.meta?.menu === 'string')
    .map((r) => ({ path: `/resident/${r.path}`.replace(/\/$/, ''), label: r.meta!.menu as string, order: Number(r.meta!.order ?? 100) }))
    .sort((a, b) => a.order - b.order)
}
