import type { RouteRecordRaw } from 'vue-router'

// The resident's phone pages, children of /resident. Each area adds its own pages here; a
// route with `meta.menu` (a locale key) and `meta.order` also appears on the resident's home
// menu, in that order.
export const residentRoutes: RouteRecordRaw[] = []
