import type { RouteRecordRaw } from 'vue-router'

// The resident's phone pages, children of /resident. Each area adds its own pages here; a
// route with `meta.menu` (a locale key) and `meta.order` also appears on the resident's home
// menu, in that order.
export const residentRoutes: RouteRecordRaw[] = [
  // home service (上门服务): ask for a visit, follow it
  { path: 'home/new', component: () => import('./HomeVisitRequest.vue'), meta: { back: '/resident', title: 'home.res.request_title', menu: 'home.res.menu', order: 30 } },
  { path: 'home', component: () => import('./HomeVisitStatus.vue'), meta: { back: '/resident', title: 'home.res.status_title', menu: 'home.res.menu_status', order: 31 } },
  { path: 'home/:id(\\d+)', component: () => import('./HomeVisitStatus.vue'), meta: { back: '/resident/home', title: 'home.res.status_title' } },
  // licence-expiry reminders: see when each licence runs out, how to renew it, stop reminders
  { path: 'reminders', component: () => import('./Reminders.vue'), meta: { back: '/resident', title: 'licences.res.title', menu: 'licences.res.menu', order: 40 } },
  // courier delivery of a licence (证照速递): follow it from the SMS link
  { path: 'deliveries', component: () => import('./DeliveryStatus.vue'), meta: { back: '/resident', title: 'deliveries.res.title', menu: 'deliveries.res.menu', order: 41 } },
  { path: 'deliveries/:id(\\d+)', component: () => import('./DeliveryStatus.vue'), meta: { back: '/resident/deliveries', title: 'deliveries.res.title' } },
  // appointments at a hall (预约): book, see, cancel
  { path: 'appointments', component: () => import('./Appointments.vue'), meta: { back: '/resident', title: 'slots.res.title', menu: 'slots.res.menu', order: 35 } },
]
