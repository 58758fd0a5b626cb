// Per-device preferences: language and large-text mode, kept in localStorage.
import { reactive, watch } from 'vue'
import { session } from './api'

const saved = (k: string) => {
  try {
    return localStorage.getItem(k)
  } catch {
    return null
  }
}

export const prefs = reactive({
  lang: saved('cw.lang') === 'en' ? 'en' : 'zh-CN',
  large: saved('cw.large') === '1',
})

export function applyPrefs(setLocale: (l: string) => void): void {
  const apply = () => {
    session.lang = prefs.lang
    setLocale(prefs.lang)
    document.documentElement.lang = prefs.lang
    document.documentElement.classList.toggle('large-text', prefs.large)
    try {
      localStorage.setItem('cw.lang', prefs.lang)
      localStorage.setItem('cw.large', prefs.large ? '1' : '0')
    } catch {
      /* private mode */
    }
  }
  watch(prefs, apply, { immediate: true })
}
