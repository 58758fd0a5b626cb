// The strings of each area, one file per area, both languages side by side in it.
// An area file exports `area: Area` ({ name, zh, en }); its keys are reached as `<name>.<key>`.
// Add a new area by importing it here.
export interface Area {
  name: string
  zh: Record<string, unknown>
  en: Record<string, unknown>
}

export const areas: Area[] = []
