// The strings of each area, one file per area, both languages side by side in it.
// An area file exports `area: Area` ({ name, zh, en }); its keys are reached as `<name>.<key>`.
// Add a new area by importing it here.
import { area as alerts2 } from './alerts'
import { area as board } from './board'
import { area as deliveries } from './deliveries'
import { area as home } from './home'
import { area as licences } from './licences'
import { area as plans } from './plans'
import { area as residentPages } from './resident_pages'
import { area as slots } from './slots'
import { area as stats } from './stats'
import { area as tidal } from './tidal'

export interface Area {
  name: string
  zh: Record<string, unknown>
  en: Record<string, unknown>
}

export const areas: Area[] = [home, residentPages, board, tidal, licences, alerts2, stats, plans, slots, deliveries]
