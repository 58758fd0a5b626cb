import { createApp } from 'vue'
// Element Plus on demand: each component is imported where it is used (so pages carry only
// their own), and only the styles of the components we use are loaded, here, before ours.
import './element-styles'
import './styles.css'
import App from './App.vue'
import { i18n } from './i18n'
import { router } from './router'
import { applyPrefs } from './lib/prefs'

applyPrefs((l) => {
  i18n.global.locale.value = l as 'zh-CN' | 'en'
  document.title = i18n.global.t('app.title')
})

createApp(App).use(i18n).use(router).mount('#app')

// A dialog's <header>/<footer> (Element Plus) sit outside <main>, where they would count as a
// second banner and content-info landmark: inside a dialog they are plain parts of it.
new MutationObserver(() => {
  for (const el of document.querySelectorAll('.el-dialog > header:not([role]), .el-dialog > footer:not([role])')) el.setAttribute('role', 'none')
}).observe(document.body, { childList: true, subtree: true })
