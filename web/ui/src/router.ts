import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import { homeFor, loadMe, session, type Role } from './lib/api'

// The server serves the app at /, /login, /point, /clerk, /expert, /supervisor (web/app.py).
const routes: RouteRecordRaw[] = [
  { path: '/login', component: () => import('./pages/LoginPage.vue'), meta: { public: true } },
  { path: '/point/:rest(.*)*', component: () => import('./pages/PointPage.vue'), meta: { roles: ['community_worker', 'admin'] } },
  { path: '/clerk/:rest(.*)*', component: () => import('./pages/ClerkPage.vue'), meta: { roles: ['clerk'] } },
  { path: '/expert/:rest(.*)*', component: () => import('./pages/ExpertPage.vue'), meta: { roles: ['expert'] } },
  { path: '/supervisor/:rest(.*)*', component: () => import('./pages/SupervisorPage.vue'), meta: { roles: ['supervisor', 'admin'] } },
  { path: '/', component: () => import('./pages/HomePage.vue') },
  { path: '/:rest(.*)*', redirect: '/' },
]

export const router = createRouter({ history: createWebHistory(), routes })

router.beforeEach(async (to) => {
  if (!session.checked) await loadMe()
  if (to.meta.public) return true
  const me = session.me
  if (!me) return { path: '/login', query: to.fullPath !== '/' ? { next: to.fullPath } : {} }
  const roles = to.meta.roles as Role[] | undefined
  if (roles && !roles.includes(me.role)) return homeFor(me.role)
  if (to.path === '/' && homeFor(me.role) !== '/') return homeFor(me.role)
  return true
})
