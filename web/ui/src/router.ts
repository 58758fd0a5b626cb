import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import { homeFor, loadMe, session, type Role } from './lib/api'
import { residentGuard } from './lib/resident'
import { residentTree } from './pages/resident/shell'

// The server serves the app at /, /login, /point, /clerk, /expert, /supervisor (web/app.py).
const routes: RouteRecordRaw[] = [
  { path: '/login', component: () => import('./pages/LoginPage.vue'), meta: { public: true } },
  // field staff use the point's page at a resident's home (?visit=<id>: the visit's case)
  { path: '/point/:rest(.*)*', component: () => import('./pages/PointPage.vue'), meta: { roles: ['community_worker', 'admin', 'field_staff'] } },
  { path: '/clerk/:rest(.*)*', component: () => import('./pages/ClerkPage.vue'), meta: { roles: ['clerk'] } },
  { path: '/expert/:rest(.*)*', component: () => import('./pages/ExpertPage.vue'), meta: { roles: ['expert'] } },
  // the hall's wall display (big screen), before the page's own catch-all
  { path: '/supervisor/wall', component: () => import('./pages/WallPage.vue'), meta: { roles: ['supervisor', 'admin'] } },
  { path: '/supervisor/:rest(.*)*', component: () => import('./pages/SupervisorPage.vue'), meta: { roles: ['supervisor', 'admin'] } },
  { path: '/operator/:rest(.*)*', component: () => import('./pages/OperatorPage.vue'), meta: { roles: ['operator', 'admin'] } },
  // visit plans and the visit day (scheduler/plans_views.py), before the desk's catch-all
  { path: '/coordinator/plan', component: () => import('./pages/PlanPage.vue'), meta: { roles: ['coordinator', 'admin'] } },
  { path: '/coordinator/:rest(.*)*', component: () => import('./pages/CoordinatorPage.vue'), meta: { roles: ['coordinator', 'admin'] } },
  { path: '/field/:rest(.*)*', component: () => import('./pages/FieldPage.vue'), meta: { roles: ['field_staff'] } },
  // courier deliveries of licences (scheduler/delivery_views.py): the courier's phone page
  { path: '/courier/:rest(.*)*', component: () => import('./pages/CourierPage.vue'), meta: { roles: ['courier'] } },
  { path: '/licences/:rest(.*)*', component: () => import('./pages/LicencesPage.vue'), meta: { roles: ['coordinator', 'supervisor', 'operator', 'admin'] } },
  residentTree,
  { path: '/', component: () => import('./pages/HomePage.vue') },
  { path: '/:rest(.*)*', redirect: '/' },
]

export const router = createRouter({ history: createWebHistory(), routes })

router.beforeEach(async (to) => {
  if (!session.checked) await loadMe()
  if (to.meta.resident) return residentGuard(to)
  if (to.meta.public) return true
  const me = session.me
  if (!me) return { path: '/login', query: to.fullPath !== '/' ? { next: to.fullPath } : {} }
  const roles = to.meta.roles as Role[] | undefined
  if (roles && !roles.includes(me.role)) return homeFor(me.role)
  if (to.path === '/' && homeFor(me.role) !== '/') return homeFor(me.role)
  return true
})
